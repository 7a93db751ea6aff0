"""End-to-end: logs in Buildkite's storage are listed without a request per job and sized by their
first open (doc/SEMANTICS.md, "Log sizes"). What each tool costs and sees, against the fake API's
request counters: `ls -l`, `find` and `du` ask nothing and show 0 for a log not opened yet; `cat`,
`tail`, `grep`, `less` and `rsync -a` read the right bytes at the first open; `stat` shows the size
from that open on, and a remount over the same catalog shows it at once."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import load_fake_buildkite_world, require
from test_buildkite_names import names_args

WORLD = load_fake_buildkite_world()
SPECIAL = WORLD.SPECIAL
ORG, TOOLS, WEB = SPECIAL["org"], SPECIAL["pipeline"], SPECIAL["big_pipeline"]
BLOCK = 1 << 20  # the mount's block: the suffix an open asks for


def run(*args, **kw):
    r = subprocess.run(list(map(str, args)), capture_output=True, timeout=60, env={**os.environ, "LC_ALL": "C"}, **kw)
    assert r.returncode == 0, f"{args} exited {r.returncode}: {r.stderr[-1000:]!r}"
    return r.stdout


def log_requests(fake):
    """The log requests answered since the last call, as (method, Range, status); then zero the counters."""
    asked = [(r["method"], r["range"], r["status"]) for r in fake.counters()["log_requests"]]
    fake.control("reset-counters")
    return asked


def last_lines(data, n):
    """What `tail -n N` prints: the last N lines, a last one without a newline counted."""
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        return b"\n".join(lines[:-1][-n:]) + b"\n"
    return b"\n".join(lines[-n:])


def script_jobs(fake, pipeline, number):
    return [j for j in WORLD.find_build(fake.world, ORG, pipeline, number)["jobs"] if j.get("type") == "script"]


def finished_logs(fake, pipeline, number):
    """{job id: bytes} of a finished build's script jobs that have a log."""
    found = {j["id"]: WORLD.log_bytes(fake.world, j["id"]) for j in script_jobs(fake, pipeline, number)}
    return {k: v for k, v in found.items() if v is not None}


def test_ls_find_and_du_of_an_organization_ask_no_log_and_show_size_zero(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_fake_full", "--recent-builds", "100"))
    log_requests(fake_buildkite)
    found = run("find", m / ORG, "-name", "*.log", "-type", "f", "-printf", "%s %p\n").decode().splitlines()
    # web-app's newest 100 builds with 2 script jobs each, and tools' 16 logs (its deleted one among them).
    assert len(found) == 100 * 2 + 16, len(found)
    assert {line.split()[0] for line in found} == {"0"}, "a log not opened yet shows size 0"
    listing = run("ls", "-lR", m / ORG).decode()
    assert listing.count(".log") >= len(found)
    du = run("du", "-s", "--block-size=1", *[line.split(" ", 1)[1] for line in found[:20]]).decode()
    assert {line.split()[0] for line in du.splitlines()} == {"0"}, du
    assert log_requests(fake_buildkite) == [], "ls, find and du of a whole organization ask for no log"
    endpoints = fake_buildkite.counters()["endpoints"]
    assert all("/log" not in e for e in endpoints), endpoints
    # Opening each log once shows every size, at one request each.
    build = m / ORG / WEB / "300"
    logs = finished_logs(fake_buildkite, WEB, 300)
    run("find", build, "-name", "*.log", "-type", "f", "-exec", "head", "-c0", "{}", "+")
    assert log_requests(fake_buildkite) == [("GET", f"bytes=-{BLOCK}", 206)] * len(logs)
    sized = run("find", build, "-name", "*.log", "-type", "f", "-printf", "%f %s\n").decode().split()
    assert dict(zip(sized[::2], map(int, sized[1::2]))) == {f"{job}.log": len(b) for job, b in logs.items()}


def test_each_tool_reads_the_right_bytes_at_the_first_open_and_stat_shows_the_size_after(
        mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    build = m / ORG / WEB / "300"
    logs = finished_logs(fake_buildkite, WEB, 300)
    big_job, big = next(iter(finished_logs(fake_buildkite, TOOLS, SPECIAL["big_log"]).items()))
    big_path = m / ORG / TOOLS / str(SPECIAL["big_log"]) / f"{big_job}.log"
    retried = m / ORG / TOOLS / str(SPECIAL["retried"])
    retried_logs = finished_logs(fake_buildkite, TOOLS, SPECIAL["retried"])
    os.listdir(build), os.listdir(big_path.parent), os.listdir(retried)
    paths = {job: build / f"{job}.log" for job in logs} | {job: retried / f"{job}.log" for job in retried_logs}
    paths[big_job] = big_path
    expected = logs | retried_logs | {big_job: big}
    assert all(os.stat(p).st_size == 0 for p in paths.values())
    log_requests(fake_buildkite)
    jobs = iter(sorted(expected))

    def first_open(tool_args, job):
        """Runs a tool on a log not opened yet; checks it cost one suffix request and sized the log."""
        path = paths[job]
        assert os.stat(path).st_size == 0
        out = run(*tool_args, path)
        assert log_requests(fake_buildkite) == [("GET", f"bytes=-{BLOCK}", 206)], tool_args
        assert os.stat(path).st_size == len(expected[job]), f"stat after {tool_args[0]}"
        assert os.stat(path).st_blocks == (len(expected[job]) + 511) // 512, "du after the first open"
        return out

    job = next(jobs)
    assert first_open(["cat"], job) == expected[job]
    job = next(jobs)
    assert first_open(["tail", "-n", "5"], job) == last_lines(expected[job], 5)
    job = next(jobs)
    # GNU grep reads to the end of the file: every line counted.
    count = sum(1 for line in expected[job].split(b"\n") if b"--- " in line)
    assert count > 0
    assert first_open(["grep", "-c", "-F", "--", "--- "], job) == f"{count}\n".encode()
    job = next(jobs)
    copy = tmp_path / "copy.log"
    assert os.stat(paths[job]).st_size == 0
    run("rsync", "-a", paths[job], copy)
    assert log_requests(fake_buildkite) == [("GET", f"bytes=-{BLOCK}", 206)]
    assert copy.read_bytes() == expected[job], "rsync -a copies what reading gives"
    assert os.stat(paths[job]).st_size == len(expected[job])
    assert run("rsync", "-a", "-i", paths[job], copy) == b"", "a second rsync -a in the same mount copies nothing"
    job = next(jobs)
    copied = tmp_path / "cp.log"
    assert os.stat(paths[job]).st_size == 0
    run("cp", paths[job], copied)
    assert log_requests(fake_buildkite) == [("GET", f"bytes=-{BLOCK}", 206)]
    assert copied.read_bytes() == expected[job], "cp copies what reading gives"
    # The biggest log (~550 KB, shorter than a block): tail -c, one request.
    assert first_open(["tail", "-c", "1000"], big_job) == big[-1000:]
    # Read again: the caches, no request.
    assert run("cat", *paths.values()) == b"".join(expected[j] for j in paths)
    log_requests(fake_buildkite)
    # A later mount over the same catalog shows the sizes learned, with no request.
    again = m.remount()
    sizes = {job: os.stat(again / p.relative_to(m.path)).st_size for job, p in paths.items()}
    assert sizes == {job: len(b) for job, b in expected.items()}
    assert log_requests(fake_buildkite) == []


def test_less_pages_a_log_not_opened_yet_to_its_end(mount, fake_buildkite, tmp_path):
    require(shutil.which("tmux") is not None and shutil.which("less") is not None, "tmux or less is not installed")
    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    job, data = next(iter(finished_logs(fake_buildkite, TOOLS, SPECIAL["big_log"]).items()))
    path = m / ORG / TOOLS / str(SPECIAL["big_log"]) / f"{job}.log"
    assert path.stat().st_size == 0
    # The end of the last line with text, as less shows it (-R: colours passed through; -S: lines not folded).
    last = [line for line in data.replace(b"\r", b"").split(b"\n") if line.strip()][-1]
    marker = re.sub(r"\x1b\[[0-9;]*m", "", last.decode(errors="replace")).strip()[-15:]
    assert len(marker) == 15
    session = f"bklogfs-less-{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50",
                    f"LESSHISTFILE=- less -R -S {path}"], check=True)
    try:
        time.sleep(1)
        subprocess.run(["tmux", "send-keys", "-t", session, "G"], check=True)
        deadline = time.monotonic() + 20
        screen = ""
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
            if "(END)" in screen and marker in screen:
                break
            time.sleep(0.2)
        assert "(END)" in screen and marker in screen, screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session])
    assert path.stat().st_size == len(data)
    gets = [r for r in log_requests(fake_buildkite) if r[0] == "GET"]
    assert gets == [("GET", f"bytes=-{BLOCK}", 206)], gets


def test_a_deleted_log_is_listed_until_opened_then_gone_in_this_mount_and_the_next(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    build = m / ORG / TOOLS / str(SPECIAL["empty_deleted"])
    deleted = [j["id"] for j in script_jobs(fake_buildkite, TOOLS, SPECIAL["empty_deleted"])
               if WORLD.log_bytes(fake_buildkite.world, j["id"]) is None]
    assert len(deleted) == 1
    name = f"{deleted[0]}.log"
    assert name in os.listdir(build)
    log_requests(fake_buildkite)
    with pytest.raises(FileNotFoundError):
        open(build / name, "rb").close()
    assert log_requests(fake_buildkite) == [("GET", f"bytes=-{BLOCK}", 404)]
    assert name not in os.listdir(build)
    # The kernel is told to drop the name (from a queue of its own, so a moment later).
    deadline = time.monotonic() + 5
    while os.path.lexists(build / name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.lexists(build / name)
    again = m.remount()
    assert name not in os.listdir(again / ORG / TOOLS / str(SPECIAL["empty_deleted"]))
    assert log_requests(fake_buildkite) == []
