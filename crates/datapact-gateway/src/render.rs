//! Posts, users and whole response bodies as X API v2 JSON, limited to the requested fields.
//!
//! JSON is written by hand into one `Vec<u8>`: no `serde_json::Value` tree, no per-field `String`
//! keys, no copies of post text. The output is byte for byte what the earlier `Value` renderer
//! produced (keys in sorted order, as `serde_json::Map` kept them), which the tests check against
//! that renderer, kept there as an oracle. A post object is rendered on its own (a *fragment*) so
//! the gateway can cache it ([`crate::post_cache`]) and splice it into any body.

use std::sync::Arc;

use datapact_core::{Post, PostId, Timestamp};
use datapact_store::UserRecord;
use serde_json::Value;

use crate::fingerprint::{Marking, PostJson};
use crate::params::Names;

/// The optional post fields datapact serves, as bits. `id`, `text` and `edit_history_tweet_ids`
/// are always present; names datapact does not serve are ignored (twarc asks for all of X's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PostFields(u8);

impl PostFields {
    const AUTHOR_ID: u8 = 1;
    const CREATED_AT: u8 = 1 << 1;
    const LANG: u8 = 1 << 2;
    const CONVERSATION_ID: u8 = 1 << 3;
    const IN_REPLY_TO_USER_ID: u8 = 1 << 4;
    const REFERENCED_TWEETS: u8 = 1 << 5;
    const PUBLIC_METRICS: u8 = 1 << 6;
    /// How many distinct field sets there are (for tables indexed by [`PostFields::bits`]).
    pub const COUNT: usize = 1 << 7;

    const NAMES: [(&'static str, u8); 7] = [
        ("author_id", Self::AUTHOR_ID),
        ("created_at", Self::CREATED_AT),
        ("lang", Self::LANG),
        ("conversation_id", Self::CONVERSATION_ID),
        ("in_reply_to_user_id", Self::IN_REPLY_TO_USER_ID),
        ("referenced_tweets", Self::REFERENCED_TWEETS),
        ("public_metrics", Self::PUBLIC_METRICS),
    ];

    pub fn from_names(names: &Names) -> Self {
        PostFields(Self::NAMES.iter().filter(|(name, _)| names.contains(name)).fold(0, |bits, (_, bit)| bits | bit))
    }

    /// A compact code of the set, below [`PostFields::COUNT`].
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set [`PostFields::bits`] gave; bits beyond the known fields are dropped.
    pub fn from_bits(bits: u8) -> Self {
        PostFields(bits & (Self::COUNT - 1) as u8)
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// The optional user fields datapact serves, as bits; `id`, `name` and `username` are always present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserFields(u8);

impl UserFields {
    const CREATED_AT: u8 = 1;
    const DESCRIPTION: u8 = 1 << 1;
    const LOCATION: u8 = 1 << 2;
    const PROTECTED: u8 = 1 << 3;
    const VERIFIED: u8 = 1 << 4;
    const PUBLIC_METRICS: u8 = 1 << 5;

    const NAMES: [(&'static str, u8); 6] = [
        ("created_at", Self::CREATED_AT),
        ("description", Self::DESCRIPTION),
        ("location", Self::LOCATION),
        ("protected", Self::PROTECTED),
        ("verified", Self::VERIFIED),
        ("public_metrics", Self::PUBLIC_METRICS),
    ];

    pub fn from_names(names: &Names) -> Self {
        UserFields(Self::NAMES.iter().filter(|(name, _)| names.contains(name)).fold(0, |bits, (_, bit)| bits | bit))
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// A post object, appended to `out`. Keys are written in sorted order. `id`, `text` and
/// `edit_history_tweet_ids` are always present, as in X (tweepy warns when the edit history is
/// missing); other fields only when requested, and optional values only when the post has them.
pub fn write_post(out: &mut Vec<u8>, post: &Post, fields: PostFields) {
    let mut object = ObjectWriter::new(out);
    if fields.has(PostFields::AUTHOR_ID) {
        write_id(object.key("author_id"), post.author_id.get());
    }
    if fields.has(PostFields::CONVERSATION_ID) {
        write_id(object.key("conversation_id"), post.conversation_id.get());
    }
    if fields.has(PostFields::CREATED_AT) {
        write_time(object.key("created_at"), post.created_at);
    }
    write_array(object.key("edit_history_tweet_ids"), &post.edit_history, |out, id| write_id(out, id.get()));
    write_id(object.key("id"), post.id.get());
    if fields.has(PostFields::IN_REPLY_TO_USER_ID)
        && let Some(user) = post.in_reply_to_user_id
    {
        write_id(object.key("in_reply_to_user_id"), user.get());
    }
    if fields.has(PostFields::LANG)
        && let Some(lang) = &post.lang
    {
        write_str(object.key("lang"), lang);
    }
    if fields.has(PostFields::PUBLIC_METRICS) {
        let metrics = post.public_metrics;
        let mut inner = ObjectWriter::new(object.key("public_metrics"));
        write_u64(inner.key("bookmark_count"), metrics.bookmark_count);
        write_u64(inner.key("impression_count"), metrics.impression_count);
        write_u64(inner.key("like_count"), metrics.like_count);
        write_u64(inner.key("quote_count"), metrics.quote_count);
        write_u64(inner.key("reply_count"), metrics.reply_count);
        // X's newer name for retweets; X's own SDK (xdk) requires it.
        write_u64(inner.key("repost_count"), metrics.retweet_count);
        write_u64(inner.key("retweet_count"), metrics.retweet_count);
        inner.finish();
    }
    if fields.has(PostFields::REFERENCED_TWEETS) && !post.referenced_posts.is_empty() {
        write_array(object.key("referenced_tweets"), &post.referenced_posts, |out, reference| {
            let mut inner = ObjectWriter::new(out);
            write_id(inner.key("id"), reference.id.get());
            write_str(inner.key("type"), &reference.kind);
            inner.finish();
        });
    }
    write_str(object.key("text"), &post.text);
    object.finish();
}

/// A user object. `id`, `name` and `username` are always present. In `public_metrics` the post
/// count is datapact's own (posts it holds, not deleted); audience counts are what the platform
/// ingested with the author (zero when it sent none).
pub fn write_user(out: &mut Vec<u8>, user: &UserRecord, fields: UserFields) {
    let author = &user.author;
    let mut object = ObjectWriter::new(out);
    if fields.has(UserFields::CREATED_AT) {
        write_time(object.key("created_at"), author.created_at);
    }
    if fields.has(UserFields::DESCRIPTION) {
        write_str(object.key("description"), &author.description);
    }
    write_id(object.key("id"), author.id.get());
    if fields.has(UserFields::LOCATION)
        && let Some(location) = &author.location
    {
        write_str(object.key("location"), location);
    }
    write_str(object.key("name"), &author.name);
    if fields.has(UserFields::PROTECTED) {
        write_bool(object.key("protected"), author.protected);
    }
    if fields.has(UserFields::PUBLIC_METRICS) {
        let metrics = author.metrics;
        let mut inner = ObjectWriter::new(object.key("public_metrics"));
        write_u64(inner.key("followers_count"), metrics.followers_count);
        write_u64(inner.key("following_count"), metrics.following_count);
        write_u64(inner.key("listed_count"), metrics.listed_count);
        write_u64(inner.key("post_count"), user.post_count);
        write_u64(inner.key("tweet_count"), user.post_count);
        inner.finish();
    }
    write_str(object.key("username"), &author.username);
    if fields.has(UserFields::VERIFIED) {
        write_bool(object.key("verified"), author.verified);
    }
    object.finish();
}

/// What a response's `data` holds.
#[derive(Clone, Copy, Debug, Default)]
pub enum Data<'a> {
    /// No `data` key (nothing found, or an empty page).
    #[default]
    Absent,
    /// One rendered post object (`GET /2/tweets/:id`, a stream line).
    Post(&'a PostJson),
    /// Rendered post objects, as an array; an empty slice leaves `data` out, as X does.
    Posts(&'a [Arc<PostJson>]),
    /// A non-empty array of post objects already written by [`write_posts`], for the body's marking.
    WrittenPosts(&'a [u8]),
    /// One user object.
    User(&'a UserRecord, UserFields),
    /// User objects, as an array; an empty slice leaves `data` out.
    Users(&'a [UserRecord], UserFields),
}

/// X's `meta` of a page of posts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub result_count: usize,
    pub newest_id: Option<PostId>,
    pub oldest_id: Option<PostId>,
    /// Only when another page exists: never `null` (twarc would loop forever).
    pub next_token: Option<String>,
}

impl Meta {
    /// The `meta` of a page holding posts with these ids.
    pub fn for_page(ids: impl IntoIterator<Item = PostId>, next_token: Option<String>) -> Self {
        let mut meta = Meta { next_token, ..Meta::default() };
        for id in ids {
            meta.result_count += 1;
            meta.newest_id = Some(meta.newest_id.map_or(id, |newest| newest.max(id)));
            meta.oldest_id = Some(meta.oldest_id.map_or(id, |oldest| oldest.min(id)));
        }
        meta
    }
}

/// A whole response body; each part is written only when present.
#[derive(Clone, Copy, Debug, Default)]
pub struct Body<'a> {
    pub data: Data<'a>,
    /// X's partial errors (resource not found), as `Value`s: rare, so not worth a fast path.
    pub errors: &'a [Value],
    /// `includes.users`, when `expansions=author_id` asked for them and there were posts.
    pub users: Option<(&'a [UserRecord], UserFields)>,
    pub meta: Option<&'a Meta>,
    /// Whose copy of the posts' text the body carries.
    pub marking: Marking,
}

impl Body<'_> {
    /// The body as bytes, keys in sorted order (`data`, `errors`, `includes`, `meta`).
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.write(&mut out);
        out
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let mut object = ObjectWriter::new(out);
        match self.data {
            Data::Absent => {}
            Data::Post(post) => post.write(object.key("data"), self.marking),
            Data::Posts(posts) if !posts.is_empty() => {
                write_posts(object.key("data"), posts.iter().map(|post| &**post), self.marking)
            }
            Data::WrittenPosts(written) => object.key("data").extend_from_slice(written),
            Data::User(user, fields) => write_user(object.key("data"), user, fields),
            Data::Users(users, fields) if !users.is_empty() => write_users(object.key("data"), users, fields),
            Data::Posts(_) | Data::Users(..) => {}
        }
        if !self.errors.is_empty() {
            write_array(object.key("errors"), self.errors, write_value);
        }
        if let Some((users, fields)) = self.users {
            let mut includes = ObjectWriter::new(object.key("includes"));
            write_users(includes.key("users"), users, fields);
            includes.finish();
        }
        if let Some(meta) = self.meta {
            let mut inner = ObjectWriter::new(object.key("meta"));
            if let Some(newest) = meta.newest_id {
                write_id(inner.key("newest_id"), newest.get());
            }
            if let Some(next) = &meta.next_token {
                write_str(inner.key("next_token"), next);
            }
            if let Some(oldest) = meta.oldest_id {
                write_id(inner.key("oldest_id"), oldest.get());
            }
            write_u64(inner.key("result_count"), meta.result_count as u64);
            inner.finish();
        }
        object.finish();
    }

    fn size_hint(&self) -> usize {
        let data = match self.data {
            Data::Absent => 0,
            Data::Post(post) => post.len(),
            Data::Posts(posts) => posts.iter().map(|post| post.len() + 1).sum(),
            Data::WrittenPosts(written) => written.len(),
            Data::User(..) => 256,
            Data::Users(users, _) => users.len() * 256,
        };
        let users = self.users.map_or(0, |(users, _)| 32 + users.len() * 256);
        data + users + self.errors.len() * 256 + 160
    }
}

/// The `data` array of post objects, in `marking`'s copy.
pub fn write_posts<'a>(out: &mut Vec<u8>, posts: impl IntoIterator<Item = &'a PostJson>, marking: Marking) {
    write_array(out, posts, |out, post| post.write(out, marking));
}

fn write_users(out: &mut Vec<u8>, users: &[UserRecord], fields: UserFields) {
    write_array(out, users, |out, user| write_user(out, user, fields));
}

/// A JSON array of `items`, each written by `write`.
fn write_array<T>(out: &mut Vec<u8>, items: impl IntoIterator<Item = T>, mut write: impl FnMut(&mut Vec<u8>, T)) {
    out.push(b'[');
    for (n, item) in items.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// Writes a JSON object's `{`, `"key":` prefixes with their commas, and `}`. Keys are the
/// renderer's own literals, which need no escaping.
struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> ObjectWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, empty: true }
    }

    /// Starts the member `key`; the caller writes its value into the returned buffer.
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn finish(self) {
        self.out.push(b'}');
    }
}

/// Ids are JSON strings, as in X's API (they exceed JavaScript's exact integers).
fn write_id(out: &mut Vec<u8>, id: i64) {
    out.push(b'"');
    out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    out.push(b'"');
}

fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// The last millisecond of year 9999: times up to it have four-digit years.
const MAX_FOUR_DIGIT_YEAR_MILLIS: i64 = 253_402_300_799_999;

/// X's time format (`"2024-01-01T00:00:00.000Z"`), as [`Timestamp::to_x_string`] writes it but
/// without its formatting machinery and `String` (a tenth of a cold post's rendering).
fn write_time(out: &mut Vec<u8>, time: Timestamp) {
    let ms = time.millis();
    if !(0..=MAX_FOUR_DIGIT_YEAR_MILLIS).contains(&ms) {
        // Outside what the store accepts; rendered the general way all the same.
        write_str(out, &time.to_x_string());
        return;
    }
    let (days, ms) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"\"0000-00-00T00:00:00.000Z\"";
    let mut digits = |at: usize, width: usize, mut value: i64| {
        for place in (at..at + width).rev() {
            text[place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    digits(1, 4, year);
    digits(6, 2, month);
    digits(9, 2, day);
    digits(12, 2, ms / 3_600_000);
    digits(15, 2, ms / 60_000 % 60);
    digits(18, 2, ms / 1_000 % 60);
    digits(21, 3, ms % 1_000);
    out.extend_from_slice(&text);
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01, for
/// non-negative counts (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted / 146_097;
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A JSON string, escaped exactly as `serde_json` escapes (`\"`, `\\`, the short escapes of
/// `\b \t \n \f \r`, `\u00XX` with lowercase hex for other control characters; nothing else).
fn write_str(out: &mut Vec<u8>, value: &str) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    write_str_contents(out, value);
    out.push(b'"');
}

/// The inside of [`write_str`]'s string: escaping is per character, so the escape of a text is
/// the concatenation of the escapes of its pieces (what [`crate::fingerprint`] relies on).
pub(crate) fn write_str_contents(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let short = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            b'\t' => b't',
            b'\n' => b'n',
            0x0C => b'f',
            b'\r' => b'r',
            0x00..=0x1F => b'u',
            _ => continue,
        };
        // Every byte escaped is ASCII, so the runs between them are whole UTF-8 sequences.
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            out.extend_from_slice(&[b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xF)]]);
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// A `serde_json::Value`, for the rare parts of a body that are built as values (errors).
fn write_value(out: &mut Vec<u8>, value: &Value) {
    // Serializing a `Value` into a `Vec` cannot fail: the writer never errors, and every map
    // key of a `Value` is a string.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use datapact_core::{Author, AuthorMetrics, PublicMetrics, ReferencedPost, UserId};
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;
    use crate::params::QueryParams;

    /// The renderer datapact served with before this module wrote JSON by hand: a `Value` tree
    /// per post, user and body. Kept as the oracle the new output must match byte for byte.
    mod oracle {
        use super::*;

        pub fn post_json(post: &Post, fields: &Names) -> Value {
            let mut object = Map::new();
            object.insert("id".into(), json!(post.id));
            object.insert("text".into(), json!(post.text));
            object.insert("edit_history_tweet_ids".into(), json!(post.edit_history));
            if fields.contains("author_id") {
                object.insert("author_id".into(), json!(post.author_id));
            }
            if fields.contains("created_at") {
                object.insert("created_at".into(), json!(post.created_at));
            }
            if fields.contains("lang")
                && let Some(lang) = &post.lang
            {
                object.insert("lang".into(), json!(lang));
            }
            if fields.contains("conversation_id") {
                object.insert("conversation_id".into(), json!(post.conversation_id));
            }
            if fields.contains("in_reply_to_user_id")
                && let Some(user) = post.in_reply_to_user_id
            {
                object.insert("in_reply_to_user_id".into(), json!(user));
            }
            if fields.contains("referenced_tweets") && !post.referenced_posts.is_empty() {
                object.insert("referenced_tweets".into(), json!(post.referenced_posts));
            }
            if fields.contains("public_metrics") {
                let mut metrics = json!(post.public_metrics);
                metrics["repost_count"] = json!(post.public_metrics.retweet_count);
                object.insert("public_metrics".into(), metrics);
            }
            Value::Object(object)
        }

        pub fn user_json(user: &UserRecord, fields: &Names) -> Value {
            let author = &user.author;
            let mut object = Map::new();
            object.insert("id".into(), json!(author.id));
            object.insert("name".into(), json!(author.name));
            object.insert("username".into(), json!(author.username));
            if fields.contains("created_at") {
                object.insert("created_at".into(), json!(author.created_at));
            }
            if fields.contains("description") {
                object.insert("description".into(), json!(author.description));
            }
            if fields.contains("location")
                && let Some(location) = &author.location
            {
                object.insert("location".into(), json!(location));
            }
            if fields.contains("protected") {
                object.insert("protected".into(), json!(author.protected));
            }
            if fields.contains("verified") {
                object.insert("verified".into(), json!(author.verified));
            }
            if fields.contains("public_metrics") {
                let metrics = author.metrics;
                object.insert(
                    "public_metrics".into(),
                    json!({
                        "followers_count": metrics.followers_count,
                        "following_count": metrics.following_count,
                        "tweet_count": user.post_count,
                        "post_count": user.post_count,
                        "listed_count": metrics.listed_count,
                    }),
                );
            }
            Value::Object(object)
        }

        /// A page of posts as `post_page` built it (`includes` only with posts, `meta` always).
        pub fn post_page(
            posts: &[Post],
            post_fields: &Names,
            users: Option<(&[UserRecord], &Names)>,
            next_token: Option<String>,
        ) -> Value {
            let mut meta = Map::new();
            meta.insert("result_count".into(), json!(posts.len()));
            if let (Some(newest), Some(oldest)) = (posts.iter().map(|p| p.id).max(), posts.iter().map(|p| p.id).min()) {
                meta.insert("newest_id".into(), json!(newest));
                meta.insert("oldest_id".into(), json!(oldest));
            }
            if let Some(next) = next_token {
                meta.insert("next_token".into(), json!(next));
            }
            let mut body = Map::new();
            if !posts.is_empty() {
                body.insert("data".into(), posts.iter().map(|post| post_json(post, post_fields)).collect());
                if let Some((users, fields)) = users {
                    let users: Vec<Value> = users.iter().map(|user| user_json(user, fields)).collect();
                    body.insert("includes".into(), json!({ "users": users }));
                }
            }
            body.insert("meta".into(), Value::Object(meta));
            Value::Object(body)
        }
    }

    fn names(parameter: &str, list: &[&str]) -> Names {
        if list.is_empty() {
            return Names::default();
        }
        let params = QueryParams::parse(Some(&format!("{parameter}={}", list.join(",")))).unwrap();
        params.names(&[parameter]).unwrap()
    }

    /// Every post field X knows that datapact serves, and some it does not (ignored).
    const POST_FIELD_NAMES: [&str; 10] = [
        "author_id",
        "created_at",
        "lang",
        "conversation_id",
        "in_reply_to_user_id",
        "referenced_tweets",
        "public_metrics",
        "geo",
        "entities",
        "edit_controls",
    ];
    const USER_FIELD_NAMES: [&str; 8] =
        ["created_at", "description", "location", "protected", "verified", "public_metrics", "url", "entities"];

    fn id() -> impl Strategy<Value = i64> {
        prop_oneof![1..1_000i64, 1..=i64::MAX]
    }

    /// Text with what needs escaping: quotes, backslashes, every control character, DEL,
    /// non-ASCII and astral characters.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            proptest::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('/'),
                    Just('\u{7f}'),
                    Just('é'),
                    Just('\u{2028}'),
                    Just('😀'),
                    (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or('?')),
                    proptest::char::range('a', 'z'),
                ],
                0..40
            )
            .prop_map(|chars| chars.into_iter().collect()),
        ]
    }

    prop_compose! {
        fn post()(
            id in id(),
            author in id(),
            text in text(),
            revision in 1u32..5,
            created_at in 0i64..=253_402_300_799_999,
            lang in proptest::option::of(prop_oneof![Just("en".to_owned()), Just("fr".to_owned()), text()]),
            conversation in id(),
            reply_to in proptest::option::of(id()),
            references in proptest::collection::vec((prop_oneof![Just("replied_to".to_owned()), Just("quoted".to_owned()), text()], id()), 0..3),
            history in proptest::collection::vec(id(), 0..3),
            metrics in any::<[u64; 6]>(),
        ) -> Post {
            let id = PostId::new(id);
            let mut edit_history: Vec<PostId> = history.into_iter().map(PostId::new).collect();
            edit_history.push(id);
            Post {
                id,
                author_id: UserId::new(author),
                text,
                revision,
                created_at: Timestamp(created_at),
                lang,
                conversation_id: PostId::new(conversation),
                in_reply_to_user_id: reply_to.map(UserId::new),
                referenced_posts: references.into_iter().map(|(kind, id)| ReferencedPost { kind, id: PostId::new(id) }).collect(),
                edit_history,
                public_metrics: PublicMetrics {
                    retweet_count: metrics[0],
                    reply_count: metrics[1],
                    like_count: metrics[2],
                    quote_count: metrics[3],
                    bookmark_count: metrics[4],
                    impression_count: metrics[5],
                },
                deleted_at: None,
            }
        }
    }

    prop_compose! {
        fn user()(
            id in id(),
            username in "[A-Za-z0-9_]{1,15}",
            name in text(),
            created_at in 0i64..=253_402_300_799_999,
            description in text(),
            location in proptest::option::of(text()),
            verified in any::<bool>(),
            protected in any::<bool>(),
            counts in any::<[u64; 4]>(),
        ) -> UserRecord {
            UserRecord {
                author: Author {
                    id: UserId::new(id),
                    username,
                    name,
                    created_at: Timestamp(created_at),
                    description,
                    location,
                    verified,
                    protected,
                    metrics: AuthorMetrics { followers_count: counts[0], following_count: counts[1], listed_count: counts[2] },
                },
                post_count: counts[3],
            }
        }
    }

    fn field_subset<const N: usize>(all: [&'static str; N]) -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(all.to_vec(), 0..=N)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn posts_render_as_the_value_tree_did(post in post(), fields in field_subset(POST_FIELD_NAMES)) {
            let fields = names("tweet.fields", &fields);
            let expected = oracle::post_json(&post, &fields);
            let rendered = PostJson::render(&post, PostFields::from_names(&fields), None).public().clone();
            let parsed: Value = serde_json::from_slice(&rendered).unwrap();
            prop_assert_eq!(&parsed, &expected);
            let bytes = serde_json::to_vec(&expected).unwrap();
            prop_assert_eq!(rendered.as_ref(), bytes.as_slice());
        }

        #[test]
        fn users_render_as_the_value_tree_did(user in user(), fields in field_subset(USER_FIELD_NAMES)) {
            let fields = names("user.fields", &fields);
            let expected = oracle::user_json(&user, &fields);
            let mut rendered = Vec::new();
            write_user(&mut rendered, &user, UserFields::from_names(&fields));
            let parsed: Value = serde_json::from_slice(&rendered).unwrap();
            prop_assert_eq!(&parsed, &expected);
            prop_assert_eq!(rendered, serde_json::to_vec(&expected).unwrap());
        }

        #[test]
        fn pages_render_as_the_value_tree_did(
            posts in proptest::collection::vec(post(), 0..6),
            users in proptest::option::of(proptest::collection::vec(user(), 0..3)),
            post_fields in field_subset(POST_FIELD_NAMES),
            user_fields in field_subset(USER_FIELD_NAMES),
            next_token in proptest::option::of("[a-z0-9]{1,20}"),
        ) {
            let (post_names, user_names) = (names("tweet.fields", &post_fields), names("user.fields", &user_fields));
            let expected = oracle::post_page(&posts, &post_names, users.as_deref().map(|u| (u, &user_names)), next_token.clone());
            let fields = PostFields::from_names(&post_names);
            let json: Vec<Arc<PostJson>> = posts.iter().map(|post| Arc::new(PostJson::render(post, fields, None))).collect();
            let meta = Meta::for_page(posts.iter().map(|post| post.id), next_token);
            let users = users.as_deref().filter(|_| !posts.is_empty()).map(|u| (u, UserFields::from_names(&user_names)));
            let rendered = Body { data: Data::Posts(&json), users, meta: Some(&meta), ..Body::default() }.render();
            let parsed: Value = serde_json::from_slice(&rendered).unwrap();
            prop_assert_eq!(&parsed, &expected);
            prop_assert_eq!(rendered, serde_json::to_vec(&expected).unwrap());
        }
    }

    #[test]
    fn single_objects_errors_and_absent_data() {
        let error = json!({"title": "Not Found Error", "value": "5", "detail": "Could not find tweet with id: [5]."});
        let errors = [error.clone(), error];
        let rendered = Body { errors: &errors, ..Body::default() }.render();
        assert_eq!(rendered, serde_json::to_vec(&json!({ "errors": errors })).unwrap());
        assert_eq!(Body::default().render(), b"{}");
        assert_eq!(Body { data: Data::Posts(&[]), ..Body::default() }.render(), b"{}", "no empty `data`");
        let post = PostJson::from_static(br#"{"id":"1"}"#);
        assert_eq!(Body { data: Data::Post(&post), ..Body::default() }.render(), br#"{"data":{"id":"1"}}"#);
        let meta = Meta::default();
        let empty_page = Body { meta: Some(&meta), ..Body::default() }.render();
        assert_eq!(empty_page, br#"{"meta":{"result_count":0}}"#, "no `null` anywhere, no `next_token`");
    }

    proptest! {
        #[test]
        fn times_render_as_chrono_does(ms in prop_oneof![0i64..=MAX_FOUR_DIGIT_YEAR_MILLIS, any::<i64>()]) {
            let mut rendered = Vec::new();
            write_time(&mut rendered, Timestamp(ms));
            prop_assert_eq!(rendered, serde_json::to_vec(&Timestamp(ms)).unwrap());
        }
    }

    #[test]
    fn times_at_the_edges() {
        for ms in [0, 1, 86_399_999, 86_400_000, 951_782_400_000, 1_709_210_096_789, MAX_FOUR_DIGIT_YEAR_MILLIS] {
            let mut rendered = Vec::new();
            write_time(&mut rendered, Timestamp(ms));
            assert_eq!(rendered, serde_json::to_vec(&Timestamp(ms)).unwrap(), "{ms}");
        }
    }

    #[test]
    fn field_sets_ignore_names_not_served() {
        let all = PostFields::from_names(&names("tweet.fields", &POST_FIELD_NAMES));
        assert_eq!(usize::from(all.bits()) + 1, PostFields::COUNT);
        assert_eq!(PostFields::from_bits(all.bits()), all);
        assert_eq!(PostFields::from_names(&names("tweet.fields", &["geo", "entities"])), PostFields::default());
    }
}
