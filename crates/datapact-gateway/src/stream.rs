//! `GET /2/tweets/sample/stream`: posts as they are ingested, one JSON object per `\r\n` line.
//!
//! A stream task reads the store's revision feed from where it last was, waking whenever the
//! gateway's feed follower sees something new, and writes a blank keep-alive line whenever it
//! has been quiet for [`KEEP_ALIVE`] (clients give up after 21 s of silence). At shutdown it ends
//! with X's operational-disconnect message.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use datapact_core::Post;
use serde_json::json;
use tokio::sync::mpsc;

use crate::AppState;
use crate::api::{Delivery, PostView, canary_draw};
use crate::fingerprint::Marking;
use crate::metering::{self, Rendered};
use crate::params::QueryParams;
use crate::problem::Problem;
use crate::terms::Admission;

/// Silence longer than this gets a keep-alive line.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// The longest backfill X allows.
const MAX_BACKFILL_MINUTES: usize = 5;
/// Revisions read from the store per step.
const PAGE: usize = 500;

#[utoipa::path(
    get, path = "/2/tweets/sample/stream", tag = "posts",
    params(crate::openapi::StreamParams, crate::openapi::PostFieldParams),
    responses(
        (status = 200, description = "`\\r\\n`-separated JSON objects `{data, includes}`; a blank line is a keep-alive; ends with an operational-disconnect message", content_type = "application/json"),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn sample_stream(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let params = QueryParams::parse(query.as_deref())?;
    let view = PostView::from_params(&params)?;
    let backfill_minutes = params.bounded("backfill_minutes", 0, MAX_BACKFILL_MINUTES, 0)?;
    admission.admit().await?;
    metering::check_cap(&state, &admission).await?;
    let mut wake = state.feed.subscribe();
    // Start where the feed is now, or `backfill_minutes` earlier.
    let mut after = if backfill_minutes > 0 {
        let since = state.clock.now().plus_millis(-(backfill_minutes as i64) * 60_000);
        state.store.first_revision_since(since).await? - 1
    } else {
        *wake.borrow_and_update()
    };
    let (sender, mut receiver) = mpsc::channel::<Bytes>(16);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut bursts = 0;
        loop {
            let entries = match state.store.revisions_after(after, PAGE).await {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(%error, "stream could not read the store");
                    let _ = sender.send(disconnect_line()).await;
                    return;
                }
            };
            let full_page = entries.len() == PAGE;
            if let Some(last) = entries.last() {
                after = last.seq;
            }
            // New posts only: a correction is not a new post, and deleted posts are never served.
            let snapshot = state.terms.snapshot();
            let posts: Vec<Post> = entries
                .into_iter()
                .filter(|entry| entry.post.revision == 1 && entry.post.deleted_at.is_none())
                .filter(|entry| !admission.withholds(&snapshot, entry.post.author_id))
                .map(|entry| entry.post)
                .collect();
            if !posts.is_empty() {
                // Each burst is metered (and committed) before any of its lines is written; at a
                // hard cap the burst is cut and the stream ends as X ends it, with a disconnect.
                let mut delivery = Delivery::of_posts(&state, &posts, view.post_fields);
                let canary = canary_draw(&state, &admission, delivery.len());
                if let Err(problem) = delivery.add_canary(&state, &admission, view.post_fields, canary).await {
                    tracing::warn!(detail = %problem.detail, "no canary in this stream burst");
                }
                bursts += 1;
                let burst = admission.burst(bursts, state.clock.now());
                let (body, ended) = match metering::meter_body(&state, &burst, delivery, {
                    let state = state.clone();
                    let marking = admission.marking();
                    move |delivery, _| async move { render_lines(&state, view, &delivery, marking).await }
                })
                .await
                {
                    Ok(metered) => (metered.body, metered.cut),
                    Err(problem) => {
                        if problem.cap_reset.is_none() {
                            tracing::warn!(detail = %problem.detail, "stream burst not delivered");
                        }
                        (Vec::new(), true)
                    }
                };
                if !body.is_empty() && sender.send(Bytes::from(body)).await.is_err() {
                    return; // the client went away
                }
                if ended {
                    let _ = sender.send(disconnect_line()).await;
                    return;
                }
            }
            if full_page || after < *wake.borrow() {
                continue;
            }
            tokio::select! {
                changed = wake.changed() => {
                    if changed.is_err() {
                        let _ = sender.send(disconnect_line()).await;
                        return;
                    }
                }
                _ = tokio::time::sleep(KEEP_ALIVE) => {
                    if sender.send(Bytes::from_static(b"\r\n")).await.is_err() {
                        return;
                    }
                }
                _ = shutdown.cancelled() => {
                    let _ = sender.send(disconnect_line()).await;
                    return;
                }
            }
        }
    });
    let body =
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx).map(|line| line.map(Ok::<_, Infallible>)));
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response())
}

/// One `\r\n`-terminated `{data, includes}` line per post of `delivery`.
async fn render_lines(
    state: &AppState,
    view: PostView,
    delivery: &Delivery,
    marking: Marking,
) -> Result<Rendered, Problem> {
    let mut lines = Rendered { body: Vec::new(), user_reads: 0 };
    for post in delivery.singles() {
        let line = view.body(state, &post, true, &[], None, marking).await?;
        lines.body.extend_from_slice(&line.body);
        lines.body.extend_from_slice(b"\r\n");
        lines.user_reads += line.user_reads;
    }
    Ok(lines)
}

/// X's message when it closes a stream for its own reasons; clients reconnect on it.
fn disconnect_line() -> Bytes {
    let message = json!({"errors": [{
        "title": "operational-disconnect",
        "disconnect_type": "OperationalDisconnect",
        "detail": "This stream has been disconnected for operational reasons.",
        "type": "https://api.twitter.com/2/problems/operational-disconnect",
    }]});
    let mut line = message.to_string().into_bytes();
    line.extend_from_slice(b"\r\n");
    Bytes::from(line)
}
