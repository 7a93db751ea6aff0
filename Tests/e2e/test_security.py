"""End-to-end: what a mount keeps from other users and other processes (issue 5, security). Other
users cannot read a mount unless it is made with `-o allow_other`; the daemon, whose memory and
environment hold its credentials, leaves no core dump; the Buildkite token reaches no log line,
cache file, catalog or argv."""

import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import daemon_pids, force_unmount, is_mounted, read_file, require, require_fuse

NOBODY = 65534


def as_nobody(*argv):
    """Runs argv as the user nobody, with no capabilities."""
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def shared_dir():
    """A directory every user may pass through, for a mountpoint other users can reach."""
    require(os.geteuid() == 0, "needs root, to act as other users")
    require(shutil.which("setpriv") is not None, "setpriv is not installed (util-linux)")
    path = Path(tempfile.mkdtemp(prefix="bklogfs-security-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_other_users_read_a_mount_only_with_allow_other(mount, seeded_bucket, shared_dir):
    key = seeded_bucket.real_keys[0]
    want = read_file(seeded_bucket.path(key))

    private = mount(mountpoint=shared_dir / "private")
    r = as_nobody("cat", str(private / key))
    assert r.returncode != 0 and "Permission denied" in r.stderr, (r.returncode, r.stderr)
    r = as_nobody("ls", str(private.path))
    assert r.returncode != 0 and "Permission denied" in r.stderr, (r.returncode, r.stderr)
    assert read_file(private / key) == want, "the user who mounted cannot read"

    shared = mount(mountpoint=shared_dir / "shared", extra_args=["-o", "allow_other"])
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", "cat",
                        str(shared / key)], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == want, r.stderr
    # A read-only mount: every write is refused whoever asks.
    r = as_nobody("touch", str(shared / "new-file"))
    assert r.returncode != 0, "another user created a file"


def _unlimited_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _core_files(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith("core"))


def test_the_daemon_leaves_no_core_dump(bklogfs_bin, tmp_path):
    """The daemon is not dumpable (PR_SET_DUMPABLE 0): a signal that dumps core leaves none of its
    memory, which holds its credentials, on disk; and for the same reason no other process of its
    user may read its /proc/PID/mem or environ."""
    require_fuse()
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    require(pattern.startswith("core"), f"core dumps go to {pattern!r}, not a file in the working directory")
    # The check can fail: an ordinary process killed the same way leaves a core file.
    control_dir = tmp_path / "control"
    control_dir.mkdir()
    control = subprocess.Popen(["sleep", "30"], cwd=control_dir, preexec_fn=_unlimited_core_dumps)
    time.sleep(0.2)
    control.send_signal(signal.SIGXCPU)
    control.wait(timeout=30)
    require(_core_files(control_dir), "this machine writes no core file for a plain process")

    daemon_dir, mnt, archive = tmp_path / "daemon", tmp_path / "mnt", tmp_path / "archive"
    for d in (daemon_dir, mnt, archive):
        d.mkdir()
    (archive / "a.log").write_text("hello\n")
    proc = subprocess.Popen([bklogfs_bin, "mount", str(mnt), "--foreground", "--archive", str(archive),
                             "--cache-dir", str(tmp_path / "cache")], cwd=daemon_dir, preexec_fn=_unlimited_core_dumps,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mnt):
            assert proc.poll() is None and time.monotonic() < deadline, "the foreground mount did not come up"
            time.sleep(0.1)
        assert (mnt / "a.log").read_text() == "hello\n"
        proc.send_signal(signal.SIGXCPU)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGXCPU, proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        force_unmount(mnt)
    assert _core_files(daemon_dir) == [], "the daemon left a core dump"


def test_the_buildkite_token_reaches_no_log_cache_catalog_or_argv(mount, fake_buildkite, tmp_path, bklogfs_bin):
    token = "bkua_fake_full"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    m = mount(_source_args=["--api-token-file", str(token_file), "--api-endpoint", fake_buildkite.api],
              extra_args=["--log-level", "trace"])
    files = [p for p in m.path.rglob("*") if p.is_file() and not p.is_symlink()]
    assert files, "the names mount shows no file"
    for path in files[:6]:
        read_file(path)
    assert not (m.path / "no-such-organization").exists()
    stats = subprocess.run([bklogfs_bin, "stats", str(m.path)], capture_output=True, text=True, timeout=30)
    argv = b" ".join(Path(f"/proc/{pid}/cmdline").read_bytes() for pid in daemon_pids(bklogfs_bin, m.path))
    m.unmount()

    needle = token.encode()
    assert needle not in argv
    assert token not in stats.stdout + stats.stderr
    log = Path(m.log_path).read_bytes()
    assert b"GET" in log or b"request" in log.lower(), "the trace log shows no request: the test would prove nothing"
    assert needle not in log, "the token is in the log"
    cached = [p for p in Path(m.cache_dir).rglob("*") if p.is_file()]
    assert any(p.name.startswith("catalog") for p in cached), f"no catalog in {m.cache_dir}"
    for path in cached:
        assert needle not in path.read_bytes(), f"the token is in {path}"
