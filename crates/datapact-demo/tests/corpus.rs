use chrono::{DateTime, Utc};
use datapact_demo::{CorpusSpec, SNOWFLAKE_EPOCH_MS, generate, write_jsonl};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

fn default_lines() -> &'static [Value] {
    static LINES: OnceLock<Vec<Value>> = OnceLock::new();
    LINES.get_or_init(|| generate(&CorpusSpec::default()).collect())
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("missing string field {k} in {v}"))
}

fn parse_time(t: &str) -> DateTime<Utc> {
    assert_eq!(t.len(), 24, "created_at must be YYYY-MM-DDTHH:MM:SS.mmmZ: {t}");
    assert!(t.ends_with('Z') && t.as_bytes()[19] == b'.', "{t}");
    DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("bad time {t}: {e}")).with_timezone(&Utc)
}

fn texts() -> impl Iterator<Item = &'static str> {
    default_lines().iter().map(|v| s(v, "text"))
}

#[test]
fn deterministic_bytes() {
    let spec = CorpusSpec::default();
    let mut a = Vec::new();
    let mut b = Vec::new();
    assert_eq!(write_jsonl(&spec, &mut a).unwrap(), 20_000);
    assert_eq!(write_jsonl(&spec, &mut b).unwrap(), 20_000);
    assert!(a == b, "two runs of the same spec differ");
    assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 20_000);
    // Strictly valid UTF-8 JSON, one object per line.
    let text = std::str::from_utf8(&a).expect("valid UTF-8");
    for (line, v) in text.lines().zip(default_lines()) {
        let parsed: Value = serde_json::from_str(line).expect("valid JSON line");
        assert_eq!(&parsed, v, "write_jsonl and generate disagree");
    }
    let other = CorpusSpec { seed: 7, ..CorpusSpec::default() };
    let mut c = Vec::new();
    write_jsonl(&other, &mut c).unwrap();
    assert!(a != c, "different seeds should give different corpora");
}

#[test]
fn counts_and_authors() {
    let lines = default_lines();
    assert_eq!(lines.len(), 20_000);
    let mut by_id: HashMap<&str, &Value> = HashMap::new();
    let mut names = HashSet::new();
    for v in lines {
        let a = &v["author"];
        assert_eq!(s(v, "author_id"), s(a, "id"));
        let prev = by_id.insert(s(a, "id"), a);
        if let Some(p) = prev {
            assert_eq!(p, a, "author object must be stable");
        }
    }
    assert!(by_id.len() >= 500, "distinct authors: {}", by_id.len());
    for a in by_id.values() {
        let u = s(a, "username");
        assert!(!u.is_empty() && u.len() <= 15, "{u}");
        assert!(u.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'), "{u}");
        assert!(names.insert(u), "duplicate username {u}");
        assert!(!s(a, "name").is_empty());
        assert!(a["description"].is_string() && a["location"].is_string());
        let created = parse_time(s(a, "created_at"));
        assert!(created < CorpusSpec::default().end);
        s(a, "id").parse::<u64>().expect("numeric author id");
    }
}

#[test]
fn ids_unique_increasing_and_snowflake() {
    let spec = CorpusSpec::default();
    let start = spec.end - chrono::Duration::days(i64::from(spec.days));
    let mut prev_id = 0u64;
    let mut prev_time = start;
    for v in default_lines() {
        let id: u64 = s(v, "id").parse().expect("numeric id");
        assert!(id > prev_id, "ids must strictly increase");
        assert!(id < 1 << 63);
        let t = parse_time(s(v, "created_at"));
        assert!(t >= prev_time && t >= start && t < spec.end, "{t}");
        let id_ms = (id >> 22) as i64 + SNOWFLAKE_EPOCH_MS;
        assert_eq!(id_ms, t.timestamp_millis(), "id time must match created_at");
        prev_id = id;
        prev_time = t;
    }
}

#[test]
fn required_fields_and_text_limits() {
    let mut long = 0;
    for v in default_lines() {
        for k in ["id", "text", "author_id", "created_at", "lang", "conversation_id"] {
            s(v, k);
        }
        let lang = s(v, "lang");
        assert!(lang == "en" || lang == "fr");
        let hist = v["edit_history_tweet_ids"].as_array().expect("edit history");
        assert!(!hist.is_empty() && hist.len() <= 2);
        assert_eq!(hist.last().unwrap().as_str(), Some(s(v, "id")));
        let m = &v["public_metrics"];
        for k in ["retweet_count", "reply_count", "like_count", "quote_count", "bookmark_count", "impression_count"] {
            m[k].as_u64().unwrap_or_else(|| panic!("metric {k} in {v}"));
        }
        let n = s(v, "text").chars().count();
        assert!(n >= 1, "empty text");
        assert!(n <= 1_000, "text too long ({n}): {v}");
        if n > 280 {
            long += 1;
        }
        assert!(!s(v, "text").chars().any(|c| c.is_control()), "control char in {v}");
        assert!(!s(v, "text").contains(['{', '}']), "unrendered slot: {v}");
        assert!(!s(v, "text").contains(['&', '<', '>']), "HTML-special char: {v}");
    }
    assert!(long > 0 && long < 400, "long-form posts: {long}");
}

#[test]
fn languages_mix() {
    let lines = default_lines();
    let en = lines.iter().filter(|v| s(v, "lang") == "en").count();
    let share = en as f64 / lines.len() as f64;
    assert!((0.55..0.65).contains(&share), "English share {share}");
    // Language matches content: French posts use French function words.
    let fr_hits = lines
        .iter()
        .filter(|v| s(v, "lang") == "fr")
        .filter(|v| {
            let t = s(v, "text");
            [" le ", " la ", " et ", " de ", " à ", " pour ", " un ", " des ", "c'est", "c’est"]
                .iter()
                .any(|w| t.contains(w))
        })
        .count();
    let fr = lines.len() - en;
    assert!(fr_hits * 10 > fr * 6, "{fr_hits} of {fr} French posts look French");
}

#[test]
fn references_point_to_earlier_posts() {
    let mut seen: HashMap<&str, &Value> = HashMap::new();
    let (mut replies, mut quotes, mut edits) = (0, 0, 0);
    for v in default_lines() {
        let id = s(v, "id");
        let conv = s(v, "conversation_id");
        assert!(conv == id || seen.contains_key(conv), "conversation {conv}");
        if let Some(refs) = v.get("referenced_tweets") {
            for r in refs.as_array().unwrap() {
                let rid = s(r, "id");
                let target = seen.get(rid).unwrap_or_else(|| panic!("dangling ref {r}"));
                match s(r, "type") {
                    "replied_to" => {
                        replies += 1;
                        assert_eq!(s(v, "in_reply_to_user_id"), s(target, "author_id"));
                        assert_eq!(conv, s(target, "conversation_id"));
                    }
                    "quoted" => quotes += 1,
                    t => panic!("unexpected reference type {t}"),
                }
            }
        } else {
            assert!(v.get("in_reply_to_user_id").is_none());
        }
        let hist = v["edit_history_tweet_ids"].as_array().unwrap();
        if hist.len() == 2 {
            edits += 1;
            let orig = seen.get(hist[0].as_str().unwrap()).expect("edit of an earlier post");
            assert_eq!(s(orig, "author_id"), s(v, "author_id"));
            assert_eq!(s(orig, "lang"), s(v, "lang"));
            assert_eq!(orig["edit_history_tweet_ids"].as_array().unwrap().len(), 1);
            let dt = parse_time(s(v, "created_at")) - parse_time(s(orig, "created_at"));
            assert!(dt > chrono::Duration::zero() && dt <= chrono::Duration::hours(1));
        }
        assert!(seen.insert(id, v).is_none(), "duplicate id {id}");
    }
    assert!(replies > 2_000, "replies: {replies}");
    assert!(quotes > 300, "quotes: {quotes}");
    assert!((100..400).contains(&edits), "edits: {edits}");
}

#[test]
fn typography_features_present() {
    let all: String = texts().collect::<Vec<_>>().join("\n");
    let descs: String = default_lines().iter().map(|v| s(&v["author"], "description")).collect::<Vec<_>>().join("\n");
    let must = [
        ("straight apostrophe n't", "n't"),
        ("curly apostrophe n’t", "n’t"),
        ("straight l'", "l'"),
        ("curly l’", "l’"),
        ("straight quotes", "\""),
        ("curly open quote", "“"),
        ("curly close quote", "”"),
        ("guillemets NBSP", "«\u{A0}"),
        ("guillemets NBSP close", "\u{A0}»"),
        ("guillemets NNBSP", "«\u{202F}"),
        ("guillemets NNBSP close", "\u{202F}»"),
        ("guillemets space", "« "),
        ("NNBSP before !", "\u{202F}!"),
        ("NBSP before ?", "\u{A0}?"),
        ("space before :", " : "),
        ("NNBSP before :", "\u{202F}:"),
        ("NBSP before ;", "\u{A0};"),
        ("three dots", "..."),
        ("ellipsis char", "…"),
        ("spaced hyphen", " - "),
        ("en dash", " – "),
        ("em dash", "—"),
        ("é", "é"),
        ("è", "è"),
        ("à", "à"),
        ("ç", "ç"),
        ("ô", "ô"),
        ("ï", "ï"),
        ("NFD acute", "e\u{301}"),
        ("url", "https://"),
        ("mention", " @"),
        ("hashtag", " #"),
        ("euro price", ",50\u{A0}€"),
        ("time", ":30"),
        ("french time", "h30"),
    ];
    let missing: Vec<String> = must
        .iter()
        .filter(|(_, needle)| !all.contains(needle) && !descs.contains(needle))
        .map(|(what, needle)| format!("{what} ({needle:?})"))
        .collect();
    assert!(missing.is_empty(), "missing features: {missing:?}");
    // French punctuation glued (no space) by some authors.
    assert!(
        default_lines().iter().filter(|v| s(v, "lang") == "fr").any(|v| {
            let t = s(v, "text");
            t.contains(|c: char| c.is_alphabetic())
                && t.split_whitespace()
                    .any(|w| w.len() > 2 && w.ends_with('!') && w[..w.len() - 1].chars().all(char::is_alphabetic))
        }),
        "no glued French exclamation"
    );
    let dollar_price = all.split_whitespace().any(|w| {
        let w = w.trim_end_matches(['.', ',', '!', '?']);
        w.strip_prefix('$').is_some_and(|p| {
            p.split_once('.')
                .is_some_and(|(u, c)| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()) && c.len() == 2)
        })
    });
    assert!(dollar_price, "no $X.YY price");
    let cashtags = texts()
        .filter(|t| {
            t.split_whitespace().any(|w| {
                w.len() >= 3 && w.starts_with('$') && w[1..].chars().next().is_some_and(|c| c.is_ascii_uppercase())
            })
        })
        .count();
    assert!((5..400).contains(&cashtags), "posts with cashtags: {cashtags}");
    let emoji = texts().filter(|t| t.chars().any(|c| ('\u{1F300}'..='\u{1FAFF}').contains(&c))).count();
    assert!(emoji > 500 && emoji < 12_000, "posts with emoji: {emoji}");
    // Mostly NFC: decomposed text is a small share.
    let nfd = texts().filter(|t| t.contains('\u{301}') || t.contains('\u{300}')).count();
    assert!(nfd > 20 && nfd < 2_000, "NFD posts: {nfd}");
}

#[test]
fn mentions_are_generated_users() {
    let users: HashSet<&str> = default_lines().iter().map(|v| s(&v["author"], "username")).collect();
    let mut mentions = 0;
    for t in texts() {
        for w in t.split_whitespace().filter(|w| w.starts_with('@')) {
            let name: String = w[1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if name.is_empty() {
                continue; // "Don't @ me."
            }
            assert!(users.contains(name.as_str()), "unknown mention {w} in {t}");
            mentions += 1;
        }
    }
    assert!(mentions > 3_000, "mentions: {mentions}");
}

#[test]
fn vocabulary_is_rich_and_posts_vary() {
    let mut words = HashSet::new();
    for t in texts() {
        for w in t.split(|c: char| !c.is_alphabetic()) {
            if w.chars().count() >= 2 {
                words.insert(w.to_lowercase());
            }
        }
    }
    assert!(words.len() >= 3_000, "distinct words: {}", words.len());
    let distinct: HashSet<&str> = texts().collect();
    assert!(distinct.len() * 100 >= default_lines().len() * 97, "distinct texts: {}", distinct.len());
}

#[test]
fn metrics_are_heavy_tailed() {
    let mut imps: Vec<u64> =
        default_lines().iter().map(|v| v["public_metrics"]["impression_count"].as_u64().unwrap()).collect();
    imps.sort_unstable();
    let median = imps[imps.len() / 2];
    let max = *imps.last().unwrap();
    assert!(max > median * 100, "median {median}, max {max}");
    for v in default_lines() {
        let m = &v["public_metrics"];
        assert!(m["like_count"].as_u64() <= m["impression_count"].as_u64());
    }
}

#[test]
fn small_and_odd_specs() {
    let base = CorpusSpec::default();
    assert_eq!(generate(&CorpusSpec { posts: 0, ..base.clone() }).count(), 0);
    let tiny: Vec<Value> = generate(&CorpusSpec { posts: 10, authors: 3, days: 1, ..base.clone() }).collect();
    assert_eq!(tiny.len(), 10);
    let authors: HashSet<&str> = tiny.iter().map(|v| s(v, "author_id")).collect();
    assert_eq!(authors.len(), 3);
    // More authors than posts: every post still valid.
    let few = generate(&CorpusSpec { posts: 5, authors: 50, days: 0, ..base.clone() }).count();
    assert_eq!(few, 5);
    // Zero authors is treated as one.
    let solo: Vec<Value> = generate(&CorpusSpec { posts: 20, authors: 0, ..base.clone() }).collect();
    assert_eq!(solo.len(), 20);
    assert!(solo.iter().all(|v| v["author_id"] == solo[0]["author_id"]));
    // Many authors: usernames stay unique.
    let many: Vec<Value> = generate(&CorpusSpec { posts: 6_000, authors: 5_000, ..base }).collect();
    let ids: HashSet<&str> = many.iter().map(|v| s(v, "author_id")).collect();
    let names: HashSet<&str> = many.iter().map(|v| s(&v["author"], "username")).collect();
    assert_eq!(ids.len(), 5_000);
    assert_eq!(names.len(), 5_000);
}

/// Structural invariants over several seeds and shapes (cheap property test).
#[test]
fn invariants_hold_across_seeds() {
    let end = CorpusSpec::default().end;
    for (seed, posts, authors, days) in
        [(0u64, 3_000usize, 120usize, 7u32), (1, 2_000, 40, 2), (42, 1_500, 900, 30), (u64::MAX, 4_000, 300, 365)]
    {
        let spec = CorpusSpec { seed, posts, authors, days, end };
        let lines: Vec<Value> = generate(&spec).collect();
        assert_eq!(lines.len(), posts);
        let again: Vec<Value> = generate(&spec).collect();
        assert!(lines == again, "seed {seed} not deterministic");
        let authors_seen: HashSet<&str> = lines.iter().map(|v| s(v, "author_id")).collect();
        assert_eq!(authors_seen.len(), authors.min(posts), "seed {seed}");
        let start = end - chrono::Duration::days(i64::from(days));
        let mut seen = HashSet::new();
        let mut prev = 0u64;
        for v in &lines {
            let id: u64 = s(v, "id").parse().unwrap();
            assert!(id > prev);
            prev = id;
            let t = parse_time(s(v, "created_at"));
            assert!(t >= start && t < end);
            let n = s(v, "text").chars().count();
            assert!((1..=1_000).contains(&n));
            for r in v["referenced_tweets"].as_array().into_iter().flatten() {
                assert!(seen.contains(s(r, "id")), "dangling reference");
            }
            for h in v["edit_history_tweet_ids"].as_array().unwrap() {
                let h = h.as_str().unwrap();
                assert!(h == s(v, "id") || seen.contains(h), "dangling edit");
            }
            let conv = s(v, "conversation_id");
            assert!(conv == s(v, "id") || seen.contains(conv));
            seen.insert(s(v, "id"));
        }
    }
}
