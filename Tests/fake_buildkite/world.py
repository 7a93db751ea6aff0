#!/usr/bin/env python3
"""A deterministic "world" of Buildkite orgs, pipelines, builds, jobs and logs for the fake API.

`build_world(seed, testdata_dir, ...)` returns a JSON-able dict; `python3 world.py OUT.json` writes one.
The server (server.py) loads such a file. Helpers at the bottom (`find_build`, `job_ids`, `log_bytes`,
`SPECIAL`) let tests find the interesting builds without hard-coding UUIDs.

Layout (see README.md for the table):
  org "acme"
    pipeline "web-app"   many generated builds (default 300, numbers with a few gaps), for pagination
    pipeline "tools"     special builds 1..6: job types, retries, parallel, empty/deleted logs, running, no jobs
  org "buildkite"
    pipeline "buildkite-cli"  the real build from build.json (number 584), ids and fields kept as they are
  org "empty-org"        no pipelines

URLs are not stored: the server renders `url`, `web_url`, `log_url`, ... against its own address.
"""

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import random
import sys
import uuid
from pathlib import Path

ALL_SCOPES = ["read_organizations", "read_pipelines", "read_builds", "read_build_logs"]

# Names the tests use; the numbers are stable for any seed.
SPECIAL = {
    "org": "acme",
    "pipeline": "tools",
    "job_types": 1,       # script (real log), waiter, manual (block), trigger, 3 parallel script jobs
    "retried": 2,         # a step retried twice (3 attempts) and a step retried once
    "empty_deleted": 3,   # a script job with an empty log, one whose log was deleted (404)
    "running": 4,         # running build: a growing log, a scheduled job; finish it with /__fake__/finish-build
    "no_jobs": 5,         # a build with no jobs at all
    "big_log": 6,         # a script job whose log is the largest real log (npm.raw)
    "big_pipeline": "web-app",
    "real_org": "buildkite",
    "real_pipeline": "buildkite-cli",
    "real_number": 584,
}

TOKENS = {
    # value: what it may do. `user` is the owner: the per-user rate limit is shared by a user's tokens.
    "bkua_fake_full": {"scopes": ALL_SCOPES, "user": "alice", "organizations": ["acme", "buildkite", "empty-org"]},
    "bkua_fake_full_alice2": {"scopes": ALL_SCOPES, "user": "alice", "organizations": ["acme", "buildkite", "empty-org"]},
    "bkua_fake_bob": {"scopes": ALL_SCOPES, "user": "bob", "organizations": ["acme"]},
    "bkua_fake_no_logs": {"scopes": ["read_organizations", "read_pipelines", "read_builds"], "user": "carol",
                          "organizations": ["acme", "buildkite"]},
    "bkua_fake_orgs_only": {"scopes": ["read_organizations"], "user": "dave", "organizations": ["acme"]},
    "bkua_fake_no_builds": {"scopes": ["read_organizations", "read_pipelines", "read_build_logs"], "user": "erin",
                            "organizations": ["acme"]},
}


def default_testdata_dir():
    env = os.environ.get("BKLOGFS_TESTDATA")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    return (repo_root.parent / "shared" / "testdata").resolve()


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def b64(data):
    return base64.b64encode(data).decode("ascii")


class _Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)

    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sha(self):
        return "%040x" % self.rng.getrandbits(160)


def _user(gen, name):
    return {"id": gen.uuid(), "name": name.capitalize(), "email": f"{name}@example.com",
            "avatar_url": "https://www.gravatar.com/avatar/00000000000000000000000000000000",
            "created_at": "2020-01-01T00:00:00.000Z"}


def _gql(kind, ident):
    return base64.b64encode(f"{kind}---{ident}".encode()).decode()


def _script_job(gen, name, step_key, state, t0, *, exit_status=0, parallel=None, retried=False, retried_in=None,
                retries_count=None, retry_type=None, started=True, finished=True):
    jid = gen.uuid()
    job = {
        "id": jid, "graphql_id": _gql("Job", jid), "type": "script", "name": name, "step_key": step_key,
        "step": {"id": gen.uuid(), "signature": None}, "priority": {"number": 0}, "agent_query_rules": ["queue=default"],
        "state": state, "command": f"scripts/{step_key or 'run'}.sh", "soft_failed": False,
        "exit_status": exit_status if finished else None, "signal": None, "signal_reason": None, "artifact_paths": "",
        "agent": ({"id": gen.uuid(), "name": "agent-" + gen.uuid()[:8]} if started else None),
        "created_at": iso(t0), "scheduled_at": iso(t0), "runnable_at": iso(t0 + dt.timedelta(seconds=1)),
        "started_at": iso(t0 + dt.timedelta(seconds=5)) if started else None,
        "finished_at": iso(t0 + dt.timedelta(seconds=65)) if finished else None,
        "expired_at": None, "retried": retried, "retried_in_job_id": retried_in, "retries_count": retries_count,
        "retry_source": None, "retry_type": retry_type,
        "parallel_group_index": parallel[0] if parallel else None,
        "parallel_group_total": parallel[1] if parallel else None,
        "matrix": None, "retried_by": None, "cluster_id": None, "cluster_url": None,
        "cluster_queue_id": None, "cluster_queue_url": None,
    }
    return job


def _waiter_job(gen):
    jid = gen.uuid()
    return {"id": jid, "graphql_id": _gql("Job", jid), "type": "waiter"}


def _manual_job(gen, t0):
    jid = gen.uuid()
    return {"id": jid, "graphql_id": _gql("Job", jid), "type": "manual", "label": ":rocket: Deploy?",
            "step_key": "approve-deploy", "state": "unblocked", "unblocked_by": None,
            "unblocked_at": iso(t0 + dt.timedelta(seconds=120)), "unblockable": False}


def _trigger_job(gen, t0, target):
    jid = gen.uuid()
    return {"id": jid, "graphql_id": _gql("Job", jid), "type": "trigger", "name": "Deploy to production",
            "step_key": "deploy-production", "state": "passed", "async": False, "created_at": iso(t0),
            "scheduled_at": iso(t0), "runnable_at": iso(t0 + dt.timedelta(seconds=1)),
            "started_at": iso(t0 + dt.timedelta(seconds=2)), "finished_at": iso(t0 + dt.timedelta(seconds=90)),
            "triggered_build": target}


def _generated_log(number, name, t0, lines=6):
    """A small log in the agent's format: bk;t markers, a section header, CRLF."""
    ms = int(t0.timestamp() * 1000)
    out = []
    out.append(f"\x1b_bk;t={ms}\x07--- :hammer: {name} (build {number})\r\n")
    for i in range(lines):
        out.append(f"\x1b_bk;t={ms + 100 * (i + 1)}\x07build {number} {name}: line {i + 1} \x1b[32mok\x1b[0m\r\n")
    out.append(f"\x1b_bk;t={ms + 100 * (lines + 1)}\x07+++ :white_check_mark: done\r\n")
    return "".join(out).encode()


def _build(gen, number, t0, state, branch, message, jobs, *, creator, finished=True, source="webhook"):
    bid = gen.uuid()
    started = t0 + dt.timedelta(seconds=3)
    return {
        "id": bid, "graphql_id": _gql("Build", bid), "number": number, "state": state,
        "cancel_reason": None, "blocked": False, "blocked_state": "", "message": message, "commit": gen.sha(),
        "branch": branch, "tag": None, "env": {}, "source": source, "author": {}, "creator": creator,
        "created_at": iso(t0), "scheduled_at": iso(t0), "started_at": iso(started),
        "failing_at": None, "finished_at": iso(t0 + dt.timedelta(minutes=3)) if finished else None,
        "meta_data": {}, "pull_request": {}, "merge_queue": None, "rebuilt_from": None,
        "jobs": jobs, "cluster_id": None, "cluster_url": None,
    }


def _pipeline(gen, slug, name, repo, created_at, creator):
    pid = gen.uuid()
    return {
        "id": pid, "graphql_id": _gql("Pipeline", pid), "name": name, "slug": slug, "description": None,
        "repository": repo, "cluster_id": None, "pipeline_template_uuid": None, "branch_configuration": None,
        "default_branch": "main",
        "provider": {"id": "github", "webhook_url": "", "settings": {"trigger_mode": "code", "repository": repo}},
        "skip_queued_branch_builds": False, "skip_queued_branch_builds_filter": None,
        "cancel_running_branch_builds": False, "cancel_running_branch_builds_filter": None, "allow_rebuilds": True,
        "badge_url": f"https://badge.buildkite.com/{gen.uuid().replace('-', '')}.svg", "created_by": creator,
        "created_at": created_at, "archived_at": None, "env": None, "scheduled_builds_count": 0,
        "running_builds_count": 0, "scheduled_jobs_count": 0, "running_jobs_count": 0, "waiting_jobs_count": 0,
        "visibility": "private", "tags": None, "emoji": None, "color": None, "configuration": "", "steps": [],
        "cluster_url": None,
        "builds": [],
    }


def _org(gen, slug, name, created_at):
    oid = gen.uuid()
    return {"id": oid, "graphql_id": _gql("Organization", oid), "name": name, "slug": slug,
            "created_at": created_at, "pipelines": []}


# Hostile names (build_world(hostile=True), `world.py --hostile`): every field has Buildkite's
# documented type, only the values are what a buggy or hostile API could send. Tests find them here.
HOSTILE = {
    "org": "hostile",
    "pipeline": "names",
    "jobs_build": 1,          # job labels, step keys and IDs of every odd kind (HOSTILE_JOBS)
    "surrogate_build": 2,     # a job label with a lone surrogate (JSON "\udc80")
    "duplicate_number": 3,    # two builds numbered 3
    "negative_number": -1,
    # pipeline slugs of org "hostile": shown as they are, or left out
    "kept_pipelines": ["names", "   ", "new\nline", "\u65e5\u672c\u8a9e", "p" * 255, "dup"],
    "left_out_pipelines": ["", ".", "..", "a/b", "nul\u0000", "p" * 1000],
    # organization slugs beside "hostile": all left out
    "left_out_orgs": ["", "..", "o/../../x", "o" * 1000],
}

# (key in the test, id or None for a generated UUID, name, step_key): the script jobs of hostile build 1.
HOSTILE_JOBS = [
    ("plain", None, "Plain", "plain"),
    ("traversal", None, "../../../etc/passwd", None),
    ("slash_key", None, "Slash", "a/b"),
    ("dot", None, ".", None),
    ("dotdot", None, "..", None),
    ("empty", None, "", ""),
    ("nul", None, "nul\u0000byte", None),
    ("newline", None, "line\nbreak\r", None),
    ("long", None, "x" * 1000, None),
    ("same1", None, "Unit tests", None),
    ("same2", None, "Unit/tests", None),
    ("uuid_label", None, "(another job's UUID)", None),
    ("build_json", None, "Build JSON", "build.json"),
    ("not_uuid", "not-a-uuid", "Not a UUID", "not uuid"),
    ("id_lint", "lint", "Lint by ID", "id-lint"),
    ("key_lint", None, "Lint", "lint"),
    ("id_newline", "nl\nid", "Newline ID", "newline-id"),
    ("id_slash", "x/../../y", "Slash ID", "slash-id"),
    ("id_dotdot", "..", "Dot-dot ID", "dotdot-id"),
    ("id_long", "i" * 300, "Long ID", "long-id"),
    ("id_dot", ".", "Dot ID", "dot-id"),
    ("id_nul", "nul\u0000id", "NUL ID", "nul-id"),
    ("id_empty", "", "Empty ID", "empty-id"),
]


def _hostile_org(gen, t):
    """Org "hostile": its pipelines' slugs, build numbers and jobs are the hostile-name matrix."""
    org = _org(gen, "hostile", "Hostile names", "2024-01-01T00:00:00.000Z")
    creator = {"id": gen.uuid(), "name": "Mallory", "email": "mallory@example.com",
               "avatar_url": "https://www.gravatar.com/avatar/00000000000000000000000000000000",
               "created_at": "2024-01-01T00:00:00.000Z"}
    logs = {}
    names = _pipeline(gen, "names", "Names", "git@github.com:hostile/names.git", "2024-01-02T00:00:00.000Z", creator)
    jobs = []
    for n, (key, jid, name, step_key) in enumerate(HOSTILE_JOBS):
        j = _script_job(gen, name, step_key, "passed", t)
        if jid is not None:
            j["id"] = jid
            j["graphql_id"] = _gql("Job", jid)
        logs[j["id"]] = {"base64": b64(f"log of {key} ({n})\r\n".encode())}
        j["_hostile_key"] = key
        jobs.append(j)
    by_key = {j["_hostile_key"]: j for j in jobs}
    by_key["uuid_label"]["name"] = by_key["plain"]["id"]
    # The same job twice (an API bug): the catalog keeps one.
    jobs.append(dict(by_key["plain"]))
    for j in jobs:
        j.pop("_hostile_key", None)
    names["builds"].append(_build(gen, 1, t, "passed", "main", "Hostile job names", jobs, creator=creator))
    s = _script_job(gen, "bad \udc80 label", None, "passed", t)
    logs[s["id"]] = {"base64": b64(b"surrogate label\r\n")}
    ok = _script_job(gen, "Fine", "fine", "passed", t)
    logs[ok["id"]] = {"base64": b64(b"fine\r\n")}
    names["builds"].append(_build(gen, 2, t, "passed", "main", "A lone surrogate", [s, ok], creator=creator))
    for message in ("first of two 3s", "second of two 3s"):
        d = _script_job(gen, "Dup", "dup", "passed", t)
        logs[d["id"]] = {"base64": b64(message.encode() + b"\r\n")}
        names["builds"].append(_build(gen, 3, t, "passed", "main", message, [d], creator=creator))
    names["builds"].append(_build(gen, -1, t, "passed", "main", "A negative number", [], creator=creator))
    org["pipelines"].append(names)
    for slug in HOSTILE["kept_pipelines"][1:] + HOSTILE["left_out_pipelines"] + ["dup"]:
        p = _pipeline(gen, slug, f"Pipeline {slug!r}", "git@github.com:hostile/x.git", "2024-01-02T00:00:00.000Z",
                      creator)
        org["pipelines"].append(p)
    others = [_org(gen, slug, f"Org {slug!r}", "2024-01-01T00:00:00.000Z") for slug in HOSTILE["left_out_orgs"]]
    return org, others, logs


def hostile_job(world, key):
    """The stored job of hostile build 1 named `key` in HOSTILE_JOBS."""
    build = find_build(world, HOSTILE["org"], HOSTILE["pipeline"], HOSTILE["jobs_build"])
    index = [k for k, *_ in HOSTILE_JOBS].index(key)
    return build["jobs"][index]


# ---------------------------------------------------------------- the generated organization
#
# Org "scale" (build_world(generated_builds=N), `world.py --generated-builds N`): N builds spread over
# `generated_pipelines` pipelines, `generated_jobs` script jobs each, none of them stored. The world holds
# only the spec below; the server computes a build from its pipeline and number on each request, so an
# organization of 10^6 builds and 10^7 jobs costs it no memory. Build n of a pipeline is created at
# GENERATED_START + n * interval + the pipeline's index (seconds), so newest first is highest number
# first and a created_from/created_to filter is a range of numbers. With `generated_many_jobs` J, build
# 1 of the first pipeline has J jobs instead (an answer too big for a client's cap, for tests).

GENERATED = {"org": "scale", "pipeline_prefix": "pipeline-"}
GENERATED_START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
GENERATED_SPAN_SECONDS = 365 * 86400


def generated_spec(builds, pipelines=10, jobs=10, many_jobs=0, seed=1):
    pipelines = max(1, min(pipelines, builds)) if builds > 0 else 1
    per_pipeline = -(-builds // pipelines)
    return {"org": GENERATED["org"], "builds": builds, "pipelines": pipelines, "jobs": jobs,
            "many_jobs": many_jobs, "seed": seed,
            "interval": max(1, GENERATED_SPAN_SECONDS // max(1, per_pipeline))}


def generated_pipeline_slug(index):
    return f"{GENERATED['pipeline_prefix']}{index + 1:04d}"


def generated_build_count(spec, index):
    """Builds of pipeline `index` (numbered 1 through this): the builds shared out, the first ones one more."""
    base, extra = divmod(spec["builds"], spec["pipelines"])
    return base + (1 if index < extra else 0)


def generated_created(spec, index, number):
    """Seconds since the epoch at which build `number` of pipeline `index` was created."""
    return int(GENERATED_START.timestamp()) + number * spec["interval"] + index


def generated_job_count(spec, index, number):
    if spec.get("many_jobs") and index == 0 and number == 1:
        return spec["many_jobs"]
    return spec["jobs"]


def _generated_seed(spec, index, number):
    digest = hashlib.blake2b(f"{spec['seed']}/{index}/{number}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big")


def generated_pipeline(spec, index, creator):
    gen = _Gen(_generated_seed(spec, index, 0))
    slug = generated_pipeline_slug(index)
    p = _pipeline(gen, slug, f"Pipeline {index + 1}", f"git@github.com:scale/{slug}.git",
                  "2023-12-01T00:00:00.000Z", creator)
    p["generated"] = {"index": index}
    return p


def generated_build(spec, index, number, creator):
    """Build `number` of pipeline `index` as the world stores a build (with every job), or None."""
    if not 1 <= number <= generated_build_count(spec, index):
        return None
    gen = _Gen(_generated_seed(spec, index, number))
    t0 = dt.datetime.fromtimestamp(generated_created(spec, index, number), dt.timezone.utc)
    state = "failed" if number % 13 == 0 else "passed"
    jobs = []
    for k in range(generated_job_count(spec, index, number)):
        failed = state == "failed" and k == 0
        jobs.append(_script_job(gen, f":rspec: Test shard {k + 1}", f"test-{k + 1}", "failed" if failed else "passed",
                                t0 + dt.timedelta(seconds=k % 60), exit_status=1 if failed else 0))
    branch = "main" if number % 5 else f"feature/topic-{number % 17}"
    return _build(gen, number, t0, state, branch, f"Change {number} of {generated_pipeline_slug(index)}", jobs,
                  creator=creator)


def generated_log(number, job):
    """The log of a generated build's job: a few lines naming it."""
    t0 = dt.datetime.fromisoformat(job["created_at"].replace("Z", "+00:00"))
    return _generated_log(number, job["name"], t0, lines=3)


def build_world(seed=1, testdata_dir=None, *, big_builds=300, deep_listing_limit=1000, org_rate_limit=200,
                user_rate_limit=50, rate_window_seconds=60, running_log_chunks=5, hostile=False,
                generated_builds=0, generated_pipelines=10, generated_jobs=10, generated_many_jobs=0):
    """The world as a dict (see the module docstring). Deterministic for a given seed and testdata.

    With `hostile`, org "hostile" and four organizations with slugs that cannot be file names are
    added, and the full-access tokens see them (see HOSTILE). With `generated_builds`, org "scale"
    (see GENERATED) is added the same way."""
    testdata = Path(testdata_dir) if testdata_dir else default_testdata_dir()
    logs_dir = testdata / "buildkite" / "logs"
    real_logs = sorted(p for p in logs_dir.glob("*.raw")) if logs_dir.is_dir() else []
    if not real_logs:
        raise FileNotFoundError(f"no real Buildkite logs in {logs_dir} (set BKLOGFS_TESTDATA)")
    build_json = testdata / "buildkite" / "build.json"
    real_builds = json.loads(build_json.read_text())

    gen = _Gen(seed)
    users = {name: _user(gen, name) for name in sorted({t["user"] for t in TOKENS.values()})}
    creator = {k: users["alice"][k] for k in ("id", "name", "email", "avatar_url", "created_at")}
    logs = {}  # job id -> {"path": ...} | {"base64": ...} | {"deleted": true} | {"growing": {...}}
    small_real = [p for p in real_logs if p.stat().st_size < 64 * 1024]
    biggest = max(real_logs, key=lambda p: p.stat().st_size)

    acme = _org(gen, "acme", "Acme Inc", "2019-03-01T00:00:00.000Z")
    web = _pipeline(gen, "web-app", "Web App", "git@github.com:acme/web-app.git", "2019-03-02T00:00:00.000Z", creator)
    tools = _pipeline(gen, "tools", "Tools", "git@github.com:acme/tools.git", "2019-04-01T00:00:00.000Z", creator)

    # ---- web-app: many ordinary builds, newest first when listed. Numbers have a few gaps.
    base = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
    number = 0
    for i in range(big_builds):
        number += 2 if i in (17, 101) else 1  # gaps, as Buildkite numbers may have
        t0 = base + dt.timedelta(minutes=30 * number)
        branch = "main" if number % 7 else f"feature/topic-{number % 5}"
        state = "failed" if number % 11 == 0 else "passed"
        jobs = []
        j1 = _script_job(gen, ":rspec: Test", "test", state, t0, exit_status=1 if state == "failed" else 0)
        logs[j1["id"]] = {"base64": b64(_generated_log(number, "Test", t0))}
        jobs.append(j1)
        jobs.append(_waiter_job(gen))
        j2 = _script_job(gen, ":package: Build", "build", "passed", t0 + dt.timedelta(minutes=2))
        logs[j2["id"]] = {"path": str(small_real[number % len(small_real)])}
        jobs.append(j2)
        b = _build(gen, number, t0, state, branch, f"Change number {number}", jobs, creator=creator)
        web["builds"].append(b)

    # ---- tools: the special builds
    t = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.timezone.utc)

    # 1: every job type, and a parallel step
    jobs = []
    j = _script_job(gen, ":curl: Fetch", "fetch", "passed", t)
    logs[j["id"]] = {"path": str(logs_dir / "curl.raw") if (logs_dir / "curl.raw").exists() else str(real_logs[0])}
    jobs.append(j)
    jobs.append(_waiter_job(gen))
    for k in range(3):
        j = _script_job(gen, f":rspec: Specs %n", "specs", "passed", t + dt.timedelta(minutes=1), parallel=(k, 3))
        j["name"] = f":rspec: Specs {k + 1}/3"
        logs[j["id"]] = {"base64": b64(_generated_log(1, f"Specs shard {k + 1} of 3", t, lines=3 + k))}
        jobs.append(j)
    jobs.append(_manual_job(gen, t))
    target = web["builds"][-1]
    jobs.append(_trigger_job(gen, t + dt.timedelta(minutes=3), {
        "id": target["id"], "number": target["number"], "org": "acme", "pipeline": "web-app"}))
    tools["builds"].append(_build(gen, 1, t, "passed", "main", "Every job type", jobs, creator=creator))

    # 2: retries. Step "flaky": attempt 1 failed -> attempt 2 failed -> attempt 3 passed. Step "lint": 1 retry.
    t2 = t + dt.timedelta(hours=1)
    a3 = _script_job(gen, ":bug: Flaky", "flaky", "passed", t2 + dt.timedelta(minutes=4), retries_count=2,
                     retry_type="manual")
    a2 = _script_job(gen, ":bug: Flaky", "flaky", "failed", t2 + dt.timedelta(minutes=2), exit_status=1,
                     retried=True, retried_in=a3["id"], retries_count=1, retry_type="automatic")
    a1 = _script_job(gen, ":bug: Flaky", "flaky", "failed", t2, exit_status=1, retried=True, retried_in=a2["id"])
    for n, a in enumerate((a1, a2, a3), 1):
        logs[a["id"]] = {"base64": b64(_generated_log(2, f"Flaky attempt {n}", t2, lines=2 + n))}
    l2 = _script_job(gen, ":lint-roller: Lint", "lint", "passed", t2 + dt.timedelta(minutes=3), retries_count=1,
                     retry_type="automatic")
    l1 = _script_job(gen, ":lint-roller: Lint", "lint", "failed", t2, exit_status=2, retried=True,
                     retried_in=l2["id"])
    logs[l1["id"]] = {"path": str(logs_dir / "rustfmt.raw") if (logs_dir / "rustfmt.raw").exists() else str(real_logs[0])}
    logs[l2["id"]] = {"base64": b64(_generated_log(2, "Lint again", t2))}
    # stored in step order, every attempt; the server hides retried ones unless include_retried_jobs
    tools["builds"].append(_build(gen, 2, t2, "passed", "main", "Retries", [a1, a2, a3, l1, l2], creator=creator))

    # 3: an empty log and a deleted log
    t3 = t + dt.timedelta(hours=2)
    e = _script_job(gen, "Quiet", "quiet", "passed", t3)
    logs[e["id"]] = {"base64": ""}
    d = _script_job(gen, "Purged", "purged", "passed", t3)
    logs[d["id"]] = {"deleted": True}
    ok = _script_job(gen, "Weather", "weather", "passed", t3)
    logs[ok["id"]] = {"path": str(logs_dir / "weather.raw") if (logs_dir / "weather.raw").exists() else str(real_logs[0])}
    tools["builds"].append(_build(gen, 3, t3, "passed", "main", "Empty and deleted logs", [e, d, ok], creator=creator))

    # 4: a running build; its running job's log grows by one chunk per GET until the build is finished
    t4 = t + dt.timedelta(hours=3)
    done = _script_job(gen, "Setup", "setup", "passed", t4)
    logs[done["id"]] = {"path": str(logs_dir / "homer.raw") if (logs_dir / "homer.raw").exists() else str(real_logs[0])}
    run = _script_job(gen, "Long test", "long-test", "running", t4 + dt.timedelta(minutes=1), finished=False)
    ms = int(t4.timestamp() * 1000)
    chunks = [f"\x1b_bk;t={ms + 1000 * (c + 1)}\x07progress chunk {c + 1}: {'.' * (10 + c)}\r\n".encode()
              for c in range(running_log_chunks)]
    logs[run["id"]] = {"growing": {
        "initial_base64": b64(f"\x1b_bk;t={ms}\x07--- :hourglass: Long test\r\n".encode()),
        "chunks_base64": [b64(c) for c in chunks],
        "final_base64": b64(f"\x1b_bk;t={ms + 1000 * (running_log_chunks + 1)}\x07+++ finished\r\n".encode()),
    }}
    queued = _script_job(gen, "Later", "later", "scheduled", t4 + dt.timedelta(minutes=1), started=False,
                         finished=False)
    logs[queued["id"]] = {"base64": ""}
    tools["builds"].append(_build(gen, 4, t4, "running", "main", "Still running", [done, run, queued],
                                  creator=creator, finished=False))

    # 5: no jobs at all
    t5 = t + dt.timedelta(hours=4)
    tools["builds"].append(_build(gen, 5, t5, "canceled", "main", "Canceled before any job", [], creator=creator))

    # 6: the biggest real log
    t6 = t + dt.timedelta(hours=5)
    big = _script_job(gen, ":npm: Install", "npm", "passed", t6)
    logs[big["id"]] = {"path": str(biggest)}
    tools["builds"].append(_build(gen, 6, t6, "passed", "main", "Big log", [big], creator=creator))

    acme["pipelines"] = [web, tools]

    # ---- the real build, as build.json has it
    real = real_builds[0]
    rp = dict(real["pipeline"])
    real_pipeline = dict(rp)
    real_pipeline["builds"] = [dict(real)]
    bk_org = _org(gen, "buildkite", "Buildkite", "2013-09-01T00:00:00.000Z")
    bk_org["pipelines"] = [real_pipeline]

    empty = _org(gen, "empty-org", "Empty Org", "2023-01-01T00:00:00.000Z")

    organizations = [acme, bk_org, empty]
    tokens = TOKENS
    if hostile:
        org, others, hostile_logs = _hostile_org(gen, t)
        organizations += [org] + others
        logs.update(hostile_logs)
        tokens = json.loads(json.dumps(TOKENS))
        for name in ("bkua_fake_full", "bkua_fake_full_alice2"):
            tokens[name]["organizations"] += [org["slug"]] + [o["slug"] for o in others]
    generated = None
    if generated_builds > 0:
        generated = generated_spec(generated_builds, generated_pipelines, generated_jobs, generated_many_jobs, seed)
        org = _org(gen, generated["org"], "Scale", "2023-12-01T00:00:00.000Z")
        org["pipelines"] = [generated_pipeline(generated, i, creator) for i in range(generated["pipelines"])]
        org["generated"] = generated
        organizations.append(org)
        tokens = json.loads(json.dumps(tokens))
        for name in ("bkua_fake_full", "bkua_fake_full_alice2"):
            tokens[name]["organizations"].append(org["slug"])

    return {
        "version": 1,
        "seed": seed,
        "settings": {
            "per_page_default": 30, "per_page_max": 100, "deep_listing_limit": deep_listing_limit,
            "org_rate_limit": org_rate_limit, "user_rate_limit": user_rate_limit,
            "rate_window_seconds": rate_window_seconds,
        },
        "users": users,
        "tokens": tokens,
        "organizations": organizations,
        "logs": logs,
        "real_build_source": str(build_json),
        "creator": creator,
    }


# ---------------------------------------------------------------- the demo's sample organization


def _sample_generator():
    """scripts/make-sample-archive as a module: its logs look like what the agent uploads."""
    import importlib.machinery
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "make-sample-archive"
    loader = importlib.machinery.SourceFileLoader("make_sample_archive", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


SAMPLE_PIPELINES = (("web-app", "Web App", 10), ("search-indexer", "Search Indexer", 4), ("billing-api", "Billing API", 4))


def build_sample_world(seed=20240617):
    """A small organization for scripts/demo, needing no test data: org `acme` with the pipelines of
    SAMPLE_PIPELINES. Each build has an upload step, three parallel RSpec shards and a Docker build;
    every third build retried a flaky shard; the newest web-app build is still running (its log grows
    per GET, as `acme/tools` #4's does in the test world); search-indexer #4 has a ~3 MiB stress log
    that ends in an OutOfMemoryError. `world["archived"]` lists the jobs whose logs a private archive
    would hold (every finished job of a finished build), for the demo to upload."""
    sample = _sample_generator()
    gen = _Gen(seed)
    rng = random.Random(seed)
    users = {name: _user(gen, name) for name in sorted({t["user"] for t in TOKENS.values()})}
    creator = {k: users["alice"][k] for k in ("id", "name", "email", "avatar_url", "created_at")}
    logs = {}
    archived = []
    acme = _org(gen, "acme", "Acme Inc", "2019-03-01T00:00:00.000Z")
    base = dt.datetime(2024, 11, 4, 9, 0, tzinfo=dt.timezone.utc)

    def log(t0, slug, kind, ok):
        data, _ = sample.job_log(rng, int(t0.timestamp() * 1000), slug, kind, ok)
        return {"base64": b64(data)}

    for index, (slug, name, count) in enumerate(SAMPLE_PIPELINES):
        pipeline = _pipeline(gen, slug, name, f"git@github.com:acme/{slug}.git", "2019-03-02T00:00:00.000Z", creator)
        for number in range(1, count + 1):
            t0 = base + dt.timedelta(hours=7 * number + index)
            running = slug == "web-app" and number == count
            failed = not running and number % 4 == 3
            jobs = []
            upload = _script_job(gen, ":pipeline: Upload", "upload", "passed", t0)
            logs[upload["id"]] = log(t0, slug, sample.job_upload, True)
            jobs += [upload, _waiter_job(gen)]
            for shard in range(3):
                t1 = t0 + dt.timedelta(minutes=1)
                ok = not (failed and shard == 1)
                if number % 3 == 0 and shard == 2:
                    # A flaky shard: the first attempt failed and was retried automatically.
                    again = _script_job(gen, ":rspec: RSpec %n", "rspec", "passed", t1 + dt.timedelta(minutes=2),
                                        parallel=(shard, 3), retries_count=1, retry_type="automatic")
                    first = _script_job(gen, ":rspec: RSpec %n", "rspec", "failed", t1, exit_status=1,
                                        parallel=(shard, 3), retried=True, retried_in=again["id"])
                    for job, passed in ((first, False), (again, True)):
                        job["name"] = f":rspec: RSpec {shard + 1}/3"
                        logs[job["id"]] = log(t1, slug, sample.job_rspec, passed)
                        jobs.append(job)
                    continue
                state = "running" if running and shard == 0 else ("passed" if ok else "failed")
                job = _script_job(gen, ":rspec: RSpec %n", "rspec", state, t1, exit_status=0 if ok else 1,
                                  parallel=(shard, 3), finished=state != "running")
                job["name"] = f":rspec: RSpec {shard + 1}/3"
                if state == "running":
                    ms = int(t1.timestamp() * 1000)
                    chunks = [f"\x1b_bk;t={ms + 2000 * (c + 1)}\x07RSpec shard 1: example group {c + 1} "
                              f"\x1b[32m{'.' * (20 + c)}\x1b[0m\r\n".encode() for c in range(8)]
                    logs[job["id"]] = {"growing": {
                        "initial_base64": b64(f"\x1b_bk;t={ms}\x07+++ :rspec: RSpec 1/3\r\n".encode()),
                        "chunks_base64": [b64(c) for c in chunks],
                        "final_base64": b64(f"\x1b_bk;t={ms + 20000}\x07Finished in 18.2 seconds\r\n".encode()),
                    }}
                else:
                    logs[job["id"]] = log(t1, slug, sample.job_rspec, ok)
                jobs.append(job)
            jobs.append(_waiter_job(gen))
            if slug == "search-indexer" and number == count:
                stress = _script_job(gen, ":gradle: Stress test", "stress", "failed", t0 + dt.timedelta(minutes=5),
                                     exit_status=1)
                logs[stress["id"]] = {"base64": b64(sample.big_log(3 << 20, seed=seed + 1))}
                jobs.append(stress)
                failed = True
            docker = _script_job(gen, ":docker: Build", "docker", "scheduled" if running else "passed",
                                 t0 + dt.timedelta(minutes=6), started=not running, finished=not running)
            logs[docker["id"]] = {"base64": ""} if running else log(t0, slug, sample.job_docker_build, True)
            jobs.append(docker)
            state = "running" if running else ("failed" if failed else "passed")
            build = _build(gen, number, t0, state, "main", f"Merge pull request #{100 * index + number}", jobs,
                           creator=creator, finished=not running)
            pipeline["builds"].append(build)
            if not running:
                archived += [{"pipeline": pipeline["id"], "build": build["id"], "job": j["id"]}
                             for j in jobs if j.get("type") == "script"]
        acme["pipelines"].append(pipeline)

    return {
        "version": 1,
        "seed": seed,
        "settings": {
            "per_page_default": 30, "per_page_max": 100, "deep_listing_limit": 1000,
            "org_rate_limit": 200, "user_rate_limit": 50, "rate_window_seconds": 60,
        },
        "users": users,
        "tokens": TOKENS,
        "organizations": [acme],
        "logs": logs,
        "creator": creator,
        "archived": [dict(item, organization=acme["id"]) for item in archived],
    }


# ---------------------------------------------------------------- helpers for tests


def find_org(world, slug):
    return next(o for o in world["organizations"] if o["slug"] == slug)


def find_pipeline(world, org, slug):
    return next(p for p in find_org(world, org)["pipelines"] if p["slug"] == slug)


def find_build(world, org, pipeline, number):
    return next(b for b in find_pipeline(world, org, pipeline)["builds"] if b["number"] == number)


def job_ids(world, org, pipeline, number, **match):
    """Ids of the build's stored jobs (every attempt) whose fields equal `match`."""
    b = find_build(world, org, pipeline, number)
    return [j["id"] for j in b["jobs"] if all(j.get(k) == v for k, v in match.items())]


def log_bytes(world, job_id, fetches=0):
    """The bytes the server serves for a job's log (None: deleted/missing).

    For the growing log of a running job, `fetches` is how many GETs have already been served."""
    spec = world["logs"].get(job_id)
    if spec is None or spec.get("deleted"):
        return None
    if "path" in spec:
        return Path(spec["path"]).read_bytes()
    if "base64" in spec:
        return base64.b64decode(spec["base64"])
    g = spec["growing"]
    chunks = [base64.b64decode(c) for c in g["chunks_base64"]]
    return base64.b64decode(g["initial_base64"]) + b"".join(chunks[:fetches])


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a fake Buildkite world as JSON.")
    ap.add_argument("out", help="output file (JSON)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--testdata", default=None, help="default: $BKLOGFS_TESTDATA or ../shared/testdata")
    ap.add_argument("--big-builds", type=int, default=300, help="builds in acme/web-app")
    ap.add_argument("--deep-listing-limit", type=int, default=1000)
    ap.add_argument("--org-rate-limit", type=int, default=200)
    ap.add_argument("--user-rate-limit", type=int, default=50)
    ap.add_argument("--rate-window", type=float, default=60.0, help="seconds per rate-limit window")
    ap.add_argument("--hostile", action="store_true", help="add the hostile names (see HOSTILE)")
    ap.add_argument("--generated-builds", type=int, default=0, help="builds of the generated org (see GENERATED)")
    ap.add_argument("--generated-pipelines", type=int, default=10)
    ap.add_argument("--generated-jobs", type=int, default=10, help="jobs per generated build")
    ap.add_argument("--generated-many-jobs", type=int, default=0, help="jobs of the generated org's build 1")
    ap.add_argument("--sample", action="store_true",
                    help="the demo's small organization instead, which needs no test data (see build_sample_world)")
    args = ap.parse_args(argv)
    if args.sample:
        Path(args.out).write_text(json.dumps(build_sample_world(), indent=1))
        return 0
    world = build_world(args.seed, args.testdata, big_builds=args.big_builds,
                        deep_listing_limit=args.deep_listing_limit, org_rate_limit=args.org_rate_limit,
                        user_rate_limit=args.user_rate_limit, rate_window_seconds=args.rate_window,
                        hostile=args.hostile, generated_builds=args.generated_builds,
                        generated_pipelines=args.generated_pipelines, generated_jobs=args.generated_jobs,
                        generated_many_jobs=args.generated_many_jobs)
    Path(args.out).write_text(json.dumps(world, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
