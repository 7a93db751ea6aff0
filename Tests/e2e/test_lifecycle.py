"""End-to-end: how `bklogfs mount` fails, and how a foreground mount stops."""

import os
import signal
import subprocess
import time

import pytest

from conftest import REGION, closed_port, daemon_pids, foreground_mount, is_mounted, read_file

QUICK = 20  # seconds a failing mount may take (an unreachable endpoint includes a few retries)


def _assert_failed_cleanly(result, elapsed, mnt, binary):
    assert result.returncode != 0, f"mount succeeded: {result.stdout} {result.stderr}"
    msg = result.stderr.strip()
    assert msg, "no message on stderr"
    assert "\n" not in msg, f"more than one line on stderr:\n{result.stderr}"
    assert elapsed < QUICK, f"took {elapsed:.1f}s to fail"
    assert not is_mounted(mnt), f"{mnt} left mounted"
    time.sleep(0.2)
    assert not daemon_pids(binary, mnt), "a daemon was left running"


def _try_mount(mount, **kw):
    start = time.monotonic()
    m = mount(check=False, timeout=QUICK + 30, **kw)
    return m, time.monotonic() - start


def test_mount_onto_a_non_empty_dir_fails(mount, seeded_bucket, tmp_path, bklogfs_bin):
    mnt = tmp_path / "busy"
    mnt.mkdir()
    (mnt / "keep.txt").write_text("mine")
    m, elapsed = _try_mount(mount, mountpoint=mnt)
    _assert_failed_cleanly(m.result, elapsed, mnt, bklogfs_bin)
    assert (mnt / "keep.txt").read_text() == "mine"


def test_mount_of_a_missing_bucket_fails(mount, seeded_bucket, tmp_path, bklogfs_bin):
    mnt = tmp_path / "nobucket"
    m, elapsed = _try_mount(mount, mountpoint=mnt, _source_args=[
        "--bucket", "no-such-bucket-e2e", "--endpoint", seeded_bucket.endpoint, "--region", REGION])
    _assert_failed_cleanly(m.result, elapsed, mnt, bklogfs_bin)
    assert "check the bucket's name" in m.result.stderr, m.result.stderr  # what to do next


def test_mount_with_an_unreachable_endpoint_fails(mount, tmp_path, bklogfs_bin):
    mnt = tmp_path / "unreachable"
    m, elapsed = _try_mount(mount, mountpoint=mnt, _source_args=[
        "--bucket", "whatever", "--endpoint", f"http://127.0.0.1:{closed_port()}", "--region", REGION])
    _assert_failed_cleanly(m.result, elapsed, mnt, bklogfs_bin)
    assert "check the endpoint" in m.result.stderr, m.result.stderr  # what to do next


def test_mount_of_a_missing_archive_dir_fails(mount, tmp_path, bklogfs_bin):
    mnt = tmp_path / "noarchive"
    m, elapsed = _try_mount(mount, mountpoint=mnt, archive=tmp_path / "does-not-exist")
    _assert_failed_cleanly(m.result, elapsed, mnt, bklogfs_bin)


def test_a_mount_the_kernel_refuses_fails_with_one_sentence_and_no_crash(mount, tmp_path, bklogfs_bin):
    # blksize is a fuseblk option: libfuse passes it on and the kernel refuses the mount itself, so
    # it fails in fuse_session_mount, after the session was made (once a double free there).
    mnt = tmp_path / "refused"
    src = tmp_path / "archive"
    src.mkdir()
    m, elapsed = _try_mount(mount, mountpoint=mnt, archive=src, extra_args=["-o", "blksize=4096"])
    _assert_failed_cleanly(m.result, elapsed, mnt, bklogfs_bin)
    assert "could not mount" in m.result.stderr, m.result.stderr
    log = m.log_path.read_text()
    assert "crashed" not in log and "double free" not in log, log[-2000:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_a_foreground_mount_unmounts_cleanly(bklogfs_bin, seeded_bucket, tmp_path, sig):
    mnt = tmp_path / "fg"
    source = ["--bucket", seeded_bucket.name, "--endpoint", seeded_bucket.endpoint, "--region", REGION,
              "--cache-dir", tmp_path / "cache"]
    with foreground_mount(bklogfs_bin, mnt, source, tmp_path / "fg.stderr") as (proc, _):
        key = seeded_bucket.real_keys[0]
        assert read_file(mnt / key) == read_file(seeded_bucket.path(key))
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{sig.name} did not stop the foreground mount within 15 s")
        assert not is_mounted(mnt), f"{mnt} still mounted after {sig.name}"
        assert rc == 0, f"foreground mount exited {rc} after {sig.name}"


def _environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)


def test_the_daemon_runs_with_huge_page_malloc_unless_the_user_tunes_malloc(mount, seeded_bucket, bklogfs_bin):
    m = mount()
    (pid,) = daemon_pids(bklogfs_bin, m.path)
    assert b"glibc.malloc.hugetlb=1" in _environ(pid).get(b"GLIBC_TUNABLES", b""), _environ(pid)
    m.unmount()
    os.environ["GLIBC_TUNABLES"] = "glibc.malloc.arena_max=3"
    try:
        m = mount()
    finally:
        del os.environ["GLIBC_TUNABLES"]
    (pid,) = daemon_pids(bklogfs_bin, m.path)
    assert _environ(pid).get(b"GLIBC_TUNABLES") == b"glibc.malloc.arena_max=3"
    key = seeded_bucket.real_keys[0]
    assert read_file(m / key) == read_file(seeded_bucket.path(key))
