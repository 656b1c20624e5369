"""xdk (X's own Python SDK, `xdk.Client(base_url=...)`) against the gateway; prints a JSON summary.

xdk validates every response with Pydantic models generated from X's OpenAPI document, sends
`post.fields` (not `tweet.fields`) and pages with `pagination_token`, on search too.
Run by tests/clients.rs; see _gateway.py for the environment it expects.
"""

from importlib.metadata import version

import xdk

from _gateway import BASE_URL, KEY, PLAN, attempt, capture_warnings, finish, route_to_gateway, user_summary, walk

caught = capture_warnings()

client = xdk.Client(base_url=BASE_URL, bearer_token=KEY)
route_to_gateway(client.session)

# author_id, in_reply_to_user_id and referenced_tweets are missing from xdk's type hints, but the
# generated models keep them (extra="allow"), and X serves them.
POST_FIELDS = ["created_at", "author_id", "lang", "conversation_id", "in_reply_to_user_id", "referenced_tweets",
               "edit_history_tweet_ids"]
USER_FIELDS = ["created_at", "description", "username", "name"]
# Asked for separately (see "metrics" below): xdk's models require counts the gateway does not send.
METRICS = ["public_metrics"]


def dump(model) -> dict:
    """The validated model as plain JSON, under X's names."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


summary = {"client": "xdk", "version": version("xdk")}

attempt(summary, "search", lambda: walk(
    dump(page) for page in client.posts.search_recent(
        query=PLAN["search_query"], max_results=PLAN["page_size"], post_fields=POST_FIELDS,
        expansions=["author_id"], user_fields=USER_FIELDS)))


def lookup(ids) -> dict:
    page = dump(client.posts.get_by_ids(ids=ids, post_fields=POST_FIELDS, expansions=["author_id"],
                                        user_fields=USER_FIELDS))
    result = walk([page])
    result["errors"] = [{"resource_id": e.get("resource_id"), "resource_type": e.get("resource_type"),
                         "title": e.get("title")} for e in page.get("errors", [])]
    return result


# Found posts only, then with an unknown id (a partial error in `errors`).
attempt(summary, "lookup_found", lambda: lookup([i for i in PLAN["lookup_ids"] if i != PLAN["unknown_id"]]))
attempt(summary, "lookup", lambda: lookup(PLAN["lookup_ids"]))


def single() -> dict:
    page = dump(client.posts.get_by_id(id=PLAN["single_id"], post_fields=POST_FIELDS, expansions=["author_id"],
                                       user_fields=USER_FIELDS))
    page["data"] = [page["data"]]
    return walk([page])


attempt(summary, "single", single)

attempt(summary, "user_by_username", lambda: user_summary(
    dump(client.users.get_by_username(username=PLAN["username"], user_fields=USER_FIELDS))["data"]))
attempt(summary, "users_by_ids", lambda: [user_summary(user) for user in dump(
    client.users.get_by_ids(ids=[PLAN["user_id"]], user_fields=USER_FIELDS)).get("data", [])])
attempt(summary, "users_by_usernames", lambda: [user_summary(user) for user in dump(
    client.users.get_by_usernames(usernames=[PLAN["username"]], user_fields=USER_FIELDS)).get("data", [])])

attempt(summary, "timeline", lambda: walk(
    dump(page) for page in client.users.get_posts(
        id=PLAN["user_id"], max_results=PLAN["timeline_page_size"], post_fields=POST_FIELDS)))



def metrics() -> dict:
    """public_metrics on posts and users: xdk's models require every count X's OpenAPI lists."""
    page = next(client.posts.search_recent(query=PLAN["search_query"], max_results=10,
                                           post_fields=POST_FIELDS + METRICS, expansions=["author_id"],
                                           user_fields=USER_FIELDS + METRICS))
    return walk([dump(page)])


attempt(summary, "metrics", metrics)

finish(summary, caught)
