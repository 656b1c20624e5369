//! Reading leaked records from a stream: JSON Lines of X-shaped posts or pages, CSV with a
//! text column, or plain text, in chunks so memory does not grow with the leak.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, Read};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The format of a leak file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakFormat {
    /// Decide from the first bytes ([`sniff`]).
    Auto,
    /// One JSON object per line: an X post (`{"id":"…","text":"…",…}`) or an X response
    /// page (`{"data":[…]}` or `{"data":{…}}`).
    Jsonl,
    /// CSV with a header row naming a `text` column (and optionally `id`).
    Csv,
    /// Each non-empty line is one post's text.
    Text,
}

impl LeakFormat {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LeakFormat::Auto => "auto",
            LeakFormat::Jsonl => "jsonl",
            LeakFormat::Csv => "csv",
            LeakFormat::Text => "text",
        }
    }
}

impl fmt::Display for LeakFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LeakFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => LeakFormat::Auto,
            "jsonl" | "json" | "ndjson" => LeakFormat::Jsonl,
            "csv" => LeakFormat::Csv,
            "text" | "txt" => LeakFormat::Text,
            other => return Err(format!("unknown leak format {other:?}: use auto, jsonl, csv or text")),
        })
    }
}

/// Guesses the format from the first bytes of a leak: JSON Lines when the first
/// non-blank byte opens an object, CSV when the first line is a header with a `text`
/// column, plain text otherwise.
pub fn sniff(head: &[u8]) -> LeakFormat {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let first = head.iter().position(|b| !b.is_ascii_whitespace());
    match first.map(|i| head[i]) {
        Some(b'{') => LeakFormat::Jsonl,
        Some(_) => {
            let start = first.unwrap_or(0);
            let line_end = memchr::memchr(b'\n', &head[start..]).map_or(head.len(), |e| start + e);
            let line = String::from_utf8_lossy(&head[start..line_end]);
            let is_header = line.contains(',') && csv_header_fields(&line).any(|f| f.eq_ignore_ascii_case("text"));
            if is_header { LeakFormat::Csv } else { LeakFormat::Text }
        }
        None => LeakFormat::Text,
    }
}

fn csv_header_fields(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|f| f.trim().trim_matches('"').trim())
}

/// One leaked post as read: its id if the leak kept one, and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeakRecord<'a> {
    pub id: Option<u64>,
    pub text: Cow<'a, str>,
}

#[derive(Deserialize)]
struct JsonPost<'a> {
    #[serde(default, deserialize_with = "post_id")]
    id: Option<u64>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct JsonLine<'a> {
    #[serde(default, deserialize_with = "post_id")]
    id: Option<u64>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<OneOrMany<'a>>,
    #[serde(default)]
    meta: Option<IgnoredAny>,
}

/// X's `data` is an array on list endpoints and an object on single-post lookups.
struct OneOrMany<'a>(Vec<JsonPost<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for OneOrMany<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = OneOrMany<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a post object or an array of post objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut posts = Vec::new();
                while let Some(p) = seq.next_element::<JsonPost<'a>>()? {
                    posts.push(p);
                }
                Ok(OneOrMany(posts))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let p = JsonPost::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(OneOrMany(vec![p]))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A post id as X writes it (a decimal string) or as a number. Anything else (a
/// non-numeric string, null) is treated as no id: the record is then matched by its text.
fn post_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a post id")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.trim().parse().ok())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Parses one JSON line into its posts (appended to `out`). A page without posts (only
/// `meta`) yields none; a line that is not such an object is an error with a reason.
///
/// Single posts go through [`fast_post`] first, which reads only the top-level `id` and
/// `text` and skips everything else (authors, metrics, dates) without building it; anything
/// it is not sure of goes to serde_json, which decides and explains malformed lines.
pub(crate) fn parse_json_line<'a>(line: &'a [u8], out: &mut Vec<LeakRecord<'a>>) -> Result<(), String> {
    if let Some(record) = fast_post(line) {
        out.push(record);
        return Ok(());
    }
    let parsed: JsonLine<'a> = serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if let Some(OneOrMany(posts)) = parsed.data {
        for p in posts {
            // A post without text in a page (e.g. a withheld one) carries nothing to trace.
            if let Some(text) = p.text {
                out.push(LeakRecord { id: p.id, text });
            }
        }
        return Ok(());
    }
    match parsed.text {
        Some(text) => {
            out.push(LeakRecord { id: parsed.id, text });
            Ok(())
        }
        None if parsed.meta.is_some() => Ok(()),
        None => Err("no \"text\" or \"data\" field".into()),
    }
}

/// Reads a one-post line (`{"id":"…","text":"…",…}`) by walking its top level only: the
/// values of other keys are skipped by their brackets and quotes, not parsed. `None`, and
/// the caller falls back to serde_json, whenever the line is anything else or anything is
/// unusual: a page (`data`), an escaped key or id, a missing text, a bracket out of place,
/// text after the closing brace. What it accepts it reads exactly as serde_json would (the
/// text's escapes are decoded by serde_json); it does not check the syntax of the values it
/// skips (a bad number inside `public_metrics`), which carry nothing the trace uses.
fn fast_post(line: &[u8]) -> Option<LeakRecord<'_>> {
    let mut p = Walker { b: line, i: 0 };
    p.ws();
    p.eat(b'{')?;
    let (mut id, mut text) = (None, None);
    p.ws();
    if p.peek()? == b'}' {
        return None;
    }
    loop {
        p.ws();
        let key = p.plain_string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        match key {
            b"id" => {
                id = Some(match p.peek()? {
                    b'"' => std::str::from_utf8(p.plain_string()?).ok()?.trim().parse().ok(),
                    b'0'..=b'9' => {
                        let start = p.i;
                        while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                            p.i += 1;
                        }
                        std::str::from_utf8(&line[start..p.i]).ok()?.parse().ok()
                    }
                    _ => return None,
                })
            }
            b"text" => text = Some(p.string_value()?),
            b"data" => return None,
            _ => p.skip_value()?,
        }
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    if p.i != line.len() {
        return None;
    }
    Some(LeakRecord { id: id.flatten(), text: text? })
}

struct Walker<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Walker<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    /// The end (index of the closing quote) of the string whose opening quote is at `i`,
    /// and whether it contains an escape.
    fn string_end(&self) -> Option<(usize, bool)> {
        let mut at = self.i + 1;
        let mut escaped = false;
        loop {
            let j = at + memchr::memchr2(b'"', b'\\', &self.b[at..])?;
            if self.b[j] == b'"' {
                return Some((j, escaped));
            }
            escaped = true;
            at = j + 2;
            if at > self.b.len() {
                return None;
            }
        }
    }

    /// A string without escapes (keys, ids), as raw bytes.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let (end, escaped) = self.string_end()?;
        if escaped {
            return None;
        }
        let s = &self.b[self.i + 1..end];
        self.i = end + 1;
        Some(s)
    }

    /// A string value, decoded: borrowed when it has no escape, else through serde_json.
    fn string_value(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        let (end, escaped) = self.string_end()?;
        let raw = &self.b[self.i..=end];
        self.i = end + 1;
        if escaped {
            return serde_json::from_slice::<String>(raw).ok().map(Cow::Owned);
        }
        let body = &raw[1..raw.len() - 1];
        // JSON forbids raw control characters in strings; let serde_json explain them.
        if body.iter().any(|&c| c < 0x20) {
            return None;
        }
        std::str::from_utf8(body).ok().map(Cow::Borrowed)
    }

    /// Skips a value of any type, checking only that brackets and quotes balance.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                let (end, _) = self.string_end()?;
                self.i = end + 1;
            }
            b'{' | b'[' => {
                // The closing brackets expected, innermost last; deeper nesting than this is
                // left to serde_json (and no allocation per skipped object).
                let mut stack = [0u8; 32];
                let mut depth = 0;
                loop {
                    match self.peek()? {
                        b'"' => {
                            let (end, _) = self.string_end()?;
                            self.i = end + 1;
                            continue;
                        }
                        c @ (b'{' | b'[') => {
                            *stack.get_mut(depth)? = if c == b'{' { b'}' } else { b']' };
                            depth += 1;
                        }
                        c @ (b'}' | b']') => {
                            if depth == 0 || stack[depth - 1] != c {
                                return None;
                            }
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    if !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.')) {
                        return None;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
            }
        }
        Some(())
    }
}

/// A piece of the leak ending at a line boundary.
pub(crate) struct Chunk {
    pub bytes: Vec<u8>,
    /// Byte offset of its first byte in the input.
    pub offset: u64,
    /// Lines longer than [`MAX_LINE`] skipped just before this chunk.
    pub oversized: u64,
}

/// Target chunk size: big enough that per-chunk overhead vanishes, small enough that a
/// batch of chunks per core stays a few MiB.
pub(crate) const CHUNK: usize = 1 << 20;
/// A longer line is skipped and counted as malformed, so one huge line cannot make memory
/// grow with the leak.
pub(crate) const MAX_LINE: usize = 64 << 20;

/// Splits a stream into chunks of whole lines.
pub(crate) struct ChunkReader<R> {
    inner: R,
    carry: Vec<u8>,
    /// Buffers of processed chunks, reused so a long leak does not map fresh pages for every
    /// chunk (page faults were a seventh of the trace's time before).
    spare: Vec<Vec<u8>>,
    offset: u64,
    eof: bool,
}

impl<R: BufRead> ChunkReader<R> {
    pub fn new(inner: R) -> Self {
        ChunkReader { inner, carry: Vec::new(), spare: Vec::new(), offset: 0, eof: false }
    }

    /// Returns a processed chunk's buffer for reuse.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < 64 && buffer.capacity() <= 4 * CHUNK {
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    /// The next chunk (whole lines; the last may lack its newline), `None` at the end.
    /// `read` is told how many bytes were consumed (for progress).
    pub fn next_chunk(&mut self, read: &mut dyn FnMut(u64)) -> io::Result<Option<Chunk>> {
        let mut oversized = 0;
        let mut buf = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(2 * CHUNK + (CHUNK >> 4)));
        buf.extend_from_slice(&self.carry);
        self.carry.clear();
        loop {
            while !self.eof && buf.len() < CHUNK {
                // Always ask for a whole chunk: a `BufReader` of at most that capacity then
                // reads straight into this buffer instead of copying through its own.
                let want = CHUNK;
                let start = buf.len();
                buf.resize(start + want, 0);
                let n = loop {
                    match self.inner.read(&mut buf[start..]) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                buf.truncate(start + n);
                read(n as u64);
                if n == 0 {
                    self.eof = true;
                }
            }
            if self.eof {
                if buf.is_empty() {
                    self.recycle(buf);
                    return Ok(None);
                }
                let offset = self.offset;
                self.offset += buf.len() as u64;
                return Ok(Some(Chunk { bytes: buf, offset, oversized }));
            }
            match memchr::memrchr(b'\n', &buf) {
                Some(last) => {
                    self.carry.extend_from_slice(&buf[last + 1..]);
                    buf.truncate(last + 1);
                    let offset = self.offset;
                    self.offset += buf.len() as u64;
                    return Ok(Some(Chunk { bytes: buf, offset, oversized }));
                }
                None if buf.len() >= MAX_LINE => {
                    // Skip the rest of this line without holding it.
                    self.offset += buf.len() as u64;
                    buf.clear();
                    oversized += 1;
                    loop {
                        let (skip, found) = {
                            let avail = self.inner.fill_buf()?;
                            if avail.is_empty() {
                                self.eof = true;
                                (0, true)
                            } else {
                                match memchr::memchr(b'\n', avail) {
                                    Some(i) => (i + 1, true),
                                    None => (avail.len(), false),
                                }
                            }
                        };
                        self.inner.consume(skip);
                        read(skip as u64);
                        self.offset += skip as u64;
                        if found {
                            break;
                        }
                    }
                }
                None => {
                    // A line longer than a chunk: read on until its end.
                    let start = buf.len();
                    buf.resize(start + CHUNK, 0);
                    let n = self.inner.read(&mut buf[start..])?;
                    buf.truncate(start + n);
                    read(n as u64);
                    if n == 0 {
                        self.eof = true;
                    }
                }
            }
        }
    }
}

/// Wraps a reader and keeps a copy of the bytes read since the last [`Tee::take`], so the
/// CSV path can scan the raw bytes for canaries while the CSV parser consumes them.
pub(crate) struct Tee<R> {
    inner: R,
    seen: Vec<u8>,
    total: u64,
}

impl<R: Read> Tee<R> {
    pub fn new(inner: R) -> Self {
        Tee { inner, seen: Vec::new(), total: 0 }
    }

    /// The bytes read since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.seen)
    }

    /// Bytes read in all.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        self.total += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Vec<(Option<u64>, String)>, String> {
        let mut out = Vec::new();
        parse_json_line(line.as_bytes(), &mut out)?;
        Ok(out.into_iter().map(|r| (r.id, r.text.into_owned())).collect())
    }

    #[test]
    fn json_lines_posts_and_pages() {
        assert_eq!(parse(r#"{"id":"12","text":"a\u2019b","lang":"en"}"#).unwrap(), vec![(Some(12), "a’b".into())]);
        assert_eq!(parse(r#"{"id":12,"text":"x"}"#).unwrap(), vec![(Some(12), "x".into())]);
        assert_eq!(parse(r#"{"id":"abc","text":"x"}"#).unwrap(), vec![(None, "x".into())]);
        assert_eq!(
            parse(r#"{"data":[{"id":"1","text":"a"},{"id":"2","text":"b"}],"meta":{"result_count":2}}"#).unwrap(),
            vec![(Some(1), "a".into()), (Some(2), "b".into())]
        );
        assert_eq!(parse(r#"{"data":{"id":"3","text":"c"}}"#).unwrap(), vec![(Some(3), "c".into())]);
        assert_eq!(parse(r#"{"meta":{"result_count":0}}"#).unwrap(), vec![]);
        for bad in [r#"{"id":"1"}"#, "[1,2]", "{\"text\":", "not json", r#"{"text":5}"#] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fast_path_reads_what_serde_json_reads() {
        let lines = [
            r#"{"author":{"id":"9","name":"A \"b\" [c]","x":[1,{"y":"}"}]},"id":"12","lang":"fr","public_metrics":{"like_count":3},"text":"l\u2019été \"chaud\"\n","ok":true,"n":null,"f":-1.5e3}"#,
            r#"  { "text" : "plain" , "id" : 77 }  "#,
            r#"{"id":"x1","text":"no numeric id"}"#,
            r#"{"text":"only text"}"#,
        ];
        for line in lines {
            let fast = fast_post(line.as_bytes()).expect(line);
            let parsed: JsonLine<'_> = serde_json::from_str(line).unwrap();
            assert_eq!(fast.id, parsed.id, "{line}");
            assert_eq!(fast.text.as_ref(), parsed.text.as_deref().unwrap(), "{line}");
        }
        for unsure in [
            r#"{"data":[{"id":"1","text":"a"}]}"#,
            r#"{"id":"1"}"#,
            r#"{"id":"1","text":"a"} trailing"#,
            r#"{"id":"1","text":"a","x":[1}"#,
            "{\"id\":\"1\",\"text\":\"tab\there\"}",
            r#"{"i\u0064":"1","text":"a"}"#,
            r#"{"id":"1","text":"a""#,
            "{}",
        ] {
            assert!(fast_post(unsure.as_bytes()).is_none(), "{unsure}");
        }
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"\n  {\"id\":\"1\"}"), LeakFormat::Jsonl);
        assert_eq!(sniff(b"id,text\n1,hello"), LeakFormat::Csv);
        assert_eq!(sniff(b"\xEF\xBB\xBF\"Text\",\"author\"\n"), LeakFormat::Csv);
        assert_eq!(sniff(b"hello, world\nmore text"), LeakFormat::Text);
        assert_eq!(sniff(b""), LeakFormat::Text);
    }

    #[test]
    fn chunks_end_at_line_boundaries_and_cover_the_input() {
        let mut input = Vec::new();
        for i in 0..300_000 {
            input.extend_from_slice(format!("line number {i}\n").as_bytes());
        }
        input.extend_from_slice(b"no newline at the end");
        let mut r = ChunkReader::new(&input[..]);
        let mut all = Vec::new();
        let mut consumed = 0;
        while let Some(c) = r.next_chunk(&mut |n| consumed += n).unwrap() {
            assert_eq!(c.offset as usize, all.len());
            all.extend_from_slice(&c.bytes);
            let last_line = c.bytes.ends_with(b"\n") || c.bytes.ends_with(b"end");
            assert!(last_line);
        }
        assert_eq!(all, input);
        assert_eq!(consumed as usize, input.len());
    }
}
