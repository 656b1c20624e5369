//! Rendering a search page of 100 posts with the fields of BENCHMARKS.md's (a) queries
//! (`tweet.fields=created_at,lang,public_metrics,author_id`, about 46 KB):
//!
//! - `value_tree`: the renderer datapact had before, a `serde_json::Value` per post and body;
//! - `written`: each post written by hand into its own fragment, then the body (a cold cache);
//! - `from_fragments`: the body assembled from fragments rendered earlier (a warm cache);
//! - `from_fragments_marked`: the same, each post's text as one licensee's fingerprinted copy
//!   (issue 7: marking should cost little next to the rest of a request).
//!
//! `cargo bench -p datapact-gateway --bench render`

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datapact_core::{Post, PostId, PublicMetrics, Timestamp, UserId};
use datapact_gateway::fingerprint::{Marking, PostJson};
use datapact_gateway::params::{Names, QueryParams};
use datapact_gateway::render::{Body, Data, Meta, PostFields};
use datapact_mark::Secret;
use serde_json::{Map, Value, json};

const POSTS: usize = 100;

fn posts() -> Vec<Post> {
    (0..POSTS as i64)
        .map(|n| {
            let id = PostId::new(1_800_000_000_000_000_000 + n * 7_919);
            Post {
                id,
                author_id: UserId::new(1_000_000 + n % 37),
                // Typical length, with a quote and a line break to escape, and some non-ASCII.
                text: format!(
                    "Post {n}: \"the committee will meet again on Thursday\" — notes from this morning's session, \
                     with the figures we promised.\nMore at the usual place; comments welcome. Ça avance. #update{n}"
                ),
                revision: 1,
                created_at: Timestamp(1_700_000_000_000 + n * 61_000),
                lang: Some(if n % 3 == 0 { "fr" } else { "en" }.to_owned()),
                conversation_id: id,
                in_reply_to_user_id: None,
                referenced_posts: Vec::new(),
                edit_history: vec![id],
                public_metrics: PublicMetrics {
                    retweet_count: n as u64 * 3,
                    reply_count: n as u64,
                    like_count: n as u64 * 17,
                    quote_count: 2,
                    bookmark_count: 5,
                    impression_count: n as u64 * 1_013,
                },
                deleted_at: None,
            }
        })
        .collect()
}

/// The pre-serializer `post_json`, as it was.
fn post_json(post: &Post, fields: &Names) -> Value {
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
    if fields.contains("public_metrics") {
        let mut metrics = json!(post.public_metrics);
        metrics["repost_count"] = json!(post.public_metrics.retweet_count);
        object.insert("public_metrics".into(), metrics);
    }
    Value::Object(object)
}

/// The pre-serializer `post_page` body (no includes), serialized as the `Json` response did.
fn value_tree_page(posts: &[Post], fields: &Names) -> Vec<u8> {
    let mut meta = Map::new();
    meta.insert("result_count".into(), json!(posts.len()));
    if let (Some(newest), Some(oldest)) = (posts.iter().map(|p| p.id).max(), posts.iter().map(|p| p.id).min()) {
        meta.insert("newest_id".into(), json!(newest));
        meta.insert("oldest_id".into(), json!(oldest));
    }
    meta.insert("next_token".into(), json!("b26v89c19zqg8o3fo7gghep0wmjpxpv"));
    let mut body = Map::new();
    body.insert("data".into(), posts.iter().map(|post| post_json(post, fields)).collect());
    body.insert("meta".into(), Value::Object(meta));
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

fn page(fragments: &[Arc<PostJson>], posts: &[Post], marking: Marking) -> Vec<u8> {
    let meta = Meta::for_page(posts.iter().map(|post| post.id), Some("b26v89c19zqg8o3fo7gghep0wmjpxpv".into()));
    Body { data: Data::Posts(fragments), meta: Some(&meta), marking, ..Body::default() }.render()
}

fn fragments(posts: &[Post], fields: PostFields, secret: Option<&Secret>) -> Vec<Arc<PostJson>> {
    posts.iter().map(|post| Arc::new(PostJson::render(post, fields, secret))).collect()
}

fn render(c: &mut Criterion) {
    let posts = posts();
    let params = QueryParams::parse(Some("tweet.fields=created_at,lang,public_metrics,author_id")).unwrap();
    let names = params.names(&["tweet.fields"]).unwrap();
    let fields = PostFields::from_names(&names);
    let public = fragments(&posts, fields, None);
    assert_eq!(value_tree_page(&posts, &names), page(&public, &posts, Marking::Public), "the renderers disagree");
    let secret = Secret::new(1, [7; 32]);
    let marked = fragments(&posts, fields, Some(&secret));
    let licensee = Marking::Licensee(1_001);
    assert_ne!(page(&marked, &posts, licensee), page(&public, &posts, Marking::Public), "no marks to measure");

    let mut group = c.benchmark_group("render_100_posts");
    group.throughput(Throughput::Bytes(page(&public, &posts, Marking::Public).len() as u64));
    group.bench_function("value_tree", |b| b.iter(|| value_tree_page(&posts, &names)));
    group.bench_function("written", |b| b.iter(|| page(&fragments(&posts, fields, None), &posts, Marking::Public)));
    group.bench_function("from_fragments", |b| b.iter(|| page(&public, &posts, Marking::Public)));
    group.bench_function("from_fragments_marked", |b| b.iter(|| page(&marked, &posts, licensee)));
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
