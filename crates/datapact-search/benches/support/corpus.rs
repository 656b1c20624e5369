//! Shared by `benches/search.rs` and `examples/latency.rs`: a 1M-post index
//! built from the `datapact-demo` corpus, and two-term queries.

#![allow(dead_code)]

use std::collections::HashMap;

use datapact_search::{Doc, SearchIndex};
use serde_json::Value;

/// Converts one `datapact-demo` post to a [`Doc`].
pub fn to_doc(v: &Value) -> Doc {
    let num = |k: &str| v[k].as_str().and_then(|s| s.parse::<i64>().ok()).expect("numeric id");
    let created = chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().expect("created_at"))
        .expect("RFC 3339")
        .timestamp_millis();
    let is_reply = v["referenced_tweets"].as_array().is_some_and(|r| r.iter().any(|x| x["type"] == "replied_to"));
    Doc {
        id: num("id"),
        author_id: num("author_id"),
        created_at_ms: created,
        lang: v["lang"].as_str().map(String::from),
        is_reply,
        is_retweet: v["referenced_tweets"].as_array().is_some_and(|r| r.iter().any(|x| x["type"] == "retweeted")),
        is_quote: v["referenced_tweets"].as_array().is_some_and(|r| r.iter().any(|x| x["type"] == "quoted")),
        text: v["text"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Builds the index of `posts` demo posts; also returns the document
/// frequency of every token, most frequent first.
pub fn build(posts: usize) -> (SearchIndex, Vec<(String, u32)>) {
    let spec = datapact_demo::CorpusSpec { posts, ..Default::default() };
    let mut ix = SearchIndex::new();
    let mut df: HashMap<String, u32> = HashMap::new();
    for v in datapact_demo::generate(&spec) {
        let d = to_doc(&v);
        let mut toks = datapact_search::tokenize(&d.text);
        toks.sort_unstable();
        toks.dedup();
        for t in toks {
            *df.entry(t).or_default() += 1;
        }
        ix.upsert(d);
    }
    let mut df: Vec<(String, u32)> = df.into_iter().collect();
    df.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    (ix, df)
}

/// Small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A term whose document frequency rank is drawn log-uniformly from
/// `[0, max_rank)`: as many queries use a top-10 word as a rank 1,000–10,000
/// word, so frequent words are heavily represented.
pub fn term(df: &[(String, u32)], rng: &mut Rng, max_rank: usize) -> String {
    let max = max_rank.min(df.len()) as f64;
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let rank = (max.powf(u) - 1.0) as usize;
    df[rank.min(df.len() - 1)].0.clone()
}
