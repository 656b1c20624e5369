//! Latency of two-term recency searches (limit 100) over a 1M-post demo corpus.
//!
//! `cargo run --release -p datapact-search --example latency [POSTS] [QUERIES]`

#[path = "../benches/corpus.rs"]
mod corpus;

use std::time::Instant;

use datapact_search::{Filters, SortOrder, parse};

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let posts: usize = args.next().map_or(1_000_000, |s| s.parse().expect("POSTS"));
    let queries: usize = args.next().map_or(2_000, |s| s.parse().expect("QUERIES"));
    let base = rss_mb();
    let t = Instant::now();
    let (ix, df) = corpus::build(posts);
    println!(
        "indexed {} posts ({} distinct tokens) in {:.1?}; RSS {:.0} MB (+{:.0} MB, includes the tokenizer's frequency table), index heap ≈ {:.0} MB",
        ix.len(),
        df.len(),
        t.elapsed(),
        rss_mb(),
        rss_mb() - base,
        ix.heap_bytes() as f64 / 1048576.0
    );
    drop(df.iter().skip(20_000).count());
    let mut rng = corpus::Rng(0x5eed);
    for (label, sort) in [("recency", SortOrder::Recency), ("relevancy", SortOrder::Relevancy)] {
        let mut times = Vec::with_capacity(queries);
        let mut worst = (0.0, String::new());
        let mut total_hits = 0usize;
        for _ in 0..queries {
            let q = format!("{} {}", corpus::term(&df, &mut rng, 20_000), corpus::term(&df, &mut rng, 20_000));
            let t = Instant::now();
            let rq = parse(&q).expect("query").resolve(|_| None);
            let page = ix.search(&rq, &Filters::default(), sort, 100, None);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            total_hits += page.ids.len();
            if ms > worst.0 {
                worst = (ms, q);
            }
            times.push(ms);
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        println!(
            "{label}: {queries} two-term queries, limit 100: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({:?}); mean page {:.1}",
            pct(0.5),
            pct(0.9),
            pct(0.99),
            worst.0,
            worst.1,
            total_hits as f64 / queries as f64
        );
    }
}
