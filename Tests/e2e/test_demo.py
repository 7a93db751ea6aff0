"""End-to-end: README's first command, `scripts/demo`, runs to the end on this machine and shows
what it promises: Buildkite's names over the fake API and a moto archive by default, and the
archive's UUID tree with `--archive`."""

import os
import subprocess
from pathlib import Path

from conftest import REPO_ROOT, require


def run_demo(*args):
    require(os.path.exists("/dev/fuse"), "/dev/fuse is missing")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "demo"), *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_the_demo_shows_buildkites_names():
    r = run_demo()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    # Names, not UUIDs: organization, pipelines, build numbers, job aliases (a retried attempt too).
    assert "$ ls acme\nbilling-api\nsearch-indexer\nweb-app\n" in out, out
    assert "1 2 3 4 5 6 7 8 9 10" in out
    for alias in ("rspec-1.log ->", "rspec-3.attempt1.log ->", "upload.log ->", "docker.log ->"):
        assert alias in out, alias
    # The plain view: a log's start and grep hits read as text: path, line number and the line.
    assert "$ bklogfs mount plain --plain" in out
    assert "$ bklogfs unmount plain" in out
    hits = [line for line in out.splitlines() if line.startswith("acme/search-indexer/") and ":" in line]
    assert any("java.lang.OutOfMemoryError: Java heap space" in line for line in hits), hits
    assert not any("\x1b" in line for line in hits)
    assert "Cloning into '.'..." in out
    # `bklogfs stats` is a table for people.
    assert "\nrequests " in out and "\nblock reads " in out and "\nnames held " in out, out
    assert "$ bklogfs unmount mnt" in out
    assert not [line for line in Path("/proc/mounts").read_text().splitlines() if "bklogfs-demo" in line]


def test_the_demo_of_the_archive_shows_its_uuid_tree():
    r = run_demo("--archive")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "OutOfMemoryError" in r.stdout and "$ bklogfs unmount mnt" in r.stdout
    assert not [line for line in Path("/proc/mounts").read_text().splitlines() if "bklogfs-demo" in line]
