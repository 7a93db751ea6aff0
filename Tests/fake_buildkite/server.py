#!/usr/bin/env python3
"""A fake of Buildkite's REST API (v2) for bklogfs's tests. See README.md beside this file.

    python3 Tests/fake_buildkite/server.py --world WORLD.json --port 0 --port-file PATH [--exit-on-stdin-close]

Binds 127.0.0.1 only. Writes the chosen port to PATH once listening; serves until SIGTERM/SIGINT
(or until stdin closes, with --exit-on-stdin-close).
"""

import argparse
import base64
import copy
import datetime as dt
import fnmatch
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, Response, g, request
from werkzeug.serving import WSGIRequestHandler, make_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
import world as world_module  # noqa: E402  (the generated organization's builds)

SCOPE_ORGS, SCOPE_PIPELINES, SCOPE_BUILDS, SCOPE_LOGS = (
    "read_organizations", "read_pipelines", "read_builds", "read_build_logs")

MSG_AUTH = "Authentication required. Please supply a valid API Access Token: https://buildkite.com/docs/apis/rest-api#authentication"
MSG_DEEP = "Listing builds this deep is not supported. Please narrow your query using filters such as branch or created_from."
NARROWING_FILTERS = ("branch", "branch[]", "commit", "commit[]", "created_from", "finished_from")
FINISHED_STATES = {"passed", "failed", "blocked", "canceled"}
# --no-rate-limit: budgets no run can spend, so a measurement sees the client's pace, not the fake's.
UNLIMITED = 10**9


def parse_time(s):
    """ISO 8601 -> aware datetime, or None if it does not parse."""
    if s is None:
        return None
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t


def now_iso():
    t = dt.datetime.now(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def truthy(v):
    return v is not None and v.lower() in ("true", "1", "yes")


class ApiError(Exception):
    def __init__(self, status, message, headers=None, body=None):
        super().__init__(message)
        self.status, self.message, self.headers, self.body = status, message, headers or {}, body


class RateBucket:
    def __init__(self, limit, window):
        self.limit, self.window = limit, window
        self.start, self.count = None, 0

    def _roll(self, now):
        if self.start is None or now - self.start >= self.window:
            self.start, self.count = now, 0

    def hit(self, now):
        self._roll(now)
        self.count += 1
        return self.count <= self.limit

    def peek(self, now):
        self._roll(now)

    def remaining(self):
        return max(0, self.limit - self.count)

    def reset_in(self, now):
        return max(1, math.ceil(self.start + self.window - now)) if self.start is not None else max(1, math.ceil(self.window))


class State:
    """The world, mutable, behind one lock."""

    def __init__(self, world):
        self.pristine = world
        self.lock = threading.RLock()
        self.reset_all()

    def reset_all(self):
        with self.lock:
            w = copy.deepcopy(self.pristine)
            self.world = w
            self.settings = dict(w["settings"])
            self.tokens = w["tokens"]
            self.users = w["users"]
            self.orgs = {o["slug"]: o for o in w["organizations"]}
            self.logs = w["logs"]
            self.jobs = {}  # job id -> (org, pipeline, build)
            self.creator = w.get("creator") or {}
            for o in w["organizations"]:
                for p in o["pipelines"]:
                    if "generated" in p:
                        p["spec"] = o["generated"]
                    p["builds"].sort(key=lambda b: b["number"], reverse=True)
                    for b in p["builds"]:
                        for j in b.get("jobs", []):
                            self.jobs[j["id"]] = (o, p, b)
            self.deleted_builds = set()  # build ids
            self.growth = Counter()  # job id -> GETs served of a growing log
            self.finished_logs = set()  # growing logs whose job finished: full content
            self.faults = []  # [{"status", "count", "path"}]
            self.reset_counters()
            self.reset_rate_limits()

    def reset_counters(self):
        with self.lock:
            self.by_endpoint, self.by_status, self.by_endpoint_status = Counter(), Counter(), Counter()
            self.log_requests = []  # (method, path, range header, status)

    def reset_rate_limits(self):
        with self.lock:
            self.org_buckets, self.user_buckets = {}, {}

    def org_bucket(self, slug):
        b = self.org_buckets.get(slug)
        if b is None:
            b = self.org_buckets[slug] = RateBucket(self.settings["org_rate_limit"], self.settings["rate_window_seconds"])
        return b

    def user_bucket(self, user):
        b = self.user_buckets.get(user)
        if b is None:
            b = self.user_buckets[user] = RateBucket(self.settings["user_rate_limit"], self.settings["rate_window_seconds"])
        return b

    # ---- log bytes
    def log_bytes(self, job_id, advance):
        spec = self.logs.get(job_id)
        if spec is None or spec.get("deleted"):
            return None
        if "path" in spec:
            return Path(spec["path"]).read_bytes()
        if "base64" in spec:
            return base64.b64decode(spec["base64"])
        gspec = spec["growing"]
        chunks = [base64.b64decode(c) for c in gspec["chunks_base64"]]
        head = base64.b64decode(gspec["initial_base64"])
        if job_id in self.finished_logs:
            return head + b"".join(chunks) + base64.b64decode(gspec.get("final_base64", ""))
        with self.lock:
            if advance:
                self.growth[job_id] += 1
            n = min(self.growth[job_id], len(chunks))
        return head + b"".join(chunks[:n])


def create_app(world, *, quiet=True):
    app = Flask(__name__)
    app.url_map.strict_slashes = False
    st = State(world)
    app.config["STATE"] = st

    # ------------------------------------------------------------ rendering

    def base():
        return request.host_url.rstrip("/")

    def api(path):
        return f"{base()}/v2{path}"

    def web(path):
        return f"{base()}/web{path}"

    def render_org(o):
        out = {k: v for k, v in o.items() if k != "pipelines"}
        s = o["slug"]
        out.update({"url": api(f"/organizations/{s}"), "web_url": web(f"/{s}"),
                    "pipelines_url": api(f"/organizations/{s}/pipelines"),
                    "agents_url": api(f"/organizations/{s}/agents"), "emojis_url": api(f"/organizations/{s}/emojis")})
        return {k: out[k] for k in ("id", "graphql_id", "url", "web_url", "name", "slug", "pipelines_url",
                                    "agents_url", "emojis_url", "created_at") if k in out}

    def render_pipeline(o, p):
        out = {k: v for k, v in p.items() if k not in ("builds", "generated", "spec")}
        out["url"] = api(f"/organizations/{o['slug']}/pipelines/{p['slug']}")
        out["web_url"] = web(f"/{o['slug']}/{p['slug']}")
        out["builds_url"] = api(f"/organizations/{o['slug']}/pipelines/{p['slug']}/builds")
        return out

    def visible_jobs(b, include_retried):
        jobs = b.get("jobs", [])
        if include_retried:
            return jobs
        return [j for j in jobs if not j.get("retried")]

    def render_job(o, p, b, j):
        out = dict(j)
        bpath = f"/organizations/{o['slug']}/pipelines/{p['slug']}/builds/{b['number']}"
        out["web_url"] = web(f"/{o['slug']}/{p['slug']}/builds/{b['number']}#{j['id']}")
        if j.get("type") == "script":
            out["build_url"] = api(bpath)
            out["log_url"] = api(f"{bpath}/jobs/{j['id']}/log")
            out["raw_log_url"] = api(f"{bpath}/jobs/{j['id']}/log.txt")
            out["artifacts_url"] = api(f"{bpath}/jobs/{j['id']}/artifacts")
        elif j.get("type") == "waiter":
            out.pop("web_url")
        elif j.get("type") == "manual":
            out["unblock_url"] = api(f"{bpath}/jobs/{j['id']}/unblock")
        elif j.get("type") == "trigger" and j.get("triggered_build"):
            tb = j["triggered_build"]
            out["triggered_build"] = {
                "id": tb["id"], "number": tb["number"],
                "url": api(f"/organizations/{tb['org']}/pipelines/{tb['pipeline']}/builds/{tb['number']}"),
                "web_url": web(f"/{tb['org']}/{tb['pipeline']}/builds/{tb['number']}")}
        return out

    def render_build(o, p, b, *, include_retried=False, exclude_jobs=False, exclude_pipeline=False):
        out = {k: v for k, v in b.items() if k != "jobs"}
        out["url"] = api(f"/organizations/{o['slug']}/pipelines/{p['slug']}/builds/{b['number']}")
        out["web_url"] = web(f"/{o['slug']}/{p['slug']}/builds/{b['number']}")
        if not exclude_jobs:
            out["jobs"] = [render_job(o, p, b, j) for j in visible_jobs(b, include_retried)]
        if not exclude_pipeline:
            out["pipeline"] = render_pipeline(o, p)
        # keep the stored key order (the real build's fields round-trip in order)
        order = list(b.keys()) + [k for k in out if k not in b]
        return {k: out[k] for k in order if k in out}

    # ------------------------------------------------------------ request plumbing

    def json_response(body, status=200, headers=None):
        r = Response(json.dumps(body), status=status, mimetype="application/json")
        for k, v in (headers or {}).items():
            r.headers[k] = v
        return r

    def token_info():
        auth = request.headers.get("Authorization", "")
        m = re.match(r"^Bearer\s+(\S+)$", auth)
        if not m or m.group(1) not in st.tokens:
            raise ApiError(401, MSG_AUTH)
        return st.tokens[m.group(1)]

    def rate_headers(org_slug, user):
        now = time.monotonic()
        h = {}
        if org_slug is not None:
            ob = st.org_bucket(org_slug)
            ob.peek(now)
            h.update({"RateLimit-Scope": "rest", "RateLimit-Remaining": str(ob.remaining()),
                      "RateLimit-Limit": str(ob.limit), "RateLimit-Reset": str(ob.reset_in(now))})
            if ob.count >= ob.limit:
                h["RateLimit-Warning"] = "You have exceeded your API rate limit."
        ub = st.user_bucket(user)
        ub.peek(now)
        h.update({"RateLimit-User-Scope": "rest_user", "RateLimit-User-Remaining": str(ub.remaining()),
                  "RateLimit-User-Limit": str(ub.limit), "RateLimit-User-Reset": str(ub.reset_in(now))})
        if ub.count >= ub.limit:
            h["RateLimit-User-Warning"] = "You have exceeded your API rate limit."
        return h

    def charge(org_slug, user):
        """Counts the request against both budgets; raises 429 if either is exceeded."""
        with st.lock:
            now = time.monotonic()
            org_ok = st.org_bucket(org_slug).hit(now) if org_slug is not None else True
            user_ok = st.user_bucket(user).hit(now)
            h = rate_headers(org_slug, user)
            if org_ok and user_ok:
                return h
            if not user_ok:
                b, scope = st.user_bucket(user), "rest_user"
            else:
                b, scope = st.org_bucket(org_slug), "rest"
            reset = b.reset_in(now)
            body = {"message": f"You have exceeded your API rate limit. Please wait {reset} seconds before making more requests.",
                    "scope": scope, "limit": b.limit, "current": b.count, "reset": reset}
            raise ApiError(429, body["message"], headers=h, body=body)

    def begin(scope, org_slug=None):
        """Auth, rate limit, scope and org access for an API request. Returns the org (or None)."""
        tok = token_info()
        g.user = tok["user"]
        allowed = tok.get("organizations")
        if org_slug is None:
            # org-less endpoints count against the token's first organization (see README)
            charge_org = allowed[0] if allowed else None
        else:
            charge_org = org_slug if (org_slug in st.orgs and (allowed is None or org_slug in allowed)) else None
        g.rate_headers = charge(charge_org, tok["user"])
        if scope not in tok["scopes"]:
            raise ApiError(403, f"Your access token doesn't have the {scope} scope")
        if org_slug is None:
            return None
        o = st.orgs.get(org_slug)
        if o is None or (allowed is not None and org_slug not in allowed):
            raise ApiError(404, "No organization found")
        return o

    def find_pipeline(o, slug):
        for p in o["pipelines"]:
            if p["slug"] == slug:
                return p
        raise ApiError(404, "No pipeline found")

    def find_build(p, number):
        try:
            n = int(number)
        except ValueError:
            raise ApiError(404, "No build found")
        if "generated" in p:
            b = generated_build(p, n)
            if b is not None and b["id"] not in st.deleted_builds:
                return b
            raise ApiError(404, "No build found")
        for b in p["builds"]:
            if b["number"] == n and b["id"] not in st.deleted_builds:
                return b
        raise ApiError(404, "No build found")

    def find_job_in_build(b, job_id):
        for j in b.get("jobs", []):
            if j["id"] == job_id:
                return j
        raise ApiError(404, "No job found")

    def find_job_in_org(o, job_id):
        loc = st.jobs.get(job_id)
        if loc is None or loc[0] is not o or loc[2]["id"] in st.deleted_builds:
            raise ApiError(404, "No job found")
        jo, jp, jb = loc
        return jp, jb, find_job_in_build(jb, job_id)

    def page_params():
        s = st.settings
        try:
            page = int(request.args.get("page", "1"))
            per_page = int(request.args.get("per_page", str(s["per_page_default"])))
        except ValueError:
            raise ApiError(400, "page and per_page must be integers")
        if page < 1 or per_page < 1:
            raise ApiError(400, "page and per_page must be positive")
        return page, min(per_page, s["per_page_max"])

    def link_header(page, per_page, total):
        last = max(1, math.ceil(total / per_page))
        args = request.args.to_dict(flat=False)

        def url(n):
            a = dict(args)
            a["page"] = [str(n)]
            a["per_page"] = [str(per_page)]
            return f"{base()}{request.path}?{urlencode(a, doseq=True)}"

        rels = []
        if page > 1:
            rels.append((url(page - 1), "prev"))
        if page < last:
            rels.append((url(page + 1), "next"))
        if page > 1:
            rels.append((url(1), "first"))
        if page < last:
            rels.append((url(last), "last"))
        return ", ".join(f'<{u}>; rel="{r}"' for u, r in rels)

    def paginate(items, *, deep_check=False):
        page, per_page = page_params()
        if deep_check and not any(k in request.args for k in NARROWING_FILTERS):
            if (page - 1) * per_page >= st.settings["deep_listing_limit"]:
                raise ApiError(400, MSG_DEEP)
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        link = link_header(page, per_page, len(items))
        if link:
            headers["Link"] = link
        return chunk, headers

    def multi(name):
        vals = request.args.getlist(name) + request.args.getlist(name + "[]")
        out = []
        for v in vals:
            out.extend(x for x in v.split(",") if x)
        return out

    # ---- the generated organization (world.GENERATED): builds computed from their numbers

    def generated_build(p, number):
        return world_module.generated_build(p["spec"], p["generated"]["index"], number, st.creator)

    class GeneratedBuilds:
        """A generated pipeline's builds numbered `low` through `high`, newest (highest) first, as a
        sequence whose items are made when taken: (org, pipeline, build)."""

        def __init__(self, o, p, low, high):
            self.o, self.p, self.low, self.high = o, p, low, high

        def __len__(self):
            return max(0, self.high - self.low + 1)

        def __getitem__(self, index):
            assert isinstance(index, slice)
            start, stop, _ = index.indices(len(self))
            return [(self.o, self.p, generated_build(self.p, self.high - i)) for i in range(start, stop)]

    def generated_numbers(p, times):
        """The numbers created in [created_from, created_to) and finished from finished_from: a range, as
        both times grow with the number."""
        spec, index = p["spec"], p["generated"]["index"]
        low, high = 1, world_module.generated_build_count(spec, index)
        origin = world_module.generated_created(spec, index, 0)
        step = spec["interval"]
        finish = 180  # world._build: finished three minutes after it was created
        if "created_from" in times:
            low = max(low, math.ceil((times["created_from"].timestamp() - origin) / step))
        if "finished_from" in times:
            low = max(low, math.ceil((times["finished_from"].timestamp() - finish - origin) / step))
        if "created_to" in times:
            high = min(high, math.ceil((times["created_to"].timestamp() - origin) / step) - 1)
        return low, high

    def list_generated_builds(o, p):
        times = request_times()
        low, high = generated_numbers(p, times)
        builds = GeneratedBuilds(o, p, low, high)
        if multi("branch") or multi("state") or multi("commit") or st.deleted_builds:
            # Filters a number cannot answer: every build of the range is made and tried.
            builds = filter_builds(builds[0:len(builds)])
        return respond_with_builds(builds)

    def list_generated_org_builds(o):
        """The organization's builds newest first: its pipelines' sequences merged as far as the page needs."""
        import heapq
        import itertools
        if multi("branch") or multi("state") or multi("commit") or st.deleted_builds:
            raise ApiError(400, "the fake does not filter a generated organization's builds by branch, state or commit")
        times = request_times()
        sequences = []
        for p in o["pipelines"]:
            low, high = generated_numbers(p, times)
            sequences.append(GeneratedBuilds(o, p, low, high))
        total = sum(len(q) for q in sequences)
        page, per_page = page_params()

        def newest_first(q):
            return ((world_module.generated_created(q.p["spec"], q.p["generated"]["index"], q.high - i), q, i)
                    for i in range(len(q)))

        merged = heapq.merge(*(newest_first(q) for q in sequences), key=lambda t: t[0], reverse=True)
        wanted = list(itertools.islice(merged, (page - 1) * per_page, page * per_page))
        items = [q[i:i + 1][0] for _, q, i in wanted]

        class Window:
            def __len__(self):
                return total

            def __getitem__(self, index):
                return items

        return respond_with_builds(Window())

    def request_times():
        times = {}
        for k in ("created_from", "created_to", "finished_from"):
            if k in request.args:
                t = parse_time(request.args[k])
                if t is None:
                    raise ApiError(400, f"{k} must be an ISO 8601 time")
                times[k] = t
        return times

    def filter_builds(pairs):
        branches = multi("branch")
        states = set(multi("state"))
        if "finished" in states:
            states |= FINISHED_STATES
        commits = set(multi("commit"))
        times = request_times()
        out = []
        for o, p, b in pairs:
            if b["id"] in st.deleted_builds:
                continue
            if branches and not any(fnmatch.fnmatchcase(b.get("branch") or "", pat) for pat in branches):
                continue
            if states and b.get("state") not in states:
                continue
            if commits and b.get("commit") not in commits:
                continue
            created = parse_time(b.get("created_at"))
            finished = parse_time(b.get("finished_at"))
            if "created_from" in times and not (created and created >= times["created_from"]):
                continue
            if "created_to" in times and not (created and created < times["created_to"]):
                continue
            if "finished_from" in times and not (finished and finished >= times["finished_from"]):
                continue
            out.append((o, p, b))
        out.sort(key=lambda t: (parse_time(t[2].get("created_at")) or dt.datetime.min.replace(tzinfo=dt.timezone.utc),
                                t[2]["number"]), reverse=True)
        return out

    def list_builds(pairs):
        return respond_with_builds(filter_builds(pairs))

    def respond_with_builds(chosen):
        chunk, headers = paginate(chosen, deep_check=True)
        inc = truthy(request.args.get("include_retried_jobs"))
        exj = truthy(request.args.get("exclude_jobs"))
        exp = truthy(request.args.get("exclude_pipeline"))
        body = [render_build(o, p, b, include_retried=inc, exclude_jobs=exj, exclude_pipeline=exp) for o, p, b in chunk]
        return json_response(body, headers=headers)

    # ------------------------------------------------------------ hooks

    @app.before_request
    def before():
        g.rate_headers = {}
        if not request.path.startswith("/v2"):
            return None
        with st.lock:
            for f in st.faults:
                if f["count"] > 0 and (not f.get("path") or re.search(f["path"], request.path)) and \
                        (not f.get("method") or f["method"].upper() == request.method):
                    f["count"] -= 1
                    status = int(f["status"])
                    if status == 429:
                        reset = int(f.get("reset", 1))
                        return json_response({"message": f"You have exceeded your API rate limit. Please wait {reset} seconds before making more requests.",
                                              "scope": "rest", "limit": st.settings["org_rate_limit"],
                                              "current": st.settings["org_rate_limit"] + 1, "reset": reset}, 429,
                                             {"RateLimit-Scope": "rest", "RateLimit-Remaining": "0",
                                              "RateLimit-Limit": str(st.settings["org_rate_limit"]),
                                              "RateLimit-Reset": str(reset),
                                              "RateLimit-Warning": "You have exceeded your API rate limit.",
                                              "X-Fake-Injected": "1"})
                    if status == 502:
                        return Response("<html><body><h1>502 Bad Gateway</h1></body></html>", status=502,
                                        mimetype="text/html", headers={"X-Fake-Injected": "1"})
                    headers = {"X-Fake-Injected": "1"}
                    if "retry_after" in f:
                        headers["Retry-After"] = str(f["retry_after"])
                    return json_response({"message": "Internal Server Error"}, status, headers)
        return None

    @app.after_request
    def after(resp):
        if request.path.startswith("/v2"):
            for k, v in (getattr(g, "rate_headers", None) or {}).items():
                resp.headers.setdefault(k, v)
            rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            template = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)
            key = f"{request.method} {template}"
            with st.lock:
                st.by_endpoint[key] += 1
                st.by_status[str(resp.status_code)] += 1
                st.by_endpoint_status[f"{key} {resp.status_code}"] += 1
                if "/log" in request.path:
                    st.log_requests.append({"method": request.method, "path": request.path,
                                            "accept": request.headers.get("Accept"),
                                            "range": request.headers.get("Range"), "status": resp.status_code})
        return resp

    @app.errorhandler(ApiError)
    def api_error(e):
        body = e.body if e.body is not None else {"message": e.message}
        headers = dict(getattr(g, "rate_headers", None) or {})
        headers.update(e.headers)
        if request.method == "HEAD":
            r = Response(status=e.status, headers=headers)
            return r
        return json_response(body, e.status, headers)

    @app.errorhandler(404)
    def not_found(e):
        return json_response({"message": "Not Found"}, 404)

    @app.errorhandler(405)
    def not_allowed(e):
        return json_response({"message": "Method Not Allowed"}, 405)

    # ------------------------------------------------------------ API

    @app.get("/")
    def root():
        return json_response({"message": "fake buildkite", "timestamp": int(time.time())})

    @app.get("/v2/organizations")
    def orgs_list():
        tok_orgs = token_info().get("organizations")
        begin(SCOPE_ORGS)
        orgs = [o for o in st.world["organizations"] if tok_orgs is None or o["slug"] in tok_orgs]
        chunk, headers = paginate(orgs)
        return json_response([render_org(o) for o in chunk], headers=headers)

    @app.get("/v2/organizations/<org>")
    def org_get(org):
        o = begin(SCOPE_ORGS, org)
        return json_response(render_org(o))

    @app.get("/v2/organizations/<org>/pipelines")
    def pipelines_list(org):
        o = begin(SCOPE_PIPELINES, org)
        chunk, headers = paginate(list(o["pipelines"]))
        return json_response([render_pipeline(o, p) for p in chunk], headers=headers)

    @app.get("/v2/organizations/<org>/pipelines/<pipeline>")
    def pipeline_get(org, pipeline):
        o = begin(SCOPE_PIPELINES, org)
        return json_response(render_pipeline(o, find_pipeline(o, pipeline)))

    @app.get("/v2/organizations/<org>/pipelines/<pipeline>/builds")
    def builds_list(org, pipeline):
        o = begin(SCOPE_BUILDS, org)
        p = find_pipeline(o, pipeline)
        if "generated" in p:
            return list_generated_builds(o, p)
        return list_builds([(o, p, b) for b in p["builds"]])

    @app.get("/v2/organizations/<org>/builds")
    def org_builds_list(org):
        o = begin(SCOPE_BUILDS, org)
        if "generated" in o:
            return list_generated_org_builds(o)
        return list_builds([(o, p, b) for p in o["pipelines"] for b in p["builds"]])

    @app.get("/v2/organizations/<org>/pipelines/<pipeline>/builds/<number>")
    def build_get(org, pipeline, number):
        o = begin(SCOPE_BUILDS, org)
        p = find_pipeline(o, pipeline)
        b = find_build(p, number)
        return json_response(render_build(o, p, b, include_retried=truthy(request.args.get("include_retried_jobs")),
                                          exclude_jobs=truthy(request.args.get("exclude_jobs")),
                                          exclude_pipeline=truthy(request.args.get("exclude_pipeline"))))

    @app.get("/v2/organizations/<org>/pipelines/<pipeline>/builds/<number>/jobs")
    def jobs_list(org, pipeline, number):
        o = begin(SCOPE_BUILDS, org)
        p = find_pipeline(o, pipeline)
        b = find_build(p, number)
        # Jobs endpoint: include_retried_jobs defaults to true (documented), unlike the builds endpoints.
        inc = request.args.get("include_retried_jobs")
        jobs = visible_jobs(b, True if inc is None else truthy(inc))
        states = set(multi("state"))
        if states:
            jobs = [j for j in jobs if j.get("state") in states]
        try:
            per_page = int(request.args.get("per_page", str(st.settings["per_page_default"])))
        except ValueError:
            raise ApiError(400, "Invalid per_page value")
        if per_page < 1:
            raise ApiError(400, "Invalid per_page value")
        per_page = min(per_page, st.settings["per_page_max"])
        if "after" in request.args and "before" in request.args:
            raise ApiError(400, "after and before are mutually exclusive")

        def decode(c):
            try:
                v = json.loads(base64.urlsafe_b64decode(c.encode() + b"==").decode())
                return int(v["i"])
            except Exception:
                raise ApiError(400, "Invalid cursor value")

        def encode(i):
            return base64.urlsafe_b64encode(json.dumps({"i": i}).encode()).decode().rstrip("=")

        if "after" in request.args:
            start = decode(request.args["after"]) + 1
            end = start + per_page
        elif "before" in request.args:
            end = decode(request.args["before"])
            start = max(0, end - per_page)
        else:
            start, end = 0, per_page
        chunk = jobs[start:end]
        args = {k: v for k, v in request.args.to_dict(flat=False).items() if k not in ("after", "before")}
        args["per_page"] = [str(per_page)]
        self_url = f"{base()}{request.path}?{urlencode(request.args.to_dict(flat=False) | {'per_page': [str(per_page)]}, doseq=True)}"
        links = {"self": self_url}
        if end < len(jobs) and chunk:
            links["next"] = f"{base()}{request.path}?{urlencode(args | {'after': [encode(start + len(chunk) - 1)]}, doseq=True)}"
        if start > 0 and chunk:
            links["prev"] = f"{base()}{request.path}?{urlencode(args | {'before': [encode(start)]}, doseq=True)}"
        return json_response({"items": [render_job(o, p, b, j) for j in chunk], "links": links})

    @app.get("/v2/organizations/<org>/pipelines/<pipeline>/builds/<number>/jobs/<job>")
    def job_get(org, pipeline, number, job):
        o = begin(SCOPE_BUILDS, org)
        p = find_pipeline(o, pipeline)
        b = find_build(p, number)
        return json_response(render_job(o, p, b, find_job_in_build(b, job)))

    @app.get("/v2/organizations/<org>/jobs/<job>")
    def org_job_get(org, job):
        o = begin(SCOPE_BUILDS, org)
        p, b, j = find_job_in_org(o, job)
        return json_response(render_job(o, p, b, j))

    # ---- logs

    def header_times(data, b):
        times = []
        started = parse_time(b.get("started_at")) or dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        fallback = int(started.timestamp() * 1e9)
        for i, line in enumerate(data.split(b"\n")):
            m = re.match(rb"^(?:\x1b_)?(?:bk;t=(\d+)\x07)?(---|\+\+\+|~~~|\^\^\^ \+\+\+) ", line)
            if m:
                times.append(int(m.group(1)) * 1_000_000 if m.group(1) else fallback + i * 1_000_000)
        return times

    def serve_log(o, p, b, j, txt_suffix):
        if j.get("type") != "script":
            raise ApiError(404, "No log found")
        want_text = txt_suffix or "text/plain" in (request.headers.get("Accept") or "")
        rng = request.headers.get("Range")
        is_head = request.method == "HEAD"
        if "generated" in p:
            data = world_module.generated_log(b["number"], j)
        else:
            data = st.log_bytes(j["id"], advance=not is_head)
        if data is None:
            raise ApiError(404, "Log not found")
        size = len(data)
        log_url = api(f"/organizations/{o['slug']}/pipelines/{p['slug']}/builds/{b['number']}/jobs/{j['id']}/log")
        if rng is not None and not is_head:
            if not want_text:
                raise ApiError(400, "Range requests are only supported with Accept: text/plain")
            m = re.fullmatch(r"\s*bytes=-(\d+)\s*", rng)
            if not m or int(m.group(1)) == 0:
                raise ApiError(400, "Only suffix byte ranges (bytes=-N) are supported")
            if size == 0:
                raise ApiError(416, "Range Not Satisfiable", headers={"Content-Range": "bytes */0"})
            n = min(int(m.group(1)), size)
            body = data[size - n:]
            return Response(body, status=206, mimetype="text/plain", headers={
                "Accept-Ranges": "bytes", "Content-Range": f"bytes {size - n}-{size - 1}/{size}"})
        if is_head:
            r = Response(status=200, mimetype="text/plain" if want_text else "application/json",
                         headers={"Accept-Ranges": "bytes"})
            r.headers["Content-Length"] = str(size)
            r.automatically_set_content_length = False
            return r
        if want_text:
            return Response(data, status=200, mimetype="text/plain", headers={"Accept-Ranges": "bytes"})
        return json_response({"url": log_url, "content": data.decode("utf-8", "replace"), "size": size,
                              "header_times": header_times(data, b)}, headers={"Accept-Ranges": "bytes"})

    def build_log(org, pipeline, number, job, txt):
        o = begin(SCOPE_LOGS, org)
        p = find_pipeline(o, pipeline)
        b = find_build(p, number)
        return serve_log(o, p, b, find_job_in_build(b, job), txt)

    def org_log(org, job, txt):
        o = begin(SCOPE_LOGS, org)
        p, b, j = find_job_in_org(o, job)
        return serve_log(o, p, b, j, txt)

    @app.route("/v2/organizations/<org>/pipelines/<pipeline>/builds/<number>/jobs/<job>/log", methods=["GET", "HEAD"])
    def build_job_log(org, pipeline, number, job):
        return build_log(org, pipeline, number, job, False)

    @app.route("/v2/organizations/<org>/pipelines/<pipeline>/builds/<number>/jobs/<job>/log.txt", methods=["GET", "HEAD"])
    def build_job_log_txt(org, pipeline, number, job):
        return build_log(org, pipeline, number, job, True)

    @app.route("/v2/organizations/<org>/jobs/<job>/log", methods=["GET", "HEAD"])
    def org_job_log(org, job):
        return org_log(org, job, False)

    @app.route("/v2/organizations/<org>/jobs/<job>/log.txt", methods=["GET", "HEAD"])
    def org_job_log_txt(org, job):
        return org_log(org, job, True)

    # ------------------------------------------------------------ control (not Buildkite's)

    def body_json():
        return request.get_json(silent=True, force=True) or {}

    @app.get("/__fake__/requests")
    def fake_requests():
        with st.lock:
            return json_response({"endpoints": dict(st.by_endpoint), "statuses": dict(st.by_status),
                                  "endpoint_statuses": dict(st.by_endpoint_status),
                                  "total": sum(st.by_endpoint.values()), "log_requests": list(st.log_requests)})

    @app.post("/__fake__/reset-counters")
    def fake_reset_counters():
        st.reset_counters()
        return json_response({"ok": True})

    @app.post("/__fake__/reset")
    def fake_reset():
        st.reset_all()
        return json_response({"ok": True})

    def locate(d):
        o = st.orgs.get(d.get("org"))
        if o is None:
            raise ApiError(404, "No organization found")
        p = find_pipeline(o, d.get("pipeline"))
        if "generated" in p:
            b = generated_build(p, int(d.get("number", -1)))
            if b is None:
                raise ApiError(404, "No build found")
            if request.path.endswith("finish-build"):
                raise ApiError(400, "a generated build is finished already")
            return o, p, b
        for b in p["builds"]:
            if b["number"] == int(d.get("number", -1)):
                return o, p, b
        raise ApiError(404, "No build found")

    @app.post("/__fake__/finish-build")
    def fake_finish_build():
        d = body_json()
        with st.lock:
            o, p, b = locate(d)
            t = now_iso()
            b["state"] = d.get("state", "passed")
            b["finished_at"] = t
            for j in b.get("jobs", []):
                if j.get("type") == "script" and j.get("state") in ("running", "scheduled", "assigned", "accepted"):
                    if j.get("started_at") is None:
                        j["started_at"] = t
                    j["state"], j["finished_at"], j["exit_status"] = "passed", t, 0
                spec = st.logs.get(j["id"])
                if spec and "growing" in spec:
                    st.finished_logs.add(j["id"])
        return json_response({"ok": True, "state": b["state"], "finished_at": b["finished_at"]})

    @app.post("/__fake__/delete-build")
    def fake_delete_build():
        d = body_json()
        with st.lock:
            o, p, b = locate(d)
            st.deleted_builds.add(b["id"])
        return json_response({"ok": True, "id": b["id"]})

    @app.post("/__fake__/fail-next")
    def fake_fail_next():
        d = body_json()
        status = int(d.get("status", 500))
        if status not in (429, 500, 502, 503):
            raise ApiError(400, "status must be 429, 500, 502 or 503")
        with st.lock:
            st.faults.append({"status": status, "count": int(d.get("count", 1)), "path": d.get("path"),
                              "method": d.get("method"), "reset": d.get("reset", 1)})
            if "retry_after" in d:
                st.faults[-1]["retry_after"] = int(d["retry_after"])
        return json_response({"ok": True})

    @app.post("/__fake__/rate-limit")
    def fake_rate_limit():
        d = body_json()
        with st.lock:
            for key, name in (("org", "org_rate_limit"), ("user", "user_rate_limit"),
                              ("window_seconds", "rate_window_seconds")):
                if key in d:
                    st.settings[name] = float(d[key]) if key == "window_seconds" else int(d[key])
            st.reset_rate_limits()  # new budgets start a fresh window; also {"reset": true} with no other key
        return json_response({"ok": True, "org": st.settings["org_rate_limit"], "user": st.settings["user_rate_limit"],
                              "window_seconds": st.settings["rate_window_seconds"]})

    @app.post("/__fake__/settings")
    def fake_settings():
        d = body_json()
        with st.lock:
            for k in ("deep_listing_limit", "per_page_default", "per_page_max"):
                if k in d:
                    st.settings[k] = int(d[k])
        return json_response(dict(st.settings))

    return app


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Buildkite REST API for tests (127.0.0.1 only).")
    ap.add_argument("--world", required=True, help="WORLD.json written by world.py")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--exit-on-stdin-close", action="store_true")
    ap.add_argument("--org-rate-limit", type=int, help="override the world's per-org budget")
    ap.add_argument("--user-rate-limit", type=int, help="override the world's per-user budget")
    ap.add_argument("--rate-window", type=float, help="seconds per rate-limit window (default 60)")
    ap.add_argument("--deep-listing-limit", type=int)
    ap.add_argument("--no-rate-limit", action="store_true",
                    help="budgets no run can spend (10^9 a window), for measurements")
    ap.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = ap.parse_args(argv)

    world = json.loads(Path(args.world).read_text())
    s = world["settings"]
    if args.org_rate_limit is not None:
        s["org_rate_limit"] = args.org_rate_limit
    if args.user_rate_limit is not None:
        s["user_rate_limit"] = args.user_rate_limit
    if args.rate_window is not None:
        s["rate_window_seconds"] = args.rate_window
    if args.deep_listing_limit is not None:
        s["deep_listing_limit"] = args.deep_listing_limit
    if args.no_rate_limit:
        s["org_rate_limit"] = s["user_rate_limit"] = UNLIMITED

    if not args.verbose:
        import logging
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(world)
    WSGIRequestHandler.protocol_version = "HTTP/1.1"  # keep-alive, as a client's connection reuse expects
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    port = server.server_port
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"fake buildkite listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.exit_on_stdin_close:
        def watch():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except Exception:
                pass
            stop()
        threading.Thread(target=watch, daemon=True).start()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
