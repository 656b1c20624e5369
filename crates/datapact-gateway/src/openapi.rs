//! The OpenAPI documents served at `/openapi.json`, generated from the handlers' annotations
//! and the wire shapes below (the handlers build JSON by hand; these types describe it).

#![allow(dead_code)] // the types exist to be described, not constructed

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

/// A post, as X API v2 shapes it. Fields other than `id`, `text` and `edit_history_tweet_ids`
/// appear when asked for with `tweet.fields` (or `post.fields`).
#[derive(Serialize, ToSchema)]
pub struct PostObject {
    #[schema(example = "1852000000000000001")]
    id: String,
    text: String,
    edit_history_tweet_ids: Vec<String>,
    author_id: Option<String>,
    #[schema(example = "2024-01-01T00:00:00.000Z")]
    created_at: Option<String>,
    lang: Option<String>,
    conversation_id: Option<String>,
    in_reply_to_user_id: Option<String>,
    referenced_tweets: Option<Vec<ReferencedPostObject>>,
    public_metrics: Option<PostMetrics>,
}

#[derive(Serialize, ToSchema)]
pub struct ReferencedPostObject {
    /// `replied_to`, `quoted` or `retweeted`.
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Serialize, ToSchema)]
pub struct PostMetrics {
    retweet_count: u64,
    /// Same as `retweet_count`, under X's newer name.
    repost_count: u64,
    reply_count: u64,
    like_count: u64,
    quote_count: u64,
    bookmark_count: u64,
    impression_count: u64,
}

/// A user (post author). Fields beyond `id`, `name`, `username` appear with `user.fields`.
#[derive(Serialize, ToSchema)]
pub struct UserObject {
    id: String,
    name: String,
    username: String,
    created_at: Option<String>,
    description: Option<String>,
    location: Option<String>,
    protected: Option<bool>,
    verified: Option<bool>,
    public_metrics: Option<UserMetrics>,
}

/// The post count is datapact's own; audience counts are as the platform ingested them (0 when absent).
#[derive(Serialize, ToSchema)]
pub struct UserMetrics {
    followers_count: u64,
    following_count: u64,
    tweet_count: u64,
    /// Same as `tweet_count`, under X's newer name.
    post_count: u64,
    listed_count: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Includes {
    users: Vec<UserObject>,
}

/// An id that was not found (or was deleted), reported beside `data` with status 200.
#[derive(Serialize, ToSchema)]
pub struct ResourceError {
    value: String,
    detail: String,
    title: String,
    /// `tweet` or `user`.
    resource_type: String,
    parameter: String,
    resource_id: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, ToSchema)]
pub struct PageMeta {
    result_count: u64,
    newest_id: Option<String>,
    oldest_id: Option<String>,
    /// Present only when another page exists; send it back as `pagination_token` (or `next_token`).
    next_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PostResponse {
    data: Option<PostObject>,
    includes: Option<Includes>,
    errors: Option<Vec<ResourceError>>,
}

#[derive(Serialize, ToSchema)]
pub struct PostsResponse {
    data: Option<Vec<PostObject>>,
    includes: Option<Includes>,
    errors: Option<Vec<ResourceError>>,
}

#[derive(Serialize, ToSchema)]
pub struct PostPageResponse {
    data: Option<Vec<PostObject>>,
    includes: Option<Includes>,
    meta: PageMeta,
    errors: Option<Vec<ResourceError>>,
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    data: Option<UserObject>,
    errors: Option<Vec<ResourceError>>,
}

#[derive(Serialize, ToSchema)]
pub struct UsersResponse {
    data: Option<Vec<UserObject>>,
    errors: Option<Vec<ResourceError>>,
}

/// RFC 9457 problem details in X's shape, served as `application/problem+json`.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// e.g. `https://api.twitter.com/2/problems/invalid-request`, `about:blank`.
    #[serde(rename = "type")]
    kind: String,
    title: String,
    detail: String,
    status: u16,
    /// One entry per offending parameter: `{"parameters": {"name": ["value"]}, "message": "..."}`.
    errors: Vec<ProblemError>,
}

#[derive(Serialize, ToSchema)]
pub struct ProblemError {
    message: String,
    parameters: Option<std::collections::HashMap<String, Vec<String>>>,
}

/// Field selection shared by post endpoints. Unknown X field names are accepted and ignored.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PostFieldParams {
    /// Comma-separated post fields: author_id, created_at, lang, conversation_id, in_reply_to_user_id, referenced_tweets, public_metrics.
    #[param(rename = "tweet.fields")]
    tweet_fields: Option<String>,
    /// The newer name of `tweet.fields`.
    #[param(rename = "post.fields")]
    post_fields: Option<String>,
    /// `author_id` adds the authors in `includes.users`.
    expansions: Option<String>,
    /// Comma-separated user fields for expanded authors: created_at, description, location, protected, verified, public_metrics.
    #[param(rename = "user.fields")]
    user_fields: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IdsParam {
    /// 1 to 100 comma-separated ids.
    ids: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsernamesParam {
    /// 1 to 100 comma-separated usernames (case-insensitive).
    usernames: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserFieldParams {
    #[param(rename = "user.fields")]
    user_fields: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// 5 to 100, default 10.
    max_results: Option<u32>,
    /// The `next_token` of the previous page.
    pagination_token: Option<String>,
    since_id: Option<String>,
    until_id: Option<String>,
    /// RFC 3339, inclusive.
    start_time: Option<String>,
    /// RFC 3339, exclusive.
    end_time: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Terms (AND), "exact phrases", OR, parentheses, -negation, from:USERNAME, lang:xx, is:reply. At most 4,096 characters.
    query: String,
    /// 10 to 100, default 10.
    max_results: Option<u32>,
    /// `recency` (default) or `relevancy` (more matched terms first, then recency).
    sort_order: Option<String>,
    next_token: Option<String>,
    /// Accepted as a synonym of `next_token`.
    pagination_token: Option<String>,
    since_id: Option<String>,
    until_id: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// 0 to 5: also deliver posts ingested this many minutes before connecting.
    backfill_minutes: Option<u32>,
}

/// The problems every licensee endpoint can answer.
#[derive(IntoResponses)]
pub enum LicenseeProblems {
    #[response(status = 400, description = "Invalid parameters", content_type = "application/problem+json")]
    InvalidRequest(#[to_schema] Problem),
    #[response(
        status = 401,
        description = "Missing, unknown, expired or revoked key",
        content_type = "application/problem+json"
    )]
    Unauthorized(#[to_schema] Problem),
    #[response(
        status = 403,
        description = "Refused by the agreement: blocked, outside its term, network, endpoint or purpose not allowed",
        content_type = "application/problem+json"
    )]
    Forbidden(#[to_schema] Problem),
    #[response(
        status = 402,
        description = "Suspended for non-payment (`payment-required`): an invoice is unpaid past its due date and the licensee's grace days; the problem names each overdue invoice",
        content_type = "application/problem+json"
    )]
    PaymentRequired(#[to_schema] Problem),
    #[response(
        status = 409,
        description = "A request with the same `Idempotency-Key` is still being served",
        content_type = "application/problem+json"
    )]
    IdempotencyInProgress(#[to_schema] Problem),
    #[response(
        status = 422,
        description = "The `Idempotency-Key` was used for a different request in the last 24 hours",
        content_type = "application/problem+json"
    )]
    IdempotencyMismatch(#[to_schema] Problem),
    #[response(
        status = 429,
        description = "Rate limit reached, or the monthly record cap (`usage-capped`; `x-rate-limit-reset` is the cap's reset)",
        content_type = "application/problem+json"
    )]
    TooManyRequests(#[to_schema] Problem),
    #[response(
        status = 503,
        description = "The store or the usage ledger is unavailable (nothing was delivered), or the request timed out",
        content_type = "application/problem+json"
    )]
    Unavailable(#[to_schema] Problem),
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "datapact licensee API", description = "X API v2 compatible read endpoints, served under a licence agreement, and X-style deletion compliance (batch jobs with signed upload and download URLs, and an event feed)."),
    paths(
        crate::api::post_by_id,
        crate::api::posts_by_ids,
        crate::api::search_recent,
        crate::stream::sample_stream,
        crate::api::user_timeline,
        crate::api::users_by_ids,
        crate::api::users_by_usernames,
        crate::api::user_by_id,
        crate::api::user_by_username,
        crate::usage::usage_tweets,
        crate::checkpoints::list,
        crate::checkpoints::keys,
        crate::compliance::create_job,
        crate::compliance::list_jobs,
        crate::compliance::get_job,
        crate::compliance::upload,
        crate::compliance::download,
        crate::compliance::events,
    ),
    components(schemas(PostObject, UserObject, Problem, PostResponse, PostsResponse, PostPageResponse, UserResponse, UsersResponse)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct LicenseeApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "datapact admin API", description = "What the datapact command offers, over HTTP, behind the admin token."),
    paths(
        crate::admin::ingest,
        crate::admin::delete_posts,
        crate::admin::delete_post,
        crate::admin::list_licensees,
        crate::admin::create_licensee,
        crate::admin::show_licensee,
        crate::admin::issue_licensee_key,
        crate::admin::block_licensee,
        crate::admin::unblock_licensee,
        crate::admin::add_opt_out,
        crate::admin::remove_opt_out,
        crate::admin::list_violations,
        crate::admin::compliance_violations,
        crate::admin::compliance_notices,
        crate::admin::apply_terms,
        crate::admin::show_terms,
        crate::admin::audit_log,
        crate::admin::list_keys,
        crate::admin::revoke_key,
        crate::admin::backup,
        crate::admin::stats,
        crate::admin::move_test_clock,
        crate::usage::admin_usage,
        crate::usage::admin_deliveries,
        crate::usage::admin_verify,
        crate::checkpoints::admin_list,
        crate::checkpoints::keys,
        crate::admin_billing::list_invoices,
        crate::admin_billing::show_invoice,
        crate::admin_billing::issue_credit_note,
        crate::admin_billing::void_invoice,
        crate::admin_billing::run_invoices,
        crate::admin_billing::billing_summary,
        crate::admin_billing::list_credits,
        crate::admin_billing::add_credit,
        crate::admin_billing::list_webhooks,
        crate::admin_billing::add_webhook,
        crate::admin_billing::remove_webhook,
        crate::admin_billing::webhook_deliveries,
        crate::render_metrics,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct AdminApi;
