//! Random queries over random small corpora (with replacements and
//! removals) give exactly the brute-force results, in order, through any
//! pagination.

use std::collections::BTreeMap;

use datapact_search::{Cursor, Doc, Filters, SearchIndex, SortOrder, matches, parse, relevance};
use proptest::prelude::*;

const WORDS: &[&str] = &[
    "rust",
    "Rust",
    "#rust",
    "#Rust",
    "été",
    "E\u{301}te\u{301}",
    "ete",
    "l’été",
    "l'ete",
    "don't",
    "don’t",
    "don",
    "t",
    "go",
    "the",
    "café",
    "@bob",
    "$TSLA",
    "tsla",
    "a_b",
    "x",
    "e-mail",
    "mail",
];
const SEPS: &[&str] = &[" ", " ", " ", ", ", "\u{a0}", "! ", " — ", "\n", "…"];
const QWORDS: &[&str] = &[
    "rust",
    "RUST",
    "#rust",
    "été",
    "ete",
    "e\u{301}te\u{301}",
    "don't",
    "the",
    "go",
    "café",
    "@bob",
    "bob",
    "$tsla",
    "tsla",
    "missing",
    "l’été",
    "e-mail",
    "mail",
    "t",
    "x",
    "a_b",
];
const USERS: &[&str] = &["alice", "BOB", "carol", "nobody"];

fn author_of(u: &str) -> Option<i64> {
    match u {
        "alice" => Some(1),
        "bob" => Some(2),
        "carol" => Some(3),
        _ => None,
    }
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec((0..WORDS.len(), 0..SEPS.len()), 0..8)
        .prop_map(|v| v.into_iter().map(|(w, s)| format!("{}{}", WORDS[w], SEPS[s])).collect())
}

fn doc() -> impl Strategy<Value = Doc> {
    (1i64..40, 1i64..5, 0i64..100, 0usize..3, any::<bool>(), 0u8..3, text()).prop_map(
        |(id, author_id, created_at_ms, lang, is_reply, kind, text)| Doc {
            id,
            author_id,
            created_at_ms,
            lang: [None, Some("en"), Some("FR")][lang].map(String::from),
            is_reply,
            is_retweet: kind == 1,
            is_quote: kind == 2,
            text,
        },
    )
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(Doc),
    Remove(i64),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(prop_oneof![4 => doc().prop_map(Op::Upsert), 1 => (1i64..40).prop_map(Op::Remove)], 0..60)
}

/// A clause that can stand alone (keyword, phrase, from:, group).
fn standalone(group: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        4 => (0..QWORDS.len()).prop_map(|i| QWORDS[i].to_string()),
        1 => (prop::collection::vec(0..QWORDS.len(), 1..3), any::<bool>()).prop_map(|(v, curly)| {
            let words: Vec<&str> = v.into_iter().map(|i| QWORDS[i]).collect();
            if curly { format!("“{}”", words.join(" ")) } else { format!("\"{}\"", words.join(" ")) }
        }),
        1 => (0..USERS.len(), any::<bool>()).prop_map(|(i, at)| format!("from:{}{}", if at { "@" } else { "" }, USERS[i])),
        1 => group.prop_map(|g| format!("({g})")),
    ]
    .boxed()
}

fn filter_only() -> BoxedStrategy<String> {
    prop_oneof![
        Just("lang:en".to_string()),
        Just("lang:fr".to_string()),
        Just("is:reply".to_string()),
        Just("is:retweet".to_string()),
        Just("is:quote".to_string()),
    ]
    .boxed()
}

fn query() -> impl Strategy<Value = String> {
    let leaf = (0..QWORDS.len()).prop_map(|i| QWORDS[i].to_string()).boxed();
    leaf.prop_recursive(3, 24, 4, |inner| {
        let branch = (
            standalone(inner.clone()),
            prop::collection::vec(
                (any::<bool>(), prop_oneof![3 => standalone(inner.clone()), 1 => filter_only()]),
                0..3,
            ),
        )
            .prop_map(|(first, rest)| {
                let mut parts = vec![first];
                for (neg, c) in rest {
                    parts.push(if neg { format!("-{c}") } else { c });
                }
                parts.join(" ")
            });
        prop::collection::vec(branch, 1..3).prop_map(|b| b.join(" OR ")).boxed()
    })
}

fn filters() -> impl Strategy<Value = Filters> {
    (
        prop::option::weighted(0.2, 0i64..45),
        prop::option::weighted(0.2, 0i64..45),
        prop::option::weighted(0.3, 0i64..150),
        prop::option::weighted(0.3, 0i64..150),
    )
        .prop_map(|(since_id, until_id, start_ms, end_ms)| Filters { since_id, until_id, start_ms, end_ms })
}

fn walk(ix: &SearchIndex, q: &datapact_search::ResolvedQuery, f: &Filters, sort: SortOrder, limit: usize) -> Vec<i64> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    for _ in 0..1000 {
        let p = ix.search(q, f, sort, limit, after.as_ref());
        assert!(p.ids.len() <= limit);
        out.extend(&p.ids);
        match p.next {
            Some(c) => {
                assert_eq!(p.ids.len(), limit, "a page before the last is full");
                after = Some(Cursor::decode(&c.encode(), sort).expect("own cursor decodes"));
            }
            None => return out,
        }
    }
    panic!("pagination does not end");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn index_equals_brute_force(ops in ops(), q in query(), f in filters(), limit in 1usize..8) {
        let parsed = parse(&q).map_err(|e| TestCaseError::fail(format!("{q:?}: {e}")))?;
        let rq = parsed.resolve(author_of);
        let mut ix = SearchIndex::new();
        let mut model: BTreeMap<i64, Doc> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Upsert(d) => { model.insert(d.id, d.clone()); ix.upsert(d); }
                Op::Remove(id) => { model.remove(&id); ix.remove(id); }
            }
        }
        prop_assert_eq!(ix.len(), model.len());
        let hits: Vec<&Doc> = model.values().rev().filter(|d| f.accepts(d) && matches(&rq, d)).collect();
        let recency: Vec<i64> = hits.iter().map(|d| d.id).collect();
        let mut rel: Vec<(u32, i64)> = hits.iter().map(|d| (relevance(&rq, d), d.id)).collect();
        rel.sort_by(|a, b| b.cmp(a));
        let relevancy: Vec<i64> = rel.into_iter().map(|r| r.1).collect();

        prop_assert_eq!(walk(&ix, &rq, &f, SortOrder::Recency, limit), recency.clone(), "recency {:?}", q);
        prop_assert_eq!(walk(&ix, &rq, &f, SortOrder::Relevancy, limit), relevancy, "relevancy {:?}", q);
        prop_assert_eq!(walk(&ix, &rq, &f, SortOrder::Recency, 100), recency, "one page {:?}", q);
    }

    /// Posts arriving in id order with creation time growing with id (the
    /// usual case, where time filters become id bounds), replaced and removed.
    #[test]
    fn ordered_ingest_equals_brute_force(ops in ops(), q in query(), f in filters(), limit in 1usize..8) {
        let rq = parse(&q).map_err(|e| TestCaseError::fail(format!("{q:?}: {e}")))?.resolve(author_of);
        let mut ix = SearchIndex::new();
        let mut model: BTreeMap<i64, Doc> = BTreeMap::new();
        let mut next_id = 0;
        for op in ops {
            match op {
                Op::Upsert(mut d) => {
                    // Replace an existing post (same time) or append a new one.
                    if d.id % 3 == 0 && !model.is_empty() {
                        let k = *model.keys().nth(d.id as usize % model.len()).unwrap();
                        d.id = k;
                    } else {
                        next_id += 1 + d.id % 2;
                        d.id = next_id;
                    }
                    d.created_at_ms = d.id * 3 - d.id % 2;
                    model.insert(d.id, d.clone());
                    ix.upsert(d);
                }
                Op::Remove(id) => { model.remove(&id); ix.remove(id); }
            }
        }
        let hits: Vec<&Doc> = model.values().rev().filter(|d| f.accepts(d) && matches(&rq, d)).collect();
        let recency: Vec<i64> = hits.iter().map(|d| d.id).collect();
        let mut rel: Vec<(u32, i64)> = hits.iter().map(|d| (relevance(&rq, d), d.id)).collect();
        rel.sort_by(|a, b| b.cmp(a));
        let relevancy: Vec<i64> = rel.into_iter().map(|r| r.1).collect();
        prop_assert_eq!(walk(&ix, &rq, &f, SortOrder::Recency, limit), recency, "recency {:?}", q);
        prop_assert_eq!(walk(&ix, &rq, &f, SortOrder::Relevancy, limit), relevancy, "relevancy {:?}", q);
    }

    #[test]
    fn parser_never_panics(s in "[a-z \"“”()\\-:#@OR]{0,30}") {
        if let Err(e) = parse(&s) {
            prop_assert!(e.position <= s.chars().count());
        }
    }
}
