"""End-to-end: `bklogfs warm PATH...` (issue 15) reads a subtree's logs through the mount into its
disk cache ahead of an offline audit, against moto_server and a real FUSE mount.

What is checked is what the mount asked the store (its counters, `bklogfs stats --json`): after a
warm, reading the logs, a second warm, and a mount started again over the same cache directory
make no GET; a subtree that does not fit in `--cache-size` is refused before any GET; an archived
log is skipped without a request for its bytes and named in the summary; Ctrl-C stops with exit
status 130, and running the same command again goes on from the cache.
"""

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (MiB, buildkite_source_args, daemon_pids, force_unmount, load_fake_buildkite_world,
                      new_moto_bucket, read_file, run_bklogfs)

ORG = "0190c0de-org"
PIPELINE = f"{ORG}/0190c0de-pipe"
BUILDS = [f"{PIPELINE}/0190c0de-build-{n}" for n in range(3)]
ARCHIVED_KEY = f"{BUILDS[0]}/archived-job.log"
BIG_KEY = f"{ORG}/0190c0de-big-pipe/0190c0de-big-build/big-job.log"
BIG_SIZE = 48 * MiB + 4321


def log_body(rng, size):
    lines, total = [], 0
    while total < size:
        lines.append(f"\x1b_bk;t={1700000000000 + len(lines)}\x07step {rng.getrandbits(64):016x} ok\r\n".encode())
        total += len(lines[-1])
    return b"".join(lines)[:size]


@pytest.fixture(scope="module")
def warm_bucket(moto):
    """Four logs in each of three builds (one of them 3 MiB, over several blocks), one GLACIER log,
    and, in a pipeline of its own, one big log for the interruption."""
    bucket = new_moto_bucket(moto, "bk-warm")
    rng = random.Random(15)
    bodies = {}
    for build in BUILDS:
        for job in range(4):
            size = 3 * MiB + 77 if (build, job) == (BUILDS[1], 0) else rng.randrange(20_000, 200_000)
            bodies[f"{build}/job-{job}.log"] = log_body(rng, size)
    for key, body in bodies.items():
        moto.client.put_object(Bucket=bucket.name, Key=key, Body=body)
    moto.client.put_object(Bucket=bucket.name, Key=ARCHIVED_KEY, Body=b"in Glacier\r\n", StorageClass="GLACIER")
    moto.client.put_object(Bucket=bucket.name, Key=BIG_KEY, Body=log_body(rng, 1 * MiB) * (BIG_SIZE // MiB)
                           + b"x" * (BIG_SIZE % MiB))
    bucket.bodies = bodies
    return bucket


def warm(bklogfs_bin, *args):
    return run_bklogfs(bklogfs_bin, "warm", *args, timeout=120)


def gets(m):
    return m.stats()["requests"]["get"]


def test_warm_fills_the_disk_cache_so_that_later_reads_make_no_requests(mount, warm_bucket, bklogfs_bin):
    m = mount(bucket=warm_bucket)
    subtree = m / PIPELINE
    first = warm(bklogfs_bin, subtree)
    assert first.returncode == 0, first
    files = len(warm_bucket.bodies)
    assert first.stdout.splitlines()[0].startswith(f"{files} files to warm, "), first.stdout
    assert f"warmed {files} of {files} files" in first.stdout, first.stdout
    assert "failed: 0" in first.stdout
    # The archived log is skipped, named, and the way out is said; it was never opened (an open
    # would fail with "Object is remote", which the mount logs).
    assert "1 archived file skipped" in first.stdout and "bklogfs restore" in first.stdout, first.stdout
    assert f"archived: {m / ARCHIVED_KEY}" in first.stdout
    log = Path(m.log_path).read_text(errors="replace")
    assert not [line for line in log.splitlines() if ARCHIVED_KEY in line and "Object is remote" in line]
    after_first = m.stats()
    assert after_first["requests"]["get"] > 0 and after_first["failures"] == 0, after_first
    assert after_first["cache"]["disk_queue_bytes"] == 0, "warm returned before the disk cache held what it read"

    # Resumable: a second run finds everything cached and asks the store nothing.
    second = warm(bklogfs_bin, subtree)
    assert second.returncode == 0, second
    assert f"warmed {files} of {files} files" in second.stdout and ", 0 requests made" in second.stdout, second.stdout
    assert gets(m) == after_first["requests"]["get"]

    # Offline: what warm read is on disk when it returns, even if the daemon dies at once (kill -9
    # loses only blocks still queued for the disk cache); a mount started again over the same cache
    # directory reads every warmed log, byte for byte, from it without one GET.
    for pid in daemon_pids(bklogfs_bin, m.path):
        os.kill(pid, signal.SIGKILL)
    assert force_unmount(m.path)
    again = m.remount()
    for key, body in warm_bucket.bodies.items():
        assert read_file(again / key) == body, key
    stats = again.stats()
    assert stats["requests"]["get"] == 0, stats
    assert stats["cache"]["misses"] == 0 and stats["cache"]["disk_hits"] > 0, stats


def test_non_terminal_output_is_plain_lines_and_a_summary(mount, warm_bucket, bklogfs_bin):
    m = mount(bucket=warm_bucket)
    result = warm(bklogfs_bin, m / BUILDS[2], "--progress-interval", "0", "--jobs", "2")
    assert result.returncode == 0, result
    assert "\r" not in result.stderr and "\x1b" not in result.stderr, repr(result.stderr)
    # Progress lines (the last one may be followed by the wait for the disk cache's writer).
    progress = [line for line in result.stderr.splitlines() if line.startswith("bklogfs warm: ") and " files, " in line]
    assert progress, result.stderr
    last = progress[-1]
    assert "4/4 files, " in last and "/s" in last and "requests" in last, last
    assert "warmed 4 of 4 files" in result.stdout and "failed: 0" in result.stdout, result.stdout


def test_a_subtree_bigger_than_the_disk_cache_is_refused_before_any_request(mount, warm_bucket, bklogfs_bin):
    m = mount(bucket=warm_bucket, extra_args=["--cache-size", "1M"])
    assert m.stats()["cache"]["disk_max_bytes"] == MiB
    before = gets(m)
    refused = warm(bklogfs_bin, m / PIPELINE)
    assert refused.returncode != 0, refused
    message = refused.stderr.strip()
    assert "more than the 1.0 MiB it may hold (--cache-size)" in message, message
    assert "warm a smaller path, or remount with a bigger --cache-size" in message and "--anyway" in message
    assert refused.stdout == ""
    assert gets(m) == before

    # A mount that keeps no disk cache is refused too, with what to do.
    none = mount(bucket=warm_bucket, extra_args=["--cache-size", "0"])
    refused = warm(bklogfs_bin, none / BUILDS[2])
    assert refused.returncode != 0 and "keeps no disk cache" in refused.stderr, refused
    assert gets(none) == 0

    # --anyway reads it all the same.
    anyway = warm(bklogfs_bin, m / BUILDS[2], "--anyway")
    assert anyway.returncode == 0 and "warmed 4 of 4 files" in anyway.stdout, anyway


def test_a_path_outside_any_mount_says_what_to_give(bklogfs_bin, tmp_path):
    result = warm(bklogfs_bin, tmp_path)
    assert result.returncode != 0
    assert f"{tmp_path} is not in a bklogfs mount: give a path under a mountpoint" in result.stderr, result.stderr
    missing = warm(bklogfs_bin, tmp_path / "nothing")
    assert missing.returncode != 0 and "does not exist" in missing.stderr, missing.stderr


def test_ctrl_c_stops_with_130_and_the_same_command_goes_on(mount, warm_bucket, bklogfs_bin):
    m = mount(bucket=warm_bucket, extra_args=["--readahead", "2M"])
    subtree = m / BIG_KEY.rsplit("/", 2)[0]
    proc = subprocess.Popen([bklogfs_bin, "warm", str(subtree), "--progress-interval", "0", "--jobs", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupted once the first bytes are read, well before the end of the big log.
    line = proc.stderr.readline()
    assert line.startswith("bklogfs warm: "), line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "run the same command again to go on" in err, err
    assert "warmed 0 of 1 file" in out, out
    fetched_first = m.stats()["bytes_fetched"]
    assert 0 < fetched_first < BIG_SIZE, fetched_first

    # Again: it goes on, and what the first run fetched is not fetched again.
    time.sleep(0.5)
    resumed = warm(bklogfs_bin, subtree)
    assert resumed.returncode == 0 and "warmed 1 of 1 file" in resumed.stdout, resumed
    assert m.stats()["bytes_fetched"] < BIG_SIZE + fetched_first


def test_a_buildkite_mount_is_warmed_with_its_api_budget_shown(mount, fake_buildkite, tmp_path, bklogfs_bin):
    """Logs of Buildkite's storage show size 0 until opened: the total grows as they are read, and
    the progress shows the API's rate-limit budget, as the mount's counters (`api_budget`) give it."""
    special = load_fake_buildkite_world().SPECIAL
    m = mount(_source_args=buildkite_source_args(fake_buildkite, tmp_path))
    build = m / special["org"] / special["pipeline"] / str(special["big_log"])
    result = warm(bklogfs_bin, build, "--progress-interval", "0")
    assert result.returncode == 0, result
    assert "failed: 0" in result.stdout, result.stdout
    progress = [line for line in result.stderr.splitlines() if line.startswith("bklogfs warm: ") and " files, " in line]
    assert progress and "API budget " in progress[-1] and " left" in progress[-1], result.stderr
    budget = m.stats()["api_budget"]
    assert budget["remaining"] > 0 and budget["limit"] > 0, budget
    logs = [p for p in build.iterdir() if p.is_file() and not p.is_symlink() and p.suffix == ".log"]
    assert logs
    fetched = fake_buildkite.counters()
    again = warm(bklogfs_bin, build)
    assert again.returncode == 0 and ", 0 requests made" in again.stdout, again.stdout
    assert fake_buildkite.counters() == fetched, "a second warm asked the API again"
