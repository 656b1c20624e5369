//! The in-memory inverted index and its evaluator.

use std::collections::HashMap;

use crate::query::Expr;
use crate::tokenize::{for_each_token, prefix_char};
use crate::{Cursor, Doc, Filters, ResolvedQuery, SearchPage, SortOrder};

const ID_BITS: u32 = 30;
const ID_MASK: u32 = (1 << ID_BITS) - 1;

/// Compact per-post record (32 bytes) used to verify phrases, negations and
/// filters; its tokens live in `SearchIndex::arena`.
#[derive(Clone, Copy, Debug)]
struct Meta {
    created_at_ms: i64,
    author_id: i64,
    /// Token sequence `arena[start..start + len]`: bare term id in the low 30
    /// bits, prefix code above.
    start: usize,
    len: u32,
    /// 0 = no language, else index + 1 into `SearchIndex::langs`.
    lang: u16,
    is_reply: bool,
    is_retweet: bool,
    is_quote: bool,
}

/// A post's record with its tokens.
#[derive(Clone, Copy, Debug)]
struct Rec<'a> {
    toks: &'a [u32],
    created_at_ms: i64,
    author_id: i64,
    lang: u16,
    is_reply: bool,
    is_retweet: bool,
    is_quote: bool,
}

/// An in-memory inverted index of posts with X-style search.
///
/// Postings are sorted vectors of post ids per term (bare and
/// `#`/`@`/`$`-prefixed forms) and per author. Evaluation walks candidates
/// in descending id order with "largest id ≤ x" seeks (galloping): leapfrog
/// intersection for AND, maximum for OR; phrases, negations, `lang:`,
/// `is:reply` and the filters are checked on each candidate's compact record
/// (token ids, time, author, language, reply flag).
///
/// Cost model:
/// - Recency stops after `limit + 1` matches. Relevancy does too when every
///   keyword/phrase is required (no `OR`: all matches score the same), and
///   with up to 4 distinct keywords/phrases walks score levels from the top
///   (the top level intersects all of them), each stopping after the page;
///   with more, it scores every match, then selects.
/// - `start_ms`/`end_ms` become id bounds while posts have been inserted in
///   increasing id order with non-decreasing `created_at` (Snowflake ids, the
///   usual ingest); after one out-of-order insert (or a replacement that
///   changes `created_at`) they are checked per candidate only, which costs
///   a walk over the matches newer than `end_ms`.
/// - Updates append in O(1) when ids arrive in increasing order; an
///   out-of-order insert or a removal shifts the affected posting vectors.
/// - Memory: about 330 MB for 1M demo posts (see `examples/latency.rs`);
///   postings grow by 1/8 rather than doubling.
#[derive(Clone, Debug, Default)]
pub struct SearchIndex {
    terms: HashMap<Box<str>, u32>,
    /// Encoded prefixed token (bare id | prefix code << 30) → its term id.
    prefixed: HashMap<u32, u32>,
    postings: Vec<Vec<i64>>,
    authors: HashMap<i64, Vec<i64>>,
    langs: Vec<Box<str>>,
    /// Post id → index into `metas`.
    slots: HashMap<i64, u32>,
    metas: Vec<Meta>,
    /// Unused `metas` entries (removed posts).
    free: Vec<u32>,
    /// Token sequences of all posts, back to back.
    arena: Vec<u32>,
    /// Arena entries no longer referenced (replaced or removed posts).
    garbage: usize,
    /// (id, created_at_ms) of every post ever inserted, while ids and
    /// creation times have both only increased (cleared, and
    /// `time_unordered` set, the first time they do not): it turns
    /// start/end times into id bounds.
    timeline: Vec<(i64, i64)>,
    time_unordered: bool,
}

fn reserve_slowly<T>(v: &mut Vec<T>, extra: usize) {
    if v.capacity() - v.len() < extra {
        v.reserve_exact(extra.max(v.len() / 8).max(4));
    }
}

fn insert_sorted(v: &mut Vec<i64>, id: i64) {
    // Grow by 1/8 rather than doubling: postings are most of the memory.
    reserve_slowly(v, 1);
    match v.last() {
        None => v.push(id),
        Some(&last) if last < id => v.push(id),
        _ => {
            if let Err(i) = v.binary_search(&id) {
                v.insert(i, id);
            }
        }
    }
}

fn remove_sorted(v: &mut Vec<i64>, id: i64) {
    if let Ok(i) = v.binary_search(&id) {
        v.remove(i);
    }
}

impl SearchIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of posts in the index.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the index holds no post.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether a post with this id is indexed.
    pub fn contains(&self, id: i64) -> bool {
        self.slots.contains_key(&id)
    }

    fn intern(&mut self, term: &str) -> u32 {
        if let Some(&t) = self.terms.get(term) {
            return t;
        }
        let t = u32::try_from(self.postings.len()).expect("term count");
        assert!(t <= ID_MASK, "too many distinct terms");
        self.terms.insert(term.into(), t);
        self.postings.push(Vec::new());
        t
    }

    fn lang_id(&mut self, lang: Option<&str>) -> u16 {
        let Some(l) = lang else { return 0 };
        let l = l.to_ascii_lowercase();
        if let Some(i) = self.langs.iter().position(|x| **x == *l) {
            return i as u16 + 1;
        }
        assert!(self.langs.len() < usize::from(u16::MAX) - 1, "too many languages");
        self.langs.push(l.into());
        self.langs.len() as u16
    }

    /// Posting term ids of a record's token sequence (bare and prefixed), sorted, distinct.
    fn posting_terms(&self, toks: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(toks.len() + 4);
        for &t in toks {
            let bare = t & ID_MASK;
            out.push(bare);
            if t >> ID_BITS != 0 {
                out.push(self.prefixed[&t]);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Inserts a post, or replaces the indexed post with the same id (its old
    /// text, author, language and flags stop matching).
    pub fn upsert(&mut self, doc: Doc) {
        let mut seq = Vec::new();
        let mut new_terms = Vec::new();
        for_each_token(&doc.text, |t, p| {
            let bare = self.intern(t);
            let enc = bare | (u32::from(p) << ID_BITS);
            seq.push(enc);
            new_terms.push(bare);
            if let Some(c) = prefix_char(p) {
                let id = match self.prefixed.get(&enc) {
                    Some(&id) => id,
                    None => {
                        let id = self.intern(&format!("{c}{t}"));
                        self.prefixed.insert(enc, id);
                        id
                    }
                };
                new_terms.push(id);
            }
        });
        new_terms.sort_unstable();
        new_terms.dedup();
        let lang = self.lang_id(doc.lang.as_deref());
        let id = doc.id;
        let old = self.slots.get(&id).map(|&slot| self.metas[slot as usize]);
        let old_terms = match old {
            Some(m) => {
                let terms = self.posting_terms(&self.arena[m.start..m.start + m.len as usize]);
                if m.author_id != doc.author_id {
                    self.remove_author(m.author_id, id);
                }
                self.garbage += m.len as usize;
                terms
            }
            None => Vec::new(),
        };
        for &t in &old_terms {
            if new_terms.binary_search(&t).is_err() {
                remove_sorted(&mut self.postings[t as usize], id);
            }
        }
        for &t in &new_terms {
            if old_terms.binary_search(&t).is_err() {
                insert_sorted(&mut self.postings[t as usize], id);
            }
        }
        insert_sorted(self.authors.entry(doc.author_id).or_default(), id);
        self.track_time(id, doc.created_at_ms, old.map(|m| m.created_at_ms));
        reserve_slowly(&mut self.arena, seq.len());
        let meta = Meta {
            created_at_ms: doc.created_at_ms,
            author_id: doc.author_id,
            start: self.arena.len(),
            len: u32::try_from(seq.len()).expect("fewer than 2^32 tokens in a post"),
            lang,
            is_reply: doc.is_reply,
            is_retweet: doc.is_retweet,
            is_quote: doc.is_quote,
        };
        self.arena.extend_from_slice(&seq);
        match self.slots.get(&id) {
            Some(&slot) => self.metas[slot as usize] = meta,
            None => {
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.metas[slot as usize] = meta;
                        slot
                    }
                    None => {
                        reserve_slowly(&mut self.metas, 1);
                        self.metas.push(meta);
                        u32::try_from(self.metas.len() - 1).expect("fewer than 2^32 posts")
                    }
                };
                self.slots.insert(id, slot);
            }
        }
        self.maybe_compact();
    }

    fn track_time(&mut self, id: i64, created: i64, old_created: Option<i64>) {
        if self.time_unordered {
            return;
        }
        let ordered = match old_created {
            Some(old) => old == created,
            None => self.timeline.last().is_none_or(|&(i, c)| id > i && created >= c),
        };
        if !ordered {
            self.time_unordered = true;
            self.timeline = Vec::new();
        } else if old_created.is_none() {
            reserve_slowly(&mut self.timeline, 1);
            self.timeline.push((id, created));
        }
    }

    /// Id bounds (exclusive lower, inclusive upper) implied by the time
    /// filters when creation time grows with id.
    fn time_bounds(&self, f: &Filters) -> (Option<i64>, Option<i64>) {
        if self.time_unordered {
            return (None, None);
        }
        let t = &self.timeline;
        let lower = f.start_ms.and_then(|s| {
            let i = t.partition_point(|e| e.1 < s);
            (i > 0).then(|| t[i - 1].0)
        });
        let upper = f.end_ms.and_then(|e| {
            let i = t.partition_point(|x| x.1 < e);
            t.get(i).map(|x| x.0 - 1)
        });
        (lower, upper)
    }

    /// Rewrites the token arena without garbage once garbage is most of it.
    fn maybe_compact(&mut self) {
        if self.garbage < 1024 || self.garbage * 2 < self.arena.len() {
            return;
        }
        let mut live: Vec<u32> = self.slots.values().copied().collect();
        live.sort_unstable();
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        for slot in live {
            let m = &mut self.metas[slot as usize];
            let start = arena.len();
            arena.extend_from_slice(&self.arena[m.start..m.start + m.len as usize]);
            m.start = start;
        }
        self.arena = arena;
        self.garbage = 0;
    }

    fn rec(&self, id: i64) -> Option<Rec<'_>> {
        let m = self.metas[*self.slots.get(&id)? as usize];
        Some(Rec {
            toks: &self.arena[m.start..m.start + m.len as usize],
            created_at_ms: m.created_at_ms,
            author_id: m.author_id,
            lang: m.lang,
            is_reply: m.is_reply,
            is_retweet: m.is_retweet,
            is_quote: m.is_quote,
        })
    }

    fn remove_author(&mut self, author: i64, id: i64) {
        if let Some(v) = self.authors.get_mut(&author) {
            remove_sorted(v, id);
            if v.is_empty() {
                self.authors.remove(&author);
            }
        }
    }

    /// Removes a post; it never matches again. Unknown ids are ignored.
    pub fn remove(&mut self, id: i64) {
        let Some(slot) = self.slots.remove(&id) else { return };
        let m = self.metas[slot as usize];
        for t in self.posting_terms(&self.arena[m.start..m.start + m.len as usize]) {
            remove_sorted(&mut self.postings[t as usize], id);
        }
        self.remove_author(m.author_id, id);
        self.garbage += m.len as usize;
        self.free.push(slot);
        self.maybe_compact();
    }

    /// Approximate heap bytes used by the index (postings, records and dictionaries).
    pub fn heap_bytes(&self) -> usize {
        self.heap_breakdown().iter().map(|x| x.1).sum()
    }

    /// [`SearchIndex::heap_bytes`] by part.
    #[doc(hidden)]
    pub fn heap_breakdown(&self) -> Vec<(&'static str, usize)> {
        let postings: usize =
            self.postings.capacity() * 24 + self.postings.iter().map(|v| v.capacity() * 8).sum::<usize>();
        let authors: usize =
            self.authors.capacity() * 33 + self.authors.values().map(|v| v.capacity() * 8).sum::<usize>();
        let terms: usize = self.terms.capacity() * 25
            + self.terms.keys().map(|k| k.len()).sum::<usize>()
            + self.prefixed.capacity() * 9;
        let recs =
            self.slots.capacity() * 17 + self.metas.capacity() * std::mem::size_of::<Meta>() + self.free.capacity() * 4;
        let toks = self.arena.capacity() * 4;
        vec![("postings", postings), ("authors", authors), ("terms", terms), ("doc_table", recs), ("doc_tokens", toks)]
    }

    fn compile(&self, e: &Expr<Option<i64>>) -> C {
        match e {
            Expr::And(v) => C::And(v.iter().map(|e| self.compile(e)).collect()),
            Expr::Or(v) => C::Or(v.iter().map(|e| self.compile(e)).collect()),
            Expr::Not(e) => C::Not(Box::new(self.compile(e))),
            Expr::Phrase(p) => {
                let mut seq = Vec::with_capacity(p.len());
                let mut lists = Vec::with_capacity(p.len());
                for t in p {
                    let Some(&bare) = self.terms.get(t.bare.as_str()) else {
                        return C::Never;
                    };
                    let list = match prefix_char(t.prefix) {
                        None => bare,
                        Some(c) => match self.terms.get(format!("{c}{}", t.bare).as_str()) {
                            Some(&x) => x,
                            None => return C::Never,
                        },
                    };
                    seq.push((bare, t.prefix as u32));
                    if !lists.contains(&list) {
                        lists.push(list);
                    }
                }
                C::Phrase(seq, lists)
            }
            Expr::From(None) => C::Never,
            Expr::From(Some(a)) => C::From(*a),
            Expr::Lang(l) => match self.langs.iter().position(|x| **x == **l) {
                Some(i) => C::Lang(i as u16 + 1),
                None => C::Never,
            },
            Expr::IsReply => C::IsReply,
            Expr::IsRetweet => C::IsRetweet,
            Expr::IsQuote => C::IsQuote,
        }
    }

    fn driver<'a>(&'a self, c: &C) -> Option<Driver<'a>> {
        match c {
            C::Never => Some(Driver::List(Seek::new(&[]))),
            C::Phrase(_, lists) => {
                Some(and_driver(lists.iter().map(|&l| Driver::List(Seek::new(&self.postings[l as usize]))).collect()))
            }
            C::From(a) => Some(Driver::List(Seek::new(self.authors.get(a).map_or(&[][..], |v| &v[..])))),
            C::Not(_) | C::Lang(_) | C::IsReply | C::IsRetweet | C::IsQuote => None,
            C::And(v) => {
                let ds: Vec<Driver> = v.iter().filter_map(|c| self.driver(c)).collect();
                if ds.is_empty() { None } else { Some(and_driver(ds)) }
            }
            C::Or(v) => {
                let ds: Option<Vec<Driver>> = v.iter().map(|c| self.driver(c)).collect();
                ds.map(|ds| Driver::Or(ds.into_iter().map(|d| (d, None)).collect()))
            }
        }
    }

    /// Runs `query` and returns one page of matching post ids.
    ///
    /// `limit` is the page size (0 is treated as 1). `after` continues from
    /// a previous page's [`SearchPage::next`]; it must come from a search in
    /// the same `sort` order (a cursor of the other order gives an empty
    /// page). `next` is `Some` only when more results exist.
    pub fn search(
        &self,
        query: &ResolvedQuery,
        filters: &Filters,
        sort: SortOrder,
        limit: usize,
        after: Option<&Cursor>,
    ) -> SearchPage {
        let limit = limit.max(1);
        let empty = SearchPage { ids: Vec::new(), next: None };
        if after.is_some_and(|c| c.sort != sort) || filters.until_id == Some(i64::MIN) {
            return empty;
        }
        let c = self.compile(&query.0);
        let phrases = positive_phrases(&c);
        // When every positive phrase is required (no OR above any of them),
        // every match has the same relevance and relevancy order is recency
        // order: walk newest first and stop after one page.
        let constant_score = match sort {
            SortOrder::Recency => Some(0),
            SortOrder::Relevancy => {
                let mut req = Vec::new();
                required_phrases(&c, &mut req);
                phrases.iter().all(|p| req.contains(&p.0)).then_some(phrases.len() as u32)
            }
        };
        let mut upper = filters.until_id.map_or(i64::MAX, |u| u - 1);
        let (time_lower, time_upper) = self.time_bounds(filters);
        upper = upper.min(time_upper.unwrap_or(i64::MAX));
        let lower = filters.since_id.max(time_lower);
        if let (Some(score), Some(cur)) = (constant_score, after) {
            if cur.score < score || (cur.score == score && cur.id == i64::MIN) {
                return empty;
            }
            if cur.score == score {
                upper = upper.min(cur.id - 1);
            }
        }
        // Parsed queries always have a driver (every branch has a keyword,
        // phrase or from:); all ids is the fallback, kept for completeness.
        let all_ids: Vec<i64> = if self.driver(&c).is_none() {
            let mut v: Vec<i64> = self.slots.keys().copied().collect();
            v.sort_unstable();
            v
        } else {
            Vec::new()
        };
        let full_driver = || match self.driver(&c) {
            Some(d) => d,
            None => Driver::List(Seek::new(&all_ids)),
        };
        let accept = |id: i64| -> Option<Rec<'_>> {
            let r = self.rec(id)?;
            if filters.start_ms.is_some_and(|s| r.created_at_ms < s)
                || filters.end_ms.is_some_and(|e| r.created_at_ms >= e)
                || !eval(&c, &r)
            {
                return None;
            }
            Some(r)
        };
        // Calls `f` for every match ≤ `upper`, newest first, until it returns false.
        let walk = |driver: &mut Driver<'_>, upper: i64, f: &mut dyn FnMut(i64, &Rec<'_>) -> bool| {
            let mut bound = upper;
            while let Some(id) = driver.seek(bound) {
                if lower.is_some_and(|s| id <= s) {
                    break;
                }
                if let Some(r) = accept(id)
                    && !f(id, &r)
                {
                    break;
                }
                if id == i64::MIN {
                    break;
                }
                bound = id - 1;
            }
        };
        let score_of = |r: &Rec<'_>| phrases.iter().filter(|p| contains(r.toks, p.0)).count() as u32;
        let page = |mut hits: Vec<(u32, i64)>| {
            let next = if hits.len() > limit {
                hits.truncate(limit);
                let (score, id) = hits[limit - 1];
                Some(Cursor { sort, score, id })
            } else {
                None
            };
            SearchPage { ids: hits.into_iter().map(|h| h.1).collect(), next }
        };
        if let Some(score) = constant_score {
            let mut hits = Vec::with_capacity(limit + 1);
            walk(&mut full_driver(), upper, &mut |id, _| {
                hits.push((score, id));
                hits.len() <= limit
            });
            return page(hits);
        }
        let k = phrases.len() as u32;
        if k <= MAX_LEVELS {
            // Score level by level, newest first within a level, stopping
            // once the page is full. Matches at the top level contain every
            // positive phrase, so their walk also intersects those phrases.
            let mut hits = Vec::with_capacity(limit + 1);
            for level in (0..=after.map_or(k, |cur| cur.score.min(k))).rev() {
                let mut upper = upper;
                if let Some(cur) = after.filter(|cur| cur.score == level) {
                    if cur.id == i64::MIN {
                        continue;
                    }
                    upper = upper.min(cur.id - 1);
                }
                let mut driver = full_driver();
                if level == k && k > 0 {
                    let mut ds = vec![driver];
                    for (_, lists) in &phrases {
                        ds.extend(lists.iter().map(|&l| Driver::List(Seek::new(&self.postings[l as usize]))));
                    }
                    driver = and_driver(ds);
                }
                walk(&mut driver, upper, &mut |id, r| {
                    if score_of(r) == level {
                        hits.push((level, id));
                    }
                    hits.len() <= limit
                });
                if hits.len() > limit {
                    break;
                }
            }
            return page(hits);
        }
        // Many phrases: score every match, then select.
        let mut hits: Vec<(u32, i64)> = Vec::new();
        walk(&mut full_driver(), upper, &mut |id, r| {
            let score = score_of(r);
            if after.is_none_or(|cur| (score, id) < (cur.score, cur.id)) {
                hits.push((score, id));
            }
            true
        });
        if hits.len() > limit + 1 {
            hits.select_nth_unstable_by(limit, |a, b| b.cmp(a));
            hits.truncate(limit + 1);
        }
        hits.sort_unstable_by(|a, b| b.cmp(a));
        page(hits)
    }
}

/// Up to this many distinct positive phrases, relevancy walks score levels
/// (each stopping early) instead of scoring every match.
const MAX_LEVELS: u32 = 4;

/// A query compiled against the index's dictionaries.
#[derive(Debug)]
enum C {
    And(Vec<C>),
    Or(Vec<C>),
    Not(Box<C>),
    /// (bare term id, prefix code) per position, and the distinct posting lists.
    Phrase(Vec<(u32, u32)>, Vec<u32>),
    From(i64),
    Lang(u16),
    IsReply,
    IsRetweet,
    IsQuote,
    Never,
}

/// A compiled phrase: (bare term id, prefix code) per position, and its
/// distinct posting lists.
type PhraseRef<'a> = (&'a [(u32, u32)], &'a [u32]);

/// Distinct phrases not under a negation.
fn positive_phrases(c: &C) -> Vec<PhraseRef<'_>> {
    fn walk<'a>(c: &'a C, out: &mut Vec<PhraseRef<'a>>) {
        match c {
            C::And(v) | C::Or(v) => v.iter().for_each(|c| walk(c, out)),
            C::Phrase(p, l) if !out.iter().any(|o| o.0 == &p[..]) => out.push((p, l)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(c, &mut out);
    out
}

/// Phrases that every match must contain (reached through AND only).
fn required_phrases<'a>(c: &'a C, out: &mut Vec<&'a [(u32, u32)]>) {
    match c {
        C::And(v) => v.iter().for_each(|c| required_phrases(c, out)),
        C::Phrase(p, _) => out.push(p),
        _ => {}
    }
}

fn tok_matches(doc: u32, (bare, prefix): (u32, u32)) -> bool {
    doc & ID_MASK == bare && (prefix == 0 || doc >> ID_BITS == prefix)
}

fn contains(toks: &[u32], phrase: &[(u32, u32)]) -> bool {
    if phrase.len() == 1 {
        return toks.iter().any(|&t| tok_matches(t, phrase[0]));
    }
    toks.windows(phrase.len()).any(|w| w.iter().zip(phrase).all(|(&d, &q)| tok_matches(d, q)))
}

fn eval(c: &C, r: &Rec<'_>) -> bool {
    match c {
        C::And(v) => v.iter().all(|c| eval(c, r)),
        C::Or(v) => v.iter().any(|c| eval(c, r)),
        C::Not(c) => !eval(c, r),
        C::Phrase(p, _) => contains(r.toks, p),
        C::From(a) => r.author_id == *a,
        C::Lang(l) => r.lang == *l,
        C::IsReply => r.is_reply,
        C::IsRetweet => r.is_retweet,
        C::IsQuote => r.is_quote,
        C::Never => false,
    }
}

/// Backward cursor over a sorted posting list: `seek(x)` returns the largest
/// element ≤ x; successive calls must pass non-increasing bounds.
struct Seek<'a> {
    p: &'a [i64],
    hi: usize,
}

impl<'a> Seek<'a> {
    fn new(p: &'a [i64]) -> Self {
        Seek { p, hi: p.len() }
    }

    fn seek(&mut self, x: i64) -> Option<i64> {
        let p = self.p;
        if self.hi == 0 {
            return None;
        }
        let mut end = self.hi - 1;
        if p[end] <= x {
            return Some(p[end]);
        }
        // Gallop downwards, then binary search.
        let mut step = 1;
        let start = loop {
            if end < step {
                break 0;
            }
            let k = end - step;
            if p[k] <= x {
                break k;
            }
            end = k;
            step *= 2;
        };
        let n = start + p[start..end].partition_point(|&v| v <= x);
        self.hi = n;
        if n == 0 { None } else { Some(p[n - 1]) }
    }

    fn len(&self) -> usize {
        self.p.len()
    }
}

enum Driver<'a> {
    List(Seek<'a>),
    And(Vec<Driver<'a>>),
    /// Branches with their last answer (bound, result) for reuse.
    Or(Vec<(Driver<'a>, Option<Option<i64>>)>),
}

fn and_driver(mut ds: Vec<Driver<'_>>) -> Driver<'_> {
    if ds.len() == 1 {
        return ds.pop().expect("one driver");
    }
    ds.sort_by_key(Driver::estimate);
    Driver::And(ds)
}

impl Driver<'_> {
    fn estimate(&self) -> usize {
        match self {
            Driver::List(s) => s.len(),
            Driver::And(v) => v.iter().map(Driver::estimate).min().unwrap_or(0),
            Driver::Or(v) => v.iter().map(|d| d.0.estimate()).sum(),
        }
    }

    /// Largest candidate id ≤ `x` (bounds must not increase between calls).
    fn seek(&mut self, x: i64) -> Option<i64> {
        match self {
            Driver::List(s) => s.seek(x),
            Driver::And(v) => {
                let mut x = x;
                'outer: loop {
                    for d in v.iter_mut() {
                        let r = d.seek(x)?;
                        if r < x {
                            x = r;
                            continue 'outer;
                        }
                    }
                    return Some(x);
                }
            }
            Driver::Or(v) => {
                let mut best = None;
                for (d, last) in v.iter_mut() {
                    let r = match *last {
                        // A branch's answer r for an earlier bound stays valid while r ≤ x.
                        Some(None) => None,
                        Some(Some(r)) if r <= x => Some(r),
                        _ => d.seek(x),
                    };
                    *last = Some(r);
                    best = best.max(r);
                }
                best
            }
        }
    }
}
