//! Two-term recency searches (limit 100) over 1M demo posts, by term
//! frequency class. `POSTS=200000 cargo bench -p datapact-search` for a
//! smaller corpus.

#[path = "support/corpus.rs"]
mod corpus;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use datapact_search::{Filters, SortOrder, parse};

fn bench(c: &mut Criterion) {
    let posts = std::env::var("POSTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let (ix, df) = corpus::build(posts);
    let pick = |lo: usize, hi: usize, rng: &mut corpus::Rng| {
        let hi = hi.min(df.len());
        df[lo + rng.below(hi - lo)].0.clone()
    };
    // Document-frequency rank ranges.
    let classes = [("common", 0, 20), ("mid", 100, 500), ("rare", 2_000, 10_000)];
    let mut group = c.benchmark_group(format!("two_term_recency_{posts}"));
    for (i, &(a, alo, ahi)) in classes.iter().enumerate() {
        for &(b, blo, bhi) in &classes[i..] {
            let mut rng = corpus::Rng(0xbe9c + i as u64);
            let queries: Vec<_> = (0..64)
                .map(|_| {
                    let q = format!("{} {}", pick(alo, ahi, &mut rng), pick(blo, bhi, &mut rng));
                    parse(&q).expect("query").resolve(|_| None)
                })
                .collect();
            let mut k = 0;
            group.bench_function(format!("{a}+{b}"), |bench| {
                bench.iter(|| {
                    k = (k + 1) % queries.len();
                    black_box(ix.search(&queries[k], &Filters::default(), SortOrder::Recency, 100, None))
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
