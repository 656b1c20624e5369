"""tweepy (X API v2 `tweepy.Client`) against the gateway; prints a JSON summary.

Run by tests/clients.rs; see _gateway.py for the environment it expects.
"""

import datetime
import json

import tweepy

from _gateway import KEY, PLAN, attempt, capture_warnings, finish, gateway_session, route_to_gateway

caught = capture_warnings()

client = tweepy.Client(bearer_token=KEY)
route_to_gateway(client.session)

TWEET_FIELDS = ["created_at", "author_id", "lang", "conversation_id", "in_reply_to_user_id",
                "referenced_tweets", "public_metrics", "edit_history_tweet_ids"]
USER_FIELDS = ["created_at", "description", "public_metrics", "username", "name"]


def tweet_summary(tweet: tweepy.Tweet) -> dict:
    if not isinstance(tweet.created_at, datetime.datetime) or tweet.created_at.utcoffset() != datetime.timedelta(0):
        raise AssertionError(f"tweepy did not parse created_at of {tweet.id}: {tweet.created_at!r}")
    return {
        "id": str(tweet.id),
        "id_is_string": isinstance(tweet.data["id"], str),
        "text": tweet.text,
        "author_id": str(tweet.author_id),
        "created_at": tweet.data["created_at"],
        "created_at_ms": round(tweet.created_at.timestamp() * 1000),
        "lang": tweet.lang,
        "edit_history_tweet_ids": [str(i) for i in tweet.edit_history_tweet_ids],
        "is_reply": any(ref.type == "replied_to" for ref in (tweet.referenced_tweets or [])),
        "in_reply_to_user_id": None if tweet.in_reply_to_user_id is None else str(tweet.in_reply_to_user_id),
    }


def user_summary(user: tweepy.User) -> dict:
    return {
        "id": str(user.id),
        "username": user.username,
        "name": user.name,
        "created_at_ms": None if user.created_at is None else round(user.created_at.timestamp() * 1000),
        "tweet_count": (user.public_metrics or {}).get("tweet_count"),
    }


def paginate(method, **kwargs) -> dict:
    pages = []
    posts = []
    metas = []
    for response in tweepy.Paginator(method, **kwargs):
        data = response.data or []
        pages.append([str(tweet.id) for tweet in data])
        posts.extend(tweet_summary(tweet) for tweet in data)
        metas.append({key: response.meta.get(key) for key in ("result_count", "newest_id", "oldest_id")})
    return {"pages": pages, "posts": posts, "metas": metas}


summary = {"client": "tweepy", "version": tweepy.__version__}

attempt(summary, "search", lambda: paginate(
    client.search_recent_tweets, query=PLAN["search_query"], max_results=PLAN["page_size"],
    tweet_fields=TWEET_FIELDS))

attempt(summary, "search_small_pages", lambda: paginate(
    client.search_recent_tweets, query=PLAN["compound_query"], max_results=10, tweet_fields=TWEET_FIELDS))

attempt(summary, "search_relevancy", lambda: paginate(
    client.search_recent_tweets, query=PLAN["compound_query"], max_results=10, sort_order="relevancy",
    tweet_fields=TWEET_FIELDS))


def search_with_expansion() -> dict:
    response = client.search_recent_tweets(query=PLAN["reply_query"], max_results=10,
                                           expansions=["author_id"], tweet_fields=TWEET_FIELDS,
                                           user_fields=USER_FIELDS)
    return {
        "ids": [str(tweet.id) for tweet in response.data or []],
        "users": [user_summary(user) for user in response.includes.get("users", [])],
        "has_next_token": "next_token" in response.meta,
    }


attempt(summary, "search_expanded", search_with_expansion)


def malformed_query() -> dict:
    try:
        client.search_recent_tweets(query=PLAN["malformed_query"])
    except tweepy.BadRequest as error:
        return {"status": error.response.status_code, "message": str(error),
                "api_messages": error.api_messages}
    raise AssertionError("a malformed query was accepted")


attempt(summary, "malformed", malformed_query)


def lookup() -> dict:
    response = client.get_tweets(PLAN["lookup_ids"], expansions=["author_id"], tweet_fields=TWEET_FIELDS,
                                 user_fields=USER_FIELDS)
    return {
        "posts": [tweet_summary(tweet) for tweet in response.data or []],
        "users": [user_summary(user) for user in response.includes.get("users", [])],
        "errors": [{"resource_id": e.get("resource_id"), "resource_type": e.get("resource_type"),
                    "title": e.get("title")} for e in response.errors],
    }


attempt(summary, "lookup", lookup)


def single() -> dict:
    response = client.get_tweet(PLAN["single_id"], expansions=["author_id"], tweet_fields=TWEET_FIELDS,
                                 user_fields=USER_FIELDS)
    return {"post": tweet_summary(response.data),
            "users": [user_summary(user) for user in response.includes.get("users", [])]}


attempt(summary, "single", single)


def user() -> dict:
    response = client.get_user(username=PLAN["username"], user_fields=USER_FIELDS)
    by_id = client.get_user(id=response.data.id, user_fields=USER_FIELDS)
    return {"by_username": user_summary(response.data), "by_id": user_summary(by_id.data)}


attempt(summary, "user", user)

attempt(summary, "timeline", lambda: paginate(
    client.get_users_tweets, id=PLAN["user_id"], max_results=PLAN["timeline_page_size"],
    tweet_fields=TWEET_FIELDS))


def compliance() -> dict:
    """A batch compliance job as tweepy drives it (upload and download as X's docs show, with requests)."""
    job = client.create_compliance_job(type="tweets", name="datapact-check")
    second = None
    try:
        client.create_compliance_job(type="tweets")
    except tweepy.errors.HTTPException as error:
        second = {"status": error.response.status_code, "api_messages": error.api_messages}
    session = gateway_session()
    ids = "\n".join(PLAN["lookup_ids"]) + "\n"
    upload = session.put(job.data["upload_url"], data=ids, headers={"Content-Type": "text/plain"})
    polled = client.get_compliance_job(job.data["id"])
    listed = client.get_compliance_jobs(type="tweets")
    download = session.get(polled.data["download_url"])
    return {"created": job.data, "second": second, "upload_status": upload.status_code,
            "polled_status": polled.data["status"], "listed": [j["id"] for j in listed.data],
            "download_status": download.status_code,
            "result_lines": [json.loads(line) for line in download.text.splitlines()]}


attempt(summary, "compliance", compliance)

finish(summary, caught)
