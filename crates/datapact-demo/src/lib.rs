//! Deterministic generator of a realistic demo corpus of social-media posts.
//!
//! Used by `datapact serve --demo` and `datapact demo-corpus --posts N --out FILE`.
//!
//! [`generate`] yields one JSON object per post, in ascending `created_at`
//! order, shaped like an X (Twitter) API v2 tweet with its author inlined
//! under `"author"`: `id`, `text`, `author_id`, `created_at`, `lang`
//! (`"en"` or `"fr"`, about 60/40), `conversation_id`,
//! `edit_history_tweet_ids`, `public_metrics` (heavy-tailed) and, for
//! replies, `in_reply_to_user_id` plus `referenced_tweets`
//! (`replied_to`, and `quoted` for quote posts).
//!
//! What is in it:
//! - `spec.authors` English- or French-speaking accounts with unique
//!   usernames (`[a-z0-9_]{1,15}`), display names, bios and locations; every
//!   author posts at least once when `posts >= authors`.
//! - Posts written from templates and a large vocabulary over a dozen topics
//!   (tech, football, cooking, weather, travel, books, music, city life, work,
//!   science, cinema, and rarely markets), with @mentions of other generated
//!   users, #hashtags, rare $cashtags, URLs, numbers, times, prices and emoji.
//! - Mixed real-world typography, decided per author and slightly per post:
//!   straight and curly apostrophes, `"…"`, `“…”` and `« … »` (with U+00A0,
//!   U+202F or plain spaces), French spacing before `! ? : ;` (U+202F, U+00A0,
//!   a space, or none), `...` and `…`, ` - `, ` – ` and `—`, precomposed
//!   accents with a small share of NFD-decomposed text.
//! - Threads: replies point to earlier posts, with `conversation_id` set to the
//!   root's id. About 1% of posts are edits: the edited version is a later post
//!   with a new id whose `edit_history_tweet_ids` is `[original, new]`.
//! - Ids are Snowflake-style: `((created_at_ms - 1288834974657) << 22) | low
//!   bits`, strictly increasing, decimal strings. Texts are 1 to 280
//!   characters, except a few long-form posts of up to about 1,000.
//!
//! ```
//! use datapact_demo::{CorpusSpec, generate, write_jsonl};
//!
//! let spec = CorpusSpec { posts: 200, authors: 30, ..CorpusSpec::default() };
//! let first = generate(&spec).next().unwrap();
//! assert!(matches!(first["lang"].as_str(), Some("en" | "fr")));
//! assert_eq!(first["author_id"], first["author"]["id"]);
//!
//! let (mut a, mut b) = (Vec::new(), Vec::new());
//! assert_eq!(write_jsonl(&spec, &mut a).unwrap(), 200);
//! write_jsonl(&spec, &mut b).unwrap();
//! assert_eq!(a, b); // same spec, same bytes
//! ```
//!
//! Determinism: the output is a pure function of the [`CorpusSpec`] (a
//! ChaCha8 stream seeded with `spec.seed`; no clock, no hashing order, no
//! I/O), so the same spec gives byte-identical [`write_jsonl`] output with the
//! same version of this crate. Ids are meaningful for `end` between 2010-11-04
//! and 2080. Object keys come out in serde_json's default sorted order; a build
//! that enables serde_json's `preserve_order` feature gets X's field order
//! instead (still deterministic within that build). Texts contain no `&`, `<`
//! or `>`, so X's HTML-escaping of those characters never matters.

use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::HashSet;

mod data_en;
mod data_fr;
mod style;
mod vocab;

use style::{Style, ascii_fold, stylize, to_nfd};
use vocab::LangVocab;

/// Twitter's Snowflake epoch (2010-11-04T01:42:54.657Z) in Unix milliseconds.
pub const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// What to generate. Same spec, same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorpusSpec {
    /// Seed of the pseudo-random stream.
    pub seed: u64,
    /// Number of posts (JSON lines) to produce.
    pub posts: usize,
    /// Number of distinct authors (at least 1 is generated).
    pub authors: usize,
    /// Posts are spread over the `days` days before `end`.
    pub days: u32,
    /// Exclusive upper bound of every post's `created_at`.
    pub end: DateTime<Utc>,
}

impl Default for CorpusSpec {
    fn default() -> Self {
        CorpusSpec {
            seed: 2026,
            posts: 20_000,
            authors: 500,
            days: 30,
            end: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().expect("valid date"),
        }
    }
}

/// Generates the corpus: one ingest line (X API v2 tweet with inline
/// `author`) per item, in ascending `created_at` (and `id`) order.
pub fn generate(spec: &CorpusSpec) -> impl Iterator<Item = Value> + use<> {
    let Corpus { authors, posts } = build(spec);
    let author_json: Vec<Value> = authors.iter().map(Author::to_json).collect();
    posts.into_iter().map(move |p| p.to_json(&authors, &author_json))
}

/// Writes the corpus as JSON Lines (one compact object per line, `\n`
/// terminated) and returns the number of lines written. Wrap `out` in a
/// `BufWriter` for files.
pub fn write_jsonl(spec: &CorpusSpec, out: &mut impl std::io::Write) -> std::io::Result<u64> {
    let mut n = 0u64;
    for v in generate(spec) {
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

// ---------------------------------------------------------------------------
// Model

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lang {
    En,
    Fr,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }
    fn idx(self) -> usize {
        match self {
            Lang::En => 0,
            Lang::Fr => 1,
        }
    }
}

struct Author {
    id: u64,
    username: String,
    name: String,
    created_ms: i64,
    description: String,
    location: String,
    lang: Lang,
    bilingual: bool,
    followers: f64,
    activity: f64,
    favs: [usize; 3],
    style: Style,
}

impl Author {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "username": self.username,
            "name": self.name,
            "created_at": fmt_time(self.created_ms),
            "description": self.description,
            "location": self.location,
        })
    }
}

struct Post {
    id: u64,
    ms: i64,
    author: usize,
    text: String,
    lang: Lang,
    topic: usize,
    conversation_id: u64,
    /// (post id, author index) of the post this one replies to.
    reply_to: Option<(u64, usize)>,
    quoted: Option<u64>,
    /// Id of the original when this post is the edited version.
    edit_of: Option<u64>,
    edited: bool,
    long: bool,
    metrics: [u64; 6],
}

impl Post {
    fn to_json(&self, authors: &[Author], author_json: &[Value]) -> Value {
        let id = self.id.to_string();
        let history = match self.edit_of {
            Some(orig) => vec![orig.to_string(), id.clone()],
            None => vec![id.clone()],
        };
        let a = &authors[self.author];
        let [rt, rp, lk, qt, bm, im] = self.metrics;
        let mut v = json!({
            "id": id,
            "text": self.text,
            "author_id": a.id.to_string(),
            "created_at": fmt_time(self.ms),
            "lang": self.lang.code(),
            "conversation_id": self.conversation_id.to_string(),
            "edit_history_tweet_ids": history,
            "public_metrics": {
                "retweet_count": rt,
                "reply_count": rp,
                "like_count": lk,
                "quote_count": qt,
                "bookmark_count": bm,
                "impression_count": im,
            },
            "author": author_json[self.author].clone(),
        });
        let obj = v.as_object_mut().expect("object");
        let mut refs = Vec::new();
        if let Some((pid, aidx)) = self.reply_to {
            obj.insert("in_reply_to_user_id".into(), Value::String(authors[aidx].id.to_string()));
            refs.push(json!({"type": "replied_to", "id": pid.to_string()}));
        }
        if let Some(q) = self.quoted {
            refs.push(json!({"type": "quoted", "id": q.to_string()}));
        }
        if !refs.is_empty() {
            obj.insert("referenced_tweets".into(), Value::Array(refs));
        }
        v
    }
}

fn fmt_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn snowflake(ms: i64, low: u64) -> u64 {
    let t = (ms - SNOWFLAKE_EPOCH_MS).max(0) as u64;
    ((t << 22) | (low & 0x3F_FFFF)) & (i64::MAX as u64)
}

// ---------------------------------------------------------------------------
// Generation

struct Corpus {
    authors: Vec<Author>,
    posts: Vec<Post>,
}

struct Gen {
    rng: ChaCha8Rng,
    /// Slot values already used in the template being rendered.
    picked: Vec<&'static str>,
}

/// Parsed vocabularies, shared by every `generate` call.
fn voc(lang: Lang) -> &'static LangVocab {
    static VOCAB: std::sync::OnceLock<[LangVocab; 2]> = std::sync::OnceLock::new();
    &VOCAB.get_or_init(|| [LangVocab::parse(data_en::EN), LangVocab::parse(data_fr::FR)])[lang.idx()]
}

const EMOJI: &[&str] = &[
    "😂",
    "❤️",
    "🔥",
    "🙏",
    "😭",
    "✨",
    "👀",
    "🙃",
    "😅",
    "🎉",
    "💀",
    "🤔",
    "👏",
    "☕",
    "🌧️",
    "⚽",
    "🍝",
    "📚",
    "🎬",
    "🎶",
    "🚀",
    "🤦‍♀️",
    "👍🏽",
    "😍",
    "🥲",
    "🫠",
    "🥐",
    "🍷",
    "🌞",
    "💪",
    "😬",
    "🤷",
];
const NAME_EMOJI: &[&str] = &["✨", "🌿", "☕", "🏳️‍🌈", "🌻", "🎧", "📷", "🐈", "🌊", "🇫🇷", "🇬🇧", "🇨🇦"];
const TICKERS_EN: &[&str] =
    &["AAPL", "TSLA", "NVDA", "MSFT", "AMZN", "GOOGL", "META", "BTC", "ETH", "NFLX", "ARM", "SPY"];
const TICKERS_FR: &[&str] = &["MC", "AIR", "TTE", "BNP", "RMS", "SAN", "OR", "NVDA", "AAPL", "BTC", "CAC", "TSLA"];
const DOMAINS_EN: &[&str] = &[
    "www.bbc.co.uk/news",
    "www.theguardian.com/world",
    "www.nytimes.com/2026",
    "www.bbcgoodfood.com/recipes",
    "letterboxd.com/film",
    "www.nature.com/articles",
    "blog.example.dev",
    "medium.com/@writer",
    "open.substack.com/pub",
    "www.skysports.com/football/news",
];
const DOMAINS_FR: &[&str] = &[
    "www.lemonde.fr/article",
    "www.liberation.fr",
    "www.francetvinfo.fr",
    "www.marmiton.org/recettes",
    "www.lequipe.fr/Football",
    "www.allocine.fr/film",
    "www.20minutes.fr",
    "meteofrance.com/actualites",
    "www.ouest-france.fr",
    "ici.radio-canada.ca/nouvelle",
];
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Hour-of-day weights (UTC) for post times.
const HOURS: [u32; 24] = [3, 2, 1, 1, 1, 2, 4, 6, 8, 9, 9, 10, 11, 11, 10, 10, 10, 11, 12, 13, 13, 12, 8, 5];

impl Gen {
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.rng.random_range(0..xs.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn base62(&mut self, n: usize) -> String {
        (0..n).map(|_| BASE62[self.rng.random_range(0..BASE62.len())] as char).collect()
    }

    /// Pareto-distributed value with minimum `xm` and shape `alpha`.
    fn pareto(&mut self, xm: f64, alpha: f64) -> f64 {
        let u: f64 = self.rng.random_range(1e-9..1.0);
        xm / u.powf(1.0 / alpha)
    }

    // -- template rendering ------------------------------------------------

    fn render(&mut self, ctx: &Ctx, section: usize, tpl: &str, out: &mut String, depth: u8) {
        let mut rest = tpl;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                out.push_str(&rest[open..]);
                return;
            };
            let key = &after[..close];
            rest = &after[close + 1..];
            if key.contains('|') {
                let alts: Vec<&str> = key.split('|').collect();
                let alt = *self.pick(&alts);
                self.render(ctx, section, alt, out, depth + 1);
            } else if !self.dynamic(ctx, section, key, out) {
                let v = ctx.vocab().slot(section, key).map(|vals| {
                    // Avoid "Arsenal 2-1 Arsenal": no value twice per template.
                    let mut val = vals[self.rng.random_range(0..vals.len())];
                    for _ in 0..4 {
                        if !self.picked.contains(&val) {
                            break;
                        }
                        val = vals[self.rng.random_range(0..vals.len())];
                    }
                    self.picked.push(val);
                    val
                });
                match v {
                    Some(val) if depth < 4 => self.render(ctx, section, val, out, depth + 1),
                    Some(val) => out.push_str(val),
                    None => {
                        // Unknown slot: keep it visible (tests assert none remain).
                        out.push('{');
                        out.push_str(key);
                        out.push('}');
                    }
                }
            }
        }
        out.push_str(rest);
    }

    fn template(&mut self, ctx: &Ctx, section: usize) -> String {
        self.template_fresh(ctx, section, &mut Vec::new())
    }

    /// Renders a template of `section` not yet in `used` (when possible).
    fn template_fresh(&mut self, ctx: &Ctx, section: usize, used: &mut Vec<&'static str>) -> String {
        let tpls = &ctx.vocab().sections[section].templates;
        let mut tpl = tpls[self.rng.random_range(0..tpls.len())];
        for _ in 0..4 {
            if !used.contains(&tpl) {
                break;
            }
            tpl = tpls[self.rng.random_range(0..tpls.len())];
        }
        used.push(tpl);
        let mut s = String::with_capacity(128);
        self.picked.clear();
        self.render(ctx, section, tpl, &mut s, 0);
        let s = match ctx.lang {
            Lang::En => english_articles(&s),
            Lang::Fr => french_contractions(&s),
        };
        capitalize_sentences(&s)
    }

    fn fr_sep(st: &Style) -> &'static str {
        match st.fr_space {
            0 => "\u{202F}",
            1 => "\u{A0}",
            2 => " ",
            _ => "",
        }
    }

    fn thousands(n: u64, sep: &str) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push_str(sep);
            }
            out.push(c);
        }
        out
    }

    /// Values computed on the fly. Returns false if `key` is not dynamic.
    fn dynamic(&mut self, ctx: &Ctx, section: usize, key: &str, out: &mut String) -> bool {
        let fr = ctx.lang == Lang::Fr;
        let st = ctx.style;
        match key {
            "n" => {
                let n = self.rng.random_range(2..=12u32);
                out.push_str(&n.to_string());
            }
            "pct" => {
                let n = self.rng.random_range(2..=95u32);
                out.push_str(&n.to_string());
            }
            "big" => {
                let n = self.rng.random_range(1_000..=250_000u64);
                let sep = if fr { Self::fr_sep(&st) } else { "," };
                out.push_str(&Self::thousands(n, sep));
            }
            "year" => {
                let n = self.rng.random_range(1960..=2025u32);
                out.push_str(&n.to_string());
            }
            "score" => {
                let a = self.rng.random_range(0..=4u32);
                let b = self.rng.random_range(0..=4u32);
                let dash = if st.dash == 1 { '–' } else { '-' };
                out.push_str(&format!("{a}{dash}{b}"));
            }
            "time" => {
                let h = self.rng.random_range(0..24u32);
                let m = *self.pick(&[0u32, 0, 15, 30, 30, 45, 5, 20, 50]);
                if fr {
                    if self.chance(0.65) {
                        if m == 0 {
                            out.push_str(&format!("{h}h"));
                        } else {
                            out.push_str(&format!("{h}h{m:02}"));
                        }
                    } else {
                        out.push_str(&format!("{h:02}:{m:02}"));
                    }
                } else {
                    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
                    let ampm = if h < 12 { "am" } else { "pm" };
                    match self.rng.random_range(0..10u32) {
                        0..=4 => out.push_str(&format!("{h12}:{m:02}{ampm}")),
                        5..=7 => out.push_str(&format!("{h:02}:{m:02}")),
                        _ => out.push_str(&format!("{h12}.{m:02}{ampm}")),
                    }
                }
            }
            "price" => {
                let units = self.rng.random_range(1..=85u32);
                let cents = *self.pick(&[0u32, 50, 99, 90, 20, 75, 0, 49]);
                if fr {
                    if self.chance(0.12) {
                        out.push_str(&format!("{units} euros"));
                    } else {
                        let sep = Self::fr_sep(&st);
                        if cents == 0 {
                            out.push_str(&format!("{units}{sep}€"));
                        } else {
                            out.push_str(&format!("{units},{cents:02}{sep}€"));
                        }
                    }
                } else {
                    match self.rng.random_range(0..20u32) {
                        0..=8 => out.push_str(&format!("${units}.{cents:02}")),
                        9..=16 => out.push_str(&format!("£{units}.{cents:02}")),
                        _ => out.push_str(&format!("€{units}")),
                    }
                }
            }
            "temp" => {
                let c = self.rng.random_range(-6..=38i32);
                if fr {
                    let sep = if self.chance(0.5) { Self::fr_sep(&st) } else { "" };
                    out.push_str(&format!("{c}{sep}°C"));
                } else if self.chance(0.35) {
                    out.push_str(&format!("{}°F", c * 9 / 5 + 32));
                } else {
                    out.push_str(&format!("{c}°C"));
                }
            }
            "mention" => {
                let i = self.rng.random_range(0..ctx.usernames.len());
                out.push('@');
                out.push_str(&ctx.usernames[i]);
            }
            "url" => {
                let u = self.url(ctx);
                out.push_str(&u);
            }
            "tag" => {
                let tags = ctx.vocab().slot(section, "tags").unwrap_or(&[]);
                if !tags.is_empty() {
                    let t = *self.pick(tags);
                    out.push('#');
                    out.push_str(t);
                }
            }
            "cashtag" => {
                let t = if fr { *self.pick(TICKERS_FR) } else { *self.pick(TICKERS_EN) };
                out.push('$');
                out.push_str(t);
            }
            "emoji" => {
                let e = *self.pick(EMOJI);
                out.push_str(e);
            }
            _ => return false,
        }
        true
    }

    fn url(&mut self, ctx: &Ctx) -> String {
        if self.chance(0.55) {
            return format!("https://t.co/{}", self.base62(10));
        }
        match self.rng.random_range(0..10u32) {
            0 => format!("https://youtu.be/{}", self.base62(11)),
            1 => {
                let u = self.rng.random_range(0..ctx.usernames.len());
                let repo = *self.pick(&["dotfiles", "notes", "tiny-http", "recipes", "playground"]);
                format!("https://github.com/{}/{repo}", ctx.usernames[u])
            }
            2 => format!(
                "https://arxiv.org/abs/2{}{:02}.{:05}",
                self.rng.random_range(3..=6u32),
                self.rng.random_range(1..=12u32),
                self.rng.random_range(1..99_999u32)
            ),
            _ => {
                let dom = if ctx.lang == Lang::Fr { *self.pick(DOMAINS_FR) } else { *self.pick(DOMAINS_EN) };
                // Slug from a few topic words.
                let sec = ctx.topic_section();
                let mut words = Vec::new();
                for _ in 0..self.rng.random_range(2..=4u32) {
                    let tpl = {
                        let voc = ctx.vocab();
                        let s = &voc.sections[sec];
                        let (_, vals) = &s.slots[self.rng.random_range(0..s.slots.len())];
                        vals[self.rng.random_range(0..vals.len())]
                    };
                    let w = ascii_fold(tpl.split_whitespace().last().unwrap_or("news"));
                    if !w.is_empty() && !w.contains('{') {
                        words.push(w);
                    }
                }
                if words.is_empty() {
                    words.push("news".into());
                }
                format!("https://{dom}/{}-{}", words.join("-"), self.rng.random_range(100_000..999_999u32))
            }
        }
    }
}

/// Context of the post being written.
struct Ctx<'a> {
    lang: Lang,
    topic: usize,
    style: Style,
    usernames: &'a [String],
}

impl Ctx<'_> {
    fn vocab(&self) -> &'static LangVocab {
        voc(self.lang)
    }
    fn topic_section(&self) -> usize {
        self.vocab().topics[self.topic]
    }
}

/// "a underrated" -> "an underrated" (rough vowel-sound heuristic).
fn english_articles(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut words = s.split(' ').peekable();
    let mut first = true;
    while let Some(w) = words.next() {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(w);
        if (w == "a" || w == "A")
            && let Some(next) = words.peek()
        {
            let lower = next.to_lowercase();
            let vowel = lower.starts_with(['a', 'e', 'i', 'o', 'u'])
                && !["uni", "use", "usu", "one", "eu"].iter().any(|p| lower.starts_with(p));
            if vowel {
                out.push('n');
            }
        }
    }
    out
}

/// "à le PSG" -> "au PSG", "de le Barça" -> "du Barça", etc.
fn french_contractions(s: &str) -> String {
    let mut out = s.to_string();
    for (from, to) in [(" à le ", " au "), (" à les ", " aux "), (" de le ", " du "), (" de les ", " des ")] {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

/// Uppercases the first letter of each sentence (values such as "le PSG" or
/// "la Juve" may open one), leaving URLs alone.
fn capitalize_sentences(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    let mut prev = ' ';
    for (i, c) in s.char_indices() {
        if at_start && c.is_lowercase() {
            let word = s[i..].split(' ').next().unwrap_or("");
            if word.contains("://") || word.contains('/') {
                out.push(c);
            } else {
                out.extend(c.to_uppercase());
            }
            at_start = false;
        } else {
            out.push(c);
            if !c.is_whitespace() {
                at_start = false;
            }
        }
        if c == ' ' && matches!(prev, '.' | '!' | '?') {
            // Not after abbreviations such as "D.C." or "K.".
            let word = s[..i].rsplit(' ').next().unwrap_or("");
            let abbrev =
                prev == '.' && word.len() <= 4 && word.chars().filter(|c| c.is_alphabetic()).all(char::is_uppercase);
            at_start = !abbrev;
        }
        prev = c;
    }
    out
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Cuts `s` at a word boundary so that `s + "…"` has at most `max` chars.
fn truncate_words(s: &str, max: usize) -> String {
    if char_len(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    for w in s.split(' ') {
        let extra = if out.is_empty() { 0 } else { 1 };
        if char_len(&out) + extra + char_len(w) + 1 > max {
            break;
        }
        if extra == 1 {
            out.push(' ');
        }
        out.push_str(w);
    }
    if out.is_empty() {
        out = s.chars().take(max.saturating_sub(1)).collect();
    }
    out.push('…');
    out
}

/// Appends `part` (space separated) if the result stays within `limit` chars.
fn push_part(text: &mut String, part: &str, limit: usize) -> bool {
    if part.is_empty() {
        return true;
    }
    let extra = usize::from(!text.is_empty());
    if char_len(text) + extra + char_len(part) > limit {
        return false;
    }
    if extra == 1 {
        text.push(' ');
    }
    text.push_str(part);
    true
}

enum Kind {
    Original,
    Reply { target: usize },
    Quote { target: usize },
}

fn build(spec: &CorpusSpec) -> Corpus {
    let mut g = Gen { rng: ChaCha8Rng::seed_from_u64(spec.seed), picked: Vec::new() };
    let end_ms = spec.end.timestamp_millis();
    let span_ms = (i64::from(spec.days) * 86_400_000).max(1);
    let start_ms = end_ms - span_ms;

    // At least one author, so that every post has one.
    let authors = make_authors(&mut g, spec.authors.max(1), start_ms);
    let usernames: Vec<String> = authors.iter().map(|a| a.username.clone()).collect();

    // Author pools per language with cumulative activity weights.
    let mut pools: [(Vec<usize>, Vec<f64>); 2] = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for (i, a) in authors.iter().enumerate() {
        for lang in [Lang::En, Lang::Fr] {
            if a.lang == lang || a.bilingual {
                let w = if a.lang == lang { a.activity } else { a.activity * 0.3 };
                let (ids, cum) = &mut pools[lang.idx()];
                let last = cum.last().copied().unwrap_or(0.0);
                ids.push(i);
                cum.push(last + w);
            }
        }
    }

    // Timestamps: diurnal pattern, sorted, strictly increasing milliseconds.
    let hour_total: u32 = HOURS.iter().sum();
    let mut times: Vec<i64> = (0..spec.posts)
        .map(|_| {
            let day = g.rng.random_range(0..u64::from(spec.days.max(1))) as i64;
            let mut x = g.rng.random_range(0..hour_total);
            let mut hour = 0i64;
            for (h, &w) in HOURS.iter().enumerate() {
                if x < w {
                    hour = h as i64;
                    break;
                }
                x -= w;
            }
            let in_hour = g.rng.random_range(0..3_600_000i64);
            let t = start_ms + day * 86_400_000 + hour * 3_600_000 + in_hour;
            t.min(end_ms - 1)
        })
        .collect();
    times.sort_unstable();
    for i in 1..times.len() {
        if times[i] <= times[i - 1] {
            times[i] = times[i - 1] + 1;
        }
    }

    // Every author gets at least one post: reserve random slots for them.
    let mut forced: Vec<Option<usize>> = vec![None; spec.posts];
    {
        let mut slots: Vec<usize> = (0..spec.posts).collect();
        let k = authors.len().min(spec.posts);
        for a in 0..k {
            let j = g.rng.random_range(a..slots.len());
            slots.swap(a, j);
            forced[slots[a]] = Some(a);
        }
    }

    let mut posts: Vec<Post> = Vec::with_capacity(spec.posts);
    let mut by_lang: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    for (i, &ms) in times.iter().enumerate() {
        let low = (g.rng.random_range(0..1024u64) << 12) | g.rng.random_range(0..4u64);
        let id = snowflake(ms, low);

        // Edits: the edited version of a recent post by the same author.
        if forced[i].is_none()
            && g.chance(0.011)
            && let Some(orig) = pick_editable(&mut g, &posts, ms)
        {
            let p = make_edit(&mut g, &authors, &usernames, &posts[orig], id, ms);
            posts[orig].edited = true;
            by_lang[p.lang.idx()].push(posts.len());
            posts.push(p);
            continue;
        }

        let (lang, author) = match forced[i] {
            Some(a) => (authors[a].lang, a),
            None => {
                let lang = if g.chance(0.6) { Lang::En } else { Lang::Fr };
                let (ids, cum) = &pools[lang.idx()];
                if ids.is_empty() { (authors[0].lang, 0) } else { (lang, pick_weighted(&mut g, ids, cum)) }
            }
        };

        let recent = &by_lang[lang.idx()];
        let mut kind = Kind::Original;
        let roll: f64 = g.rng.random();
        if !recent.is_empty() && roll < 0.22 {
            let w = recent.len().min(400);
            let u: f64 = g.rng.random();
            let back = ((u * u * u) * w as f64) as usize;
            let target = recent[recent.len() - 1 - back.min(w - 1)];
            kind = Kind::Reply { target };
        } else if !posts.is_empty() && roll < 0.27 {
            let w = posts.len().min(2000);
            let back = g.rng.random_range(0..w);
            kind = Kind::Quote { target: posts.len() - 1 - back };
        }

        // Replies come from someone else, except for occasional self-threads.
        let author = match (&kind, forced[i]) {
            (Kind::Reply { target }, None) => {
                let ta = posts[*target].author;
                let mut a = author;
                if g.chance(0.08) && (authors[ta].lang == lang || authors[ta].bilingual) {
                    a = ta;
                } else {
                    let (ids, cum) = &pools[lang.idx()];
                    for _ in 0..6 {
                        if a != ta {
                            break;
                        }
                        a = pick_weighted(&mut g, ids, cum);
                    }
                }
                a
            }
            _ => author,
        };

        let p = make_post(&mut g, &authors, &usernames, &posts, kind, author, lang, id, ms);
        by_lang[lang.idx()].push(posts.len());
        posts.push(p);
    }
    Corpus { authors, posts }
}

fn pick_weighted(g: &mut Gen, ids: &[usize], cum: &[f64]) -> usize {
    let total = *cum.last().expect("non-empty pool");
    let x: f64 = g.rng.random_range(0.0..total);
    let i = cum.partition_point(|&c| c <= x).min(ids.len() - 1);
    ids[i]
}

fn pick_editable(g: &mut Gen, posts: &[Post], now: i64) -> Option<usize> {
    let mut cands = Vec::new();
    for (j, p) in posts.iter().enumerate().rev().take(60) {
        if now - p.ms > 3_600_000 {
            break;
        }
        if !p.edited && p.edit_of.is_none() {
            cands.push(j);
        }
    }
    if cands.is_empty() { None } else { Some(*g.pick(&cands)) }
}

fn make_edit(g: &mut Gen, authors: &[Author], usernames: &[String], orig: &Post, id: u64, ms: i64) -> Post {
    let a = &authors[orig.author];
    let st = a.style.for_post(&mut g.rng);
    let ctx = Ctx { lang: orig.lang, topic: orig.topic, style: st, usernames };
    let edit_sec = voc(orig.lang).edit;
    let raw = g.template(&ctx, edit_sec);
    let mut note = stylize(&raw, orig.lang == Lang::Fr, &st, &mut g.rng);
    if st.nfd {
        note = to_nfd(&note);
    }
    let limit: usize = if orig.long { 1000 } else { 280 };
    let room = limit.saturating_sub(char_len(&note) + 1);
    let mut text = truncate_words(&orig.text, room.max(1));
    if !push_part(&mut text, &note, limit) {
        text = truncate_words(&text, limit);
    }
    let metrics = metrics(g, a, orig.reply_to.is_some());
    Post {
        id,
        ms,
        author: orig.author,
        text,
        lang: orig.lang,
        topic: orig.topic,
        conversation_id: orig.conversation_id,
        reply_to: orig.reply_to,
        quoted: orig.quoted,
        edit_of: Some(orig.id),
        edited: false,
        long: orig.long,
        metrics,
    }
}

fn metrics(g: &mut Gen, a: &Author, reply: bool) -> [u64; 6] {
    let reach = g.rng.random_range(0.03..0.5);
    let viral = g.pareto(1.0, 1.35).min(2_000.0);
    let base = a.followers * reach * viral * if reply { 0.15 } else { 1.0 };
    let impressions = (base + g.rng.random_range(0.0..40.0)).floor();
    let likes = (impressions * g.rng.random_range(0.002..0.05)).floor();
    let retweets = (likes * g.rng.random_range(0.0..0.25)).floor();
    let replies = (likes * g.rng.random_range(0.0..0.15)).floor();
    let quotes = (retweets * g.rng.random_range(0.0..0.2)).floor();
    let bookmarks = (likes * g.rng.random_range(0.0..0.18)).floor();
    [retweets as u64, replies as u64, likes as u64, quotes as u64, bookmarks as u64, impressions as u64]
}

#[allow(clippy::too_many_arguments)]
fn make_post(
    g: &mut Gen,
    authors: &[Author],
    usernames: &[String],
    posts: &[Post],
    kind: Kind,
    author: usize,
    lang: Lang,
    id: u64,
    ms: i64,
) -> Post {
    let a = &authors[author];
    let fr = lang == Lang::Fr;
    let st = a.style.for_post(&mut g.rng);
    let main = voc(lang).main_topics();
    let topic = match &kind {
        Kind::Reply { target } | Kind::Quote { target } if g.chance(0.8) => posts[*target].topic,
        _ => {
            if g.chance(0.008) {
                main // finance
            } else if g.chance(0.7) {
                *g.pick(&a.favs) % main
            } else {
                g.rng.random_range(0..main)
            }
        }
    };
    let ctx = Ctx { lang, topic, style: st, usernames };
    let topic_sec = voc(lang).topics[topic];
    let long = matches!(kind, Kind::Original) && g.chance(0.012);
    let limit: usize = if long { g.rng.random_range(600..=1000) } else { 280 };

    let mut text = String::new();
    let style_part = |g: &mut Gen, raw: &str| -> String {
        let s = stylize(raw, fr, &st, &mut g.rng);
        if st.nfd { to_nfd(&s) } else { s }
    };

    // Reply prefix: X puts the replied-to handles first.
    let (reply_to, conversation_id, quoted) = match &kind {
        Kind::Reply { target } => {
            let t = &posts[*target];
            let ta = t.author;
            if ta != author && g.chance(0.9) {
                text.push('@');
                text.push_str(&authors[ta].username);
                if let Some((_, ra)) = t.reply_to
                    && ra != ta
                    && ra != author
                    && g.chance(0.35)
                {
                    text.push_str(" @");
                    text.push_str(&authors[ra].username);
                }
            }
            (Some((t.id, ta)), t.conversation_id, None)
        }
        Kind::Quote { target } => (None, id, Some(posts[*target].id)),
        Kind::Original => (None, id, None),
    };

    // Body sentences.
    let sentences = if long { g.rng.random_range(5..=12) } else { *g.pick(&[1, 1, 1, 1, 1, 2, 2, 2, 2, 3]) };
    let reply_sec = voc(lang).reply;
    let mut first = true;
    let mut used = Vec::new();
    for k in 0..sentences {
        let raw = if first && matches!(kind, Kind::Reply { .. }) && g.chance(0.55) {
            g.template_fresh(&ctx, reply_sec, &mut used)
        } else if k > 0 && k + 1 == sentences && g.chance(0.2) {
            let mut s = String::new();
            g.render(&ctx, topic_sec, "{misc_tail}", &mut s, 0);
            s
        } else {
            g.template_fresh(&ctx, topic_sec, &mut used)
        };
        let part = style_part(g, &raw);
        if first {
            let room = limit.saturating_sub(char_len(&text) + 1);
            let part = truncate_words(&part, room.max(1));
            push_part(&mut text, &part, limit);
            first = false;
        } else if !push_part(&mut text, &part, limit) {
            break;
        }
    }

    // Extras: mention, link, hashtags, emoji.
    if g.chance(0.06) {
        let m = g.rng.random_range(0..usernames.len());
        let lead =
            if fr { *g.pick(&["cc", "merci", "coucou", "via"]) } else { *g.pick(&["cc", "h/t", "via", "thanks"]) };
        let part = format!("{lead} @{}", usernames[m]);
        push_part(&mut text, &part, limit);
    }
    if quoted.is_some() && g.chance(0.5) {
        let part = format!("https://t.co/{}", g.base62(10));
        push_part(&mut text, &part, limit);
    } else if g.chance(0.1) {
        let part = g.url(&ctx);
        push_part(&mut text, &part, limit);
    }
    if g.chance(st.tags) {
        let n = *g.pick(&[1, 1, 1, 2, 2, 3]);
        let mut tags: Vec<String> = Vec::new();
        for _ in 0..n {
            let mut t = String::new();
            g.render(&ctx, topic_sec, "{tag}", &mut t, 0);
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let part = style_part(g, &tags.join(" "));
        push_part(&mut text, &part, limit);
    }
    if g.chance(st.emoji) {
        let n = *g.pick(&[1, 1, 1, 2, 3]);
        let e = *g.pick(EMOJI);
        let part = e.repeat(n);
        push_part(&mut text, &part, limit);
    }
    if text.is_empty() {
        text.push_str(if fr { "Bref." } else { "Anyway." });
    }

    let metrics = metrics(g, a, reply_to.is_some());
    Post {
        id,
        ms,
        author,
        text,
        lang,
        topic,
        conversation_id,
        reply_to,
        quoted,
        edit_of: None,
        edited: false,
        long,
        metrics,
    }
}

fn make_authors(g: &mut Gen, count: usize, start_ms: i64) -> Vec<Author> {
    let mut taken: HashSet<String> = HashSet::new();
    let mut ids: HashSet<u64> = HashSet::new();
    let mut out = Vec::with_capacity(count);
    let lo = 1_243_814_400_000i64; // 2009-06-01
    let hi = (start_ms - 30 * 86_400_000).max(lo + 1000);
    let main = voc(Lang::En).main_topics().min(voc(Lang::Fr).main_topics());
    for _ in 0..count {
        let lang = if g.chance(0.6) { Lang::En } else { Lang::Fr };
        let style = Style::random(&mut g.rng);
        let bio = voc(lang).bio;
        let ctx_names: [String; 0] = [];
        let ctx = Ctx { lang, topic: 0, style, usernames: &ctx_names };
        let (first, last, handle) = {
            let v = voc(lang);
            let f = v.slot(bio, "first").expect("first names");
            let l = v.slot(bio, "last").expect("last names");
            let h = v.slot(bio, "handle").expect("handles");
            (f[g.rng.random_range(0..f.len())], l[g.rng.random_range(0..l.len())], h[g.rng.random_range(0..h.len())])
        };
        let username = make_username(g, &mut taken, first, last, handle);
        let name = match g.rng.random_range(0..100u32) {
            0..=69 => format!("{first} {last}"),
            70..=79 => first.to_string(),
            80..=87 => format!("{first} {}.", last.chars().next().unwrap_or('X')),
            88..=92 => format!("{first} {last}").to_lowercase(),
            _ => format!("{first} {last} {}", g.pick(NAME_EMOJI)),
        };
        let description = if g.chance(0.9) {
            let raw = g.template(&ctx, bio);
            stylize(&raw, lang == Lang::Fr, &style, &mut g.rng)
        } else {
            String::new()
        };
        let location = if g.chance(0.85) {
            let mut s = String::new();
            g.render(&ctx, bio, "{location}", &mut s, 0);
            s
        } else {
            String::new()
        };
        let created_ms = g.rng.random_range(lo..hi) / 1000 * 1000;
        let mut id;
        loop {
            id = if created_ms > 1_356_998_400_000 {
                snowflake(created_ms, g.rng.random_range(0..1u64 << 22))
            } else {
                g.rng.random_range(10_000_000..1_500_000_000u64)
            };
            if ids.insert(id) {
                break;
            }
        }
        let followers = g.pareto(60.0, 1.1).min(3_000_000.0);
        let activity = g.pareto(1.0, 1.3).min(60.0);
        let favs = [g.rng.random_range(0..main), g.rng.random_range(0..main), g.rng.random_range(0..main)];
        out.push(Author {
            id,
            username,
            name,
            created_ms,
            description,
            location,
            lang,
            bilingual: g.chance(0.12),
            followers,
            activity,
            favs,
            style,
        });
    }
    out
}

fn make_username(g: &mut Gen, taken: &mut HashSet<String>, first: &str, last: &str, handle: &str) -> String {
    let f = ascii_fold(first);
    let l = ascii_fold(last);
    let fi = f.chars().next().unwrap_or('x');
    let li = l.chars().next().unwrap_or('x');
    let yy = g.rng.random_range(70..=99u32);
    let base = match g.rng.random_range(0..10u32) {
        0 | 1 => format!("{f}_{li}"),
        2 => format!("{f}{l}"),
        3 => format!("{fi}{l}"),
        4 => format!("{f}_{l}"),
        5 => format!("{f}{yy}"),
        6 => format!("{l}{fi}"),
        7 => format!("{f}_{handle}"),
        8 => format!("{handle}_{f}"),
        _ => format!("{f}{li}_{}", g.rng.random_range(1..100u32)),
    };
    let mut base: String = base.chars().take(15).collect();
    while base.ends_with('_') {
        base.pop();
    }
    if base.is_empty() {
        base.push_str("user");
    }
    if taken.insert(base.clone()) {
        return base;
    }
    loop {
        let suffix = g.rng.random_range(1..10_000u32).to_string();
        let mut cand: String = base.chars().take(15 - suffix.len()).collect();
        cand.push_str(&suffix);
        if taken.insert(cand.clone()) {
            return cand;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_without_unknown_slots() {
        let mut g = Gen { rng: ChaCha8Rng::seed_from_u64(7), picked: Vec::new() };
        let names = vec!["someone".to_string()];
        for lang in [Lang::En, Lang::Fr] {
            let n = voc(lang).sections.len();
            for sec in 0..n {
                let tpls = voc(lang).sections[sec].templates.clone();
                for tpl in tpls {
                    for _ in 0..30 {
                        let ctx = Ctx { lang, topic: 0, style: Style::random(&mut g.rng), usernames: &names };
                        let mut s = String::new();
                        g.render(&ctx, sec, tpl, &mut s, 0);
                        assert!(!s.contains(['{', '}']), "{lang:?} {tpl} -> {s}");
                        assert_eq!(s.matches('"').count() % 2, 0, "unbalanced quotes: {s}");
                    }
                }
            }
        }
    }

    #[test]
    fn topics_align_across_languages() {
        let en = LangVocab::parse(data_en::EN);
        let fr = LangVocab::parse(data_fr::FR);
        let names = |v: &LangVocab| -> Vec<&str> { v.topics.iter().map(|&i| v.sections[i].name).collect() };
        assert_eq!(names(&en), names(&fr));
        assert!(en.main_topics() >= 11);
    }

    #[test]
    fn snowflake_layout() {
        let ms = 1_793_491_200_000; // 2026-11-01
        let id = snowflake(ms, 5);
        assert_eq!(((id >> 22) as i64) + SNOWFLAKE_EPOCH_MS, ms);
        assert!(id < 1 << 63);
    }

    #[test]
    fn french_spacing_styles() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut st = Style::random(&mut rng);
        st.fr_space = 0;
        st.quote_fr = 1;
        let s = stylize("Quoi?! Bilan: \"top\" 18:30 https://t.co/x", true, &st, &mut rng);
        assert_eq!(s, "Quoi\u{202F}?! Bilan\u{202F}: «\u{202F}top\u{202F}» 18:30 https://t.co/x");
        st.fr_space = 3;
        assert_eq!(stylize("Quoi?", true, &st, &mut rng), "Quoi?");
    }

    #[test]
    fn capitalization() {
        assert_eq!(
            capitalize_sentences("le PSG gagne. la Juve perd! https://t.co/x ok? she/her"),
            "Le PSG gagne. La Juve perd! https://t.co/x ok? she/her"
        );
        assert_eq!(capitalize_sentences("Saw Fontaines D.C. live"), "Saw Fontaines D.C. live");
        assert_eq!(
            english_articles("a underrated a one a useful A elegant"),
            "an underrated a one a useful An elegant"
        );
        assert_eq!(french_contractions("pour à le PSG et de les Bleus"), "pour au PSG et des Bleus");
    }

    #[test]
    fn truncation_respects_limit() {
        let s = "word ".repeat(100);
        let t = truncate_words(&s, 50);
        assert!(char_len(&t) <= 50);
        assert!(t.ends_with('…'));
    }
}
