//! Property tests of marking, folding, protected spans and the accusation bound.

use datapact_mark::{
    AccusationParams, Channel, ChannelSet, Evidence, PreparedPost, ScoringSites, Secret, SiteCode, detect_sites, fold,
    protected_spans, render,
};
use proptest::prelude::*;

const FRAGMENTS: &[&str] = &[
    "word",
    "Don't",
    "it’s",
    "l'élève",
    "\"quoted\"",
    "“curly”",
    "...",
    "…",
    " - ",
    " – ",
    " : ",
    " ; ",
    " !",
    " ?",
    "« oui »",
    "«\u{a0}non\u{a0}»",
    "\u{202f}!",
    "café",
    "e\u{301}t\u{e9}",
    "naïve",
    "https://ex.com/a'b...c",
    "www.x.org/\"q\"",
    "@o_neil",
    "#café",
    "$TSLA",
    "3.14...",
    "1,000",
    "12 - 3",
    "`it's ... \"x\"`",
    "```\nlet s = \"a\"...\n```",
    " ",
    " ",
    "\n",
    ".",
    ",",
    "'",
    "\"",
    "-",
    "—",
    "ô",
    "Ç",
    "x\u{301}\u{302}",
    "…...",
    "„Hallo“",
    "‚ja‘",
    "»doch«",
    "— ",
    "....",
    "\u{2019}\u{2019}",
    "a'",
    "'b",
];

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(FRAGMENTS).prop_map(|s| s.to_string()),
            1 => "[a-zA-Zé' \".…:!?«»\u{a0}\u{202f}-]{0,6}",
            1 => any::<char>().prop_map(|c| c.to_string()),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

fn secret(version: u32) -> Secret {
    Secret::new(version, [42; 32]).with_channels(ChannelSet::DEFAULT)
}

fn protected_texts(t: &str) -> Vec<String> {
    protected_spans(t).into_iter().map(|r| t[r].to_string()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn render_is_deterministic(t in text(), lic in any::<u64>(), id in any::<u64>(), v in 0u32..4) {
        let a = render(&secret(v), lic, id, &t);
        let b = render(&secret(v), lic, id, &t);
        prop_assert_eq!(&a, &b);
        let p = PreparedPost::new(&secret(v), id, &t);
        prop_assert_eq!(p.render(lic), a);
    }

    #[test]
    fn folding_maps_every_copy_back(t in text(), lic in any::<u64>(), id in any::<u64>()) {
        let s = secret(1);
        let p = PreparedPost::new(&s, id, &t);
        let copy = p.render(lic);
        prop_assert_eq!(fold(&copy), fold(&t));
        // all-ones too (every site flipped)
        prop_assert_eq!(fold(&p.render_forms(|_| true)), fold(&t));
        // the public rendering is one more codeword
        prop_assert_eq!(p.render_symbols(&p.public_symbols()), t.clone());
        prop_assert_eq!(p.render_symbols(&[]), t.clone());
    }

    #[test]
    fn copies_read_back_exactly(t in text(), lic in any::<u64>(), id in any::<u64>()) {
        let s = secret(1);
        let p = PreparedPost::new(&s, id, &t);
        let copy = p.render(lic);
        let r = p.read(&copy);
        let want = p.symbols(lic);
        let got: Vec<Option<bool>> = r.observations.iter().map(|o| o.symbol).collect();
        prop_assert_eq!(got, want.into_iter().map(Some).collect::<Vec<_>>());
        // same sites, same channels, same ordinals in the copy
        let a: Vec<(Channel, u32)> = detect_sites(&t).iter().map(|d| (d.channel, d.ordinal)).collect();
        let b: Vec<(Channel, u32)> = detect_sites(&copy).iter().map(|d| (d.channel, d.ordinal)).collect();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn all_channels_read_back(t in text(), lic in any::<u64>(), id in any::<u64>()) {
        let s = secret(2).with_channels(ChannelSet::ALL);
        let p = PreparedPost::new(&s, id, &t);
        let copy = p.render(lic);
        prop_assert_eq!(fold(&copy), fold(&t));
        let got: Vec<Option<bool>> = p.read(&copy).observations.iter().map(|o| o.symbol).collect();
        prop_assert_eq!(got, p.symbols(lic).into_iter().map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn surviving_channels_read_after_nfkc(t in text(), lic in any::<u64>(), id in any::<u64>()) {
        use unicode_normalization::UnicodeNormalization;
        let s = secret(1);
        let p = PreparedPost::new(&s, id, &t);
        let copy: String = p.render(lic).nfkc().collect();
        let r = p.read(&copy);
        let want = p.symbols(lic);
        // Texts whose only compatibility characters are the site forms themselves.
        let simple = t.chars().all(|ch| {
            matches!(ch, '\u{a0}' | '\u{202f}' | '\u{2026}')
                || ch.to_string().nfkc().collect::<String>() == ch.to_string().nfc().collect::<String>()
        });
        for ((site, o), w) in p.sites().iter().zip(&r.observations).zip(want) {
            // NFKC keeps ' ’ " “ ” - –: those readings must be exact; others may be lost
            // but never read as a wrong symbol from a located, consistent site.
            // A reading is never wrong: the right symbol or unreadable.
            prop_assert!(o.symbol.is_none() || o.symbol == Some(w) || !matches!(site.channel,
                Channel::Apostrophe | Channel::DoubleQuotes | Channel::SpacedDash));
            if simple && matches!(site.channel, Channel::Apostrophe | Channel::DoubleQuotes | Channel::SpacedDash) {
                prop_assert_eq!(o.symbol, Some(w), "{:?}", site);
            }
        }
    }

    #[test]
    fn protected_spans_untouched(t in text(), lic in any::<u64>(), id in any::<u64>()) {
        let s = secret(1).with_channels(ChannelSet::ALL);
        let p = PreparedPost::new(&s, id, &t);
        for copy in [p.render(lic), p.render_forms(|_| true)] {
            prop_assert_eq!(protected_texts(&copy), protected_texts(&t));
        }
        let prot = protected_spans(&t);
        for d in detect_sites(&t) {
            for r in d.spans.ranges() {
                for pr in &prot {
                    prop_assert!(r.end <= pr.start || r.start >= pr.end || (r.start == r.end && (r.start == pr.start || r.start == pr.end)),
                        "site {:?} overlaps protected {:?}", d, pr);
                }
            }
        }
    }
}

/// Empirical check of the bound at ε = 1e-2: for several colluder outputs, far fewer
/// than 1 % of innocents may pass the threshold (the bound is conservative), and the
/// empirical tail never exceeds the bound.
#[test]
fn bound_never_exceeded_in_simulation() {
    let secret = Secret::new(9, [3; 32]).with_max_coalition(4);
    let digest = [0u8; 32];
    let sites: Vec<SiteCode> =
        (0..300).map(|i| SiteCode::derive(&secret, 1, &digest, Channel::Apostrophe, i)).collect();
    let colluders = [7u64, 8, 9, 10];
    let innocents: Vec<u64> = (1_000_000..1_020_000).collect();
    let eps = 1e-2;
    for strategy in 0..4 {
        let leak: Vec<(SiteCode, bool)> = sites
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let ones = colluders.iter().filter(|&&c| s.symbol(c)).count();
                let y = match strategy {
                    0 => ones * 2 > colluders.len(),                                    // majority
                    1 => ones > 0 && ones < colluders.len() || ones == colluders.len(), // "any one"
                    2 => i % 3 == 0,                                                    // arbitrary fixed pattern
                    _ => s.bias() < 0.5,                                                // adversarial in the bias
                };
                (*s, y)
            })
            .collect();
        let scoring = ScoringSites::new(leak);
        let z = scoring.threshold(eps, 1).expect("reachable");
        let scores = scoring.scores(&innocents);
        let over = scores.iter().filter(|&&s| s >= z).count();
        let rate = over as f64 / innocents.len() as f64;
        assert!(rate <= eps, "strategy {strategy}: {over} innocents over threshold");
        // Tail check at a few levels: empirical frequency <= bound (+ sampling slack).
        for q in [0.5, 1.0, 1.5, 2.0] {
            let level = q * scoring.len() as f64 / 10.0;
            let emp = scores.iter().filter(|&&s| s >= level).count() as f64 / innocents.len() as f64;
            let bound = scoring.distribution().ln_tail_bound(level).exp();
            let slack = 4.0 * (bound / innocents.len() as f64).sqrt() + 1.0 / innocents.len() as f64;
            assert!(emp <= bound + slack, "strategy {strategy} level {level}: emp {emp} > bound {bound}");
        }
    }
}

#[test]
fn public_text_accuses_nobody_and_single_leaker_is_found() {
    let secret = Secret::new(1, [5; 32]);
    let text = "It's \"a\" test... isn't it - really ? « Oui » : l'élève n'a pas dit \"non\".";
    let posts: Vec<PreparedPost> = (0..60).map(|i| PreparedPost::new(&secret, i, text)).collect();
    let candidates: Vec<u64> = (0..1000).collect();
    let params = AccusationParams { epsilon: 1e-6, ..AccusationParams::default() };
    let mut public = Evidence::new();
    let mut leaked = Evidence::new();
    for p in &posts {
        public.add_post(p, p.public_text());
        leaked.add_post(p, &p.render(123));
    }
    let v = public.accuse(&candidates, &params);
    assert!(v.accused.is_empty());
    assert_eq!(v.outcome, datapact_mark::Outcome::MatchesPublicText);
    let v = leaked.accuse(&candidates, &params);
    assert_eq!(v.accused.iter().map(|a| a.licensee).collect::<Vec<_>>(), vec![123], "{v:?}");
    // A stripped leak finds its post by folded text, even after NFKC.
    let mut index = datapact_mark::PostIndex::new();
    index.insert(7, "Un « test » : l'été…");
    use unicode_normalization::UnicodeNormalization;
    let copy: String = datapact_mark::render(&secret, 5, 7, "Un « test » : l'été…").nfkc().collect();
    assert_eq!(index.lookup(&copy), &[7]);
    // Duplicates count once.
    assert!(!leaked.add_post(&posts[0], &posts[0].render(123)));
}
