//! The in-memory inverted index and its evaluator.

use std::collections::HashMap;

use crate::query::Expr;
use crate::tokenize::{for_each_token, prefix_char};
use crate::{Cursor, Doc, Filters, ResolvedQuery, SearchPage, SortOrder};

const ID_BITS: u32 = 30;
const ID_MASK: u32 = (1 << ID_BITS) - 1;

/// Compact per-post record used to verify phrases, negations and filters.
#[derive(Clone, Debug)]
struct Rec {
    /// Token sequence: bare term id in the low 30 bits, prefix code above.
    toks: Box<[u32]>,
    created_at_ms: i64,
    author_id: i64,
    /// 0 = no language, else index + 1 into `SearchIndex::langs`.
    lang: u16,
    is_reply: bool,
}

/// An in-memory inverted index of posts with X-style search.
///
/// Postings are sorted vectors of post ids per term (bare and
/// `#`/`@`/`$`-prefixed forms) and per author. Evaluation walks candidates
/// in descending id order with "largest id ≤ x" seeks: leapfrog
/// intersection for AND, maximum for OR; phrases, negations, `lang:`,
/// `is:reply` and the filters are checked on each candidate's compact record.
#[derive(Clone, Debug, Default)]
pub struct SearchIndex {
    terms: HashMap<Box<str>, u32>,
    /// Encoded prefixed token (bare id | prefix code << 30) → its term id.
    prefixed: HashMap<u32, u32>,
    postings: Vec<Vec<i64>>,
    authors: HashMap<i64, Vec<i64>>,
    langs: Vec<Box<str>>,
    docs: HashMap<i64, Rec>,
}

fn insert_sorted(v: &mut Vec<i64>, id: i64) {
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
        self.docs.len()
    }

    /// Whether the index holds no post.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Whether a post with this id is indexed.
    pub fn contains(&self, id: i64) -> bool {
        self.docs.contains_key(&id)
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
        let rec = Rec {
            toks: seq.into_boxed_slice(),
            created_at_ms: doc.created_at_ms,
            author_id: doc.author_id,
            lang,
            is_reply: doc.is_reply,
        };
        let id = doc.id;
        let old_terms = match self.docs.get(&id) {
            Some(old) => {
                let terms = self.posting_terms(&old.toks);
                if old.author_id != rec.author_id {
                    let a = old.author_id;
                    self.remove_author(a, id);
                }
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
        insert_sorted(self.authors.entry(rec.author_id).or_default(), id);
        self.docs.insert(id, rec);
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
        let Some(old) = self.docs.remove(&id) else { return };
        for t in self.posting_terms(&old.toks) {
            remove_sorted(&mut self.postings[t as usize], id);
        }
        self.remove_author(old.author_id, id);
    }

    /// Approximate heap bytes used by the index (postings, records and dictionaries).
    pub fn heap_bytes(&self) -> usize {
        let postings: usize = self.postings.iter().map(|v| v.capacity() * 8 + 24).sum();
        let authors: usize = self.authors.values().map(|v| v.capacity() * 8 + 40).sum();
        let terms: usize = self.terms.keys().map(|k| k.len() + 16 + 4 + 1).sum();
        let recs = self.docs.capacity() * (8 + std::mem::size_of::<Rec>() + 1)
            + self.docs.values().map(|r| r.toks.len() * 4).sum::<usize>();
        postings + authors + terms + recs
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
        }
    }

    fn driver<'a>(&'a self, c: &C) -> Option<Driver<'a>> {
        match c {
            C::Never => Some(Driver::List(Seek::new(&[]))),
            C::Phrase(_, lists) => {
                Some(and_driver(lists.iter().map(|&l| Driver::List(Seek::new(&self.postings[l as usize]))).collect()))
            }
            C::From(a) => Some(Driver::List(Seek::new(self.authors.get(a).map_or(&[][..], |v| &v[..])))),
            C::Not(_) | C::Lang(_) | C::IsReply => None,
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
        if after.is_some_and(|c| c.sort != sort) {
            return SearchPage { ids: Vec::new(), next: None };
        }
        let c = self.compile(&query.0);
        let mut upper = filters.until_id.map_or(i64::MAX, |u| u.saturating_sub(1));
        if filters.until_id == Some(i64::MIN) {
            return SearchPage { ids: Vec::new(), next: None };
        }
        if sort == SortOrder::Recency {
            if let Some(cur) = after {
                if cur.id == i64::MIN {
                    return SearchPage { ids: Vec::new(), next: None };
                }
                upper = upper.min(cur.id - 1);
            }
        }
        let all_ids;
        let mut driver = match self.driver(&c) {
            Some(d) => d,
            None => {
                // Unreachable for parsed queries (every branch has a keyword,
                // phrase or from:), kept for completeness.
                let mut v: Vec<i64> = self.docs.keys().copied().collect();
                v.sort_unstable();
                all_ids = v;
                Driver::List(Seek::new(&all_ids))
            }
        };
        let accept = |id: i64| -> Option<&Rec> {
            let r = self.docs.get(&id)?;
            if filters.start_ms.is_some_and(|s| r.created_at_ms < s)
                || filters.end_ms.is_some_and(|e| r.created_at_ms >= e)
                || !eval(&c, r)
            {
                return None;
            }
            Some(r)
        };
        let mut bound = upper;
        match sort {
            SortOrder::Recency => {
                let mut ids = Vec::with_capacity(limit + 1);
                while ids.len() <= limit {
                    let Some(id) = driver.seek(bound) else { break };
                    if filters.since_id.is_some_and(|s| id <= s) {
                        break;
                    }
                    if accept(id).is_some() {
                        ids.push(id);
                    }
                    if id == i64::MIN {
                        break;
                    }
                    bound = id - 1;
                }
                let next = if ids.len() > limit {
                    ids.truncate(limit);
                    Some(Cursor { sort, score: 0, id: ids[limit - 1] })
                } else {
                    None
                };
                SearchPage { ids, next }
            }
            SortOrder::Relevancy => {
                let phrases = positive_phrases(&c);
                let mut hits: Vec<(u32, i64)> = Vec::new();
                loop {
                    let Some(id) = driver.seek(bound) else { break };
                    if filters.since_id.is_some_and(|s| id <= s) {
                        break;
                    }
                    if let Some(r) = accept(id) {
                        let score = phrases.iter().filter(|p| contains(&r.toks, p)).count() as u32;
                        let after_cursor = after.is_none_or(|cur| (score, id) < (cur.score, cur.id));
                        if after_cursor {
                            hits.push((score, id));
                        }
                    }
                    if id == i64::MIN {
                        break;
                    }
                    bound = id - 1;
                }
                let more = hits.len() > limit;
                if more {
                    hits.select_nth_unstable_by(limit, |a, b| b.cmp(a));
                    hits.truncate(limit);
                }
                hits.sort_unstable_by(|a, b| b.cmp(a));
                let next = if more {
                    let &(score, id) = hits.last().expect("non-empty page");
                    Some(Cursor { sort, score, id })
                } else {
                    None
                };
                SearchPage { ids: hits.into_iter().map(|h| h.1).collect(), next }
            }
        }
    }
}

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
    Never,
}

fn positive_phrases(c: &C) -> Vec<&[(u32, u32)]> {
    fn walk<'a>(c: &'a C, out: &mut Vec<&'a [(u32, u32)]>) {
        match c {
            C::And(v) | C::Or(v) => v.iter().for_each(|c| walk(c, out)),
            C::Phrase(p, _) if !out.contains(&&p[..]) => out.push(p),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(c, &mut out);
    out
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

fn eval(c: &C, r: &Rec) -> bool {
    match c {
        C::And(v) => v.iter().all(|c| eval(c, r)),
        C::Or(v) => v.iter().any(|c| eval(c, r)),
        C::Not(c) => !eval(c, r),
        C::Phrase(p, _) => contains(&r.toks, p),
        C::From(a) => r.author_id == *a,
        C::Lang(l) => r.lang == *l,
        C::IsReply => r.is_reply,
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
