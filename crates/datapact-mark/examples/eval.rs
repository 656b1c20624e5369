//! End-to-end evaluation of datapact-mark on text.
//!
//! Every trial renders the colluders' copies of real posts as text, builds the leak from
//! those texts (strategy + attack), matches each leaked text back to its post by the
//! digest of its folded text (ids are never used), reads the symbols from the text and
//! runs the rigorous accusation against all licensees at growing leak sizes.
//!
//! ```text
//! cargo run --release --example eval -- --fortunes /usr/share/games/fortunes --name fortunes-en
//! cargo run --release --example eval -- --jsonl posts.jsonl --name demo
//! cargo run --release --example eval -- --synthetic 20000 --name synthetic
//! ```
//! Options: `--licensees N` (1000) `--trials T` (110) `--epsilon E` (1e-6)
//! `--coalitions 1,2,4,8` `--matrix full|strategies|attacks|quick` `--tune per-c|8`
//! `--channels default|default+zero-width|all` `--public-weight W` (library default 0.5) `--seed S` `--max-factor F` (3: stop a trial at F x the reference figure)
//! `--min-chars` (20) `--max-chars` (600) `--recursive` (fortunes: also subdirectories).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use datapact_mark::{
    AccusationParams, Channel, ChannelSet, Evidence, PreparedPost, ScoringSites, Secret, detect_sites, post_fingerprint,
};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use unicode_normalization::UnicodeNormalization;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    Interleave,
    Random,
    Majority,
    Minority,
    AllPublic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attack {
    None,
    Nfc,
    Nfkc,
    AsciiQuotes,
    JsonCsvText,
    DiffPublic,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Interleave => "interleave",
            Strategy::Random => "per-site random",
            Strategy::Majority => "majority",
            Strategy::Minority => "minority",
            Strategy::AllPublic => "all-public",
        }
    }
}

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Attack::None => "none",
            Attack::Nfc => "NFC",
            Attack::Nfkc => "NFKC",
            Attack::AsciiQuotes => "ASCII quotes",
            Attack::JsonCsvText => "JSON→CSV→text",
            Attack::DiffPublic => "diff vs public",
        }
    }
}

struct Args {
    jsonl: Option<String>,
    fortunes: Option<String>,
    synthetic: Option<usize>,
    name: String,
    licensees: usize,
    trials: usize,
    epsilon: f64,
    coalitions: Vec<usize>,
    matrix: String,
    tune: String,
    seed: u64,
    max_factor: f64,
    min_chars: usize,
    max_chars: usize,
    recursive: bool,
    public_weight: f64,
    channels: ChannelSet,
}

fn parse_args() -> Args {
    let mut a = Args {
        jsonl: None,
        fortunes: None,
        synthetic: None,
        name: "corpus".into(),
        licensees: 1000,
        trials: 110,
        epsilon: 1e-6,
        coalitions: vec![1, 2, 4, 8],
        matrix: "full".into(),
        tune: "per-c".into(),
        seed: 1,
        max_factor: 3.0,
        min_chars: 20,
        max_chars: 600,
        recursive: false,
        public_weight: AccusationParams::default().public_form_weight,
        channels: ChannelSet::DEFAULT,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = || v.get(i + 1).cloned().expect("missing value");
        match v[i].as_str() {
            "--jsonl" => a.jsonl = Some(val()),
            "--fortunes" => a.fortunes = Some(val()),
            "--synthetic" => a.synthetic = Some(val().parse().unwrap()),
            "--name" => a.name = val(),
            "--licensees" => a.licensees = val().parse().unwrap(),
            "--trials" => a.trials = val().parse().unwrap(),
            "--epsilon" => a.epsilon = val().parse().unwrap(),
            "--coalitions" => a.coalitions = val().split(',').map(|x| x.parse().unwrap()).collect(),
            "--matrix" => a.matrix = val(),
            "--tune" => a.tune = val(),
            "--seed" => a.seed = val().parse().unwrap(),
            "--max-factor" => a.max_factor = val().parse().unwrap(),
            "--min-chars" => a.min_chars = val().parse().unwrap(),
            "--max-chars" => a.max_chars = val().parse().unwrap(),
            "--public-weight" => a.public_weight = val().parse().unwrap(),
            "--channels" => {
                a.channels = match val().as_str() {
                    "default" => ChannelSet::DEFAULT,
                    "default+zero-width" => ChannelSet::DEFAULT.with(Channel::ZeroWidth),
                    "all" => ChannelSet::ALL,
                    other => panic!("unknown channel set {other}"),
                }
            }
            "--recursive" => {
                a.recursive = true;
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    a
}

// ---------------------------------------------------------------- corpora

fn load_jsonl(path: &str) -> Vec<String> {
    let s = std::fs::read_to_string(path).expect("read jsonl");
    s.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_string))
        .collect()
}

fn load_fortunes(dir: &str, recursive: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut stack = vec![Path::new(dir).to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.is_file() {
            files.push(d);
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if recursive && !p.ends_with("off") {
                    stack.push(p);
                }
            } else {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if !name.contains('.') {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        let s = String::from_utf8_lossy(&bytes);
        for chunk in s.split("\n%\n") {
            let t = chunk.trim_matches(|c: char| c == '%' || c.is_whitespace());
            if t.contains('\u{8}') || t.contains('\u{FFFD}') {
                continue;
            }
            out.push(t.to_string());
        }
    }
    out
}

fn synthetic(n: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let en_open = [
        "Don't miss this",
        "It's official",
        "We're live",
        "Here's the thing",
        "Can't believe it",
        "They've done it again",
        "You'll love this",
        "I'm not sure",
    ];
    let en_mid = [
        "the \"new normal\" isn't so new",
        "our team's update is out - finally",
        "what's next... nobody knows",
        "the café's menu changed",
        "he said \"no\" and she said \"maybe\"",
        "it's not a bug - it's a feature",
        "we'll see... won't we",
        "the naïve plan didn't work",
    ];
    let fr_open = [
        "« Enfin ! » dit l'équipe",
        "C'est officiel : on y est",
        "Qu'en pensez-vous ?",
        "L'été arrive ; préparez-vous !",
        "Où est passé l'été ?",
        "« Jamais » : c'est la réponse",
    ];
    let fr_mid = [
        "l'élève a répondu « oui » - puis « non »",
        "aujourd'hui c'est déjà demain...",
        "la météo : pluie, vent ; froid !",
        "il n'y a qu'un \"problème\" : le café",
        "l'été dernier, c'était mieux ?",
        "ça n'a pas marché ! Pourquoi ?",
    ];
    let tails = [" https://example.com/p/123", " @datapact", " #news", " $ACME", " 3.14...", " `don't touch`", "", ""];
    (0..n)
        .map(|i| {
            let mut s = String::new();
            let parts = rng.random_range(1..4);
            for k in 0..parts {
                if k > 0 {
                    s.push(' ');
                }
                if rng.random_bool(0.5) {
                    s.push_str(en_open.choose(&mut rng).unwrap());
                    s.push_str(": ");
                    s.push_str(en_mid.choose(&mut rng).unwrap());
                    s.push('.');
                } else {
                    s.push_str(fr_open.choose(&mut rng).unwrap());
                    s.push(' ');
                    s.push_str(fr_mid.choose(&mut rng).unwrap());
                    s.push('.');
                }
            }
            s.push_str(tails.choose(&mut rng).unwrap());
            s.push_str(&format!(" [{i}]"));
            s
        })
        .collect()
}

// ---------------------------------------------------------------- attacks

fn ascii_quotes(t: &str) -> String {
    t.chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{201C}' | '\u{201D}' | '\u{201E}' => '"',
            c => c,
        })
        .collect()
}

fn csv_escape(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn parse_csv(s: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_q = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if in_q {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    in_q = false;
                }
            } else {
                field.push(c);
            }
        } else {
            match c {
                '"' => in_q = true,
                ',' => row.push(std::mem::take(&mut field)),
                '\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                c => field.push(c),
            }
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// JSON (with ids) → CSV → plain texts without ids.
fn json_csv_text(texts: Vec<String>) -> Vec<String> {
    let json: Vec<serde_json::Value> =
        texts.iter().enumerate().map(|(i, t)| serde_json::json!({"id": i.to_string(), "text": t})).collect();
    let js = serde_json::to_string(&json).unwrap();
    let back: Vec<serde_json::Value> = serde_json::from_str(&js).unwrap();
    let mut csv = String::from("id,text\n");
    for v in &back {
        csv.push_str(&format!(
            "{},{}\n",
            csv_escape(v["id"].as_str().unwrap()),
            csv_escape(v["text"].as_str().unwrap())
        ));
    }
    parse_csv(&csv).into_iter().skip(1).map(|r| r.get(1).cloned().unwrap_or_default()).collect()
}

// ---------------------------------------------------------------- collusion on text

/// Builds the colluders' leaked text of one post from their copies (and the public text
/// when `with_public`), locating sites with the crate's public detector on their own
/// copies (an attacker who knows every channel) and splicing spans of text.
fn collude(
    post: &PreparedPost,
    copies: &[String],
    strategy: Strategy,
    post_counter: usize,
    rng: &mut ChaCha8Rng,
) -> String {
    match strategy {
        Strategy::AllPublic => return post.public_text().to_string(),
        Strategy::Interleave => return copies[post_counter % copies.len()].clone(),
        _ => {}
    }
    if copies.len() == 1 {
        return copies[0].clone();
    }
    let detected: Vec<_> = copies.iter().map(|c| detect_sites(c)).collect();
    let n_sites = detected[0].len();
    assert!(detected.iter().all(|d| d.len() == n_sites));
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for j in 0..n_sites {
        let forms: Vec<_> = detected.iter().map(|d| d[j].form).collect();
        let src = match strategy {
            Strategy::Random => rng.random_range(0..copies.len()),
            Strategy::Majority | Strategy::Minority => {
                let mut distinct: Vec<(datapact_mark::Form, usize)> = Vec::new();
                for f in &forms {
                    match distinct.iter_mut().find(|x| x.0 == *f) {
                        Some(x) => x.1 += 1,
                        None => distinct.push((*f, 1)),
                    }
                }
                distinct.shuffle(rng);
                let pick = if strategy == Strategy::Majority {
                    distinct.iter().max_by_key(|x| x.1).unwrap().0
                } else {
                    distinct.iter().min_by_key(|x| x.1).unwrap().0
                };
                let holders: Vec<usize> = (0..forms.len()).filter(|&k| forms[k] == pick).collect();
                *holders.choose(rng).unwrap()
            }
            _ => unreachable!(),
        };
        if src == 0 {
            continue;
        }
        let base = detected[0][j].spans.ranges();
        let from = detected[src][j].spans.ranges();
        for (b, f) in base.into_iter().zip(from) {
            edits.push((b, copies[src][f].to_string()));
        }
    }
    edits.sort_by_key(|e| (e.0.start, e.0.end));
    let base = &copies[0];
    let mut out = String::with_capacity(base.len() + 16);
    let mut at = 0;
    for (r, t) in edits {
        out.push_str(&base[at..r.start]);
        out.push_str(&t);
        at = r.end;
    }
    out.push_str(&base[at..]);
    out
}

// ---------------------------------------------------------------- trials

struct Corpus {
    name: String,
    texts: Vec<String>,
}

struct Prepared {
    posts: Vec<PreparedPost>,
    by_digest: HashMap<[u8; 32], usize>,
}

#[derive(Default, Clone)]
struct TrialResult {
    /// (markable sites in leak, sites used, posts in leak) at first accusation of a colluder
    detected: Option<(usize, usize, usize)>,
    innocent_accusations: u64,
    innocents: u64,
    checkpoints: u64,
    unmatched: usize,
    lib_mismatch: bool,
    max_sites: usize,
}

#[allow(clippy::too_many_arguments)]
fn run_trial(
    prep: &Prepared,
    candidates: &[u64],
    c: usize,
    strategy: Strategy,
    attack: Attack,
    epsilon: f64,
    max_sites: usize,
    seed: u64,
    check_library: bool,
    pw: f64,
) -> TrialResult {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let colluders: Vec<u64> = candidates.choose_multiple(&mut rng, c).copied().collect();
    let is_colluder: Vec<bool> = candidates.iter().map(|l| colluders.contains(l)).collect();
    let mut order: Vec<usize> = (0..prep.posts.len()).collect();
    order.shuffle(&mut rng);
    let params = AccusationParams { epsilon, public_form_weight: pw, ..AccusationParams::default() };
    let mut ev = Evidence::new();
    let mut ch_scores = vec![vec![0.0f64; candidates.len()]; Channel::COUNT];
    let mut scored_upto = 0usize;
    let mut res = TrialResult::default();
    let mut posts_in_leak = 0usize;
    let mut next_cp = 5.0f64;
    let mut batch: Vec<String> = Vec::new();
    let mut pos = 0usize;
    let mut counter = 0usize;
    loop {
        // Fill a batch up to the next checkpoint.
        let mut batch_sites = 0usize;
        while pos < order.len() && ((ev.sites() + batch_sites) as f64) < next_cp {
            let post = &prep.posts[order[pos]];
            pos += 1;
            posts_in_leak += 1;
            if post.sites().is_empty() {
                continue;
            }
            batch_sites += post.sites().len();
            let mut copies: Vec<String> = colluders.iter().map(|&l| post.render(l)).collect();
            if attack == Attack::DiffPublic {
                copies.push(post.public_text().to_string());
            }
            let leaked = collude(post, &copies, strategy, counter, &mut rng);
            counter += 1;
            batch.push(leaked);
        }
        let attacked: Vec<String> = match attack {
            Attack::None | Attack::DiffPublic => std::mem::take(&mut batch),
            Attack::Nfc => batch.drain(..).map(|t| t.nfc().collect()).collect(),
            Attack::Nfkc => batch.drain(..).map(|t| t.nfkc().collect()).collect(),
            Attack::AsciiQuotes => batch.drain(..).map(|t| ascii_quotes(&t)).collect(),
            Attack::JsonCsvText => json_csv_text(std::mem::take(&mut batch)),
        };
        let exhausted = pos >= order.len();
        let mut shuffled = attacked;
        shuffled.shuffle(&mut rng);
        for t in &shuffled {
            match prep.by_digest.get(&post_fingerprint(t)) {
                Some(&i) => {
                    ev.add_post(&prep.posts[i], t);
                }
                None => res.unmatched += 1,
            }
        }
        // Checkpoint: incremental per-channel scores, channel dropping, rigorous threshold.
        let obs = ev.observed_sites();
        for ch in Channel::ALL {
            let new: Vec<_> = obs[scored_upto..]
                .iter()
                .filter(|s| s.channel == ch)
                .filter_map(|s| s.symbol.map(|y| (s.code, y, if s.public_form { pw } else { 1.0 })))
                .collect();
            if !new.is_empty() {
                ScoringSites::new_weighted(new).add_scores(candidates, &mut ch_scores[ch.index()]);
            }
        }
        scored_upto = obs.len();
        let dropped: Vec<Channel> = ev.channels(&params).into_iter().filter(|c| c.dropped).map(|c| c.channel).collect();
        let kept: Vec<_> = obs
            .iter()
            .filter(|s| !dropped.contains(&s.channel))
            .filter_map(|s| s.symbol.map(|y| (s.code, y, if s.public_form { pw } else { 1.0 })))
            .collect();
        let all_public = obs.iter().all(|s| s.symbol.is_none() || s.public_form);
        let sites_used = kept.len();
        let threshold =
            if all_public { None } else { ScoringSites::new_weighted(kept).threshold(epsilon, candidates.len()) };
        res.checkpoints += 1;
        let mut colluder_hit = false;
        let mut accused_ids: Vec<u64> = Vec::new();
        if let Some(z) = threshold {
            for (j, &lic) in candidates.iter().enumerate() {
                let s: f64 =
                    Channel::ALL.iter().filter(|c| !dropped.contains(c)).map(|c| ch_scores[c.index()][j]).sum();
                if s >= z {
                    accused_ids.push(lic);
                    if is_colluder[j] {
                        colluder_hit = true;
                    } else {
                        res.innocent_accusations += 1;
                    }
                }
            }
        }
        let done = colluder_hit || exhausted || ev.sites() >= max_sites;
        if done && check_library {
            // Cross-check the harness's incremental decision with the library's.
            let v = ev.accuse(candidates, &params);
            let mut lib: Vec<u64> = v.accused.iter().map(|a| a.licensee).collect();
            lib.sort();
            accused_ids.sort();
            if lib != accused_ids {
                res.lib_mismatch = true;
            }
        }
        if colluder_hit {
            res.detected = Some((ev.sites(), sites_used, posts_in_leak));
        }
        if done {
            break;
        }
        next_cp = (next_cp * 1.05).max(next_cp + 1.0);
    }
    res.innocents = (candidates.len() - c) as u64;
    res.max_sites = ev.sites();
    res
}

/// Reference figures of the rigorous symmetric analysis (FIELD-NOTES), at ε = 1e-6 over
/// 1,000 licensees: (50 % detection, 99 % detection) in sites.
fn reference(c: usize) -> (f64, f64) {
    match c {
        1 => (f64::NAN, 80.0),
        2 => (316.0, 442.0),
        4 => (1629.0, 2090.0),
        8 => (6832.0, 8209.0),
        _ => (f64::NAN, f64::NAN),
    }
}

fn percentile_size(sizes: &[Option<(usize, usize, usize)>], q: f64) -> Option<(usize, usize, usize)> {
    let mut det: Vec<(usize, usize, usize)> = sizes.iter().flatten().copied().collect();
    det.sort();
    let need = (q * sizes.len() as f64).ceil() as usize;
    if need == 0 || det.len() < need { None } else { Some(det[need - 1]) }
}

fn main() {
    let args = parse_args();
    let mut corpora = Vec::new();
    if let Some(p) = &args.jsonl {
        corpora.push(Corpus { name: args.name.clone(), texts: load_jsonl(p) });
    }
    if let Some(p) = &args.fortunes {
        corpora.push(Corpus { name: args.name.clone(), texts: load_fortunes(p, args.recursive) });
    }
    if let Some(n) = args.synthetic {
        corpora.push(Corpus { name: args.name.clone(), texts: synthetic(n, args.seed) });
    }
    assert!(!corpora.is_empty(), "give --jsonl, --fortunes or --synthetic");
    let candidates: Vec<u64> = (0..args.licensees as u64).map(|k| 10_000 + k).collect();
    for corpus in corpora {
        // Post-sized texts, deduplicated by folded digest.
        let mut seen = std::collections::HashSet::new();
        let texts: Vec<String> = corpus
            .texts
            .into_iter()
            .filter(|t| {
                let n = t.chars().count();
                n >= args.min_chars && n <= args.max_chars
            })
            .filter(|t| seen.insert(post_fingerprint(t)))
            .collect();
        println!("\n## corpus {} — {} posts\n", corpus.name, texts.len());
        for &c in &args.coalitions {
            let tune = if args.tune == "8" { 8 } else { c as u32 };
            let secret = Secret::derive(1, b"datapact-mark eval").with_max_coalition(tune).with_channels(args.channels);
            let t0 = Instant::now();
            let posts: Vec<PreparedPost> =
                texts.par_iter().enumerate().map(|(i, t)| PreparedPost::new(&secret, i as u64 + 1, t)).collect();
            let by_digest = posts.iter().enumerate().map(|(i, p)| (*p.text_digest(), i)).collect();
            let prep = Prepared { posts, by_digest };
            if c == args.coalitions[0] {
                print_corpus_stats(&prep);
                println!("(prepared in {:.1} s)\n", t0.elapsed().as_secs_f64());
                println!(
                    "| c | code tuned for c | strategy | attack | trials | colluder accused by max | 50 % leak: sites (posts) | 99 % leak: sites used / sites (posts) | 99 % ÷ ref | innocent accusations / innocent trials | secs |"
                );
                println!("|---|---|---|---|---|---|---|---|---|---|---|");
            }
            let (_, r99) = reference(c);
            let max_sites = (r99 * args.max_factor).max(400.0) as usize;
            let configs = configs(&args.matrix, c);
            for (strategy, attack) in configs {
                let t1 = Instant::now();
                let trials = args.trials;
                let results: Vec<TrialResult> = (0..trials)
                    .into_par_iter()
                    .map(|k| {
                        run_trial(
                            &prep,
                            &candidates,
                            c,
                            strategy,
                            attack,
                            args.epsilon,
                            max_sites,
                            args.seed * 1_000_003 + k as u64 * 7919 + c as u64,
                            k < 3,
                            args.public_weight,
                        )
                    })
                    .collect();
                let sizes: Vec<_> = results.iter().map(|r| r.detected).collect();
                let detected = sizes.iter().filter(|s| s.is_some()).count();
                let innocent_acc: u64 = results.iter().map(|r| r.innocent_accusations).sum();
                let innocents: u64 = results.iter().map(|r| r.innocents).sum();
                let unmatched: usize = results.iter().map(|r| r.unmatched).sum();
                let mismatch = results.iter().filter(|r| r.lib_mismatch).count();
                let max_reached = results.iter().map(|r| r.max_sites).max().unwrap_or(0);
                let p50 =
                    percentile_size(&sizes, 0.5).map(|(s, _, p)| format!("{s} ({p})")).unwrap_or_else(|| "—".into());
                let (p99, ratio) = match percentile_size(&sizes, 0.99) {
                    Some((s, u, p)) => (format!("{u} / {s} ({p})"), format!("{:.2}", s as f64 / r99)),
                    None => (format!("not reached ≤ {max_reached}"), "—".into()),
                };
                let mut note = String::new();
                if unmatched > 0 {
                    note.push_str(&format!(" [{unmatched} leaked texts unmatched]"));
                }
                if mismatch > 0 {
                    note.push_str(&format!(" [LIBRARY MISMATCH in {mismatch} checked trials]"));
                }
                println!(
                    "| {c} | {tune} | {} | {} | {trials} | {:.1} % | {p50} | {p99} | {ratio} | {innocent_acc} / {innocents} | {:.0}{note} |",
                    strategy.name(),
                    attack.name(),
                    100.0 * detected as f64 / trials as f64,
                    t1.elapsed().as_secs_f64()
                );
            }
        }
    }
}

fn configs(matrix: &str, c: usize) -> Vec<(Strategy, Attack)> {
    use Attack::*;
    use Strategy::*;
    let strategies =
        if c == 1 { vec![Interleave, AllPublic] } else { vec![Interleave, Random, Majority, Minority, AllPublic] };
    let attacks = [Nfc, Nfkc, AsciiQuotes, JsonCsvText, DiffPublic];
    let mut v = Vec::new();
    if matches!(matrix, "full" | "strategies" | "quick") {
        for &s in &strategies {
            v.push((s, None));
        }
    }
    if matches!(matrix, "full" | "attacks") {
        let s = if c == 1 { Interleave } else { Random };
        for a in attacks {
            v.push((s, a));
        }
        if c > 1 {
            v.push((Majority, DiffPublic));
            v.push((Minority, DiffPublic));
        }
    }
    v
}

fn print_corpus_stats(prep: &Prepared) {
    let n = prep.posts.len();
    let mut counts: Vec<usize> = prep.posts.iter().map(|p| p.sites().len()).collect();
    let total: usize = counts.iter().sum();
    let with = counts.iter().filter(|&&k| k > 0).count();
    counts.sort();
    let mut per_channel = [0usize; Channel::COUNT];
    for p in &prep.posts {
        for s in p.sites() {
            per_channel[s.channel.index()] += 1;
        }
    }
    println!(
        "markable sites: {total} in {n} posts; mean {:.2} per post, median {}, 90th pct {}, max {}; posts with ≥ 1 site: {with} ({:.1} %)",
        total as f64 / n.max(1) as f64,
        counts.get(n / 2).copied().unwrap_or(0),
        counts.get(n * 9 / 10).copied().unwrap_or(0),
        counts.last().copied().unwrap_or(0),
        100.0 * with as f64 / n.max(1) as f64
    );
    let parts: Vec<String> = Channel::ALL
        .iter()
        .filter(|c| per_channel[c.index()] > 0)
        .map(|c| format!("{} {}", c.name(), per_channel[c.index()]))
        .collect();
    println!("by channel: {}", parts.join(", "));
}
