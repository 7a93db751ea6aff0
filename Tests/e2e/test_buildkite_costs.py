"""End-to-end: what Buildkite names cost in API requests, and no 429 while parallel readers share one budget.

The figures asserted here are the ones `doc/NAMES.md` states in "Costs, caching and the catalog";
change both together. Costs are read from the fake Buildkite API's own counters
(`/__fake__/requests`), per endpoint template, so a request more or less fails the test.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import fake_buildkite_process, load_fake_buildkite_world

WORLD = load_fake_buildkite_world()
SPECIAL = WORLD.SPECIAL
ORG, TOOLS, WEB = SPECIAL["org"], SPECIAL["pipeline"], SPECIAL["big_pipeline"]

ORGS = "GET /v2/organizations"
PIPELINES = "GET /v2/organizations/{org}/pipelines"
BUILDS = "GET /v2/organizations/{org}/pipelines/{pipeline}/builds"
BUILD = "GET /v2/organizations/{org}/pipelines/{pipeline}/builds/{number}"
LOG = "/v2/organizations/{org}/pipelines/{pipeline}/builds/{number}/jobs/{job}/log"
GET_LOG = "GET " + LOG
BLOCK = 1 << 20  # the mount's block: the suffix an open asks for to learn a log's size

SUBPROCESS_TIMEOUT = 45  # seconds any one command may take


def names_args(fake, tmp_path, *extra, token="bkua_fake_full"):
    token_file = tmp_path / f"token-{token}"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return ["--api-token-file", str(token_file), "--api-endpoint", fake.api, *extra]


def spent(fake):
    """Requests per endpoint template since the last call (or reset), and per status; then zero the counters."""
    c = fake.counters()
    fake.control("reset-counters")
    return c["endpoints"], c["statuses"]


def run(*args, timeout=SUBPROCESS_TIMEOUT):
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "LC_ALL": "C"})
    assert r.returncode == 0, f"{args} exited {r.returncode}: {r.stderr[-1000:]}"
    return r.stdout


def script_jobs(world, pipeline, number):
    return [j for j in WORLD.find_build(world, ORG, pipeline, number)["jobs"] if j.get("type") == "script"]


def newest_builds(world, pipeline, n):
    builds = WORLD.find_pipeline(world, ORG, pipeline)["builds"]
    return sorted((b["number"] for b in builds), reverse=True)[:n]


# ---------------------------------------------------------------- costs, one level at a time


def test_costs_of_ls_at_each_level_and_of_cat(mount, fake_buildkite, tmp_path):
    fake = fake_buildkite
    world = fake.world
    m = mount(_source_args=names_args(fake, tmp_path, "--recent-builds", "100"))
    # The mount checks the token by listing organizations (1 request), and keeps the answer.
    assert spent(fake) == ({ORGS: 1}, {"200": 1})

    run("ls", "-l", m.path)
    assert spent(fake) == ({}, {}), "ls of the root: already listed by the mount's check"

    run("ls", "-l", m / ORG)
    assert spent(fake) == ({PIPELINES: 1}, {"200": 1}), "ls of an org: 1 per 100 pipelines"

    # web-app has 300 builds: its listing is the newest 100, one request with the jobs embedded.
    listed = run("ls", m / ORG / WEB).split()
    assert sorted(map(int, listed)) == sorted(newest_builds(world, WEB, 100))
    run("ls", "-l", m / ORG / WEB)  # stat of every build directory costs nothing more
    assert spent(fake) == ({BUILDS: 1}, {"200": 1}), "ls of a pipeline: 1 per 100 newest builds"

    # A finished build from the listing: nothing (its logs are sized when opened, doc/SEMANTICS.md, "Log sizes").
    newest = newest_builds(world, WEB, 1)[0]
    jobs = script_jobs(world, WEB, newest)
    assert len(jobs) == 2
    run("ls", "-l", m / ORG / WEB / str(newest))
    assert spent(fake) == ({}, {}), "ls of a finished build: nothing per script job"

    # A finished build no listing has shown: 1 for the build (with its jobs).
    retried = SPECIAL["retried"]
    jobs2 = script_jobs(world, TOOLS, retried)
    assert len(jobs2) == 5
    run("ls", "-l", m / ORG / TOOLS / str(retried))
    assert spent(fake) == ({BUILD: 1}, {"200": 1}), "ls of a build outside the listing"

    # A running build (tools #4, 3 script jobs) outside the listing costs the same the first time.
    run("ls", "-l", m / ORG / TOOLS / str(SPECIAL["running"]))
    assert spent(fake) == ({BUILD: 1}, {"200": 1}), "ls of a running build"

    # cat of a log: 1 GET, the suffix of a block that sizes it when opened and, for a log shorter than a
    # block, brings all of it; kept in the disk cache. Also for the biggest log of the world (tools #6,
    # ~550 KB), whose build is listed first.
    job = jobs[0]
    path = m / ORG / WEB / str(newest) / f"{job['id']}.log"
    big_job = script_jobs(world, TOOLS, SPECIAL["big_log"])[0]
    big_path = m / ORG / TOOLS / str(SPECIAL["big_log"]) / f"{big_job['id']}.log"
    run("ls", "-l", big_path.parent)
    assert spent(fake) == ({BUILD: 1}, {"200": 1})
    for job_id, p in ((job["id"], path), (big_job["id"], big_path)):
        expected = WORLD.log_bytes(world, job_id)
        assert len(expected) < BLOCK
        assert Path(p).read_bytes() == expected
        gets = [r for r in fake.counters()["log_requests"] if r["method"] == "GET"]
        assert [(g["range"], g["status"]) for g in gets] == [(f"bytes=-{BLOCK}", 206)], gets
        assert spent(fake) == ({GET_LOG: 1}, {"206": 1}), "cat of a log: 1"
        assert os.stat(p).st_size == len(expected), "stat after the first open shows the size"

    # Afterwards: every listing and log above is served from the catalog and the caches.
    run("ls", "-l", m.path, m / ORG, m / ORG / WEB, m / ORG / WEB / str(newest), m / ORG / TOOLS / str(retried),
        m / ORG / TOOLS / str(SPECIAL["running"]), big_path.parent)
    assert Path(path).read_bytes() == WORLD.log_bytes(world, job["id"])
    assert Path(big_path).read_bytes() == WORLD.log_bytes(world, big_job["id"])
    assert spent(fake) == ({}, {}), "the second time costs nothing (within --directory-ttl)"


# ---------------------------------------------------------------- costs of ls -R, from a fresh mount

# (path under the mount, --recent-builds, requests per endpoint template after the mount's own
# check of the token, 404s among them). The organizations came with that check. No log is sized:
# `ls -l` shows size 0 for a log not opened yet (doc/SEMANTICS.md, "Log sizes").
LS_R = {
    # Build tools #2: finding tools in acme (1), the build by number (1).
    "build": (f"{ORG}/{TOOLS}/{SPECIAL['retried']}", 5,
              {PIPELINES: 1, BUILD: 1}, 0),
    # web-app's newest 5 builds, 2 script jobs each: web-app in acme (1), the listing (1).
    "pipeline": (f"{ORG}/{WEB}", 5,
                 {PIPELINES: 1, BUILDS: 1}, 0),
    # acme: its 2 pipelines' newest 5 builds, one listing each. The running tools #4 came with its
    # listing: no request of its own.
    "org": (ORG, 5,
            {PIPELINES: 1, BUILDS: 2}, 0),
}


@pytest.mark.parametrize("what", list(LS_R))
def test_costs_of_ls_R(what, mount, fake_buildkite, tmp_path):
    path, recent, expected, not_found = LS_R[what]
    fake = fake_buildkite
    m = mount(_source_args=names_args(fake, tmp_path, "--recent-builds", str(recent)))
    spent(fake)
    out = run("ls", "-lR", m / path)
    assert "build.json" in out
    endpoints, statuses = spent(fake)
    assert endpoints == expected, f"ls -R of {path}"
    total = sum(expected.values())
    assert statuses == ({"200": total - not_found, "404": not_found} if not_found else {"200": total}), statuses
    # Everything is known now: the same walk again costs nothing.
    assert run("ls", "-lR", m / path) == out
    assert spent(fake) == ({}, {})


# ---------------------------------------------------------------- no 429 under load

READERS = 8
NEEDLE = b"--- "  # the agent's section headers: in every generated log and most real ones
USER_BUDGET, ORG_BUDGET, WINDOW = 12, 60, 2  # per window; a grep -r of tools needs 3 windows or more


def expected_grep_counts(world, mnt):
    """grep -r -c -F NEEDLE over acme/tools: the count per log file (build.json files are checked apart)."""
    counts = {}
    for build in WORLD.find_pipeline(world, ORG, TOOLS)["builds"]:
        for job in build["jobs"]:
            if job.get("type") != "script":
                continue
            data = WORLD.log_bytes(world, job["id"], fetches=10**6)
            if data is None:
                continue  # deleted: not in the directory
            n = sum(1 for line in data.split(b"\n") if NEEDLE in line)
            counts[f"{mnt}/{ORG}/{TOOLS}/{build['number']}/{job['id']}.log"] = n
    return counts


def parse_counts(text):
    out = {}
    for line in text.splitlines():
        name, _, n = line.rpartition(":")
        out[name] = int(n)
    return out


def test_no_429_while_8_readers_grep_a_pipeline(mount, tmp_path):
    work = tmp_path / "fake"
    work.mkdir()
    server_args = ["--user-rate-limit", USER_BUDGET, "--org-rate-limit", ORG_BUDGET, "--rate-window", WINDOW]
    with fake_buildkite_process(work, server_args=server_args) as fake:
        # The running build is finished first, so that its log no longer grows and every reader sees the same bytes.
        fake.control("finish-build", org=ORG, pipeline=TOOLS, number=SPECIAL["running"])
        world = fake.world
        m = mount(_source_args=names_args(fake, tmp_path))
        # Start with a fresh window and no counts: the mount's own request is not part of the load.
        fake.control("rate-limit")
        fake.control("reset-counters")

        cmd = ["grep", "-r", "-c", "-F", "--", NEEDLE.decode(), str(m / ORG / TOOLS)]
        started = time.monotonic()
        deadline = started + 40  # the readers get 40 s in all; they need about 6
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "LC_ALL": "C"}, start_new_session=True)
                 for _ in range(READERS)]
        results = []
        try:
            for p in procs:
                out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
                results.append((p.returncode, out, err))
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass  # stuck in the mount: the mount fixture's forced unmount releases it
        elapsed = time.monotonic() - started
        counters = fake.counters()

        # A log Buildkite deleted is listed until it is opened, which answers ENOENT (doc/SEMANTICS.md,
        # "Log sizes"): grep says so, and nothing else.
        deleted = [j["id"] for j in script_jobs(world, TOOLS, SPECIAL["empty_deleted"])
                   if WORLD.log_bytes(world, j["id"]) is None]
        assert len(deleted) == 1
        for code, out, err in results:
            assert code in (0, 1, 2), f"grep exited {code}: {err[-500:]}"
            assert all(f"{deleted[0]}.log: No such file or directory" in line for line in err.splitlines()), err

        outputs = [sorted(out.splitlines()) for _, out, _ in results]
        assert all(o == outputs[0] for o in outputs), "the readers saw different bytes"
        counts = parse_counts(results[0][1])
        logs = {k: v for k, v in counts.items() if k.endswith(".log")}
        assert logs == expected_grep_counts(world, m.path)
        builds = {b["number"] for b in WORLD.find_pipeline(world, ORG, TOOLS)["builds"]}
        assert {k for k in counts if not k.endswith(".log")} == {f"{m.path}/{ORG}/{TOOLS}/{n}/build.json" for n in builds}

        statuses = counters["statuses"]
        total = counters["total"]
        print(f"\nload: {READERS} readers, {total} requests in {elapsed:.1f} s "
              f"(budget {USER_BUDGET}/user, {ORG_BUDGET}/org per {WINDOW} s), statuses {statuses}, "
              f"endpoints {counters['endpoints']}")
        assert "429" not in statuses, f"throttled: {counters['endpoint_statuses']}"
        # The readers share every request: 8 of them cost what one costs. tools in acme (1), its listing (1),
        # and 1 GET for each of the 16 script jobs' logs, the suffix that sizes it when opened and brings it
        # all: 13 logs, 2 empty ones (416), the deleted one (404). The organizations came with the mount's
        # check of the token.
        assert counters["endpoints"] == {PIPELINES: 1, BUILDS: 1, GET_LOG: 16}
        assert statuses == {"200": 2, "206": 13, "416": 2, "404": 1}, statuses
        # More requests than one window allows: the limiter had to wait for at least one reset.
        assert total > USER_BUDGET, f"only {total} requests: the budget was never tested"
        assert elapsed >= WINDOW * ((total - 1) // USER_BUDGET) - 0.5, f"{total} requests in {elapsed:.1f} s"
        log = (tmp_path / f"bklogfs{m.factory.count}.log").read_text(errors="replace")
        assert "HTTP 429" not in log
