#!/usr/bin/env python3
"""Query helpers for bench/search.sh and bench/terms.sh (standard library only).

  words CORPUS SAMPLE            frequent words: the plain-ASCII words (3+ letters) of the first
                                 SAMPLE posts of a demo corpus, by document frequency, one
                                 "word<TAB>df" per line, most frequent first
  queries WORDS COUNT TOP SEED   COUNT random two-term queries "a b" (a != b); each term's rank
                                 is drawn log-uniformly from the TOP most frequent words (as in
                                 datapact-search's latency example), so frequent words dominate
  pick URL KEY WORDS N SUFFIX MIN MAX
                                 N common two-term queries (pairs of the 25 top words) whose
                                 response with SUFFIX has 100 posts, sized closest to the middle
                                 of MIN..MAX bytes; prints them one per line
  latency URL KEY QUERIES SUFFIX OUT
                                 runs every query once, one at a time over one keep-alive
                                 connection, and prints p50/p90/p99/max over all queries; writes
                                 "ms<TAB>result_count<TAB>bytes<TAB>query" per query to OUT
"""

import http.client
import json
import math
import random
import re
import sys
import time
import urllib.parse
from collections import Counter

WORD = re.compile(r"[a-z]{3,}")
TOKEN = re.compile(r"\w+", re.UNICODE)
COUNT = re.compile(rb'"result_count":(\d+)')


def words(corpus, sample):
    df = Counter()
    with open(corpus, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= sample:
                break
            text = json.loads(line).get("text", "").lower()
            df.update({t for t in TOKEN.findall(text) if WORD.fullmatch(t)})
    for w, n in sorted(df.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{w}\t{n}")


def load_words(path):
    with open(path, encoding="utf-8") as f:
        return [line.split("\t")[0] for line in f if line.strip()]


def queries(words_file, count, top, seed):
    ws = load_words(words_file)[:top]
    rng = random.Random(seed)
    for _ in range(count):
        while True:
            a, b = (ws[min(int(len(ws) ** rng.random()) - 1, len(ws) - 1)] for _ in range(2))
            if a != b:
                break
        print(f"{a} {b}")


def path_for(query, suffix):
    return "/2/tweets/search/recent?query=" + urllib.parse.quote(query, safe="") + suffix


class Client:
    def __init__(self, url, key):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path):
        self.conn.request("GET", path, headers=self.headers)
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"{path}: HTTP {r.status}: {body[:300]!r}")
        return body


def pick(url, key, words_file, n, suffix, lo, hi):
    """Of the pairs of the 25 most frequent words, the N whose full page (100 posts) is closest
    to the middle of LO..HI bytes; fails if fewer than N full pages fall within LO..HI."""
    ws = load_words(words_file)[:25]
    client = Client(url, key)
    target = (lo + hi) / 2
    found = []
    for i in range(len(ws)):
        for j in range(i + 1, len(ws)):
            q = f"{ws[i]} {ws[j]}"
            body = client.get(path_for(q, suffix))
            m = COUNT.search(body)
            if m and int(m.group(1)) == 100 and lo <= len(body) <= hi:
                found.append((abs(len(body) - target), q))
    if len(found) < n:
        raise SystemExit(f"only {len(found)} of {n} queries have 100 posts and {lo}..{hi} bytes")
    for _, q in sorted(found)[:n]:
        print(q)


def latency(url, key, queries_file, suffix, out):
    with open(queries_file, encoding="utf-8") as f:
        qs = [line.rstrip("\n") for line in f if line.strip()]
    client = Client(url, key)
    rows = []
    for q in qs:
        path = path_for(q, suffix)
        t = time.perf_counter()
        body = client.get(path)
        ms = (time.perf_counter() - t) * 1e3
        m = COUNT.search(body)
        rows.append((ms, int(m.group(1)) if m else -1, len(body), q))
    with open(out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(f"{r[0]:.3f}\t{r[1]}\t{r[2]}\t{r[3]}\n")
    ms = sorted(r[0] for r in rows)

    def pct(p):
        return ms[min(len(ms) - 1, math.ceil(len(ms) * p) - 1)]

    full = sum(1 for r in rows if r[1] == 100)
    empty = sum(1 for r in rows if r[1] == 0)
    print(
        f"queries={len(ms)} p50_ms={pct(0.5):.2f} p90_ms={pct(0.9):.2f} p99_ms={pct(0.99):.2f} "
        f"max_ms={ms[-1]:.2f} mean_ms={sum(ms) / len(ms):.2f} qps={len(ms) / (sum(ms) / 1e3):.0f} "
        f"full_pages={full} empty={empty} mean_results={sum(r[1] for r in rows) / len(rows):.1f} "
        f"mean_bytes={sum(r[2] for r in rows) / len(rows):.0f}"
    )


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "words":
        words(args[0], int(args[1]))
    elif cmd == "queries":
        queries(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "pick":
        pick(args[0], args[1], args[2], int(args[3]), args[4], int(args[5]), int(args[6]))
    elif cmd == "latency":
        latency(args[0], args[1], args[2], args[3], args[4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
