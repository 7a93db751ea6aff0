"""End-to-end: unmounting while readers are busy (issue 5). `bklogfs unmount` in the middle of 10
readers (cat, grep -r, ls -lR, find) returns in bounded time (`--lazy` when the mount is busy); every
reader then ends, with its bytes right or an error, never a hang; the daemon exits 0; no temporary
block file is left; and a new mount on the same cache serves what was cached without a GET."""

import contextlib
import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REGION, foreground_mount, is_mounted, log_text, read_file, run_bklogfs, stat_delta

READER_BOUND = 60  # seconds every reader may take to end once the unmount returned


def test_unmount_under_load_ends_every_reader_and_a_new_mount_serves_the_cache(mount, seeded_bucket, bklogfs_bin,
                                                                               tmp_path):
    mnt, cache = tmp_path / "busy-mnt", tmp_path / "cache"
    source = ["--bucket", seeded_bucket.name, "--endpoint", seeded_bucket.endpoint, "--region", REGION,
              "--cache-dir", cache, "--cache-size", "1G", "--log-level", "info"]
    readers = []
    # A foreground mount is this test's child, so its exit status can be read.
    with foreground_mount(bklogfs_bin, mnt, source, tmp_path / "foreground.log") as (daemon, log), \
            killed_at_the_end(readers):
        small = sorted(k for k in seeded_bucket.keys if k != seeded_bucket.big_key and seeded_bucket.keys[k] > 0)
        cached = small[:6]
        for key in cached:
            assert read_file(mnt / key) == read_file(seeded_bucket.path(key))
        wait_for_disk_blocks(bklogfs_bin, mnt, len(cached))

        big = mnt / seeded_bucket.big_key
        top = seeded_bucket.big_key.split("/")[0]
        files = [str(mnt / k) for k in small]
        # Each reader goes on (a bounded number of times) until it ends or the unmount stops it.
        def again(command):
            return ["sh", "-c", f'for i in $(seq 1000); do {command} > /dev/null || exit 1; done', "sh"]

        # The big log's readers go over it three times: one pass takes about 2 s here, and they must
        # still be reading when the unmount begins.
        def thrice(command):
            return ["sh", "-c", f'for i in 1 2 3; do {command} || exit 1; done', command.split()[0], str(big)]

        commands = [thrice('md5sum "$1"'), thrice('cat "$1"'), thrice('tail -c 1000000 "$1"'),
                    again('{ grep -rc error "$1"; [ $? -le 1 ]; }') + [str(mnt)],
                    again('{ grep -rl "bk;t=" "$1"; [ $? -le 1 ]; }') + [str(mnt / top)],
                    again('ls -lR "$1"') + [str(mnt)], again('ls -lR "$1"') + [str(mnt / top)],
                    again('find "$1" -type f -exec cat {} +') + [str(mnt)],
                    again('cat "$@"') + files, again('cat "$@"') + list(reversed(files))]
        readers += [(c, subprocess.Popen(c, stdout=subprocess.PIPE if c[3] == "md5sum" else subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)) for c in commands]
        time.sleep(1.5)
        running = [c[3] for c, p in readers if p.poll() is None]
        assert len(running) >= 8, f"only {running} were still reading when the unmount began"

        started = time.monotonic()
        r = run_bklogfs(bklogfs_bin, "unmount", mnt, timeout=30)
        print(f"bklogfs unmount: exit {r.returncode}, {r.stderr.strip()!r}")
        if r.returncode != 0:
            assert "busy" in r.stderr, r.stderr
            r = run_bklogfs(bklogfs_bin, "unmount", "--lazy", mnt, timeout=30)
            assert r.returncode == 0, r.stderr
        assert time.monotonic() - started < 30
        assert not is_mounted(mnt)

        ends = time.monotonic() + READER_BOUND
        want_md5 = hashlib.md5(read_file(seeded_bucket.path(seeded_bucket.big_key))).hexdigest()
        for command, proc in readers:
            try:
                out, err = proc.communicate(timeout=max(1, ends - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{command[:3]} was still running {READER_BOUND} s after the unmount")
            print(f"{' '.join(command[2:])[:60]}: exit {proc.returncode}, {err.decode(errors='replace')[-120:]!r}")
            if command[3] == "md5sum":
                # Every pass that completed, before the unmount stopped the reader, got the right bytes.
                sums = [line.split()[0].decode() for line in out.splitlines() if line.strip()]
                assert proc.returncode != 0 or len(sums) == 3, (proc.returncode, sums)
                assert all(s == want_md5 for s in sums), "a reader that completed got wrong bytes"
            # Anything else may end either way: done, or an error (its files are gone from the path).
        try:
            code = daemon.wait(timeout=READER_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the daemon still runs {READER_BOUND} s after the unmount: {log_text(log)}")
        assert code == 0, f"the daemon exited {code}: {log_text(log)}"
        assert "unmounted" in log_text(log)
        leftovers = [p for p in Path(cache).rglob("*") if p.name.endswith(".tmp")]
        assert not leftovers, leftovers
    # The same cache in a new mount: what was cached before the unmount is served without a GET.
    again = mount(cache_dir=cache)
    before = again.stats()
    for key in cached:
        assert read_file(again / key) == read_file(seeded_bucket.path(key))
    assert stat_delta(before, again.stats(), "requests", "get") == 0, "cached blocks were fetched again"
    assert read_file(again / seeded_bucket.big_key) == read_file(seeded_bucket.path(seeded_bucket.big_key))


@contextlib.contextmanager
def killed_at_the_end(processes):
    """Kills, at the end of the block, the (command, process) pairs of `processes` still running."""
    try:
        yield
    finally:
        for _, proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def wait_for_disk_blocks(binary, mnt, count):
    """Blocks reach the disk just after their reader has them: wait (bounded) until `count` are there."""
    deadline = time.monotonic() + 20
    while True:
        r = run_bklogfs(binary, "stats", "--json", mnt, timeout=30)
        assert r.returncode == 0, r.stderr
        if json.loads(r.stdout)["cache"]["disk_blocks"] >= count:
            return
        assert time.monotonic() < deadline, r.stdout
        time.sleep(0.1)


