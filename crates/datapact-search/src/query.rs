//! Query language: lexer, parser, validation and the brute-force evaluator.

use crate::Doc;
use crate::tokenize::{Tok, toks};

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 4096;

/// A malformed or unsupported query (an HTTP 400 for the caller).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid query at character {position}: {message}")]
pub struct QueryError {
    /// Offset, in characters (Unicode scalar values) from the start of the
    /// query, of the place the problem was found.
    pub position: usize,
    /// What is wrong, in words for a person.
    pub message: String,
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError { position, message: message.into() })
}

/// Query tree, generic over what `from:` holds (a username before
/// resolution, an author id after).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr<U> {
    And(Vec<Expr<U>>),
    Or(Vec<Expr<U>>),
    Not(Box<Expr<U>>),
    /// A keyword (one or more tokens) or an exact phrase.
    Phrase(Vec<Tok>),
    From(U),
    Lang(String),
    IsReply,
    IsRetweet,
    IsQuote,
}

impl<U> Expr<U> {
    fn map_from<V>(self, f: &mut impl FnMut(U) -> V) -> Expr<V> {
        match self {
            Expr::And(v) => Expr::And(v.into_iter().map(|e| e.map_from(f)).collect()),
            Expr::Or(v) => Expr::Or(v.into_iter().map(|e| e.map_from(f)).collect()),
            Expr::Not(e) => Expr::Not(Box::new(e.map_from(f))),
            Expr::Phrase(t) => Expr::Phrase(t),
            Expr::From(u) => Expr::From(f(u)),
            Expr::Lang(l) => Expr::Lang(l),
            Expr::IsReply => Expr::IsReply,
            Expr::IsRetweet => Expr::IsRetweet,
            Expr::IsQuote => Expr::IsQuote,
        }
    }

    /// Distinct phrases (keywords included) that are not under a negation.
    pub(crate) fn positive_phrases(&self) -> Vec<Vec<Tok>> {
        fn walk<U>(e: &Expr<U>, out: &mut Vec<Vec<Tok>>) {
            match e {
                Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| walk(e, out)),
                Expr::Phrase(t) if !out.contains(t) => out.push(t.clone()),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

/// A parsed, valid query whose `from:` usernames are not yet resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query(pub(crate) Expr<String>);

/// A query ready to run: `from:` usernames resolved to author ids (`None`
/// for an unknown username, which matches nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedQuery(pub(crate) Expr<Option<i64>>);

impl Query {
    /// The distinct usernames of the query's `from:` operators, lowercased,
    /// in order of first appearance.
    pub fn usernames(&self) -> Vec<String> {
        fn walk(e: &Expr<String>, out: &mut Vec<String>) {
            match e {
                Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| walk(e, out)),
                Expr::Not(e) => walk(e, out),
                Expr::From(u) if !out.contains(u) => out.push(u.clone()),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &mut out);
        out
    }

    /// Resolves every `from:` username (lowercased, without `@`) to an author
    /// id with `author_of`; a username it does not know matches no post.
    pub fn resolve(self, author_of: impl Fn(&str) -> Option<i64>) -> ResolvedQuery {
        ResolvedQuery(self.0.map_from(&mut |u: String| author_of(&u)))
    }
}

/// X operators this server recognises but does not implement.
const UNSUPPORTED_OPERATORS: &[&str] = &[
    "has",
    "url",
    "url_title",
    "url_description",
    "url_contains",
    "to",
    "retweets_of",
    "retweets_of_user",
    "conversation_id",
    "in_reply_to_tweet_id",
    "in_reply_to_status_id",
    "quotes_of_tweet_id",
    "place",
    "place_country",
    "point_radius",
    "bounding_box",
    "geo_bounding_box",
    "bio",
    "user_bio",
    "bio_name",
    "user_bio_name",
    "bio_location",
    "user_bio_location",
    "list",
    "sample",
    "source",
    "entity",
    "context",
    "followers_count",
    "tweets_count",
    "statuses_count",
    "following_count",
    "friends_count",
    "listed_count",
    "user_in_lists_count",
    "retweet_count",
    "retweets_count",
    "reply_count",
    "replies_count",
    "like_count",
    "likes_count",
    "quote_count",
    "quotes_count",
    "followers_of",
    "mentions",
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Lx {
    LParen,
    RParen,
    Minus,
    Or,
    Word(String),
    Phrase(String),
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201C}' | '\u{201D}')
}

fn lex(chars: &[char]) -> Result<Vec<(Lx, usize)>, QueryError> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = chars.len();
    while i < n {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push((Lx::LParen, i));
            i += 1;
        } else if c == ')' {
            out.push((Lx::RParen, i));
            i += 1;
        } else if is_quote(c) {
            let Some(len) = chars[i + 1..].iter().position(|&c| is_quote(c)) else {
                return err(i, "unterminated quote: this phrase is never closed");
            };
            let s: String = chars[i + 1..i + 1 + len].iter().collect();
            out.push((Lx::Phrase(s), i));
            i += len + 2;
        } else if c == '-' {
            if i + 1 == n || chars[i + 1].is_whitespace() {
                return err(i, "`-` must be directly followed by a term, phrase, group or operator");
            }
            out.push((Lx::Minus, i));
            i += 1;
        } else {
            let start = i;
            while i < n && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')') && !is_quote(chars[i]) {
                i += 1;
            }
            let w: String = chars[start..i].iter().collect();
            out.push((if w == "OR" { Lx::Or } else { Lx::Word(w) }, start));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Lx, usize)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Lx> {
        self.toks.get(self.at).map(|t| &t.0)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |t| t.1)
    }

    fn parse_or(&mut self, depth: usize, group_pos: usize) -> Result<Expr<String>, QueryError> {
        let mut branches = vec![self.parse_and(depth, group_pos)?];
        while self.peek() == Some(&Lx::Or) {
            let or_pos = self.pos();
            self.at += 1;
            if matches!(self.peek(), None | Some(Lx::Or) | Some(Lx::RParen)) {
                return err(or_pos, "`OR` must stand between two clauses");
            }
            branches.push(self.parse_and(depth, group_pos)?);
        }
        Ok(if branches.len() == 1 { branches.pop().expect("one branch") } else { Expr::Or(branches) })
    }

    fn parse_and(&mut self, depth: usize, group_pos: usize) -> Result<Expr<String>, QueryError> {
        let start = self.pos();
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some(Lx::RParen) | Some(Lx::Or) => break,
                _ => items.push(self.parse_unary(depth)?),
            }
        }
        if items.is_empty() {
            return match self.peek() {
                Some(Lx::Or) => err(start, "`OR` must stand between two clauses"),
                Some(Lx::RParen) if depth > 0 => err(group_pos, "empty group `()`"),
                Some(Lx::RParen) => err(start, "unbalanced parenthesis: `)` has no matching `(`"),
                _ => err(start, "empty query"),
            };
        }
        let standalone =
            items.iter().any(|e| matches!(e, Expr::Phrase(_) | Expr::From(_) | Expr::And(_) | Expr::Or(_)));
        if !standalone {
            let all_negated = items.iter().all(|e| matches!(e, Expr::Not(_)));
            return if all_negated {
                err(start, "a query, each `OR` branch and each group needs at least one clause that is not negated")
            } else {
                err(start, "`lang:` and `is:reply` cannot stand alone: combine them with a keyword, phrase or `from:`")
            };
        }
        Ok(if items.len() == 1 { items.pop().expect("one item") } else { Expr::And(items) })
    }

    fn parse_unary(&mut self, depth: usize) -> Result<Expr<String>, QueryError> {
        if self.peek() == Some(&Lx::Minus) {
            self.at += 1;
            let e = self.parse_primary(depth, true)?;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.parse_primary(depth, false)
    }

    fn parse_primary(&mut self, depth: usize, negated: bool) -> Result<Expr<String>, QueryError> {
        let pos = self.pos();
        let Some((tok, _)) = self.toks.get(self.at).cloned() else {
            return err(pos, "expected a term, phrase, group or operator after `-`");
        };
        self.at += 1;
        match tok {
            Lx::LParen => {
                let inner = self.parse_or(depth + 1, pos)?;
                if self.peek() != Some(&Lx::RParen) {
                    return err(pos, "unbalanced parenthesis: this `(` is never closed");
                }
                self.at += 1;
                // A group always reports as a group so validation of the
                // enclosing branch treats it as a standalone clause.
                Ok(match inner {
                    Expr::Or(_) | Expr::And(_) => inner,
                    other => Expr::And(vec![other]),
                })
            }
            Lx::Phrase(s) => {
                let t = toks(&s);
                if t.is_empty() {
                    return err(pos, "empty phrase: it contains no searchable word");
                }
                Ok(Expr::Phrase(t))
            }
            Lx::Word(w) => word(&w, pos),
            Lx::RParen | Lx::Or | Lx::Minus => {
                if negated {
                    err(pos, "expected a term, phrase, group or operator after `-`")
                } else {
                    err(pos, "unexpected token")
                }
            }
        }
    }
}

fn word(w: &str, pos: usize) -> Result<Expr<String>, QueryError> {
    if let Some((name, value)) = w.split_once(':') {
        let lname = name.to_ascii_lowercase();
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
            match lname.as_str() {
                "from" => {
                    let u = value.strip_prefix('@').unwrap_or(value);
                    if u.is_empty() || !u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return err(pos, "`from:` needs a username (letters, digits and `_`)");
                    }
                    return Ok(Expr::From(u.to_ascii_lowercase()));
                }
                "lang" => {
                    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                        return err(pos, "`lang:` needs a language tag such as `en`");
                    }
                    return Ok(Expr::Lang(value.to_ascii_lowercase()));
                }
                "is" => {
                    if value.eq_ignore_ascii_case("reply") {
                        return Ok(Expr::IsReply);
                    }
                    if value.eq_ignore_ascii_case("retweet") {
                        return Ok(Expr::IsRetweet);
                    }
                    if value.eq_ignore_ascii_case("quote") {
                        return Ok(Expr::IsQuote);
                    }
                    return err(
                        pos,
                        format!(
                            "`is:{value}` is not supported by this server (supported operators: from:, lang:, is:reply, is:retweet, is:quote)"
                        ),
                    );
                }
                n if UNSUPPORTED_OPERATORS.contains(&n) => {
                    return err(
                        pos,
                        format!(
                            "operator `{name}:` is not supported by this server (supported operators: from:, lang:, is:reply, is:retweet, is:quote)"
                        ),
                    );
                }
                _ => {}
            }
        }
    }
    let t = toks(w);
    if t.is_empty() {
        return err(pos, format!("`{w}` contains no searchable word"));
    }
    Ok(Expr::Phrase(t))
}

/// Parses an X-style search query (see the crate docs for the language).
///
/// ```
/// let q = datapact_search::parse("(rust OR go) -java from:Alice").unwrap();
/// assert_eq!(q.usernames(), ["alice"]);
/// let e = datapact_search::parse("rust (go").unwrap_err();
/// assert_eq!(e.position, 5);
/// ```
pub fn parse(query: &str) -> Result<Query, QueryError> {
    let chars: Vec<char> = query.chars().collect();
    if chars.len() > MAX_QUERY_CHARS {
        return err(MAX_QUERY_CHARS, format!("query is longer than {MAX_QUERY_CHARS} characters"));
    }
    let toks = lex(&chars)?;
    if toks.is_empty() {
        return err(0, "empty query");
    }
    let mut p = Parser { toks, at: 0, end: chars.len() };
    let e = p.parse_or(0, 0)?;
    if p.peek().is_some() {
        return err(p.pos(), "unbalanced parenthesis: `)` has no matching `(`");
    }
    Ok(Query(e))
}

/// Whether `toks` contains `phrase` at consecutive positions.
pub(crate) fn contains_phrase(toks: &[Tok], phrase: &[Tok]) -> bool {
    toks.windows(phrase.len()).any(|w| w.iter().zip(phrase).all(|(d, q)| q.matches(d)))
}

fn eval(e: &Expr<Option<i64>>, doc: &Doc, toks: &[Tok]) -> bool {
    match e {
        Expr::And(v) => v.iter().all(|e| eval(e, doc, toks)),
        Expr::Or(v) => v.iter().any(|e| eval(e, doc, toks)),
        Expr::Not(e) => !eval(e, doc, toks),
        Expr::Phrase(p) => contains_phrase(toks, p),
        Expr::From(a) => *a == Some(doc.author_id),
        Expr::Lang(l) => doc.lang.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(l)),
        Expr::IsReply => doc.is_reply,
        Expr::IsRetweet => doc.is_retweet,
        Expr::IsQuote => doc.is_quote,
    }
}

/// Brute-force reference evaluator: whether `doc` matches `query`
/// (ignoring [`Filters`](crate::Filters)). [`SearchIndex::search`](crate::SearchIndex::search)
/// returns exactly the indexed posts for which this is true.
pub fn matches(query: &ResolvedQuery, doc: &Doc) -> bool {
    eval(&query.0, doc, &toks(&doc.text))
}

/// Relevance of `doc` for `query`: the number of distinct keywords and
/// phrases of the query, not under a negation, that occur in the post.
pub fn relevance(query: &ResolvedQuery, doc: &Doc) -> u32 {
    let t = toks(&doc.text);
    query.0.positive_phrases().iter().filter(|p| contains_phrase(&t, p)).count() as u32
}
