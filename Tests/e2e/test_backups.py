"""Backup tools across a remount (issue 12): an object keeps its inode number, mtime and ctime in
every mount of the same source, so restic, borg and GNU tar's incremental mode see nothing changed
after a remount and read no log's bytes again. Each second mount starts with an empty cache, so any
read a tool made would show in the mount's counters."""

import json
import os
import re
import shutil
import subprocess

from conftest import require
from test_buildkite_names import ORG, PIPE, SPECIAL, WORLD, names_args


def tool(name):
    require(shutil.which(name) is not None, f"{name} is not installed (scripts/setup installs it)")
    return name


def identities(root):
    """{relative path: (inode, mtime_ns, ctime_ns, size)} of every file and directory, walking `root`."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            found[os.path.relpath(path, root)] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
    return found


def fetched(m):
    s = m.stats()
    return s["requests"]["get"], s["bytes_fetched"]


def remount(mount, first, tmp_path, n, **source):
    """Unmounts `first` and mounts the same source on the same path, with a new, empty cache; then
    looks up its deepest file straight away, as anything does that reads a path before a backup walks
    the tree, so the second mount meets its paths in another order than the first."""
    path = first.path
    deepest = max(identities(path), key=lambda rel: (rel.count("/"), rel))
    first.unmount()
    m = mount(mountpoint=path, cache_dir=tmp_path / f"fresh-cache-{n}", **source)
    os.lstat(m / deepest)
    return m


def test_a_remount_keeps_every_inode_and_time_in_any_lookup_order(mount, seeded_bucket, tmp_path):
    m = mount()
    before = identities(m.path)
    assert len(before) >= len(seeded_bucket.keys)
    m = remount(mount, m, tmp_path, 1)
    # Straight to each file, deepest first, before any directory is listed.
    after = {}
    for rel in sorted(before, key=lambda r: (-r.count("/"), r[::-1])):
        st = os.lstat(m / rel)
        after[rel] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
    # Files and directories alike: a directory of the UUID tree shows time 0 in every mount.
    assert after == before
    assert len({value[0] for value in after.values()}) == len(after), "two paths share an inode number"


def test_a_restic_backup_after_a_remount_changes_nothing_and_reads_no_log(mount, seeded_bucket, tmp_path):
    restic = tool("restic")
    env = {**os.environ, "RESTIC_REPOSITORY": str(tmp_path / "restic"), "RESTIC_PASSWORD": "not-a-secret",
           "RESTIC_CACHE_DIR": str(tmp_path / "restic-cache")}
    subprocess.run([restic, "init"], env=env, check=True, capture_output=True, timeout=120)

    def backup(m):
        r = subprocess.run([restic, "backup", "--json", "."], cwd=m.path, env=env, capture_output=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
        summary = [json.loads(line) for line in r.stdout.splitlines() if b'"summary"' in line][-1]
        return summary

    m = mount()
    first = backup(m)
    assert first["files_new"] >= len(seeded_bucket.keys) - 1, first
    m = remount(mount, m, tmp_path, 1)
    second = backup(m)
    assert (second["files_new"], second["files_changed"]) == (0, 0), second
    assert second["files_unmodified"] == first["files_new"], second
    assert fetched(m) == (0, 0), "restic read a log it had already backed up"


def dated_archive(root, count=40):
    """A local archive in Buildkite's layout whose logs each have their own day in 2024, the way an
    archive's old logs do (the seeded bucket's were all written in the same second or two)."""
    for n in range(count):
        path = root / f"org-{n % 2}" / f"pipeline-{n % 3}" / f"build-{n % 5}" / f"job-{n:02}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"log {n}\n".encode() * (100 + n))
        day = 1_704_067_200 + n * 86_400
        os.utime(path, (day, day))
    return root


def test_a_borg_backup_after_a_remount_lists_nothing_added_or_modified(mount, tmp_path):
    borg = tool("borg")
    env = {**os.environ, "BORG_BASE_DIR": str(tmp_path / "borg-base"), "BORG_PASSPHRASE": "",
           "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}
    repo = tmp_path / "borg"
    subprocess.run([borg, "init", "--encryption=none", str(repo)], env=env, check=True, capture_output=True,
                   timeout=120)

    def create(m, name):
        r = subprocess.run([borg, "create", "--list", "--filter=AME", f"{repo}::{name}", "."], cwd=m.path, env=env,
                           capture_output=True, timeout=600)
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
        return [line for line in r.stderr.decode(errors="replace").splitlines() if line.strip()]

    archive = dated_archive(tmp_path / "archive")
    m = mount(archive=archive)
    assert len([line for line in create(m, "first") if line.startswith("A ")]) == 40
    m = remount(mount, m, tmp_path, 1, archive=archive)
    # borg keeps no files-cache entry for the file with the newest ctime of a backup (it might still
    # change within the clock's resolution: "FILES-CACHE-KILL" in borg's cache.py), so it reads that
    # one again. Every other file must be found unchanged.
    assert create(m, "second") in ([], ["A org-1/pipeline-0/build-4/job-39.log"])


def test_a_level_1_tar_dump_after_a_remount_holds_no_file(mount, seeded_bucket, tmp_path):
    tar = tool("tar")
    snapshot = tmp_path / "tar.snar"
    m = mount()
    # --no-check-device: a FUSE mount's device number may differ from one mount to the next, as an
    # NFS mount's may (GNU tar's manual gives the option for those).
    r = subprocess.run([tar, "--no-check-device", "-g", str(snapshot), "-C", str(m.path), "-cf",
                        str(tmp_path / "level0.tar"), "."], capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr
    level0 = subprocess.run([tar, "-tvf", str(tmp_path / "level0.tar")], capture_output=True, check=True).stdout
    assert sum(line.startswith(b"-") for line in level0.splitlines()) >= len(seeded_bucket.keys) - 1
    m = remount(mount, m, tmp_path, 1)
    r = subprocess.run([tar, "--no-check-device", "-g", str(snapshot), "-C", str(m.path), "-cf",
                        str(tmp_path / "level1.tar"), "."], capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr
    level1 = subprocess.run([tar, "-tvf", str(tmp_path / "level1.tar")], capture_output=True, check=True).stdout
    assert [line for line in level1.splitlines() if not line.startswith(b"d")] == []
    assert fetched(m) == (0, 0), "tar read a log it had already dumped"


def rsync(source, destination, *extra, vanished=()):
    """`rsync -a -i` of `source` into `destination`: the lines it itemizes, one per thing it changed.

    `vanished`: the names of the files rsync must find gone when it opens them (exit 24), and no other."""
    r = subprocess.run([tool("rsync"), "-a", "-i", *extra, f"{source}/", f"{destination}/"], capture_output=True,
                       text=True, timeout=600)
    if vanished:
        gone = [os.path.basename(p) for p in re.findall(r'file has vanished: "([^"]+)"', r.stderr)]
        assert r.returncode == 24 and sorted(gone) == sorted(vanished), r.stderr[-2000:]
    else:
        assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.splitlines()


def test_rsync_a_after_a_remount_copies_nothing_and_sets_no_time_again(mount, seeded_bucket, tmp_path):
    m = mount()
    copy = tmp_path / "copy"
    first = rsync(m.path, copy)
    assert sum(line.startswith(">f") for line in first) >= len(seeded_bucket.keys) - 1, first[:20]
    assert any(line.startswith("cd") for line in first), "no directory was copied: the test would prove less"
    m = remount(mount, m, tmp_path, 1)
    # Not one line: no file sent, and no directory's time set again (".d..t......").
    assert rsync(m.path, copy) == []
    assert fetched(m) == (0, 0), "rsync read a log it had already copied"


def test_rsync_a_of_the_names_tree_after_a_remount_sets_no_time_again(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_fake_full", "--recent-builds", "5"))
    # A walk teaches the catalog the builds, whose newest gives each pipeline and organization its
    # time from then on (before, a pipeline whose builds it knows none of shows 0).
    for _ in os.walk(m.path):
        pass
    m = m.remount()
    copy = tmp_path / "copy"
    # The running build's log grows with every read: rsync would rightly copy it again.
    running = f"--exclude=/{ORG}/{PIPE}/{SPECIAL['running']}/"
    # Its logs are not sized yet (size 0 until opened): rsync copies what reading gives, and the log
    # Buildkite deleted, listed until opened, vanishes (doc/SEMANTICS.md, "Log sizes").
    deleted = [j["id"] for j in WORLD.find_build(fake_buildkite.world, ORG, PIPE, SPECIAL["empty_deleted"])["jobs"]
               if j.get("type") == "script" and WORLD.log_bytes(fake_buildkite.world, j["id"]) is None]
    first = rsync(m.path, copy, running, vanished=[f"{job}.log" for job in deleted])
    assert any(line.startswith(">f") for line in first) and any(line.startswith("cL") for line in first), first
    for job in WORLD.find_build(fake_buildkite.world, ORG, PIPE, SPECIAL["retried"])["jobs"]:
        if job.get("type") == "script":
            copied = copy / ORG / PIPE / str(SPECIAL["retried"]) / f"{job['id']}.log"
            assert copied.read_bytes() == WORLD.log_bytes(fake_buildkite.world, job["id"])
    m = m.remount()
    fake_buildkite.control("reset-counters")
    assert rsync(m.path, copy, running) == []
    gets = [r for r in fake_buildkite.counters()["log_requests"] if r["method"] == "GET"]
    assert gets == [], "rsync read a log it had already copied"
