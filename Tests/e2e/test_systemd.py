"""End-to-end: bklogfs as a systemd service (issue 15). `bklogfs mount --foreground` speaks systemd's
notify protocol (sd_notify(3)): READY=1 once the kernel can use the mount, STOPPING=1 when it
unmounts on SIGTERM. systemd is not running on these machines, so the test plays the service
manager: it binds the datagram socket `NOTIFY_SOCKET` names and reads what arrives. The unit file
in contrib/systemd is checked with `systemd-analyze verify`."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO_ROOT, daemon_pids, force_unmount, is_mounted, kill_pids, read_file, require, \
    require_fuse


def test_a_foreground_mount_tells_systemd_when_it_is_ready_and_when_it_stops(bklogfs_bin, sample_generator,
                                                                           tmp_path):
    require_fuse()
    archive, mnt = tmp_path / "archive", tmp_path / "mnt"
    written = sample_generator.generate_archive(str(archive))
    mnt.mkdir()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
    proc = subprocess.Popen([bklogfs_bin, "mount", str(mnt), "--foreground", "--archive", str(archive),
                             "--cache-dir", str(tmp_path / "cache")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        ready = notify.recv(4096).decode()
        fields = dict(line.split("=", 1) for line in ready.splitlines())
        assert fields["READY"] == "1" and fields["MAINPID"] == str(proc.pid), ready
        assert str(mnt) in fields["STATUS"]
        # Ready means usable at once: no wait.
        assert is_mounted(mnt)
        rel, size = written[0]
        assert len(read_file(mnt / rel)) == size
        proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096).decode() == "STOPPING=1"
        assert proc.wait(timeout=30) == 0
        assert not is_mounted(mnt)
    finally:
        if proc.poll() is None:
            proc.kill()
        force_unmount(mnt)
        kill_pids(daemon_pids(bklogfs_bin, mnt))
        notify.close()


def test_a_background_mount_and_a_mount_outside_systemd_send_nothing(bklogfs_bin, sample_generator, tmp_path):
    """Only the foreground process is the service: a daemonised mount's child, which systemd did not
    start, says nothing (NotifyAccess=main would refuse it)."""
    require_fuse()
    archive, mnt = tmp_path / "archive", tmp_path / "mnt"
    sample_generator.generate_archive(str(archive))
    mnt.mkdir()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(2)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
    try:
        r = subprocess.run([bklogfs_bin, "mount", str(mnt), "--archive", str(archive), "--cache-dir",
                            str(tmp_path / "cache"), "--log-file", str(tmp_path / "log")], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and is_mounted(mnt), r.stderr
        with pytest.raises(socket.timeout):
            notify.recv(4096)
    finally:
        pids = daemon_pids(bklogfs_bin, mnt)
        force_unmount(mnt)
        kill_pids(pids)
        notify.close()


def test_the_unit_file_is_valid(bklogfs_bin, tmp_path):
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze is missing (apt-get install systemd)")
    unit = (REPO_ROOT / "contrib" / "systemd" / "bklogfs.service").read_text()
    assert "Type=notify" in unit and "--foreground" in unit
    # Verified with the binary under test in place of /usr/local/bin/bklogfs, which verify requires;
    # its Documentation= man page is scripts/install's (test_install.py), not installed here.
    copy = tmp_path / "bklogfs.service"
    copy.write_text(unit.replace("/usr/local/bin/bklogfs", str(bklogfs_bin)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "" and "bklogfs.service" not in r.stderr, r.stderr
