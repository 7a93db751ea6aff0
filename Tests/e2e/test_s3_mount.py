"""End-to-end: mount the seeded moto bucket through FUSE and use ordinary tools on it."""

import codecs
import errno
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import MiB, process_alive, read_file, stat_delta

LS_FILE = re.compile(r'^-\S+\s+\d+\s+\S+\s+\S+\s+(\d+)\s+(\d+)\s+"(.*)"$')
LS_DIR_HEADER = re.compile(r'^"(.*)":$')


def c_unquote(s):
    """Undo `ls --quoting-style=c` (C escapes, octal bytes for non-ASCII in the C locale)."""
    return codecs.escape_decode(s.encode("ascii"))[0].decode("utf-8", errors="surrogateescape")


def run(cmd, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, capture_output=True, **kw)


def test_stats_are_json_with_the_documented_fields(mount):
    m = mount()
    s = m.stats()
    for k in ("list", "head", "get"):
        assert isinstance(s["requests"][k], int)
    for k in ("bytes_fetched", "retries", "failures"):
        assert isinstance(s[k], int)
    for k in ("memory_hits", "disk_hits", "misses", "disk_bytes", "disk_bytes_on_disk", "disk_blocks", "corrupt_blocks",
              "disk_queue_bytes", "disk_queue_max_bytes", "disk_queue_dropped"):
        assert isinstance(s["cache"][k], int)
    # A histogram per kind: 12 bounded buckets and +Inf, as many requests as counted once none is in flight.
    for k in ("list", "head", "get"):
        histogram = s["latency"][k]
        assert len(histogram["counts"]) == 13 and isinstance(histogram["sum_microseconds"], int)
        assert sum(histogram["counts"]) == s["requests"][k]
    assert "api" not in s["latency"]


def test_cat_of_every_file_equals_the_object(mount, seeded_bucket):
    m = mount()
    for key in sorted(seeded_bucket.keys):
        if key == seeded_bucket.big_key:
            continue  # read with cat below, once
        assert read_file(m / key) == read_file(seeded_bucket.path(key)), key
    big = run(["cat", str(m / seeded_bucket.big_key)], timeout=300)
    assert big.returncode == 0, big.stderr
    assert big.stdout == read_file(seeded_bucket.path(seeded_bucket.big_key))


def test_ls_lR_shows_every_key_with_its_size_and_mtime(mount, seeded_bucket):
    m = mount()
    r = run(["ls", "-lRn", "--time-style=+%s", "--quoting-style=c", str(m.path)], env={**os.environ, "LC_ALL": "C"})
    assert r.returncode == 0, r.stderr
    seen = {}
    current = None
    for line in r.stdout.decode("ascii").splitlines():
        if h := LS_DIR_HEADER.match(line):
            rel = os.path.relpath(c_unquote(h.group(1)), str(m.path))
            current = "" if rel == "." else rel + "/"
        elif f := LS_FILE.match(line):
            seen[current + c_unquote(f.group(3))] = (int(f.group(1)), int(f.group(2)))
    assert set(seen) == set(seeded_bucket.keys)
    for key, (size, mtime) in seen.items():
        assert size == seeded_bucket.keys[key], key
        assert abs(mtime - seeded_bucket.last_modified[key]) <= 1, f"{key}: mtime {mtime} is not LIST's LastModified"
    # the zero-byte directory marker is a directory, not a file
    assert (m / seeded_bucket.dir_marker).is_dir()


def test_find_counts_every_key(mount, seeded_bucket):
    m = mount()
    r = subprocess.run(f"find '{m.path}' -type f | wc -l", shell=True, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == len(seeded_bucket.keys)


def test_tail_of_the_large_log_fetches_at_most_2_MiB(mount, seeded_bucket):
    m = mount()
    before = m.stats()
    r = run(["tail", "-c", "4096", str(m / seeded_bucket.big_key)])
    after = m.stats()
    assert r.returncode == 0, r.stderr
    assert r.stdout == read_file(seeded_bucket.path(seeded_bucket.big_key))[-4096:]
    fetched = stat_delta(before, after, "bytes_fetched")
    assert fetched <= 2 * MiB + 64 * 1024, f"tail -c 4096 fetched {fetched} bytes of a {seeded_bucket.keys[seeded_bucket.big_key]} byte log"
    assert stat_delta(before, after, "requests", "get") >= 1


@pytest.mark.parametrize("pattern", ["bk;t=", "error", "FAILED", "OutOfMemoryError", "\\+\\+\\+ "])
def test_grep_count_matches_the_source(mount, seeded_bucket, pattern):
    m = mount()
    keys = seeded_bucket.real_keys + [k for k in sorted(seeded_bucket.keys) if k.endswith(".log")][:12]
    for key in keys:
        src = run(["grep", "-c", "-a", pattern, str(seeded_bucket.path(key))])
        mnt = run(["grep", "-c", "-a", pattern, str(m / key)])
        assert mnt.returncode == src.returncode, (key, mnt.stderr)
        assert mnt.stdout == src.stdout, key


def test_grep_recursive_finds_the_same_files(mount, seeded_bucket):
    m = mount()
    src = run(["grep", "-rlaF", "OutOfMemoryError", "."], cwd=seeded_bucket.source, timeout=300)
    mnt = run(["grep", "-rlaF", "OutOfMemoryError", "."], cwd=m.path, timeout=300)
    assert mnt.returncode == src.returncode == 0, mnt.stderr
    assert sorted(mnt.stdout.splitlines()) == sorted(src.stdout.splitlines())


@pytest.mark.slow
def test_rsync_of_the_mount_equals_the_source(mount, seeded_bucket, tmp_path):
    m = mount()
    dest = tmp_path / "rsync-dest"
    r = run(["rsync", "-a", f"{m.path}/", f"{dest}/"], timeout=600)
    assert r.returncode == 0, r.stderr
    d = run(["diff", "-r", "--no-dereference", str(seeded_bucket.source), str(dest)], timeout=300)
    assert d.returncode == 0, d.stdout[-2000:] + d.stderr[-2000:]
    for key in seeded_bucket.keys:
        st = os.stat(dest / key)
        assert st.st_size == seeded_bucket.keys[key]
        assert abs(st.st_mtime - seeded_bucket.last_modified[key]) <= 1, key


def _read_sample(m, bucket):
    """The same reads before and after a remount: some whole files and both ends of the large log."""
    got = {}
    for key in bucket.real_keys[:4] + [k for k in sorted(bucket.keys) if k != bucket.big_key][:6]:
        got[key] = read_file(m / key)
    with open(m / bucket.big_key, "rb") as f:
        head = f.read(4 * MiB)
        f.seek(-4 * MiB, os.SEEK_END)
        tail = f.read()
    got["big:head"], got["big:tail"] = head, tail
    return got


def _expected_sample(bucket, got):
    big = read_file(bucket.path(bucket.big_key))
    want = {k: read_file(bucket.path(k)) for k in got if not k.startswith("big:")}
    want["big:head"], want["big:tail"] = big[: 4 * MiB], big[-4 * MiB :]
    return want


def test_remount_reads_cached_blocks_without_a_GET(mount, seeded_bucket):
    m = mount()
    first = _read_sample(m, seeded_bucket)
    assert first == _expected_sample(seeded_bucket, first)
    s = m.stats()
    # Written, or queued for the disk cache's writer, which writes out its queue before the daemon exits.
    assert s["cache"]["disk_blocks"] > 0 or s["cache"]["disk_queue_bytes"] > 0, f"nothing for the disk cache: {s}"
    daemon = s["pid"]
    r = run([m.factory.binary, "unmount", str(m.path)], timeout=90)
    assert r.returncode == 0, r.stderr
    # `bklogfs unmount` returns once the daemon has written its cache and exited.
    assert not process_alive(daemon), f"the daemon {daemon} outlived bklogfs unmount"

    m2 = m.remount()
    before = m2.stats()
    second = _read_sample(m2, seeded_bucket)
    after = m2.stats()
    assert second == first
    assert stat_delta(before, after, "requests", "get") == 0, f"GETs after remount: {before} -> {after}"
    assert stat_delta(before, after, "cache", "disk_hits") > 0
    assert after["cache"]["corrupt_blocks"] == 0


def test_the_mount_is_read_only(mount, seeded_bucket):
    m = mount()
    key = seeded_bucket.real_keys[0]
    for attempt in (
        lambda: open(m / "new-file.log", "wb"),
        lambda: open(m / key, "r+b"),
        lambda: os.mkdir(m / "newdir"),
        lambda: os.unlink(m / key),
        lambda: os.rename(m / key, m / "renamed.log"),
        # setattr in each of its forms, extended attributes, and the other calls that make names
        lambda: os.chmod(m / key, 0o644),
        lambda: os.chown(m / key, 0, 0),
        lambda: os.truncate(m / key, 0),
        lambda: os.utime(m / key, (0, 0)),
        lambda: os.setxattr(m / key, "user.note", b"x"),
        lambda: os.removexattr(m / key, "user.note"),
        lambda: os.rmdir(m / os.path.dirname(key)),
        lambda: os.symlink(key, m / "link.log"),
        lambda: os.link(m / key, m / "hardlink.log"),
        lambda: os.mknod(m / "fifo", 0o600 | 0o010000),
    ):
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EROFS, e.value
    r = run(["touch", str(m / "touched.log")], text=True)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    assert read_file(m / key) == read_file(seeded_bucket.path(key))
