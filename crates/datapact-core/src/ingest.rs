//! The ingest line format: one JSON object per line, validated without touching the store.
//!
//! A line is one of:
//! - a post in X API v2 shape, its author inline as `author` (`{"id", "text", "author_id",
//!   "created_at", ..., "author": {"id", "username", "name", "created_at"}}`);
//! - an X response envelope `{"data": {post}, "includes": {"users": [author, ...]}}`;
//! - a deletion `{"delete": {"id": "123", "deleted_at": "2024-01-01T00:00:00.000Z"}}`
//!   (`deleted_at` defaults to the time of ingest).
//!
//! A post line may omit its author object when the author is already in the store.

use serde_json::{Map, Value};

use crate::post::{Author, AuthorMetrics, PostId, PublicMetrics, ReferencedPost, UserId};
use crate::time::Timestamp;

/// The longest post text accepted, in Unicode scalar values (X's long-form limit).
pub const MAX_TEXT_CHARS: usize = 25_000;
/// The longest line accepted, in bytes; longer lines are rejected without being parsed.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The longest username accepted.
pub const MAX_USERNAME_CHARS: usize = 50;
/// At most this many referenced posts or edit-history ids per post.
pub const MAX_REFERENCES: usize = 100;

/// A post as it arrives, before the store assigns it a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPost {
    pub id: PostId,
    pub author_id: UserId,
    pub author: Option<Author>,
    /// Purposes the author opts out of (`"author": {"opt_out": ["ai-train"]}`); added, never removed, by ingest.
    pub author_opt_outs: Vec<String>,
    pub text: String,
    pub created_at: Timestamp,
    pub lang: Option<String>,
    pub conversation_id: PostId,
    pub in_reply_to_user_id: Option<UserId>,
    pub referenced_posts: Vec<ReferencedPost>,
    pub edit_history: Vec<PostId>,
    pub public_metrics: PublicMetrics,
}

/// One valid ingest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestRecord {
    Post(Box<NewPost>),
    Delete { id: PostId, deleted_at: Option<Timestamp> },
}

/// Why a line was rejected, worded for the person who produced the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

fn reject<T>(message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(message.into()))
}

/// Parses and validates one line (without its line terminator).
pub fn parse_line(line: &[u8]) -> Result<IngestRecord, Rejection> {
    if line.len() > MAX_LINE_BYTES {
        return reject(format!("line is {} bytes; the limit is {MAX_LINE_BYTES}", line.len()));
    }
    let text =
        std::str::from_utf8(line).map_err(|e| Rejection(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let value: Value = serde_json::from_str(text).map_err(|e| Rejection(format!("invalid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return reject("expected a JSON object");
    };
    if let Some(delete) = object.get("delete") {
        return parse_delete(delete);
    }
    match object.get("data") {
        Some(Value::Object(data)) => {
            let users = object.get("includes").and_then(|includes| includes.get("users")).and_then(Value::as_array);
            parse_post(data, users.map(Vec::as_slice).unwrap_or_default())
        }
        Some(_) => reject("`data` must be an object holding one post"),
        None => parse_post(&object, &[]),
    }
}

/// True for lines that carry nothing (blank or only whitespace); they are skipped, not rejected.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn parse_delete(delete: &Value) -> Result<IngestRecord, Rejection> {
    let Value::Object(delete) = delete else {
        return reject("`delete` must be an object such as {\"id\": \"123\"}");
    };
    let id = required_id::<PostId>(delete, "id", "delete.id")?;
    let deleted_at = optional_time(delete, "deleted_at", "delete.deleted_at")?;
    Ok(IngestRecord::Delete { id, deleted_at })
}

fn parse_post(post: &Map<String, Value>, users: &[Value]) -> Result<IngestRecord, Rejection> {
    let id = required_id::<PostId>(post, "id", "id")?;
    let text = match post.get("text") {
        Some(Value::String(text)) => text.clone(),
        Some(_) => return reject("`text` must be a string"),
        None => return reject("missing `text`"),
    };
    if text.trim().is_empty() {
        return reject("`text` is empty");
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return reject(format!("`text` has {chars} characters; the limit is {MAX_TEXT_CHARS}"));
    }
    let created_at =
        optional_time(post, "created_at", "created_at")?.ok_or_else(|| Rejection("missing `created_at`".into()))?;

    let (inline_author, mut author_opt_outs) = match post.get("author") {
        Some(Value::Object(author)) => {
            (Some(parse_author(author, "author", created_at)?), parse_opt_outs(author, "author")?)
        }
        Some(_) => return reject("`author` must be an object"),
        None => (None, Vec::new()),
    };
    let author_id = match optional_id::<UserId>(post, "author_id", "author_id")? {
        Some(id) => id,
        None => match &inline_author {
            Some(author) => author.id,
            None => return reject("missing `author_id` (or an inline `author` object)"),
        },
    };
    let envelope_user = users
        .iter()
        .filter_map(Value::as_object)
        .find(|user| user.get("id").and_then(id_text).as_deref() == Some(&author_id.to_string()));
    if inline_author.is_none()
        && let Some(user) = envelope_user
    {
        author_opt_outs = parse_opt_outs(user, "includes.users[]")?;
    }
    let author = match inline_author {
        Some(author) if author.id != author_id => {
            return reject(format!("`author.id` {} differs from `author_id` {author_id}", author.id));
        }
        Some(author) => Some(author),
        None => envelope_user.map(|user| parse_author(user, "includes.users[]", created_at)).transpose()?,
    };

    let lang = match post.get("lang") {
        None | Some(Value::Null) => None,
        Some(Value::String(lang)) if is_language_tag(lang) => Some(lang.clone()),
        Some(other) => {
            return reject(format!("`lang` {other} is not a language tag such as \"en\""));
        }
    };
    let conversation_id = optional_id(post, "conversation_id", "conversation_id")?.unwrap_or(id);
    let in_reply_to_user_id = optional_id(post, "in_reply_to_user_id", "in_reply_to_user_id")?;
    let referenced_posts = parse_references(post)?;
    let mut edit_history = match post.get("edit_history_tweet_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) if ids.len() <= MAX_REFERENCES => {
            ids.iter().map(|v| parse_id_value::<PostId>(v, "edit_history_tweet_ids[]")).collect::<Result<_, _>>()?
        }
        Some(_) => {
            return reject(format!("`edit_history_tweet_ids` must be an array of at most {MAX_REFERENCES} ids"));
        }
    };
    // X lists the post itself last in its own edit history; keep that invariant.
    if !edit_history.contains(&id) {
        edit_history.push(id);
    }
    let public_metrics = match post.get("public_metrics") {
        None | Some(Value::Null) => PublicMetrics::default(),
        Some(metrics) => parse_metrics(metrics)
            .ok_or_else(|| Rejection("`public_metrics` must hold non-negative integer counts".into()))?,
    };

    Ok(IngestRecord::Post(Box::new(NewPost {
        id,
        author_id,
        author,
        author_opt_outs,
        text,
        created_at,
        lang,
        conversation_id,
        in_reply_to_user_id,
        referenced_posts,
        edit_history,
        public_metrics,
    })))
}

/// Accepts partial metric objects: absent counters are zero.
fn parse_metrics(metrics: &Value) -> Option<PublicMetrics> {
    let metrics = metrics.as_object()?;
    let count = |name: &str| -> Option<u64> {
        match metrics.get(name) {
            None | Some(Value::Null) => Some(0),
            Some(value) => value.as_u64(),
        }
    };
    Some(PublicMetrics {
        retweet_count: count("retweet_count")?,
        reply_count: count("reply_count")?,
        like_count: count("like_count")?,
        quote_count: count("quote_count")?,
        bookmark_count: count("bookmark_count")?,
        impression_count: count("impression_count")?,
    })
}

fn parse_references(post: &Map<String, Value>) -> Result<Vec<ReferencedPost>, Rejection> {
    let Some(references) = post.get("referenced_tweets") else {
        return Ok(Vec::new());
    };
    let Value::Array(references) = references else {
        return reject("`referenced_tweets` must be an array");
    };
    if references.len() > MAX_REFERENCES {
        return reject(format!("more than {MAX_REFERENCES} `referenced_tweets`"));
    }
    references
        .iter()
        .map(|reference| {
            let Value::Object(reference) = reference else {
                return reject("each of `referenced_tweets` must be an object {\"type\", \"id\"}");
            };
            let kind = match reference.get("type").and_then(Value::as_str) {
                Some(kind @ ("replied_to" | "quoted" | "retweeted")) => kind.to_owned(),
                _ => {
                    return reject("`referenced_tweets[].type` must be replied_to, quoted or retweeted");
                }
            };
            let id = required_id(reference, "id", "referenced_tweets[].id")?;
            Ok(ReferencedPost { kind, id })
        })
        .collect()
}

fn parse_author(user: &Map<String, Value>, path: &str, fallback_created_at: Timestamp) -> Result<Author, Rejection> {
    let id = required_id::<UserId>(user, "id", &format!("{path}.id"))?;
    let username = match user.get("username") {
        Some(Value::String(name)) if is_username(name) => name.clone(),
        Some(_) => {
            return reject(format!(
                "`{path}.username` must be 1 to {MAX_USERNAME_CHARS} letters, digits or underscores"
            ));
        }
        None => return reject(format!("missing `{path}.username`")),
    };
    let string = |field: &str| -> Result<Option<String>, Rejection> {
        match user.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value.clone())),
            Some(_) => reject(format!("`{path}.{field}` must be a string")),
        }
    };
    let flag = |field: &str| -> Result<bool, Rejection> {
        match user.get(field) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(_) => reject(format!("`{path}.{field}` must be true or false")),
        }
    };
    Ok(Author {
        id,
        name: string("name")?.unwrap_or_else(|| username.clone()),
        username,
        created_at: optional_time(user, "created_at", &format!("{path}.created_at"))?.unwrap_or(fallback_created_at),
        description: string("description")?.unwrap_or_default(),
        location: string("location")?,
        verified: flag("verified")?,
        protected: flag("protected")?,
        metrics: match user.get("public_metrics") {
            None | Some(Value::Null) => AuthorMetrics::default(),
            Some(Value::Object(metrics)) => {
                let count = |name: &str| -> Result<u64, Rejection> {
                    match metrics.get(name) {
                        None | Some(Value::Null) => Ok(0),
                        Some(value) => value.as_u64().ok_or_else(|| {
                            Rejection(format!("`{path}.public_metrics.{name}` must be a non-negative integer"))
                        }),
                    }
                };
                AuthorMetrics {
                    followers_count: count("followers_count")?,
                    following_count: count("following_count")?,
                    listed_count: count("listed_count")?,
                }
            }
            Some(_) => return reject(format!("`{path}.public_metrics` must be an object")),
        },
    })
}

fn parse_opt_outs(user: &Map<String, Value>, path: &str) -> Result<Vec<String>, Rejection> {
    match user.get("opt_out") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(purposes)) => purposes
            .iter()
            .map(|purpose| match purpose.as_str() {
                Some(name) if crate::purpose::Purpose::parse(name).is_some() => Ok(name.to_owned()),
                _ => reject(format!("`{path}.opt_out` entries must be purposes: {}", crate::purpose::Purpose::names())),
            })
            .collect(),
        Some(_) => reject(format!("`{path}.opt_out` must be an array of purposes")),
    }
}

fn is_username(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A BCP 47-ish tag as X uses (`en`, `fr`, `zh-cn`, `und`, `qme`).
fn is_language_tag(tag: &str) -> bool {
    (2..=16).contains(&tag.len()) && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The decimal text of an id given as a JSON string or number.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) if number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

fn parse_id_value<T: std::str::FromStr>(value: &Value, path: &str) -> Result<T, Rejection> {
    let text = id_text(value).ok_or_else(|| Rejection(format!("`{path}` must be an id string")))?;
    text.parse().map_err(|_| Rejection(format!("`{path}` {text:?} is not a 64-bit id (a positive integer below 2^63)")))
}

fn optional_id<T: std::str::FromStr>(
    object: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<T>, Rejection> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => parse_id_value(value, path).map(Some),
    }
}

fn required_id<T: std::str::FromStr>(object: &Map<String, Value>, field: &str, path: &str) -> Result<T, Rejection> {
    optional_id(object, field, path)?.ok_or_else(|| Rejection(format!("missing `{path}`")))
}

fn optional_time(object: &Map<String, Value>, field: &str, path: &str) -> Result<Option<Timestamp>, Rejection> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Timestamp::parse_rfc3339(text)
            .map(Some)
            .map_err(|_| Rejection(format!("`{path}` {text:?} is not an RFC 3339 time"))),
        Some(_) => reject(format!("`{path}` must be an RFC 3339 time string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(line: &str) -> NewPost {
        match parse_line(line.as_bytes()).unwrap() {
            IngestRecord::Post(post) => *post,
            other => panic!("expected a post, got {other:?}"),
        }
    }

    fn rejection(line: &[u8]) -> String {
        parse_line(line).unwrap_err().0
    }

    const MINIMAL: &str = r#"{"id":"10","text":"hi","author_id":"7","created_at":"2024-01-01T00:00:00.000Z"}"#;

    #[test]
    fn minimal_post_gets_x_defaults() {
        let post = post(MINIMAL);
        assert_eq!(post.id, PostId::new(10));
        assert_eq!(post.conversation_id, PostId::new(10));
        assert_eq!(post.edit_history, vec![PostId::new(10)]);
        assert_eq!(post.author, None);
        assert_eq!(post.public_metrics, PublicMetrics::default());
    }

    #[test]
    fn inline_author_and_envelope_author() {
        let inline = post(
            r#"{"id":10,"text":"hi","created_at":"2024-01-01T00:00:00Z","author":{"id":"7","username":"ann","name":"Ann"}}"#,
        );
        assert_eq!(inline.author_id, UserId::new(7));
        assert_eq!(inline.author.unwrap().name, "Ann");
        let envelope = post(
            r#"{"data":{"id":"10","text":"hi","author_id":"7","created_at":"2024-01-01T00:00:00Z"},"includes":{"users":[{"id":"8","username":"bob"},{"id":"7","username":"ann"}]}}"#,
        );
        assert_eq!(envelope.author.unwrap().username, "ann");
    }

    #[test]
    fn opt_outs_ride_on_the_author() {
        let post = post(
            r#"{"id":10,"text":"hi","created_at":"2024-01-01T00:00:00Z","author":{"id":"7","username":"ann","opt_out":["ai-train","ai-all"]}}"#,
        );
        assert_eq!(post.author_opt_outs, vec!["ai-train", "ai-all"]);
        assert!(
            rejection(br#"{"id":10,"text":"hi","created_at":"2024-01-01T00:00:00Z","author":{"id":"7","username":"ann","opt_out":["training"]}}"#)
                .contains("purposes")
        );
    }

    #[test]
    fn deletions() {
        assert_eq!(
            parse_line(br#"{"delete":{"id":"5"}}"#).unwrap(),
            IngestRecord::Delete { id: PostId::new(5), deleted_at: None }
        );
        assert!(rejection(br#"{"delete":{"id":"x"}}"#).contains("delete.id"));
    }

    #[test]
    fn every_bad_line_says_why() {
        assert!(rejection(b"\xff\xfe").contains("UTF-8"));
        assert!(rejection(b"{not json").contains("invalid JSON"));
        assert!(rejection(b"[1]").contains("object"));
        assert!(
            rejection(br#"{"text":"a","author_id":"1","created_at":"2024-01-01T00:00:00Z"}"#).contains("missing `id`")
        );
        assert!(
            rejection(br#"{"id":"1","author_id":"1","created_at":"2024-01-01T00:00:00Z"}"#).contains("missing `text`")
        );
        assert!(
            rejection(
                br#"{"id":"18446744073709551615","text":"a","author_id":"1","created_at":"2024-01-01T00:00:00Z"}"#
            )
            .contains("64-bit")
        );
        assert!(rejection(br#"{"id":"1","text":"a","author_id":"1","created_at":"soon"}"#).contains("RFC 3339"));
        assert!(rejection(br#"{"id":"1","text":"a","created_at":"2024-01-01T00:00:00Z"}"#).contains("author_id"));
        let long = format!(
            r#"{{"id":"1","text":"{}","author_id":"1","created_at":"2024-01-01T00:00:00Z"}}"#,
            "é".repeat(MAX_TEXT_CHARS + 1)
        );
        assert!(rejection(long.as_bytes()).contains("25000"));
        let exactly = long.replacen('é', "", 1);
        assert!(parse_line(exactly.as_bytes()).is_ok());
    }

    proptest::proptest! {
        /// No input makes the parser panic; it either accepts or explains.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn ids_round_trip(id in 1i64..=i64::MAX) {
            let line = MINIMAL.replace("\"10\"", &format!("\"{id}\""));
            proptest::prop_assert_eq!(post(&line).id.get(), id);
        }
    }
}
