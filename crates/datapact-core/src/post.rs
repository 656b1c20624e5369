//! Posts and their authors, as the store holds them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Error for an id that is not a positive 64-bit integer below 2^63.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid id: ids are positive integers below 2^63, written in decimal")]
pub struct IdParseError {
    pub value: String,
}

/// Parses a decimal id. X's Snowflake ids are 63-bit, which lets every store keep them as a signed
/// 64-bit integer without reordering.
fn parse_id(value: &str) -> Result<i64, IdParseError> {
    let error = || IdParseError { value: value.to_owned() };
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error());
    }
    match value.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(error()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            /// Wraps a stored id. Panics on zero or negative ids, which no store may hold.
            pub fn new(id: i64) -> Self {
                assert!(id > 0, "ids are positive");
                $name(id)
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                parse_id(value).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl Serialize for $name {
            /// Ids are JSON strings in the API, as in X's.
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            /// Accepts a decimal string or a JSON integer.
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Text(String),
                    Number(u64),
                }
                let text = match Raw::deserialize(d)? {
                    Raw::Text(text) => text,
                    Raw::Number(number) => number.to_string(),
                };
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A post's id. Each edit of a post is its own post with its own id.
    PostId
);
id_type!(
    /// A platform user's (author's) id.
    UserId
);

/// Engagement counters, as X reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicMetrics {
    pub retweet_count: u64,
    pub reply_count: u64,
    pub like_count: u64,
    pub quote_count: u64,
    pub bookmark_count: u64,
    pub impression_count: u64,
}

/// How a post refers to another: `replied_to`, `quoted` or `retweeted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencedPost {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: PostId,
}

/// A platform user who writes posts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub id: UserId,
    pub username: String,
    pub name: String,
    pub created_at: Timestamp,
    pub description: String,
    pub location: Option<String>,
    pub verified: bool,
    pub protected: bool,
    /// Audience counts as the platform reports them (zero when it does not).
    pub metrics: AuthorMetrics,
}

/// The counts X reports in a user's `public_metrics`, as ingested; the post count is the store's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorMetrics {
    pub followers_count: u64,
    pub following_count: u64,
    pub listed_count: u64,
}

/// A post as served: the latest revision of its text and everything about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    pub id: PostId,
    pub author_id: UserId,
    pub text: String,
    /// 1 for the text first ingested; each correction (same id, new text) adds one.
    pub revision: u32,
    pub created_at: Timestamp,
    pub lang: Option<String>,
    pub conversation_id: PostId,
    pub in_reply_to_user_id: Option<UserId>,
    pub referenced_posts: Vec<ReferencedPost>,
    /// Never empty: a post that was never edited lists itself.
    pub edit_history: Vec<PostId>,
    pub public_metrics: PublicMetrics,
    pub deleted_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_63_bit_decimals() {
        assert_eq!("1".parse::<PostId>().unwrap().get(), 1);
        assert_eq!("9223372036854775807".parse::<PostId>().unwrap().get(), i64::MAX);
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1.0",
            "9223372036854775808",
            "18446744073709551615",
            "1e3",
            " 1",
            "abc",
            "00000000000000000001",
        ] {
            assert!(bad.parse::<PostId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_serialize_as_strings() {
        assert_eq!(serde_json::to_string(&PostId::new(42)).unwrap(), "\"42\"");
    }
}
