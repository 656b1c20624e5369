//! The licensee API: X API v2 read endpoints for posts and users.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use datapact_core::pagination;
use datapact_core::{Post, PostId, UserId};
use datapact_search::{Cursor, Filters, SortOrder};
use datapact_store::{MAX_LOOKUP_IDS, TimelineQuery, UserRecord};
use rand::Rng;
use serde_json::Value;

use crate::AppState;
use crate::canary::{self, CanaryPost};
use crate::fingerprint::{Marking, PostJson};
use crate::metering::{self, Rendered};
use crate::params::{QueryParams, parse_id};
use crate::problem::{Problem, resource_not_found};
use crate::render::{Body, Data, Meta, PostFields, UserFields};
use crate::search::PageKey;
use crate::terms::Admission;

type ApiResult = Result<Response, Problem>;

/// The field and expansion choices shared by every post endpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PostView {
    pub(crate) post_fields: PostFields,
    user_fields: UserFields,
    expand_authors: bool,
}

impl PostView {
    pub(crate) fn from_params(params: &QueryParams) -> Result<Self, Problem> {
        let expansions = params.names(&["expansions"])?;
        Ok(PostView {
            post_fields: PostFields::from_names(&params.names(&["tweet.fields", "post.fields"])?),
            user_fields: UserFields::from_names(&params.names(&["user.fields"])?),
            expand_authors: expansions.contains("author_id"),
        })
    }

    /// The authors for `includes.users`, when `expansions=author_id` asked for them and there are
    /// posts. User objects are not cached: their post counts move with every ingest.
    pub(crate) async fn includes(
        &self,
        state: &AppState,
        posts: &[PostHandle],
    ) -> Result<Option<Vec<UserRecord>>, Problem> {
        if !self.expand_authors || posts.is_empty() {
            return Ok(None);
        }
        let mut author_ids: Vec<UserId> = posts.iter().map(|post| post.author_id).collect();
        author_ids.sort_unstable();
        author_ids.dedup();
        Ok(Some(state.store.users_by_ids(&author_ids).await?))
    }

    /// The body of a response delivering `posts`: `data`, `includes` when asked for, `meta` when
    /// given. `posts` is what is delivered after metering, so `includes` and `meta` follow it.
    /// With `single`, `data` is the first post's object rather than an array.
    pub(crate) async fn body(
        &self,
        state: &AppState,
        posts: &Delivery,
        single: bool,
        errors: &[Value],
        meta: Option<&Meta>,
        marking: Marking,
    ) -> Result<Rendered, Problem> {
        let mut users = self.includes(state, &posts.handles).await?;
        let json = posts.with_canary();
        if let Some(slipped) = &posts.canary
            && self.expand_authors
        {
            let users = users.get_or_insert_with(Vec::new);
            users.push(slipped.canary.author.clone());
            users.sort_unstable_by_key(|user| user.author.id);
        }
        let written = if single { None } else { posts.written(marking) };
        let data = match (single, json.first()) {
            (false, _) if let Some(written) = &written => Data::WrittenPosts(written),
            (false, _) => Data::Posts(&json),
            (true, Some(post)) => Data::Post(post),
            (true, None) => Data::Absent,
        };
        let user_reads = users.as_ref().map_or(0, |users| users.len() as u32);
        let users = users.as_deref().map(|users| (users, self.user_fields));
        let body = Body { data, errors, users, meta, marking }.render();
        Ok(Rendered { body, user_reads })
    }
}

/// A page's canary, drawn before the page is read so that it takes one of the page's slots (the
/// handler reads one post fewer): where it goes and the randomness for its id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CanaryDraw {
    position: usize,
    pick: u64,
}

/// Whether a page of up to `limit` results carries a canary: with probability the agreement's
/// `canary_rate` per slot (at most one per page), and only when the gateway marks copies.
pub(crate) fn canary_draw(state: &AppState, admission: &Admission, limit: usize) -> Option<CanaryDraw> {
    // Most agreements have no canaries: no randomness drawn on their requests.
    if admission.canary_ppm() == 0 {
        return None;
    }
    state.feed.post_cache().fingerprint_secret()?;
    let mut rng = rand::rng();
    let draw = rng.random_range(0..1_000_000u64);
    let position = canary::slot(admission.canary_ppm(), limit, draw, rng.random::<u32>() as usize)?;
    Some(CanaryDraw { position, pick: rng.random() })
}

/// A post chosen for a response: what metering records, and what finds its rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostHandle {
    pub id: PostId,
    pub revision: u32,
    pub author_id: UserId,
}

impl PostHandle {
    fn of(post: &Post) -> Self {
        PostHandle { id: post.id, revision: post.revision, author_id: post.author_id }
    }
}

/// The posts a response delivers, in order, each with its rendered JSON.
///
/// Every post handler builds one of these after choosing its posts and before it renders the
/// body, which is where metering belongs: it reads [`Delivery::delivered`] and may cut the page
/// with [`Delivery::truncate`]; `includes` and `meta` are then derived from what is left.
#[derive(Debug, Default)]
pub struct Delivery {
    handles: Vec<PostHandle>,
    /// `json[i]` is the post object of `handles[i]`.
    json: Vec<Arc<PostJson>>,
    /// A canary slipped in before `handles[position]` (never first or last), if this page got one.
    canary: Option<Box<Slipped>>,
    /// The kept search page these are all the posts of, in order (its written `data` array is
    /// then this delivery's, while no canary is added and nothing is cut).
    page: Option<Arc<crate::search::ResolvedPage>>,
}

/// A canary in a delivery: where it goes, the post and its rendering.
#[derive(Debug)]
struct Slipped {
    position: usize,
    canary: CanaryPost,
    json: Arc<PostJson>,
}

impl Delivery {
    pub fn handles(&self) -> &[PostHandle] {
        &self.handles
    }

    /// `(post id, revision)` of each post delivered, in order.
    pub fn delivered(&self) -> impl ExactSizeIterator<Item = (PostId, u32)> + '_ {
        self.handles.iter().map(|post| (post.id, post.revision))
    }

    /// Keeps the first `len` posts only (and the canary only if it is still between two of them).
    pub fn truncate(&mut self, len: usize) {
        if len < self.handles.len() {
            self.page = None;
        }
        self.handles.truncate(len);
        self.json.truncate(len);
        if self.canary.as_ref().is_some_and(|slipped| slipped.position >= len) {
            self.canary = None;
        }
    }

    /// The id of the canary this delivery carries, if any (recorded in the ledger, never counted).
    pub fn canary(&self) -> Option<PostId> {
        self.canary.as_ref().map(|slipped| slipped.canary.post.id)
    }

    /// The post objects in the order they are written: the canary in its slot.
    fn with_canary(&self) -> std::borrow::Cow<'_, [Arc<PostJson>]> {
        match &self.canary {
            None => std::borrow::Cow::Borrowed(&self.json),
            Some(slipped) => {
                let mut json = self.json.clone();
                json.insert(slipped.position.min(json.len()), slipped.json.clone());
                std::borrow::Cow::Owned(json)
            }
        }
    }

    /// Slips the canary `draw` decided on (see [`canary_draw`]) between two of the posts: a canary
    /// made for this licensee (see [`crate::canary`]), never with an id a real post has.
    pub(crate) async fn add_canary(
        &mut self,
        state: &AppState,
        admission: &Admission,
        fields: PostFields,
        draw: Option<CanaryDraw>,
    ) -> Result<(), Problem> {
        let (Some(secret), Some(draw)) = (state.feed.post_cache().fingerprint_secret(), draw) else { return Ok(()) };
        if self.len() < 2 {
            return Ok(());
        }
        // The first slot from the drawn one whose neighbours leave room for an id between them.
        let interior = self.len() - 1;
        let Some((position, id)) = (0..interior).find_map(|step| {
            let position = 1 + (draw.position + step) % interior;
            let (newer, older) = (self.handles[position - 1].id, self.handles[position].id);
            canary::id_between(newer, older, draw.pick).map(|id| (position, id))
        }) else {
            return Ok(());
        };
        if !state.store.posts_by_ids(&[id]).await?.is_empty() {
            return Ok(());
        }
        let now = admission.now();
        let created_at = canary::snowflake_time(id, now).unwrap_or(now);
        let canary = canary::canary_post(secret, admission.licensee_id() as u64, id, created_at);
        if state.store.user_by_username(&canary.author.author.username).await?.is_some() {
            return Ok(());
        }
        let json = Arc::new(PostJson::render(&canary.post, fields, None));
        self.canary = Some(Box::new(Slipped { position, canary, json }));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// One single-post delivery per post, in order, the canary as its own (the stream writes one
    /// line per post).
    pub(crate) fn singles(&self) -> impl Iterator<Item = Delivery> + '_ {
        self.handles.iter().zip(&self.json).enumerate().flat_map(|(n, (handle, json))| {
            let canary = self.canary.as_ref().filter(|slipped| slipped.position == n).map(|slipped| Delivery {
                canary: Some(Box::new(Slipped {
                    position: 0,
                    canary: slipped.canary.clone(),
                    json: slipped.json.clone(),
                })),
                ..Delivery::default()
            });
            let post = Delivery { handles: vec![*handle], json: vec![json.clone()], ..Delivery::default() };
            canary.into_iter().chain(std::iter::once(post))
        })
    }

    fn meta(&self, next_token: Option<String>) -> Meta {
        let canary = self.canary();
        Meta::for_page(self.handles.iter().map(|post| post.id).chain(canary), next_token)
    }

    /// Posts already chosen and rendered, in order.
    pub(crate) fn of_rendered(posts: Vec<(PostHandle, Arc<PostJson>)>) -> Self {
        let (handles, json) = posts.into_iter().unzip();
        Delivery { handles, json, ..Delivery::default() }
    }

    /// All the posts of a kept search page, in order.
    fn of_page(page: Arc<crate::search::ResolvedPage>) -> Self {
        let mut delivery = Self::of_rendered(page.posts.clone());
        delivery.page = Some(page);
        delivery
    }

    /// The `data` array of this delivery in `marking`'s copy, already written, when it is a whole
    /// kept search page with nothing added.
    fn written(&self, marking: Marking) -> Option<Arc<[u8]>> {
        let page = self.page.as_ref().filter(|_| self.canary.is_none())?;
        debug_assert_eq!(page.posts.len(), self.handles.len());
        Some(page.written(marking))
    }

    /// Each post with its rendering, in order (the canary left out).
    pub(crate) fn rendered(&self) -> impl Iterator<Item = (PostHandle, Arc<PostJson>)> + '_ {
        self.handles.iter().copied().zip(self.json.iter().cloned())
    }

    /// Renders posts read from the store just now (they are current), reusing cached renderings.
    pub(crate) fn of_posts(state: &AppState, posts: &[Post], fields: PostFields) -> Self {
        let cache = state.feed.post_cache();
        let json = posts.iter().map(|post| cache.render(post, fields)).collect();
        Delivery { handles: posts.iter().map(PostHandle::of).collect(), json, ..Delivery::default() }
    }

    /// Renders the chosen posts, in order: from the cache when it holds the revision the store
    /// reported, else from the post read now. A post changed since it was chosen is taken as it
    /// is now: left out if deleted, shown at its new revision if corrected.
    async fn of_handles(state: &AppState, mut handles: Vec<PostHandle>, fields: PostFields) -> Result<Self, Problem> {
        let cache = state.feed.post_cache();
        let mut json: Vec<Option<Arc<PostJson>>> =
            handles.iter().map(|post| cache.get(post.id, post.revision, fields)).collect();
        let missing: Vec<PostId> =
            handles.iter().zip(&json).filter(|(_, json)| json.is_none()).map(|(post, _)| post.id).collect();
        if !missing.is_empty() {
            let fetched: HashMap<PostId, Post> = state
                .store
                .posts_by_ids(&missing)
                .await?
                .into_iter()
                .filter(|post| post.deleted_at.is_none())
                .map(|post| (post.id, post))
                .collect();
            for (handle, slot) in handles.iter_mut().zip(&mut json).filter(|(_, slot)| slot.is_none()) {
                if let Some(post) = fetched.get(&handle.id) {
                    handle.revision = post.revision;
                    *slot = Some(cache.render(post, fields));
                }
            }
        }
        let (handles, json) = handles.into_iter().zip(json).filter_map(|(handle, json)| Some((handle, json?))).unzip();
        Ok(Delivery { handles, json, ..Delivery::default() })
    }
}

/// The posts with these ids this request may receive, in the order of `ids`, each once: live
/// (not deleted) as of the request's start, and not by an author who opted out of the key's
/// purpose. A post deleted or
/// corrected before a request starts is never served to it: [`crate::freshness::live_revisions`]
/// answers from the feed's memory only when the feed has applied every change the store has
/// committed, and asks the store otherwise.
async fn live_posts(state: &AppState, admission: &Admission, ids: &[PostId]) -> Result<Vec<PostHandle>, Problem> {
    let mut live = live_handles(state, ids).await?;
    let snapshot = state.terms.snapshot();
    live.retain(|post| !admission.withholds(&snapshot, post.author_id));
    Ok(live)
}

/// The posts with these ids that are live as of the request's start, in the order of `ids`, each
/// once, whoever asks (no opt-outs applied).
async fn live_handles(state: &AppState, ids: &[PostId]) -> Result<Vec<PostHandle>, Problem> {
    let live = crate::freshness::live_revisions(state, ids).await?;
    Ok(live.into_iter().map(|(id, revision, author_id)| PostHandle { id, revision, author_id }).collect())
}

/// Meters `delivery` and renders it (ARCHITECTURE.md: no body leaves before its records are
/// metered). `paged` responses carry `meta`; a page cut short by a hard cap has no `next_token`
/// (the licensee is at its cap: the next request is refused anyway).
#[allow(clippy::too_many_arguments)]
async fn respond(
    state: &AppState,
    admission: &Admission,
    view: PostView,
    delivery: Delivery,
    single: bool,
    errors: Vec<Value>,
    paged: bool,
    next_token: Option<String>,
) -> ApiResult {
    let renderer = state.clone();
    let marking = admission.marking();
    metering::deliver_posts(state, admission, delivery, move |delivery, cut| async move {
        let meta = paged.then(|| delivery.meta(next_token.filter(|_| !cut)));
        view.body(&renderer, &delivery, single, &errors, meta.as_ref(), marking).await
    })
    .await
}

/// X's errors for the ids asked for (each once, in the order asked) that are not delivered.
fn not_delivered(asked: &[PostId], delivery: &Delivery, parameter: &str) -> Vec<Value> {
    let delivered: HashSet<PostId> = delivery.handles.iter().map(|post| post.id).collect();
    let mut seen = HashSet::new();
    asked
        .iter()
        .filter(|id| seen.insert(**id) && !delivered.contains(id))
        .map(|id| resource_not_found("tweet", parameter, &id.to_string()))
        .collect()
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
    admission.admit().await?;
    let chosen = live_posts(&state, &admission, &[id]).await?;
    let delivery = Delivery::of_handles(&state, chosen, view.post_fields).await?;
    let errors = not_delivered(&[id], &delivery, "id");
    respond(&state, &admission, view, delivery, true, errors, false, None).await
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
    admission.admit().await?;
    let live: HashMap<PostId, PostHandle> =
        live_posts(&state, &admission, &ids).await?.into_iter().map(|post| (post.id, post)).collect();
    let (chosen, _) = in_asked_order(&ids, live, |_| ());
    let delivery = Delivery::of_handles(&state, chosen, view.post_fields).await?;
    // Ids a hard cap cuts off are left out without an error: the response is cut, not wrong.
    let errors = not_delivered(&ids, &delivery, "ids");
    respond(&state, &admission, view, delivery, false, errors, false, None).await
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
    admission.admit().await?;
    if state.store.users_by_ids(&[author]).await?.is_empty() {
        let errors = vec![resource_not_found("user", "id", &author.to_string())];
        return respond(&state, &admission, view, Delivery::default(), false, errors, false, None).await;
    }
    // An author who opted out of this key's purpose has, for this key, no posts at all.
    if admission.withholds(&state.terms.snapshot(), author) {
        return respond(&state, &admission, view, Delivery::default(), false, Vec::new(), true, None).await;
    }
    let before_id = match (cursor, until_id) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let canary = canary_draw(&state, &admission, limit);
    let limit = limit - usize::from(canary.is_some());
    // One extra row tells whether another page exists, so `next_token` is never a dead end.
    let mut posts = state
        .store
        .timeline(author, TimelineQuery { before_id, after_id: since_id, start_time, end_time, limit: limit + 1 })
        .await?;
    let has_more = posts.len() > limit;
    posts.truncate(limit);
    let next_token = posts.last().filter(|_| has_more).map(|oldest| pagination::next_token(oldest.id));
    // Read just now, so current: rendered without asking the store again.
    let mut delivery = Delivery::of_posts(&state, &posts, view.post_fields);
    delivery.add_canary(&state, &admission, view.post_fields, canary).await?;
    respond(&state, &admission, view, delivery, false, Vec::new(), true, next_token).await
}

/// Meters and answers a users response: user objects are user reads, never records.
async fn users_body(
    state: &AppState,
    admission: &Admission,
    users: &[UserRecord],
    fields: UserFields,
    single: bool,
    errors: &[Value],
) -> ApiResult {
    let data = match (single, users.first()) {
        (false, _) => Data::Users(users, fields),
        (true, Some(user)) => Data::User(user, fields),
        (true, None) => Data::Absent,
    };
    let body = Body { data, errors, ..Body::default() }.render();
    metering::deliver_users(state, admission, Rendered { body, user_reads: users.len() as u32 }).await
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
    let fields = UserFields::from_names(&params.names(&["user.fields"])?);
    params.names(&["expansions", "tweet.fields", "post.fields"])?;
    admission.admit().await?;
    let found: HashMap<UserId, UserRecord> =
        state.store.users_by_ids(&ids).await?.into_iter().map(|user| (user.author.id, user)).collect();
    let (users, errors) = in_asked_order(&ids, found, |id| resource_not_found("user", "ids", &id.to_string()));
    users_body(&state, &admission, &users, fields, false, &errors).await
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
    let fields = UserFields::from_names(&params.names(&["user.fields"])?);
    params.names(&["expansions", "tweet.fields", "post.fields"])?;
    admission.admit().await?;
    let keys: Vec<String> = names.iter().map(|name| name.to_lowercase()).collect();
    let mut found = HashMap::new();
    for key in &keys {
        if let Some(user) = state.store.user_by_username(key).await? {
            found.insert(key.clone(), user);
        }
    }
    let (users, errors) = in_asked_order(&keys, found, |name| resource_not_found("user", "usernames", name));
    users_body(&state, &admission, &users, fields, false, &errors).await
}

/// What lookups answer: the found items in the order asked, each once (a repeated key is served
/// once), and an X resource error for each key not found.
fn in_asked_order<K: std::hash::Hash + Eq, T, E>(
    asked: &[K],
    mut found: HashMap<K, T>,
    missing: impl Fn(&K) -> E,
) -> (Vec<T>, Vec<E>) {
    let mut items = Vec::with_capacity(found.len());
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
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
    let fields = UserFields::from_names(&params.names(&["user.fields"])?);
    params.names(&["expansions", "tweet.fields", "post.fields"])?;
    admission.admit().await?;
    let users = state.store.users_by_ids(&[id]).await?;
    let errors = if users.is_empty() { vec![resource_not_found("user", "id", &id.to_string())] } else { Vec::new() };
    users_body(&state, &admission, &users, fields, true, &errors).await
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
    let fields = UserFields::from_names(&params.names(&["user.fields"])?);
    params.names(&["expansions", "tweet.fields", "post.fields"])?;
    admission.admit().await?;
    let user = state.store.user_by_username(&username).await?;
    let errors = if user.is_none() { vec![resource_not_found("user", "username", &username)] } else { Vec::new() };
    users_body(&state, &admission, user.as_slice(), fields, true, &errors).await
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
    admission.admit().await?;
    // Named before the index is read: a page resolved for this state of posts still holds.
    let posts_state = crate::freshness::posts_state(&state);
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
    let canary = canary_draw(&state, &admission, limit);
    let limit = limit - usize::from(canary.is_some());
    let mut chosen: Vec<PostHandle> = Vec::with_capacity(limit);
    let mut next = cursor;
    let mut resolved_authors: Vec<(String, Option<i64>)> = authors.into_iter().collect();
    resolved_authors.sort_unstable();
    let snapshot = state.terms.snapshot();
    let kept = |handle: &PostHandle| !admission.withholds(&snapshot, handle.author_id);
    // The first page's live posts before opt-outs, when it alone fills the response: kept with
    // their renderings for the next request that finds posts in the same state.
    let mut to_keep: Option<(Arc<crate::search::CachedPage>, Vec<PostHandle>)> = None;
    let mut reused = None;
    loop {
        let key = PageKey {
            query: raw_query.to_owned(),
            authors: resolved_authors.clone(),
            sort,
            bounds: PageKey::bounds(&filters),
            limit: limit - chosen.len(),
            after: next,
        };
        let page = state
            .index
            .search(key, |index| index.search(&resolved, &filters, sort, limit - chosen.len(), next.as_ref()))
            .ok_or_else(|| Problem::unavailable("the search index is unavailable"))?;
        let first = chosen.is_empty() && next == cursor;
        next = page.page.next;
        if first
            && let Some(resolution) = posts_state.and_then(|now| state.index.resolution(&page, now, view.post_fields))
        {
            let delivery = if resolution.posts.iter().all(|(handle, _)| kept(handle)) {
                Delivery::of_page(resolution)
            } else {
                Delivery::of_rendered(resolution.posts.iter().filter(|(handle, _)| kept(handle)).cloned().collect())
            };
            if delivery.len() >= limit || next.is_none() {
                reused = Some(delivery);
                break;
            }
        }
        let ids: Vec<PostId> = page.page.ids.iter().map(|&id| PostId::new(id)).collect();
        // In the page's order already: no map from id to post needed.
        let live = live_handles(&state, &ids).await?;
        if first && posts_state.is_some() {
            to_keep = Some((Arc::clone(&page), live.clone()));
        }
        chosen.extend(live.into_iter().filter(|handle| kept(handle)));
        if chosen.len() >= limit || next.is_none() {
            break;
        }
        // Refilled: the response is more than the first page, which alone is not worth keeping.
        to_keep = None;
    }
    let mut delivery = match reused {
        Some(delivery) => delivery,
        None => {
            let delivery = Delivery::of_handles(&state, chosen, view.post_fields).await?;
            // Kept only when no opt-out left anything out: what is kept is the page for anyone.
            if let (Some(now), Some((page, live))) = (posts_state, to_keep)
                && live.as_slice() == delivery.handles()
            {
                page.keep(crate::search::ResolvedPage::new(now, view.post_fields, delivery.rendered().collect()));
            }
            delivery
        }
    };
    delivery.add_canary(&state, &admission, view.post_fields, canary).await?;
    respond(&state, &admission, view, delivery, false, Vec::new(), true, next.map(|next| next.encode())).await
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

#[cfg(test)]
mod tests {
    //! The post cache against the guarantee it must keep: a post deleted or corrected before a
    //! request starts is never served to it as it was, even before the feed has seen the change.

    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use datapact_core::Timestamp;
    use datapact_core::ingest::{IngestRecord, parse_line};
    use datapact_store::{Change, SqliteStore, Store, ops};
    use tower::ServiceExt;

    use super::*;
    use crate::licensee_router;

    const NOW: Timestamp = Timestamp(1_700_000_000_000);
    const AUTHOR: i64 = 7;

    fn post(id: i64, text: &str) -> IngestRecord {
        let line = serde_json::json!({
            "id": id.to_string(), "text": text, "author_id": AUTHOR.to_string(),
            "created_at": "2024-01-01T00:00:00Z", "lang": "en",
            "author": {"id": AUTHOR.to_string(), "username": "writer"},
        });
        parse_line(line.to_string().as_bytes()).unwrap()
    }

    struct Gateway {
        _dir: tempfile::TempDir,
        state: AppState,
        key: String,
    }

    impl Gateway {
        async fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
            let posts = (1..=5).map(|id| post(id, &format!("post {id}, first text"))).collect();
            store.ingest(posts, NOW).await.unwrap();
            let change = Change::new("test", NOW);
            store.create_licensee("acme", &change).await.unwrap();
            let (key, _) = ops::issue_key(store.as_ref(), "acme", "search", None, &change).await.unwrap();
            let state = crate::test_state(store, dir.path()).await;
            state.feed.poll(state.store.as_ref(), &state.index).await.unwrap();
            Gateway { _dir: dir, state, key: key.as_str().to_owned() }
        }

        async fn get(&self, path: &str) -> Value {
            let request = Request::get(path).header("authorization", format!("Bearer {}", self.key));
            let response = licensee_router(self.state.clone()).oneshot(request.body(Body::empty()).unwrap()).await;
            let response = response.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["content-type"], "application/json");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            serde_json::from_slice(&body).unwrap()
        }

        /// Ingests without letting the feed see it: only the per-request store check stands
        /// between a stale cached rendering and the client.
        async fn ingest(&self, record: IngestRecord) {
            self.state.store.ingest(vec![record], NOW).await.unwrap();
        }
    }

    fn texts(body: &Value) -> Vec<&str> {
        body["data"].as_array().map_or_else(Vec::new, |posts| posts.iter().filter_map(|p| p["text"].as_str()).collect())
    }

    #[tokio::test]
    async fn cached_posts_are_never_served_after_a_correction_or_deletion() {
        let gateway = Gateway::start().await;
        let fields = "tweet.fields=lang,author_id&expansions=author_id";
        // Every endpoint fills the cache.
        let body = gateway.get(&format!("/2/tweets?ids=1,2,3&{fields}")).await;
        assert_eq!(texts(&body), ["post 1, first text", "post 2, first text", "post 3, first text"]);
        assert_eq!(body["includes"]["users"][0]["username"], "writer");
        gateway.get(&format!("/2/tweets/search/recent?query=first&{fields}")).await;
        assert!(!gateway.state.feed.post_cache().is_empty());

        gateway.ingest(post(1, "post 1, corrected")).await;
        gateway.ingest(IngestRecord::Delete { id: PostId::new(2), deleted_at: None }).await;
        let body = gateway.get(&format!("/2/tweets?ids=1,2,3&{fields}")).await;
        assert_eq!(texts(&body), ["post 1, corrected", "post 3, first text"]);
        assert_eq!(body["errors"][0]["resource_id"], "2");
        let body = gateway.get(&format!("/2/tweets/2?{fields}")).await;
        assert!(body.get("data").is_none() && body["errors"][0]["resource_id"] == "2", "{body}");
        let body = gateway.get(&format!("/2/tweets/1?{fields}")).await;
        assert_eq!(body["data"]["text"], "post 1, corrected");
        // The index has not seen the change either: search still finds 2 and the old text of 1.
        let body = gateway.get(&format!("/2/tweets/search/recent?query=first&{fields}")).await;
        assert_eq!(
            texts(&body),
            ["post 5, first text", "post 4, first text", "post 3, first text", "post 1, corrected"]
        );
        assert_eq!(body["meta"]["result_count"], 4);
        let body = gateway.get(&format!("/2/users/{AUTHOR}/tweets?{fields}")).await;
        assert_eq!(texts(&body)[3..], ["post 1, corrected"]);

        // Once the feed has seen the changes, it evicts exactly those posts.
        gateway.state.feed.poll(gateway.state.store.as_ref(), &gateway.state.index).await.unwrap();
        let cache = gateway.state.feed.post_cache();
        let view = PostFields::from_names(&QueryParams::parse(Some(fields)).unwrap().names(&["tweet.fields"]).unwrap());
        assert!(cache.get(PostId::new(1), 2, view).is_none() && cache.get(PostId::new(2), 1, view).is_none());
        assert!(cache.get(PostId::new(3), 1, view).is_some(), "unchanged posts stay cached");
    }

    #[tokio::test]
    async fn opted_out_authors_are_withheld_even_when_cached() {
        let gateway = Gateway::start().await;
        assert_eq!(texts(&gateway.get("/2/tweets?ids=1,2").await).len(), 2);
        let change = Change::new("test", NOW);
        gateway.state.store.set_opt_out(UserId::new(AUTHOR), "search", true, &change).await.unwrap();
        gateway.state.terms.reload(gateway.state.store.as_ref()).await.unwrap();
        let body = gateway.get("/2/tweets?ids=1,2").await;
        assert!(body.get("data").is_none() && body["errors"].as_array().unwrap().len() == 2, "{body}");
        let body = gateway.get("/2/tweets/search/recent?query=first").await;
        assert_eq!(body["meta"], serde_json::json!({"result_count": 0}));
    }

    /// A search page's live posts and renderings are kept for the next request, which reuses them
    /// only while no post has changed (whoever changed it), and still applies its own opt-outs.
    #[tokio::test]
    async fn a_kept_search_page_is_reused_only_while_posts_are_unchanged() {
        let gateway = Gateway::start().await;
        let search = "/2/tweets/search/recent?query=first&tweet.fields=author_id";
        let first = gateway.get(search).await;
        assert_eq!(first["meta"]["result_count"], 5);
        let found = gateway.state.index.resolutions_found();
        assert_eq!(gateway.get(search).await, first);
        assert_eq!(gateway.state.index.resolutions_found(), found + 1, "the kept page was reused");

        // Opt-outs are per key and applied to the reused page.
        let change = Change::new("test", NOW);
        gateway.state.store.set_opt_out(UserId::new(AUTHOR), "search", true, &change).await.unwrap();
        gateway.state.terms.reload(gateway.state.store.as_ref()).await.unwrap();
        assert_eq!(gateway.get(search).await["meta"], serde_json::json!({"result_count": 0}));
        gateway.state.store.set_opt_out(UserId::new(AUTHOR), "search", false, &change).await.unwrap();
        gateway.state.terms.reload(gateway.state.store.as_ref()).await.unwrap();
        assert_eq!(gateway.get(search).await, first);

        // Another process deletes and corrects: not reused, and the change is served at once.
        let other = SqliteStore::open(gateway._dir.path()).unwrap();
        other.ingest(vec![IngestRecord::Delete { id: PostId::new(2), deleted_at: None }], NOW).await.unwrap();
        other.ingest(vec![post(4, "post 4, first text, corrected")], NOW).await.unwrap();
        let found = gateway.state.index.resolutions_found();
        let body = gateway.get(search).await;
        assert_eq!(
            texts(&body),
            ["post 5, first text", "post 4, first text, corrected", "post 3, first text", "post 1, first text"]
        );
        assert_eq!(gateway.state.index.resolutions_found(), found, "posts changed: nothing reused");
        // Once the feed has applied the changes, the new page is kept and reused in turn.
        gateway.state.feed.poll(gateway.state.store.as_ref(), &gateway.state.index).await.unwrap();
        let fresh = gateway.get(search).await;
        assert_eq!(fresh["meta"]["result_count"], 4);
        assert_eq!(gateway.get(search).await, fresh);
        assert_eq!(gateway.state.index.resolutions_found(), found + 1);
    }

    #[tokio::test]
    async fn live_post_revisions_skip_deleted_and_unknown_posts() {
        let gateway = Gateway::start().await;
        gateway.ingest(post(3, "post 3, corrected")).await;
        gateway.ingest(IngestRecord::Delete { id: PostId::new(4), deleted_at: None }).await;
        let ids: Vec<PostId> = [3, 4, 5, 99, 3].into_iter().map(PostId::new).collect();
        let mut live = gateway.state.store.live_post_revisions(&ids).await.unwrap();
        live.sort();
        let author = UserId::new(AUTHOR);
        assert_eq!(live, [(PostId::new(3), 2, author), (PostId::new(5), 1, author)]);
        assert!(gateway.state.store.live_post_revisions(&[]).await.unwrap().is_empty());
    }
}
