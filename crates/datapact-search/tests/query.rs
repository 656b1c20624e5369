use datapact_search::{Doc, Filters, SearchIndex, SortOrder, matches, parse, relevance};

fn err_at(q: &str) -> (usize, String) {
    let e = parse(q).expect_err(q);
    assert!(e.to_string().contains(&format!("character {}", e.position)), "{e}");
    (e.position, e.message)
}

#[test]
fn accepts_every_form() {
    for q in [
        "rust",
        "rust tokio",
        "\"exact phrase\"",
        "“curly phrase”",
        "a OR b",
        "a b OR c d",
        "(a OR b) c",
        "rust -java",
        "rust -\"bad phrase\"",
        "rust -(a OR b)",
        "rust -is:reply",
        "from:Alice",
        "from:@alice rust",
        "rust lang:en is:reply",
        "#rust @bob $TSLA",
        "don't e-mail",
        "10:30 https://x.com",
        "or and",
        "((a))",
        "a (b OR (c -d))",
        "FROM:alice",
    ] {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}

#[test]
fn rejects_with_position() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "empty query"),
        ("   ", 0, "empty query"),
        ("rust (go", 5, "never closed"),
        ("rust go)", 7, "no matching"),
        (")", 0, "no matching"),
        ("a \"b c", 2, "unterminated"),
        ("a “b c", 2, "unterminated"),
        ("a \"\" b", 2, "empty phrase"),
        ("a \" ... \" b", 2, "empty phrase"),
        ("a OR", 2, "OR"),
        ("OR a", 0, "OR"),
        ("a OR OR b", 2, "OR"),
        ("(a OR) b", 3, "OR"),
        ("a - b", 2, "`-`"),
        ("a -", 2, "`-`"),
        ("a --b", 3, "after `-`"),
        ("-a", 0, "not negated"),
        ("-a -b", 0, "not negated"),
        ("a OR -b", 5, "not negated"),
        ("a (-b)", 3, "not negated"),
        ("lang:en", 0, "cannot stand alone"),
        ("is:reply -a", 0, "cannot stand alone"),
        ("a ()", 2, "empty group"),
        ("a has:links", 2, "not supported by this server"),
        ("a is:verified", 2, "not supported by this server"),
        ("url:x a", 0, "not supported by this server"),
        ("a to:bob", 2, "not supported"),
        ("a conversation_id:1", 2, "not supported"),
        ("a place:paris", 2, "not supported"),
        ("a bio:x", 2, "not supported"),
        ("a retweets_of:x", 2, "not supported"),
        ("a from:", 2, "username"),
        ("a lang:", 2, "language"),
        ("a !!!", 2, "no searchable"),
    ];
    for &(q, pos, msg) in cases {
        let (p, m) = err_at(q);
        assert_eq!(p, pos, "{q}: {m}");
        assert!(m.contains(msg), "{q}: {m}");
    }
    let long = "a ".repeat(2049);
    assert_eq!(err_at(&long).0, 4096);
    assert!(parse(&"a".repeat(4096)).is_ok());
    // Positions are in characters, not bytes.
    assert_eq!(err_at("été (x").0, 4);
}

#[test]
fn usernames_and_resolve() {
    let q = parse("from:Alice (x OR from:bob) -from:ALICE from:nobody").unwrap();
    assert_eq!(q.usernames(), ["alice", "bob", "nobody"]);
    let r = q.resolve(|u| match u {
        "alice" => Some(1),
        "bob" => Some(2),
        _ => None,
    });
    let d = |author_id, text: &str| Doc {
        id: 1,
        author_id,
        created_at_ms: 0,
        lang: None,
        is_reply: false,
        is_retweet: false,
        is_quote: false,
        text: text.into(),
    };
    // from:nobody matches nothing, so the whole AND never matches.
    assert!(!matches(&r, &d(1, "x")));
}

fn doc(id: i64, text: &str) -> Doc {
    Doc {
        id,
        author_id: id % 3,
        created_at_ms: id * 10,
        lang: Some(if id % 2 == 0 { "en" } else { "FR" }.into()),
        is_reply: id % 4 == 0,
        is_retweet: id % 5 == 0,
        is_quote: id % 7 == 0,
        text: text.into(),
    }
}

fn run(ix: &SearchIndex, q: &str) -> Vec<i64> {
    let q = parse(q).unwrap().resolve(|u| u.strip_prefix("user").and_then(|n| n.parse().ok()));
    ix.search(&q, &Filters::default(), SortOrder::Recency, 1000, None).ids
}

#[test]
fn index_semantics() {
    let mut ix = SearchIndex::new();
    for (id, t) in [
        (5, "I love #Rust and tokio"),
        (3, "rust is great, don’t you think"),
        (9, "L’été à Paris"),
        (1, "l'ete a paris E\u{301}TE\u{301}"),
        (7, "the #rusty e-mail"),
        (2, "Don't panic: rust"),
    ] {
        ix.upsert(doc(id, t));
    }
    assert_eq!(ix.len(), 6);
    assert_eq!(run(&ix, "rust"), [5, 3, 2]);
    assert_eq!(run(&ix, "#rust"), [5]);
    assert_eq!(run(&ix, "RUST -#rust"), [3, 2]);
    assert_eq!(run(&ix, "été"), [9, 1]);
    assert_eq!(run(&ix, "e\u{301}te\u{301}"), [9, 1]);
    assert_eq!(run(&ix, "ete"), [1]);
    assert_eq!(run(&ix, "l’été"), [9]);
    assert_eq!(run(&ix, "don't"), [3, 2]);
    assert_eq!(run(&ix, "\"don t you\""), [3]);
    assert_eq!(run(&ix, "\"you don't\""), Vec::<i64>::new());
    assert_eq!(run(&ix, "email"), Vec::<i64>::new());
    assert_eq!(run(&ix, "e-mail OR paris"), [9, 7, 1]);
    assert_eq!(run(&ix, "rust lang:en"), [2]);
    assert_eq!(run(&ix, "rust lang:fr"), [5, 3]);
    assert_eq!(run(&ix, "paris is:reply"), Vec::<i64>::new());
    assert_eq!(run(&ix, "rust -is:reply"), [5, 3, 2]);
    // Doc 5 is a retweet (id % 5), 7 a quote (id % 7).
    assert_eq!(run(&ix, "rust -is:retweet"), [3, 2]);
    assert_eq!(run(&ix, "rust is:retweet"), [5]);
    assert_eq!(run(&ix, "e-mail is:quote"), [7]);
    assert_eq!(run(&ix, "paris is:quote"), Vec::<i64>::new());
    assert_eq!(run(&ix, "paris OR rust -is:quote"), [9, 5, 3, 2, 1]);
    assert_eq!(run(&ix, "from:user2 OR été"), [9, 5, 2, 1]);
    assert_eq!(run(&ix, "from:unknown OR été"), [9, 1]);
    assert_eq!(run(&ix, "rust tokio OR paris"), [9, 5, 1]);
    assert_eq!(run(&ix, "rust (tokio OR paris)"), [5]);

    // Replacing text re-indexes; removal is final.
    ix.upsert(doc(5, "nothing to see"));
    assert_eq!(run(&ix, "rust"), [3, 2]);
    assert_eq!(run(&ix, "#rust"), Vec::<i64>::new());
    assert_eq!(run(&ix, "nothing"), [5]);
    ix.remove(3);
    ix.remove(42);
    assert_eq!(run(&ix, "rust"), [2]);
    assert_eq!(ix.len(), 5);

    // Filters.
    let q = parse("paris OR rust OR nothing OR e").unwrap().resolve(|_| None);
    let f = |since_id, until_id, start_ms, end_ms| Filters { since_id, until_id, start_ms, end_ms };
    let s = |fl: Filters| ix.search(&q, &fl, SortOrder::Recency, 100, None).ids;
    assert_eq!(s(f(None, None, None, None)), [9, 7, 5, 2, 1]);
    assert_eq!(s(f(Some(2), Some(9), None, None)), [7, 5]);
    assert_eq!(s(f(None, None, Some(20), Some(70))), [5, 2]);

    // Relevancy: more distinct positive terms first, then newest.
    let q = parse("paris OR rust OR été OR (nothing -paris)").unwrap().resolve(|_| None);
    let p = ix.search(&q, &Filters::default(), SortOrder::Relevancy, 100, None);
    assert_eq!(p.ids, [9, 1, 5, 2]);
    assert_eq!(relevance(&q, &doc(1, "paris été rust")), 3);
}

#[test]
fn pagination_and_cursor_kinds() {
    let mut ix = SearchIndex::new();
    // Out-of-order inserts.
    for id in [10, 3, 7, 1, 9, 2, 8, 4, 6, 5] {
        ix.upsert(doc(id, if id % 3 == 0 { "a b" } else { "a" }));
    }
    let q = parse("a").unwrap().resolve(|_| None);
    for sort in [SortOrder::Recency, SortOrder::Relevancy] {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let p = ix.search(&q, &Filters::default(), sort, 3, after.as_ref());
            all.extend(p.ids);
            match p.next {
                Some(c) => {
                    let tok = c.encode();
                    after = Some(datapact_search::Cursor::decode(&tok, sort).unwrap());
                }
                None => break,
            }
        }
        assert_eq!(all, (1..=10).rev().collect::<Vec<_>>());
    }
    let p = ix.search(&q, &Filters::default(), SortOrder::Recency, 5, None);
    let tok = p.next.unwrap().encode();
    assert!(datapact_search::Cursor::decode(&tok, SortOrder::Relevancy).is_none());
    let p = ix.search(&q, &Filters::default(), SortOrder::Recency, 10, None);
    assert!(p.next.is_none(), "no next when the page ends the set exactly");
}

#[test]
fn churn_compacts_and_stays_exact() {
    // Many replacements and removals: exercises the record arena compaction.
    let words = ["a", "b", "c", "#d", "e-f", "g"];
    let mut model = std::collections::BTreeMap::new();
    let mut ix = SearchIndex::new();
    let mut x: u64 = 42;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let queries: Vec<_> = ["a", "a b", "\"a b\" OR d", "#d -c", "e-f OR g -a", "(a OR b) (c OR g)"]
        .iter()
        .map(|q| parse(q).unwrap().resolve(|_| None))
        .collect();
    for step in 0..20_000 {
        let id = rnd(60) as i64;
        if rnd(5) == 0 {
            model.remove(&id);
            ix.remove(id);
        } else {
            let text: Vec<&str> = (0..rnd(30)).map(|_| words[rnd(6) as usize]).collect();
            let d = doc(id, &text.join(" "));
            model.insert(id, d.clone());
            ix.upsert(d);
        }
        if step % 997 == 0 {
            for q in &queries {
                let want: Vec<i64> = model.values().rev().filter(|d| matches(q, d)).map(|d| d.id).collect();
                assert_eq!(ix.search(q, &Filters::default(), SortOrder::Recency, 100, None).ids, want);
            }
        }
    }
    assert_eq!(ix.len(), model.len());
}
