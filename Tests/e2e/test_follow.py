"""End-to-end: `tail -f` on the log of a running job, through a real FUSE mount of Buildkite's names,
against the project's fake Buildkite API, whose running job's log grows by one chunk with each GET
of it until its build is finished (doc/SEMANTICS.md, "A running job's log, followed")."""

import base64
import subprocess
import time

from conftest import load_fake_buildkite_world, read_file

WORLD = load_fake_buildkite_world()
SPECIAL = WORLD.SPECIAL
ORG, PIPE = SPECIAL["org"], SPECIAL["pipeline"]


def names_args(fake, tmp_path, *extra):
    token_file = tmp_path / "token"
    token_file.write_text("bkua_fake_full\n")
    token_file.chmod(0o600)
    return ["--api-token-file", str(token_file), "--api-endpoint", fake.api, *extra]


def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def log_gets(fake, job_id):
    return [r for r in fake.counters()["log_requests"] if r["method"] == "GET" and job_id in r["path"]]


def final_log(fake, job_id):
    spec = fake.world["logs"][job_id]["growing"]
    return (base64.b64decode(spec["initial_base64"]) + b"".join(base64.b64decode(c) for c in spec["chunks_base64"])
            + base64.b64decode(spec["final_base64"]))


def test_tail_f_follows_a_running_job_and_settles_when_it_finishes(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "--follow-interval", "0.5"))
    number = SPECIAL["running"]
    build = WORLD.find_build(fake_buildkite.world, ORG, PIPE, number)
    job = next(j for j in build["jobs"] if j.get("state") == "running")
    path = m / ORG / PIPE / str(number) / f"{job['id']}.log"
    chunks = len(fake_buildkite.world["logs"][job["id"]]["growing"]["chunks_base64"])
    out1, out2 = tmp_path / "tail1.out", tmp_path / "tail2.out"
    # Two followers of one log: they share the polls of its end.
    tails = [subprocess.Popen(["tail", "-n", "+1", "-f", "-s", "0.2", str(path)], stdout=open(out, "wb"),
                              stderr=subprocess.PIPE) for out in (out1, out2)]
    try:
        wait_for(lambda: f"progress chunk {chunks}:".encode() in read_file(out1)
                 and f"progress chunk {chunks}:".encode() in read_file(out2), "every chunk in both tails")
        started = time.monotonic()
        fake_buildkite.control("reset-counters")
        fake_buildkite.control("finish-build", org=ORG, pipeline=PIPE, number=number)
        wait_for(lambda: b"+++ finished" in read_file(out1) and b"+++ finished" in read_file(out2),
                 "the job's last line in both tails")
        # Ended: a poll or two more find it no longer grows and the job finished; then none, though
        # both tails still watch.
        counts = []

        def settled():
            counts.append(len(log_gets(fake_buildkite, job["id"])))
            return len(counts) > 20 and counts[-1] == counts[-21]

        wait_for(settled, "the polls to stop")
        followed = time.monotonic() - started
        assert counts[-1] <= 5, counts
    finally:
        for t in tails:
            t.terminate()
            t.wait(timeout=10)
    final = final_log(fake_buildkite, job["id"])
    assert read_file(out1) == final and read_file(out2) == final
    assert path.stat().st_size == len(final)
    # Since the build finished: only suffix requests for the log's end, shared by both followers
    # (at most one every 0.5 s, and a few asks whether the job finished).
    gets = log_gets(fake_buildkite, job["id"])
    assert gets and all((r["range"] or "").startswith("bytes=-") for r in gets), gets
    assert len(gets) <= followed / 0.5 + 2, (len(gets), followed)
    job_asks = fake_buildkite.counters()["endpoints"].get("GET /v2/organizations/{org}/jobs/{job}", 0)
    assert 1 <= job_asks <= len(gets) + 1


def test_follow_interval_is_checked(bklogfs_bin, tmp_path):
    from conftest import run_bklogfs
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_bklogfs(bklogfs_bin, "mount", mnt, "--archive", tmp_path, "--follow-interval", "0")
    assert r.returncode != 0 and "--follow-interval" in r.stderr
