//! Writes a demo corpus as JSON Lines: `demo_corpus [POSTS] [OUT]`
//! (defaults: the default spec, stdout). Prints the generation time to stderr.

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut spec = datapact_demo::CorpusSpec::default();
    if let Some(n) = args.next() {
        spec.posts = n.parse().expect("POSTS must be a number");
    }
    let t = std::time::Instant::now();
    let lines = match args.next() {
        Some(path) => {
            let mut out = BufWriter::new(std::fs::File::create(path)?);
            let n = datapact_demo::write_jsonl(&spec, &mut out)?;
            out.flush()?;
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            datapact_demo::write_jsonl(&spec, &mut out)?
        }
    };
    eprintln!("{lines} posts in {:?}", t.elapsed());
    Ok(())
}
