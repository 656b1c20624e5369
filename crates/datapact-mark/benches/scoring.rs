//! Scoring throughput: (site, licensee) pairs per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datapact_mark::{Channel, ScoringSites, Secret, SiteCode};
use std::hint::black_box;

fn scoring(c: &mut Criterion) {
    let secret = Secret::new(1, [1; 32]);
    let digest = [0u8; 32];
    let n_sites = 2_000u32;
    let sites: Vec<(SiteCode, bool)> = (0..n_sites)
        .map(|i| {
            let code = SiteCode::derive(&secret, 7, &digest, Channel::Apostrophe, i);
            (code, code.symbol(99))
        })
        .collect();
    let scoring = ScoringSites::new(sites);
    let candidates: Vec<u64> = (0..1_000).collect();
    let mut g = c.benchmark_group("scoring");
    g.throughput(Throughput::Elements(n_sites as u64 * candidates.len() as u64));
    g.bench_function("2000 sites x 1000 licensees", |b| b.iter(|| black_box(scoring.scores(black_box(&candidates)))));
    g.finish();
    let mut g = c.benchmark_group("bound");
    g.bench_function("threshold over 2000 sites", |b| b.iter(|| black_box(scoring.threshold(black_box(1e-6), 1000))));
    g.finish();
}

criterion_group!(benches, scoring);
criterion_main!(benches);
