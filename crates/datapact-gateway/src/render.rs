//! Posts and users as X API v2 JSON, limited to the requested fields.

use datapact_core::Post;
use datapact_store::UserRecord;
use serde_json::{Map, Value, json};

use crate::params::Names;

/// A post object. `id`, `text` and `edit_history_tweet_ids` are always present, as in X
/// (tweepy warns when the edit history is missing); other fields only when requested.
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
    if fields.contains("lang") {
        if let Some(lang) = &post.lang {
            object.insert("lang".into(), json!(lang));
        }
    }
    if fields.contains("conversation_id") {
        object.insert("conversation_id".into(), json!(post.conversation_id));
    }
    if fields.contains("in_reply_to_user_id") {
        if let Some(user) = post.in_reply_to_user_id {
            object.insert("in_reply_to_user_id".into(), json!(user));
        }
    }
    if fields.contains("referenced_tweets") && !post.referenced_posts.is_empty() {
        object.insert("referenced_tweets".into(), json!(post.referenced_posts));
    }
    if fields.contains("public_metrics") {
        let mut metrics = json!(post.public_metrics);
        // X's newer name for retweets; X's own SDK (xdk) requires it.
        metrics["repost_count"] = json!(post.public_metrics.retweet_count);
        object.insert("public_metrics".into(), metrics);
    }
    Value::Object(object)
}

/// A user object. `id`, `name` and `username` are always present. In `public_metrics` the post
/// count is datapact's own (posts it holds, not deleted); audience counts are what the platform
/// ingested with the author (zero when it sent none).
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
    if fields.contains("location") {
        if let Some(location) = &author.location {
            object.insert("location".into(), json!(location));
        }
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
