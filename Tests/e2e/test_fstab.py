"""End-to-end: bklogfs in /etc/fstab and under `mount -t fuse.bklogfs` (issue 15). mount(8) runs
`/sbin/mount.fuse.bklogfs SOURCE DIR -o OPTIONS` for that type, a link to the bklogfs binary (as
Ceph installs `mount.fuse.ceph`); the test installs the link, writes an fstab of its own and runs a
real `mount -a -T FSTAB`, then `umount`. Needs root, as mounting from an fstab does."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CREDS, REGION, daemon_pids, force_unmount, is_mounted, kill_pids, read_file, require, \
    require_fuse

HELPER = Path("/sbin/mount.fuse.bklogfs")


@pytest.fixture
def helper(bklogfs_bin):
    """/sbin/mount.fuse.bklogfs -> the binary under test, for this test only (what was there is put back)."""
    require_fuse()
    require(os.geteuid() == 0, "mounting from an fstab needs root")
    require(shutil.which("mount") is not None, "mount(8) is missing (util-linux)")
    saved = os.readlink(HELPER) if HELPER.is_symlink() else None
    require(saved is not None or not HELPER.exists(), f"{HELPER} exists and is not a link; leaving it alone")
    if HELPER.is_symlink():
        HELPER.unlink()
    HELPER.symlink_to(bklogfs_bin)
    yield HELPER
    HELPER.unlink()
    if saved:
        HELPER.symlink_to(saved)


def mount_all(fstab, *extra):
    env = {**os.environ, **CREDS}
    return subprocess.run(["mount", "-a", "-T", str(fstab), *extra], capture_output=True, text=True, timeout=120,
                          env=env)


def test_an_fstab_mounts_a_bucket_and_a_local_archive(helper, bklogfs_bin, seeded_bucket, sample_generator,
                                                      tmp_path):
    archive = tmp_path / "archive"
    written = sample_generator.generate_archive(str(archive))
    bucket_mnt, archive_mnt, later_mnt = tmp_path / "bucket", tmp_path / "local", tmp_path / "later"
    for directory in (bucket_mnt, archive_mnt, later_mnt):
        directory.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# bklogfs: source, mountpoint, type fuse.bklogfs, options\n"
        f"s3://{seeded_bucket.name}  {bucket_mnt}  fuse.bklogfs  "
        f"ro,_netdev,nofail,endpoint={seeded_bucket.endpoint},region={REGION},cache_dir={tmp_path / 'cache'},"
        f"log-file={tmp_path / 'bucket.log'},directory-ttl=30  0  0\n"
        f"{archive}  {archive_mnt}  fuse.bklogfs  defaults,allow_other,log-file={tmp_path / 'local.log'}  0  0\n"
        f"{archive}  {later_mnt}  fuse.bklogfs  noauto,log-file={tmp_path / 'later.log'}  0  0\n")
    try:
        r = mount_all(fstab)
        assert r.returncode == 0, r.stderr
        assert is_mounted(bucket_mnt) and is_mounted(archive_mnt) and not is_mounted(later_mnt)
        key = seeded_bucket.real_keys[0]
        assert read_file(bucket_mnt / key) == read_file(seeded_bucket.path(key))
        rel, size = written[0]
        assert (archive_mnt / rel).stat().st_size == size
        mounts = Path("/proc/mounts").read_text()
        # The fstab line's own source, so that `mount -a` knows the line is mounted.
        assert f"s3://{seeded_bucket.name} {bucket_mnt} fuse.bklogfs ro," in mounts
        assert "allow_other" in next(line for line in mounts.splitlines() if f" {archive_mnt} " in line)
        # A second `mount -a` leaves what is mounted alone; a noauto line mounts when named.
        assert mount_all(fstab).returncode == 0
        r = subprocess.run(["mount", "-T", str(fstab), str(later_mnt)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and is_mounted(later_mnt), r.stderr
        for directory in (bucket_mnt, archive_mnt, later_mnt):
            r = subprocess.run(["umount", str(directory)], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert not is_mounted(directory)
    finally:
        for directory in (bucket_mnt, archive_mnt, later_mnt):
            pids = daemon_pids(bklogfs_bin, directory)
            force_unmount(directory)
            kill_pids(pids)


def test_bad_fstab_lines_fail_with_one_sentence_and_mount_nothing(helper, tmp_path):
    target = tmp_path / "mnt"
    target.mkdir()
    cases = [
        ("relative/dir", "defaults", "is not s3://BUCKET[/PREFIX], an absolute directory, or buildkite"),
        ("s3://bucket", "cache-size", "the option cache-size needs a value"),
        ("s3://bucket", "requester-pays=yes", "the option requester-pays takes no value"),
        ("s3://bucket", "no-such-option=1", "no-such-option"),
    ]
    for source, options, message in cases:
        fstab = tmp_path / "fstab"
        fstab.write_text(f"{source}  {target}  fuse.bklogfs  {options}  0  0\n")
        r = mount_all(fstab)
        assert r.returncode != 0, (source, options)
        assert message in r.stderr, (options, r.stderr)
        assert not is_mounted(target)
