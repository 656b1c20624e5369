//! The licensee API: X API v2 read endpoints for posts and users.

use std::collections::HashMap;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use datapact_core::pagination;
use datapact_core::{Post, PostId, UserId};
use datapact_search::{Cursor, Filters, SortOrder};
use datapact_store::{MAX_LOOKUP_IDS, TimelineQuery, UserRecord};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::params::{Names, QueryParams, parse_id};
use crate::problem::{Problem, resource_not_found};
use crate::render::{post_json, user_json};
use crate::terms::Admission;

type ApiResult = Result<Response, Problem>;

/// The field and expansion choices shared by every post endpoint.
pub(crate) struct PostView {
    pub(crate) post_fields: Names,
    user_fields: Names,
    expand_authors: bool,
}

impl PostView {
    pub(crate) fn from_params(params: &QueryParams) -> Result<Self, Problem> {
        let expansions = params.names(&["expansions"])?;
        Ok(PostView {
            post_fields: params.names(&["tweet.fields", "post.fields"])?,
            user_fields: params.names(&["user.fields"])?,
            expand_authors: expansions.contains("author_id"),
        })
    }

    /// `includes.users` for the authors of `posts`, when `expansions=author_id` asked for them.
    pub(crate) async fn includes(&self, state: &AppState, posts: &[Post]) -> Result<Option<Value>, Problem> {
        if !self.expand_authors || posts.is_empty() {
            return Ok(None);
        }
        let mut author_ids: Vec<UserId> = posts.iter().map(|post| post.author_id).collect();
        author_ids.sort_unstable();
        author_ids.dedup();
        let users = state.store.users_by_ids(&author_ids).await?;
        let users: Vec<Value> = users.iter().map(|user| user_json(user, &self.user_fields)).collect();
        Ok(Some(json!({ "users": users })))
    }
}

fn json_response(body: Map<String, Value>) -> Response {
    Json(Value::Object(body)).into_response()
}

/// `GET /2/tweets/:id`
#[utoipa::path(
    get, path = "/2/tweets/{id}", tag = "posts",
    params(("id" = String, Path, description = "Post id"), crate::openapi::PostFieldParams),
    responses(
        (status = 200, description = "The post, or `errors` if it is unknown or deleted", body = crate::openapi::PostResponse),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn post_by_id(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let id: PostId = parse_id("id", &id)?;
    let params = QueryParams::parse(query.as_deref())?;
    let view = PostView::from_params(&params)?;
    admission.admit()?;
    let posts = servable(&state, &admission, state.store.posts_by_ids(&[id]).await?);
    let mut body = Map::new();
    match posts.first() {
        Some(post) => {
            body.insert("data".into(), post_json(post, &view.post_fields));
            if let Some(includes) = view.includes(&state, &posts).await? {
                body.insert("includes".into(), includes);
            }
        }
        None => {
            body.insert("errors".into(), json!([resource_not_found("tweet", "id", &id.to_string())]));
        }
    }
    admission.served(posts.len());
    Ok(json_response(body))
}

/// `GET /2/tweets?ids=`: found posts in the order asked, the rest in `errors` (status 200).
#[utoipa::path(
    get, path = "/2/tweets", tag = "posts",
    params(crate::openapi::IdsParam, crate::openapi::PostFieldParams),
    responses(
        (status = 200, description = "Found posts in the order asked; unknown or deleted ids in `errors`", body = crate::openapi::PostsResponse),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn posts_by_ids(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = QueryParams::parse(query.as_deref())?;
    let ids: Vec<PostId> = params.id_list("ids", MAX_LOOKUP_IDS)?;
    let view = PostView::from_params(&params)?;
    admission.admit()?;
    let found: HashMap<PostId, Post> = servable(&state, &admission, state.store.posts_by_ids(&ids).await?)
        .into_iter()
        .map(|post| (post.id, post))
        .collect();
    let (posts, errors) = in_asked_order(&ids, found, |id| resource_not_found("tweet", "ids", &id.to_string()));
    let mut body = Map::new();
    if !posts.is_empty() {
        body.insert("data".into(), posts.iter().map(|post| post_json(post, &view.post_fields)).collect());
    }
    if let Some(includes) = view.includes(&state, &posts).await? {
        body.insert("includes".into(), includes);
    }
    if !errors.is_empty() {
        body.insert("errors".into(), Value::Array(errors));
    }
    admission.served(posts.len());
    Ok(json_response(body))
}

/// `GET /2/users/:id/tweets`: an author's posts, newest first, paginated.
#[utoipa::path(
    get, path = "/2/users/{id}/tweets", tag = "posts",
    params(("id" = String, Path, description = "Author id"), crate::openapi::TimelineParams, crate::openapi::PostFieldParams),
    responses(
        (status = 200, description = "A page of the author's posts, newest first", body = crate::openapi::PostPageResponse),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn user_timeline(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let author: UserId = parse_id("id", &id)?;
    let params = QueryParams::parse(query.as_deref())?;
    let view = PostView::from_params(&params)?;
    let limit = params.bounded("max_results", 5, 100, 10)?;
    let since_id: Option<PostId> = params.id("since_id")?;
    let until_id: Option<PostId> = params.id("until_id")?;
    let (start_time, end_time) = params.time_range()?;
    let cursor = match page_token(&params)? {
        None => None,
        Some((name, token)) => Some(pagination::parse_token(token).ok_or_else(|| invalid_token(name, token))?),
    };
    admission.admit()?;
    if state.store.users_by_ids(&[author]).await?.is_empty() {
        let mut body = Map::new();
        body.insert("errors".into(), json!([resource_not_found("user", "id", &author.to_string())]));
        return Ok(json_response(body));
    }
    // An author who opted out of this key's purpose has, for this key, no posts at all.
    if admission.withholds(&state.terms.snapshot(), author) {
        return Ok(json_response(post_page(&state, &view, &[], None).await?));
    }
    let before_id = match (cursor, until_id) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // One extra row tells whether another page exists, so `next_token` is never a dead end.
    let mut posts = state
        .store
        .timeline(author, TimelineQuery { before_id, after_id: since_id, start_time, end_time, limit: limit + 1 })
        .await?;
    let has_more = posts.len() > limit;
    posts.truncate(limit);
    let next_token = posts.last().filter(|_| has_more).map(|oldest| pagination::next_token(oldest.id));
    let body = post_page(&state, &view, &posts, next_token).await?;
    admission.served(posts.len());
    Ok(json_response(body))
}

fn users_body(users: &[UserRecord], fields: &Names, single: bool, errors: Vec<Value>) -> Response {
    let mut body = Map::new();
    let data: Vec<Value> = users.iter().map(|user| user_json(user, fields)).collect();
    if single {
        if let Some(user) = data.into_iter().next() {
            body.insert("data".into(), user);
        }
    } else if !data.is_empty() {
        body.insert("data".into(), Value::Array(data));
    }
    if !errors.is_empty() {
        body.insert("errors".into(), Value::Array(errors));
    }
    json_response(body)
}

/// `GET /2/users?ids=`
#[utoipa::path(
    get, path = "/2/users", tag = "users",
    params(crate::openapi::IdsParam, crate::openapi::UserFieldParams),
    responses(
        (status = 200, description = "Found users; unknown ids in `errors`", body = crate::openapi::UsersResponse),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn users_by_ids(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = QueryParams::parse(query.as_deref())?;
    let ids: Vec<UserId> = params.id_list("ids", MAX_LOOKUP_IDS)?;
    let fields = params.names(&["user.fields"])?;
    params.names(&["expansions", "tweet.fields", "post.fields"])?;
    admission.admit()?;
    let found: HashMap<UserId, UserRecord> =
        state.store.users_by_ids(&ids).await?.into_iter().map(|user| (user.author.id, user)).collect();
    let (users, errors) = in_asked_order(&ids, found, |id| resource_not_found("user", "ids", &id.to_string()));
    Ok(users_body(&users, &fields, false, errors))
}

/// `GET /2/users/by?usernames=`: found users in the order asked; unknown names in `errors`.
#[utoipa::path(
    get, path = "/2/users/by", tag = "users",
    params(crate::openapi::UsernamesParam, crate::openapi::UserFieldParams),
    responses(
        (status = 200, description = "Found users; unknown usernames in `errors`", body = crate::openapi::UsersResponse),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn users_by_usernames(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = QueryParams::parse(query.as_deref())?;
    let raw = params.get("usernames").unwrap_or_default();
    let names: Vec<&str> = raw.split(',').collect();
    if raw.is_empty() || names.len() > MAX_LOOKUP_IDS {
        return Err(Problem::invalid_parameter(
            "usernames",
            raw,
            format!("The `usernames` query parameter needs 1 to {MAX_LOOKUP_IDS} comma-separated usernames"),
        ));
    }
    for name in &names {
        check_username("usernames", name)?;
    }
    let fields = params.names(&["user.fields"])?;
    params.names(&["expansions", "tweet.fields", "post.fields"])?;
    admission.admit()?;
    let keys: Vec<String> = names.iter().map(|name| name.to_lowercase()).collect();
    let mut found = HashMap::new();
    for key in &keys {
        if let Some(user) = state.store.user_by_username(key).await? {
            found.insert(key.clone(), user);
        }
    }
    let (users, errors) = in_asked_order(&keys, found, |name| resource_not_found("user", "usernames", name));
    Ok(users_body(&users, &fields, false, errors))
}

/// What lookups answer: the found items in the order asked, each once (a repeated key is served
/// once), and an X resource error for each key not found.
fn in_asked_order<K: std::hash::Hash + Eq, T>(
    asked: &[K],
    mut found: HashMap<K, T>,
    missing: impl Fn(&K) -> Value,
) -> (Vec<T>, Vec<Value>) {
    let mut items = Vec::with_capacity(found.len());
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for key in asked {
        if !seen.insert(key) {
            continue;
        }
        match found.remove(key) {
            Some(item) => items.push(item),
            None => errors.push(missing(key)),
        }
    }
    (items, errors)
}

fn check_username(parameter: &str, username: &str) -> Result<(), Problem> {
    let valid = !username.is_empty()
        && username.len() <= datapact_core::ingest::MAX_USERNAME_CHARS
        && username.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        return Ok(());
    }
    Err(Problem::invalid_parameter(
        parameter,
        username,
        format!("The `{parameter}` value [{username}] does not match ^[A-Za-z0-9_]{{1,50}}$"),
    ))
}

/// `GET /2/users/:id`
#[utoipa::path(
    get, path = "/2/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id"), crate::openapi::UserFieldParams),
    responses(
        (status = 200, description = "The user, or `errors`", body = crate::openapi::UserResponse),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn user_by_id(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let id: UserId = parse_id("id", &id)?;
    let params = QueryParams::parse(query.as_deref())?;
    let fields = params.names(&["user.fields"])?;
    params.names(&["expansions", "tweet.fields", "post.fields"])?;
    admission.admit()?;
    let users = state.store.users_by_ids(&[id]).await?;
    let errors = if users.is_empty() { vec![resource_not_found("user", "id", &id.to_string())] } else { Vec::new() };
    Ok(users_body(&users, &fields, true, errors))
}

/// `GET /2/users/by/username/:username`
#[utoipa::path(
    get, path = "/2/users/by/username/{username}", tag = "users",
    params(("username" = String, Path, description = "Case-insensitive username"), crate::openapi::UserFieldParams),
    responses(
        (status = 200, description = "The user, or `errors`", body = crate::openapi::UserResponse),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn user_by_username(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    Path(username): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    check_username("username", &username)?;
    let params = QueryParams::parse(query.as_deref())?;
    let fields = params.names(&["user.fields"])?;
    params.names(&["expansions", "tweet.fields", "post.fields"])?;
    admission.admit()?;
    let user = state.store.user_by_username(&username).await?;
    let errors = if user.is_none() { vec![resource_not_found("user", "username", &username)] } else { Vec::new() };
    Ok(users_body(user.as_slice(), &fields, true, errors))
}

/// `GET /2/tweets/search/recent`: datapact-search's semantics over the gateway's index.
#[utoipa::path(
    get, path = "/2/tweets/search/recent", tag = "posts",
    params(crate::openapi::SearchParams, crate::openapi::PostFieldParams),
    responses(
        (status = 200, description = "A page of matching posts", body = crate::openapi::PostPageResponse),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn search_recent(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = QueryParams::parse(query.as_deref())?;
    let raw_query = params
        .get("query")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| Problem::invalid_parameter("query", "", "The `query` query parameter can not be empty"))?;
    let parsed = datapact_search::parse(raw_query)
        .map_err(|error| Problem::invalid_parameter("query", raw_query, format!("Invalid `query`: {error}")))?;
    let view = PostView::from_params(&params)?;
    let limit = params.bounded("max_results", 10, 100, 10)?;
    let sort = match params.get("sort_order") {
        None | Some("recency") => SortOrder::Recency,
        Some("relevancy") => SortOrder::Relevancy,
        Some(other) => {
            return Err(Problem::invalid_parameter(
                "sort_order",
                other,
                format!("The `sort_order` query parameter value [{other}] is not one of [recency,relevancy]"),
            ));
        }
    };
    let (start_time, end_time) = params.time_range()?;
    let filters = Filters {
        since_id: params.id::<PostId>("since_id")?.map(PostId::get),
        until_id: params.id::<PostId>("until_id")?.map(PostId::get),
        start_ms: start_time.map(|t| t.millis()),
        end_ms: end_time.map(|t| t.millis()),
    };
    let cursor = match page_token(&params)? {
        None => None,
        Some((name, token)) => Some(Cursor::decode(token, sort).ok_or_else(|| invalid_token(name, token))?),
    };
    admission.admit()?;
    let mut authors = HashMap::new();
    for username in parsed.usernames() {
        let id = state.store.user_by_username(&username).await?.map(|user| user.author.id.get());
        authors.insert(username.to_lowercase(), id);
    }
    let resolved = parsed.resolve(|username| authors.get(&username.to_lowercase()).copied().flatten());
    if !state.feed.is_caught_up() {
        return Err(Problem::unavailable("the search index is still being built; retry shortly"));
    }
    // Posts withheld from this key (author opt-outs, deletions since the index looked) are left
    // out as if absent; the page is refilled from further on so it stays full when it can.
    let mut posts: Vec<Post> = Vec::with_capacity(limit);
    let mut next = cursor;
    loop {
        let page = state
            .index
            .read(|index| index.search(&resolved, &filters, sort, limit - posts.len(), next.as_ref()))
            .ok_or_else(|| Problem::unavailable("the search index is unavailable"))?;
        let ids: Vec<PostId> = page.ids.iter().map(|&id| PostId::new(id)).collect();
        let mut found: HashMap<PostId, Post> = servable(&state, &admission, state.store.posts_by_ids(&ids).await?)
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        posts.extend(ids.iter().filter_map(|id| found.remove(id)));
        next = page.next;
        if posts.len() >= limit || next.is_none() {
            break;
        }
    }
    let body = post_page(&state, &view, &posts, next.map(|next| next.encode())).await?;
    admission.served(posts.len());
    Ok(json_response(body))
}

/// The posts this request may receive: not deleted, and not by an author who opted out of its purpose.
fn servable(state: &AppState, admission: &Admission, posts: Vec<Post>) -> Vec<Post> {
    let snapshot = state.terms.snapshot();
    posts
        .into_iter()
        .filter(|post| post.deleted_at.is_none() && !admission.withholds(&snapshot, post.author_id))
        .collect()
}

/// A page of posts with X's `meta`: `result_count`, `newest_id`, `oldest_id`, and `next_token`
/// only when another page exists (never `null`: twarc would loop forever).
async fn post_page(
    state: &AppState,
    view: &PostView,
    posts: &[Post],
    next_token: Option<String>,
) -> Result<Map<String, Value>, Problem> {
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
        body.insert("data".into(), posts.iter().map(|post| post_json(post, &view.post_fields)).collect());
    }
    if let Some(includes) = view.includes(state, posts).await? {
        body.insert("includes".into(), includes);
    }
    body.insert("meta".into(), Value::Object(meta));
    Ok(body)
}

fn invalid_token(name: &str, token: &str) -> Problem {
    Problem::invalid_parameter(
        name,
        token,
        format!("The `{name}` query parameter value [{token}] is not a valid token"),
    )
}

/// The page token under either name clients use: `next_token` (tweepy on search) or
/// `pagination_token` (xdk, twarc).
fn page_token(params: &QueryParams) -> Result<Option<(&'static str, &str)>, Problem> {
    match (params.get("next_token"), params.get("pagination_token")) {
        (Some(a), Some(b)) if a != b => {
            Err(Problem::invalid_request("`next_token` and `pagination_token` name different pages; send one of them"))
        }
        (Some(token), _) => Ok(Some(("next_token", token))),
        (None, Some(token)) => Ok(Some(("pagination_token", token))),
        (None, None) => Ok(None),
    }
}
