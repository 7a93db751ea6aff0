"""End-to-end: the disk under the cache fails (issue 5). The cache directory is on a small tmpfs
mounted for the test: full long before `--cache-size` is reached, or remounted read-only in the
middle of a run. Reads still give the right bytes with no error, the daemon logs the write failure
(once a minute at most), and no temporary block file is left behind."""

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from conftest import MiB, read_file, require, stat_delta

WRITE_FAILURE = "Cannot write a block to the disk cache"


@contextlib.contextmanager
def small_tmpfs(path, size):
    require(os.geteuid() == 0, "mounting a tmpfs for the cache directory needs root")
    require(shutil.which("mount") is not None, "mount(8) is not on PATH")
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                       capture_output=True, text=True, timeout=30)
    require(r.returncode == 0, f"cannot mount a tmpfs on {path}: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def remount(path, mode):
    """`mount -o remount,MODE`; a file still open for writing makes it EBUSY for a moment: try again."""
    deadline = time.monotonic() + 20
    while True:
        r = subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True, text=True, timeout=30)
        if r.returncode == 0:
            return
        assert time.monotonic() < deadline, f"cannot remount {path} {mode}: {r.stderr.strip()}"
        time.sleep(0.05)


def temporary_files(directory):
    return [p for p in Path(directory).rglob("*") if p.name.endswith(".tmp")]


def write_failures(m):
    return [line for line in m.log_path.read_text(errors="replace").splitlines() if WRITE_FAILURE in line]


def test_a_full_cache_disk_loses_no_byte_and_leaves_no_temporary_file(mount, seeded_bucket, tmp_path):
    with small_tmpfs(tmp_path / "small-disk", "8m") as disk:
        # --cache-size is 1G (the factory's default), far more than the 8 MiB the disk holds.
        m = mount(cache_dir=disk / "cache", extra_args=["--memory-cache-size", "16M"])
        keys = [seeded_bucket.big_key] + sorted(k for k in seeded_bucket.keys if k != seeded_bucket.big_key)[:20]
        for key in keys:
            r = subprocess.run(["cat", str(m / key)], capture_output=True, timeout=120)
            assert r.returncode == 0, f"{key}: {r.stderr.decode(errors='replace')}"
            assert r.stdout == read_file(seeded_bucket.path(key)), key
        stats = m.stats()
        assert stats["failures"] == 0, stats
        assert stats["cache"]["disk_bytes"] <= 8 * MiB, stats
        failures = write_failures(m)
        assert failures, "the daemon did not log that the cache disk is full"
        assert "No space left on device" in failures[0], failures[0]
        assert len(failures) <= 2, f"write failures are not rate-limited: {len(failures)} lines"
        m.unmount()
        assert not temporary_files(disk), temporary_files(disk)


def test_a_cache_disk_turned_read_only_mid_run_loses_no_byte_and_keeps_what_it_had(mount, seeded_bucket, tmp_path):
    with small_tmpfs(tmp_path / "ro-disk", "128m") as disk:
        m = mount(cache_dir=disk / "cache")
        small = sorted(k for k in seeded_bucket.keys if k != seeded_bucket.big_key and seeded_bucket.keys[k] > 0)[:8]
        for key in small:
            assert read_file(m / key) == read_file(seeded_bucket.path(key))
        # Blocks reach the disk just after the reader has them: wait until they are all there.
        deadline = time.monotonic() + 20
        while m.stats()["cache"]["disk_blocks"] < len(small):
            assert time.monotonic() < deadline, m.stats()
            time.sleep(0.1)
        remount(disk, "ro")
        try:
            big = seeded_bucket.big_key
            r = subprocess.run(["cat", str(m / big)], capture_output=True, timeout=120)
            assert r.returncode == 0, r.stderr.decode(errors="replace")
            assert r.stdout == read_file(seeded_bucket.path(big))
            assert m.stats()["failures"] == 0
            failures = write_failures(m)
            assert failures and "Read-only file system" in failures[0], failures
            assert len(failures) <= 2, f"write failures are not rate-limited: {len(failures)} lines"
        finally:
            remount(disk, "rw")
        m.unmount()
        assert not temporary_files(disk), temporary_files(disk)

        # What was cached before the disk turned read-only is still served from it.
        m2 = m.remount()
        before = m2.stats()
        for key in small:
            assert read_file(m2 / key) == read_file(seeded_bucket.path(key))
        assert stat_delta(before, m2.stats(), "requests", "get") == 0, "blocks cached before were fetched again"
        m2.unmount()
