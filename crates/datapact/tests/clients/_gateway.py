"""Shared by the client scripts: where the gateway is, what to ask, how to answer.

The Rust test (`tests/clients.rs`) runs each script with
  DATAPACT_BASE_URL  the licensee listener, e.g. http://127.0.0.1:40123
  DATAPACT_KEY       a licensee key
  DATAPACT_PLAN      JSON: the queries, ids and users to ask for
and reads one JSON object, the last line the script prints on stdout.
"""

import datetime
import json
import os
import sys
import warnings

import requests
from requests.adapters import HTTPAdapter

BASE_URL = os.environ["DATAPACT_BASE_URL"].rstrip("/")
KEY = os.environ["DATAPACT_KEY"]
PLAN = json.loads(os.environ["DATAPACT_PLAN"])

TWITTER = "https://api.twitter.com"

# Every request a client sent, as "METHOD /path?query" (for assertions on parameter names).
REQUESTS = []


class GatewayAdapter(HTTPAdapter):
    """Rewrites https://api.twitter.com/... to the gateway: the clients hard-code X's host."""

    def send(self, request, **kwargs):
        if not request.url.startswith(TWITTER + "/"):
            raise RuntimeError(f"unexpected URL {request.url}")
        request.url = BASE_URL + request.url[len(TWITTER):]
        REQUESTS.append(f"{request.method} {request.url[len(BASE_URL):]}")
        return super().send(request, **kwargs)


class RecordingAdapter(HTTPAdapter):
    """For clients that take a base URL: records what they send to the gateway."""

    def send(self, request, **kwargs):
        REQUESTS.append(f"{request.method} {request.url[len(BASE_URL):]}")
        return super().send(request, **kwargs)


class NoNetworkAdapter(HTTPAdapter):
    """Anything else would leave the machine: refuse it."""

    def send(self, request, **kwargs):
        raise RuntimeError(f"refusing to reach {request.url}: only the gateway may be called")


def gateway_session() -> requests.Session:
    """A plain session for the URLs the gateway hands out (compliance upload and download):
    the gateway itself only, recorded."""
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", NoNetworkAdapter())
    session.mount("http://", NoNetworkAdapter())
    session.mount(BASE_URL, RecordingAdapter())
    return session


def route_to_gateway(session: requests.Session) -> None:
    """Mounts the adapters on a client's session; ignores proxy settings from the environment."""
    session.trust_env = False
    session.mount("https://", NoNetworkAdapter())
    session.mount("http://", NoNetworkAdapter())
    session.mount(TWITTER, GatewayAdapter())
    session.mount(BASE_URL, RecordingAdapter())


def capture_warnings():
    """Starts recording Python warnings (tweepy warns about posts missing fields)."""
    recorder = warnings.catch_warnings(record=True)
    caught = recorder.__enter__()
    warnings.simplefilter("always")
    return caught


def finish(summary: dict, caught_warnings) -> None:
    summary["requests"] = REQUESTS
    summary["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught_warnings]
    sys.stdout.flush()
    print(json.dumps(summary, sort_keys=True))


def attempt(summary: dict, name: str, check):
    """Runs one check; an exception is recorded under `name` (with the HTTP response if any)
    instead of ending the script, so one server deviation does not hide the others."""
    try:
        summary[name] = check()
    except Exception as error:  # noqa: BLE001 - we report every failure to the Rust side
        response = getattr(error, "response", None)
        detail = {"error": f"{type(error).__name__}: {error}"}
        if response is not None:
            detail["status"] = response.status_code
            detail["url"] = response.url[len(BASE_URL):] if response.url.startswith(BASE_URL) else response.url
            detail["body"] = response.text[:2000]
        summary[name] = detail


def post_summary(post: dict) -> dict:
    """What the Rust side checks of one post object, as the server sent it (twarc, xdk)."""
    created = datetime.datetime.fromisoformat(post["created_at"].replace("Z", "+00:00"))
    return {
        "id": str(post["id"]),
        "id_is_string": isinstance(post["id"], str),
        "text": post.get("text"),
        "author_id": post.get("author_id"),
        "created_at": post.get("created_at"),
        "created_at_ms": round(created.timestamp() * 1000),
        "lang": post.get("lang"),
        "edit_history_tweet_ids": post.get("edit_history_tweet_ids"),
        "is_reply": any(ref.get("type") == "replied_to" for ref in post.get("referenced_tweets") or []),
        "in_reply_to_user_id": post.get("in_reply_to_user_id"),
    }


def user_summary(user: dict) -> dict:
    created = user.get("created_at")
    if created is not None:
        created = round(datetime.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() * 1000)
    return {
        "id": user.get("id"),
        "username": user.get("username"),
        "name": user.get("name"),
        "created_at_ms": created,
        "tweet_count": (user.get("public_metrics") or {}).get("tweet_count"),
    }


def walk(pages) -> dict:
    """Summarises an iterator of raw response pages (dicts with data/includes/meta)."""
    summary = {"pages": [], "posts": [], "metas": [], "users": {}}
    for page in pages:
        data = page.get("data") or []
        summary["pages"].append([str(post["id"]) for post in data])
        summary["posts"].extend(post_summary(post) for post in data)
        meta = page.get("meta") or {}
        summary["metas"].append({key: meta.get(key) for key in ("result_count", "newest_id", "oldest_id")})
        for user in (page.get("includes") or {}).get("users", []):
            summary["users"][user["id"]] = user_summary(user)
    summary["users"] = list(summary["users"].values())
    return summary
