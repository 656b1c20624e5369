//! The trace benchmark's engine (bench/trace.sh): `generate` writes a leak of demo posts as
//! one licensee's fingerprinted copies (X-shaped JSON Lines) plus canary strings; `trace`
//! rebuilds the same corpus and traces the leak with 1,000 candidate licensees and the
//! canaries, printing timings as `key value` lines.
//!
//! `parse` times the two single-core costs under the trace on the same leak: JSON parsing
//! alone (serde_json, top-level id and text) and the canary scan alone (one thread).
//!
//! Usage: `trace_bench generate|trace|parse DIR [--posts N] [--licensees N] [--canaries N]
//! [--leaker L] [--planted N]`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use datapact_demo::CorpusSpec;
use datapact_mark::{PreparedPost, Secret};
use datapact_trace::{Canary, Candidate, CorpusBuilder, LeakFormat, TraceSettings, Tracer};
use rayon::prelude::*;

struct Opts {
    posts: usize,
    licensees: u64,
    canaries: usize,
    leaker: u64,
    planted: usize,
}

fn secret() -> Secret {
    Secret::new(1, [42; 32])
}

/// Canary `i` belongs to licensee `1 + i % licensees`; its text is plausible, unique, and
/// starts in many different ways (as synthetic posts would), so neither side gets a shared
/// prefix to search for.
fn canaries(o: &Opts) -> Vec<Canary> {
    const OPENERS: [&str; 16] = [
        "Spotted a",
        "Finally saw a",
        "Anyone else hear the",
        "Just photographed a",
        "Our club counted a",
        "Rain all day, still found a",
        "Quick note: a",
        "Petit rappel : un",
        "Je viens de voir un",
        "Ce matin, un",
        "Who knew a",
        "Three days tracking a",
        "Heard a",
        "Tiny",
        "Look at this",
        "Early start for a",
    ];
    const BIRDS: [&str; 8] = ["heron", "kestrel", "wren", "egret", "plover", "curlew", "linnet", "avocet"];
    const PLACES: [&str; 6] =
        ["the old quarry", "Millbrook pond", "the north jetty", "Elm Street park", "the marsh", "Kingsway bridge"];
    (0..o.canaries)
        .map(|i| Canary {
            licensee: 1 + (i as u64 % o.licensees),
            canary_id: format!("cn-{i:05}"),
            text: format!(
                "{} {} near {} at {}:{:02}, tag {:05x}",
                OPENERS[(i * 7) % 16],
                BIRDS[i % 8],
                PLACES[(i / 8) % 6],
                5 + i % 4,
                (i * 7) % 60,
                i * 7919 % 0xfffff
            ),
        })
        .collect()
}

fn spec(o: &Opts) -> CorpusSpec {
    CorpusSpec { posts: o.posts, ..CorpusSpec::default() }
}

fn generate(dir: &Path, o: &Opts) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let secret = secret();
    let canaries = canaries(o);
    let mut leak = BufWriter::with_capacity(1 << 20, File::create(dir.join("leak.jsonl"))?);
    let every = o.posts / o.planted.max(1);
    let mut planted = 0;
    let mut written = 0usize;
    let mut batch = Vec::with_capacity(20_000);
    let mut flush = |batch: &mut Vec<serde_json::Value>, leak: &mut BufWriter<File>| -> std::io::Result<()> {
        let lines: Vec<String> = batch
            .par_iter_mut()
            .map(|v| {
                let id: u64 = v["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                let text = v["text"].as_str().unwrap_or_default().to_string();
                v["text"] = PreparedPost::new(&secret, id, &text).render(o.leaker).into();
                v.to_string()
            })
            .collect();
        for line in lines {
            leak.write_all(line.as_bytes())?;
            leak.write_all(b"\n")?;
            written += 1;
            if o.planted > 0 && written.is_multiple_of(every.max(1)) && planted < o.planted {
                // A canary delivered to the leaker, in the X shape, with its own id.
                // Canary `i` belongs to licensee `1 + i % licensees`: take the leaker's in turn.
                let c = &canaries[((o.leaker - 1) as usize + planted * o.licensees as usize) % canaries.len()];
                let line = serde_json::json!({"id": format!("{}", 9_000_000_000_000_000_000u64 + planted as u64), "text": c.text});
                writeln!(leak, "{line}")?;
                planted += 1;
            }
        }
        batch.clear();
        Ok(())
    };
    for v in datapact_demo::generate(&spec(o)) {
        batch.push(v);
        if batch.len() == batch.capacity() {
            flush(&mut batch, &mut leak)?;
        }
    }
    flush(&mut batch, &mut leak)?;
    leak.flush()?;
    let mut out = BufWriter::new(File::create(dir.join("canaries.txt"))?);
    for c in &canaries {
        writeln!(out, "{}", c.text)?;
    }
    out.flush()?;
    println!("posts {}", o.posts);
    println!("planted {planted}");
    Ok(())
}

fn trace(dir: &Path, o: &Opts) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let mut corpus = CorpusBuilder::new();
    for v in datapact_demo::generate(&spec(o)) {
        let id: u64 = v["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        corpus.add_revision(id, 1, v["text"].as_str().unwrap_or_default());
    }
    let corpus = corpus.build();
    let corpus_s = t0.elapsed().as_secs_f64();
    let candidates = (1..=o.licensees).map(|id| Candidate { id, name: format!("licensee-{id}") }).collect();
    let t1 = Instant::now();
    let mut tracer = Tracer::new(corpus, vec![secret()], candidates, canaries(o), TraceSettings::default())?;
    let path = dir.join("leak.jsonl");
    let input = BufReader::with_capacity(1 << 20, File::open(&path)?);
    let t2 = Instant::now();
    tracer.read_leak("leak.jsonl", input, LeakFormat::Auto, &mut |_| {})?;
    let read_s = t2.elapsed().as_secs_f64();
    let t3 = Instant::now();
    let outcome = tracer.finish();
    let finish_s = t3.elapsed().as_secs_f64();
    let scan_s = t1.elapsed().as_secs_f64();
    let r = &outcome.report;
    println!("corpus_s {corpus_s:.3}");
    println!("scan_s {scan_s:.3}");
    println!("read_s {read_s:.3}");
    println!("finish_s {finish_s:.3}");
    println!("bytes {}", r.inputs[0].bytes);
    println!("records {}", r.records.read);
    println!("matched_by_id {}", r.records.matched_by_id);
    println!("posts_read {}", r.posts_read);
    println!("stages {}", r.stages.len());
    println!("accused {:?}", r.accused.iter().map(|a| a.licensee).collect::<Vec<_>>());
    println!("canary_hits {}", r.canary_hits.len());
    println!("canary_hits_of_leaker {}", r.canary_hits.iter().filter(|h| h.hit.licensee == o.leaker).count());
    println!("canary_occurrences {}", r.canary_hits.iter().map(|h| h.hit.exact_occurrences).sum::<u64>());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(dir)) = (args.first(), args.get(1)) else {
        return Err("usage: trace_bench generate|trace|parse DIR [--posts N] [--licensees N] [--canaries N] [--leaker L] [--planted N]".into());
    };
    let mut o = Opts { posts: 1_000_000, licensees: 1000, canaries: 1000, leaker: 417, planted: 10 };
    let mut rest = args[2..].iter();
    while let (Some(k), Some(v)) = (rest.next(), rest.next()) {
        match k.as_str() {
            "--posts" => o.posts = v.parse()?,
            "--licensees" => o.licensees = v.parse()?,
            "--canaries" => o.canaries = v.parse()?,
            "--leaker" => o.leaker = v.parse()?,
            "--planted" => o.planted = v.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let dir = Path::new(dir);
    match mode.as_str() {
        "generate" => generate(dir, &o)?,
        "trace" => trace(dir, &o)?,
        "parse" => {
            // The cost of JSON parsing alone (one core), for reading the trace figures.
            #[derive(serde::Deserialize)]
            struct Probe<'a> {
                #[serde(borrow)]
                id: Option<std::borrow::Cow<'a, str>>,
                #[serde(borrow)]
                text: Option<std::borrow::Cow<'a, str>>,
            }
            let bytes = std::fs::read(dir.join("leak.jsonl"))?;
            let t = Instant::now();
            let mut n = 0usize;
            for line in bytes.split(|&b| b == b'\n') {
                if let Ok(p) = serde_json::from_slice::<Probe>(line) {
                    n += p.id.map_or(0, |i| i.len()) + p.text.map_or(0, |t| t.len());
                }
            }
            println!("parse_s {:.3} ({n})", t.elapsed().as_secs_f64());
            let ac = aho_corasick::AhoCorasickBuilder::new()
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(canaries(&o).iter().map(|c| c.text.as_str()))?;
            let t = Instant::now();
            let hits = ac.find_iter(&bytes).count();
            println!("canary_scan_s {:.3} ({hits})", t.elapsed().as_secs_f64());
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    Ok(())
}
