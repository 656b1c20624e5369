//! End-to-end tests of the tracer on demo posts: a leaker is named, the public text and
//! innocents are not, colluders are caught, CSV without ids and plain text work, malformed
//! lines are counted, canaries are found.

use datapact_demo::CorpusSpec;
use datapact_mark::{Outcome, PreparedPost, Secret};
use datapact_trace::{Canary, Candidate, Corpus, CorpusBuilder, LeakFormat, TraceReport, TraceSettings, Tracer};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Fixture {
    posts: Vec<(u64, String)>,
    secret: Secret,
}

fn fixture(n: usize) -> Fixture {
    let spec = CorpusSpec { posts: n, authors: 50, ..CorpusSpec::default() };
    let posts = datapact_demo::generate(&spec)
        .map(|v| (v["id"].as_str().unwrap().parse().unwrap(), v["text"].as_str().unwrap().to_string()))
        .collect();
    Fixture { posts, secret: Secret::new(1, [7; 32]) }
}

impl Fixture {
    fn corpus(&self) -> Corpus {
        let mut b = CorpusBuilder::new();
        for (id, text) in &self.posts {
            b.add_revision(*id, 1, text);
        }
        b.build()
    }

    fn prepared(&self) -> Vec<PreparedPost> {
        self.posts.iter().map(|(id, t)| PreparedPost::new(&self.secret, *id, t)).collect()
    }

    fn trace(&self, leak: &str, format: LeakFormat, canaries: Vec<Canary>) -> TraceReport {
        let candidates = (1..=200).map(|id| Candidate { id, name: format!("licensee-{id}") }).collect();
        let mut tracer =
            Tracer::new(self.corpus(), vec![self.secret.clone()], candidates, canaries, TraceSettings::default())
                .unwrap();
        tracer.read_leak("leak", leak.as_bytes(), format, &mut |_| {}).unwrap();
        tracer.finish().report
    }
}

fn jsonl(lines: impl IntoIterator<Item = (u64, String)>) -> String {
    lines
        .into_iter()
        .map(|(id, text)| serde_json::json!({"id": id.to_string(), "text": text}).to_string() + "\n")
        .collect()
}

fn accused(report: &TraceReport) -> Vec<u64> {
    report.accused.iter().map(|a| a.licensee).collect()
}

#[test]
fn a_licensees_copies_are_traced_to_it() {
    let f = fixture(1500);
    let leak = jsonl(f.prepared().iter().map(|p| (p.post_id(), p.render(42))));
    let report = f.trace(&leak, LeakFormat::Auto, vec![]);
    assert_eq!(report.inputs[0].format, LeakFormat::Jsonl);
    assert_eq!(report.records.read, 1500);
    assert_eq!(report.records.matched_by_id, 1500);
    assert_eq!(report.outcome, Outcome::Accused);
    assert_eq!(accused(&report), vec![42]);
    assert_eq!(report.licensees[0].licensee, 42);
    assert!(report.licensees.iter().filter(|l| l.accused).count() == 1);
    assert!(report.accused[0].log10_bound_all <= -6.0);
    assert!(report.more_evidence.is_none());
    let text = report.to_text();
    assert!(text.contains("ACCUSED licensee-42"), "{text}");
}

#[test]
fn the_public_text_accuses_nobody() {
    let f = fixture(1500);
    let leak = jsonl(f.posts.iter().cloned());
    let report = f.trace(&leak, LeakFormat::Jsonl, vec![]);
    assert!(report.accused.is_empty());
    assert_eq!(report.outcome, Outcome::MatchesPublicText);
}

#[test]
fn two_colluders_mixing_their_copies_site_by_site() {
    let f = fixture(3000);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let leak = jsonl(f.prepared().iter().map(|p| {
        let (a, b) = (p.symbols(17), p.symbols(101));
        let mixed: Vec<bool> = a.iter().zip(&b).map(|(&x, &y)| if rng.random::<bool>() { x } else { y }).collect();
        (p.post_id(), p.render_symbols(&mixed))
    }));
    let report = f.trace(&leak, LeakFormat::Jsonl, vec![]);
    let who = accused(&report);
    assert!(!who.is_empty(), "{}", report.to_text());
    assert!(who.iter().all(|l| [17, 101].contains(l)), "an innocent was accused: {who:?}");
}

#[test]
fn csv_without_ids_is_matched_by_normalised_text() {
    let f = fixture(1500);
    let mut csv = String::from("author,text,likes\n");
    for p in f.prepared() {
        // The leaker re-spaced the text; CSV quotes it and doubles its quotes.
        let text = p.render(9).replace(' ', "  ");
        csv.push_str(&format!("someone,\"{}\",3\n", text.replace('"', "\"\"")));
    }
    let report = f.trace(&csv, LeakFormat::Auto, vec![]);
    assert_eq!(report.inputs[0].format, LeakFormat::Csv);
    assert_eq!(report.records.read, 1500);
    assert_eq!(report.records.matched_by_id, 0);
    assert!(report.records.matched_by_text >= 1490, "{:?}", report.records);
    assert_eq!(accused(&report), vec![9]);
}

#[test]
fn csv_without_a_text_column_is_refused() {
    let f = fixture(10);
    let candidates = vec![Candidate { id: 1, name: "a".into() }];
    let mut tracer =
        Tracer::new(f.corpus(), vec![f.secret.clone()], candidates, vec![], TraceSettings::default()).unwrap();
    let err = tracer.read_leak("x.csv", &b"id,body\n1,hello\n"[..], LeakFormat::Csv, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("no \"text\" column"), "{err}");
}

#[test]
fn malformed_lines_are_counted_not_fatal() {
    let f = fixture(200);
    let mut leak = jsonl(f.posts.iter().take(50).cloned());
    leak.push_str("{not json\n");
    leak.push_str("[1,2,3]\n");
    leak.push_str("{\"id\":\"1\"}\n");
    leak.push_str("\n   \n");
    leak.push_str("{\"id\":\"999\",\"text\":\"nothing like any post\"}\n");
    let mut bytes = leak.into_bytes();
    bytes.extend_from_slice(b"{\"text\":\"\xff\xfe\"}\n");
    let candidates = vec![Candidate { id: 1, name: "a".into() }];
    let mut tracer =
        Tracer::new(f.corpus(), vec![f.secret.clone()], candidates, vec![], TraceSettings::default()).unwrap();
    tracer.read_leak("leak", &bytes[..], LeakFormat::Jsonl, &mut |_| {}).unwrap();
    let report = tracer.finish().report;
    assert_eq!(report.records.malformed, 4, "{:?}", report.malformed_examples);
    assert_eq!(report.records.read, 51);
    assert_eq!(report.records.matched_by_id, 50);
    assert_eq!(report.records.unmatched, 1);
    let lines: Vec<u64> = report.malformed_examples.iter().map(|m| m.line).collect();
    assert_eq!(lines, vec![51, 52, 53, 57]);
}

#[test]
fn canaries_are_found_in_a_plain_text_dump_and_attributed() {
    let f = fixture(300);
    let canaries = vec![
        Canary {
            licensee: 3, canary_id: "cn-1".into(), text: "Saw a heron at the old quarry – what a sight!".into()
        },
        Canary { licensee: 4, canary_id: "cn-2".into(), text: "Nobody leaked this one".into() },
        Canary { licensee: 5, canary_id: "cn-3".into(), text: "Les « fraises » sont mûres".into() },
    ];
    let mut leak: String = f.posts.iter().take(100).map(|(_, t)| t.replace('\n', " ") + "\n").collect();
    leak.push_str("Saw a heron at the old quarry – what a sight!\n");
    // A re-typed copy of the third: case, spacing and guillemets changed.
    leak.push_str("les \"fraises\"   sont MÛRES\n");
    let report = f.trace(&leak, LeakFormat::Text, canaries);
    assert_eq!(report.canaries_searched, 3);
    let hits: Vec<(u64, &str, u64, u64)> = report
        .canary_hits
        .iter()
        .map(|h| (h.hit.licensee, h.hit.canary_id.as_str(), h.hit.exact_occurrences, h.hit.normalised_records))
        .collect();
    assert_eq!(hits, vec![(3, "cn-1", 1, 1), (5, "cn-3", 0, 1)]);
    assert_eq!(report.canary_hits[0].name.as_deref(), Some("licensee-3"));
    assert_eq!(report.records.canaries, 2, "{:?}", report.records);
    assert!(report.records.matched_by_text >= 95);
}

#[test]
fn too_little_evidence_says_so_with_an_estimate() {
    let f = fixture(400);
    let leak = jsonl(f.prepared().iter().take(3).map(|p| (p.post_id(), p.render(42))));
    let report = f.trace(&leak, LeakFormat::Jsonl, vec![]);
    assert!(report.accused.is_empty());
    if report.outcome == Outcome::InsufficientEvidence {
        let e = report.more_evidence.as_ref().expect("an estimate");
        assert!(e.more_posts > 0 && e.kind == "estimate");
        assert!(report.to_text().contains("estimate"));
    }
}

#[test]
fn staged_reading_stops_after_an_accusation_but_counts_everything() {
    let f = fixture(4000);
    let leak = jsonl(f.prepared().iter().map(|p| (p.post_id(), p.render(77))));
    let candidates = (1..=200).map(|id| Candidate { id, name: format!("l{id}") }).collect();
    let settings = TraceSettings { first_stage_sites: 256, ..TraceSettings::default() };
    let mut tracer = Tracer::new(f.corpus(), vec![f.secret.clone()], candidates, vec![], settings).unwrap();
    tracer.read_leak("leak", leak.as_bytes(), LeakFormat::Jsonl, &mut |_| {}).unwrap();
    let out = tracer.finish();
    let report = out.report;
    assert_eq!(accused(&report), vec![77]);
    assert!(report.reading_stopped_early);
    assert!(report.posts_read < report.posts_matched);
    assert_eq!(report.posts_matched, 4000);
    assert_eq!(out.matched_post_ids.len(), 4000);
    assert!(report.stages.iter().map(|s| s.epsilon).sum::<f64>() < report.epsilon);
}

#[test]
fn older_secret_versions_still_trace() {
    let f = fixture(1500);
    let old = f.secret.clone();
    let new = Secret::new(2, [9; 32]);
    let leak = jsonl(f.prepared().iter().map(|p| (p.post_id(), p.render(12))));
    let candidates = (1..=100).map(|id| Candidate { id, name: format!("l{id}") }).collect();
    let mut tracer = Tracer::new(f.corpus(), vec![old, new], candidates, vec![], TraceSettings::default()).unwrap();
    tracer.read_leak("leak", leak.as_bytes(), LeakFormat::Jsonl, &mut |_| {}).unwrap();
    let report = tracer.finish().report;
    assert_eq!(accused(&report), vec![12]);
    assert_eq!(report.accused[0].version, 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Any subset of the public text, in any order, accuses nobody; any innocent's
    /// absence is never turned into an accusation.
    #[test]
    fn public_subsets_accuse_nobody(seed in any::<u64>(), keep in 50usize..600) {
        let f = fixture(600);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut posts = f.posts.clone();
        for i in (1..posts.len()).rev() {
            posts.swap(i, rng.random_range(0..=i));
        }
        posts.truncate(keep);
        let report = f.trace(&jsonl(posts), LeakFormat::Jsonl, vec![]);
        prop_assert!(report.accused.is_empty());
    }

    /// A single leaker's full copy is always traced to it and only it.
    #[test]
    fn a_leaker_is_named(licensee in 1u64..=200) {
        let f = fixture(1200);
        let leak = jsonl(f.prepared().iter().map(|p| (p.post_id(), p.render(licensee))));
        let report = f.trace(&leak, LeakFormat::Jsonl, vec![]);
        prop_assert_eq!(accused(&report), vec![licensee]);
    }
}

#[test]
fn only_what_a_leak_certainly_holds_dates_it() {
    let f = fixture(10);
    let mut b = CorpusBuilder::new();
    b.add_revision(1, 1, "The harbour lights were on all night long");
    b.add_revision(1, 2, "The harbour lights were off all night long");
    b.add_revision(2, 1, "Two posts can say exactly the same thing here");
    b.add_revision(3, 1, "Two posts can say exactly the same thing here");
    b.add_revision(4, 1, "A post with a single revision and its own words");
    let candidates = vec![Candidate { id: 1, name: "a".into() }];
    let mut tracer =
        Tracer::new(b.build(), vec![f.secret.clone()], candidates, vec![], TraceSettings::default()).unwrap();
    // With ids: post 1's first text (revision 1), post 4 with other text (the post exists: revision 1),
    // post 1 again with a text none of its revisions has (the post, not its correction).
    let with_ids = jsonl([
        (1, "The harbour lights were on all night long".to_owned()),
        (4, "words the platform never had".to_owned()),
        (1, "entirely different words".to_owned()),
    ]);
    tracer.read_leak("ids.jsonl", with_ids.as_bytes(), LeakFormat::Jsonl, &mut |_| {}).unwrap();
    // Without ids: a text two posts share proves neither; post 1's corrected text proves revision 2.
    let texts = "Two posts can say exactly the same thing here\nThe harbour lights were off all night long\n";
    tracer.read_leak("texts.txt", texts.as_bytes(), LeakFormat::Text, &mut |_| {}).unwrap();
    let outcome = tracer.finish();
    assert_eq!(outcome.matched_post_ids, vec![1, 2, 3, 4]);
    assert_eq!(outcome.matched_revisions, vec![(1, 1), (1, 2), (4, 1)]);
}
