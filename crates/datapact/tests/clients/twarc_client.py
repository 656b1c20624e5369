"""twarc2 (`twarc.client2.Twarc2`) against the gateway; prints a JSON summary.

twarc asks for every field and expansion X knows and max_results=100 unless told otherwise.
Run by tests/clients.rs; see _gateway.py for the environment it expects.
"""

import twarc
from twarc.client2 import Twarc2
from twarc.expansions import ensure_flattened

from _gateway import KEY, PLAN, attempt, capture_warnings, finish, route_to_gateway, user_summary, walk

caught = capture_warnings()


class GatewayTwarc2(Twarc2):
    """Twarc2 whose session goes to the gateway instead of api.twitter.com."""

    def connect(self):
        super().connect()
        route_to_gateway(self.client)


client = GatewayTwarc2(bearer_token=KEY)
summary = {"client": "twarc", "version": twarc.version}

attempt(summary, "search", lambda: walk(client.search_recent(PLAN["search_query"])))
attempt(summary, "search_small_pages", lambda: walk(client.search_recent(PLAN["reply_query"], max_results=10)))


def flattened() -> dict:
    page = next(client.search_recent(PLAN["compound_query"], max_results=10))
    posts = ensure_flattened(page)
    return {"ids": [post["id"] for post in posts],
            "usernames": sorted({post["author"]["username"] for post in posts})}


attempt(summary, "flattened", flattened)


def lookup() -> dict:
    pages = list(client.tweet_lookup(PLAN["lookup_ids"]))
    result = walk(pages)
    result["errors"] = [{"resource_id": e.get("resource_id"), "resource_type": e.get("resource_type"),
                         "title": e.get("title")} for page in pages for e in page.get("errors", [])]
    return result


attempt(summary, "lookup", lookup)


def users_by_id() -> list:
    return [user_summary(user) for page in client.user_lookup([PLAN["user_id"]]) for user in page.get("data", [])]


attempt(summary, "users_by_id", users_by_id)


def users_by_username() -> list:
    return [user_summary(user) for page in client.user_lookup([PLAN["username"]], usernames=True)
            for user in page.get("data", [])]


attempt(summary, "users_by_username", users_by_username)

# By id: twarc first checks the id exists with /2/users?ids=, then walks /2/users/:id/tweets.
attempt(summary, "timeline", lambda: walk(client.timeline(PLAN["user_id"], max_results=PLAN["timeline_page_size"])))
# By username: twarc resolves it with /2/users/by?usernames= first.
attempt(summary, "timeline_by_username", lambda: walk(client.timeline(PLAN["username"])))



def compliance() -> dict:
    """twarc's compliance job calls: create, get, list (with a status nothing has: an empty list)."""
    created = client.compliance_job_create("tweets", "datapact-check")
    job_id = created["data"]["id"]
    return {"created_status": created["data"]["status"],
            "got_status": client.compliance_job_get(job_id)["data"]["status"],
            "listed": [job["id"] for job in client.compliance_job_list("tweets", None)["data"]],
            "listed_failed": client.compliance_job_list("tweets", "failed")["data"],
            "id": job_id}


attempt(summary, "compliance", compliance)

finish(summary, caught)
