"""End-to-end: logs that S3 Lifecycle rules moved to archive storage classes (issue 14), against
moto_server, which keeps the storage class an object was written with and refuses a GET of a
GLACIER or DEEP_ARCHIVE object with 403 `InvalidObjectState`, as S3 does until it is restored.

Such a log cannot be read now: its read fails with EREMOTE ("Object is remote", as s3fs answers),
never EACCES, which would blame the credentials, and the log line names the object and its class.
GLACIER_IR (instant retrieval) reads like STANDARD.

moto lists the storage class but ignores `x-amz-optional-object-attributes: RestoreStatus`, so the
mount asks one HEAD at the first open of an archived log, as it does of any server but S3 itself.
moto restores an object the moment RestoreObject is asked, so "in progress" is covered by the unit
tests (ArchivedObjectTests, StorageClassTests), not here.
"""

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CREDS, REGION, new_moto_bucket, require, run_bklogfs

BODY = b"\x1b_bk;t=1700000000000\x07--- running tests\r\nneedle in an archived log\r\n"
CLASSES = ["STANDARD", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"]
ARCHIVED = {"GLACIER", "DEEP_ARCHIVE"}
BUILD = "0190a1b2-org/0190a1b3-pipe/0190a1b4-build"


@pytest.fixture(scope="module")
def classes_bucket(moto):
    bucket = new_moto_bucket(moto, "bk-classes")
    for storage_class in CLASSES:
        moto.client.put_object(
            Bucket=bucket.name, Key=f"{BUILD}/{storage_class}.log", Body=BODY, StorageClass=storage_class)
    return bucket


def test_an_archived_log_fails_with_EREMOTE_and_says_why(mount, classes_bucket):
    m = mount(bucket=classes_bucket)
    build = m.path / BUILD
    assert sorted(p.name for p in build.iterdir()) == sorted(f"{c}.log" for c in CLASSES)
    for storage_class in CLASSES:
        path = build / f"{storage_class}.log"
        assert path.stat().st_size == len(BODY)
        if storage_class in ARCHIVED:
            with pytest.raises(OSError) as raised:
                path.read_bytes()
            assert raised.value.errno == errno.EREMOTE, (storage_class, raised.value)
        else:
            assert path.read_bytes() == BODY
    log = Path(m.log_path).read_text(errors="replace")
    for storage_class in ARCHIVED:
        key = f"s3://{classes_bucket.name}/{BUILD}/{storage_class}.log"
        lines = [line for line in log.splitlines() if key in line and "Object is remote" in line]
        assert lines, f"no log line names {key}:\n{log[-3000:]}"
        assert any(f"storage class {storage_class}, not restored" in line for line in lines), lines
        assert any("bklogfs restore" in line and "warning" in line for line in lines), lines
    # One HEAD per archived log decided (moto sends no restore state in listings), and no GET of one.
    assert m.stats()["requests"]["head"] == len(ARCHIVED)
    # Not taken for a refusal of the credentials: the mount goes on serving the other logs.
    assert (build / "STANDARD.log").read_bytes() == BODY


def test_grep_rs_finds_every_match_in_readable_logs_and_prints_nothing_for_archived_ones(mount, classes_bucket):
    m = mount(bucket=classes_bucket)
    result = subprocess.run(["grep", "-rls", "needle", str(m.path)], capture_output=True, text=True, timeout=60)
    found = sorted(Path(line).name for line in result.stdout.splitlines())
    assert found == ["GLACIER_IR.log", "STANDARD.log"], result
    assert result.stderr == ""
    # grep says some files could not be read: exit status 2.
    assert result.returncode == 2, result
    loud = subprocess.run(["grep", "-rl", "needle", str(m.path)], capture_output=True, text=True, timeout=60)
    assert "Object is remote" in loud.stderr and "Permission denied" not in loud.stderr, loud.stderr


def test_ls_find_and_stat_show_which_logs_are_offline(mount, classes_bucket):
    """Every log is mode 0444 with its size; an archived one has no blocks (`ls -s`, `du`), as an
    HSM's offline file, and `find -readable` and `test -r` pass it by, so that
    `find -readable -type f | xargs grep` reads only what can be read."""
    m = mount(bucket=classes_bucket)
    build = m.path / BUILD
    for storage_class in CLASSES:
        status = (build / f"{storage_class}.log").stat()
        assert oct(status.st_mode & 0o7777) == "0o444"
        assert status.st_size == len(BODY)
        assert (status.st_blocks == 0) == (storage_class in ARCHIVED), (storage_class, status.st_blocks)
        assert os.access(build / f"{storage_class}.log", os.R_OK) == (storage_class not in ARCHIVED)
    found = subprocess.run(["find", str(m.path), "-type", "f", "-readable"], capture_output=True, text=True,
                           timeout=60, check=True)
    assert sorted(Path(line).name for line in found.stdout.splitlines()) == ["GLACIER_IR.log", "STANDARD.log"]


def test_rsync_copies_every_readable_log_and_names_each_archived_one(mount, classes_bucket, tmp_path):
    m = mount(bucket=classes_bucket)
    copy = tmp_path / "copy"
    result = subprocess.run(["rsync", "-a", str(m.path) + "/", str(copy) + "/"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 23, result  # rsync's "partial transfer due to error"
    for storage_class in CLASSES:
        name = f"{storage_class}.log"
        copied = copy / BUILD / name
        if storage_class in ARCHIVED:
            assert not copied.exists()
            assert any(name in line and "Object is remote" in line for line in result.stderr.splitlines()), result
        else:
            assert copied.read_bytes() == BODY
    assert "Permission denied" not in result.stderr


def test_extended_attributes_give_each_objects_facts(mount, classes_bucket, tmp_path):
    """`getfattr -d` shows the object's source, ETag, time and storage class, and an archived one's
    restore state; `rsync -X` copies them, unless filtered out with `--filter='-x user.bklogfs.*'`."""
    require(shutil.which("getfattr") is not None, "getfattr is not on PATH (apt-get install attr)")
    m = mount(bucket=classes_bucket)
    build = m.path / BUILD
    listed = {item["Key"]: item for item in
              moto_list(classes_bucket)}
    for storage_class in CLASSES:
        key = f"{BUILD}/{storage_class}.log"
        dump = subprocess.run(["getfattr", "-d", "--absolute-names", str(build / f"{storage_class}.log")],
                              capture_output=True, text=True, timeout=30, check=True).stdout
        attributes = dict(line.split("=", 1) for line in dump.splitlines() if "=" in line)
        assert attributes["user.bklogfs.source"] == f'"s3://{classes_bucket.name}/{key}"'
        assert attributes["user.bklogfs.etag"] == f'"{listed[key]["ETag"].strip(chr(34))}"'
        assert attributes["user.bklogfs.storage_class"] == f'"{storage_class}"'
        assert attributes["user.bklogfs.last_modified"].startswith('"20')
        if storage_class in ARCHIVED:
            # moto's listing does not say; no request is made for an attribute.
            assert attributes["user.bklogfs.restore"] == '"unknown"'
        else:
            assert "user.bklogfs.restore" not in attributes
    # An open asks S3 (one HEAD), and the attribute then tells.
    with pytest.raises(OSError):
        (build / "GLACIER.log").read_bytes()
    assert os.getxattr(build / "GLACIER.log", "user.bklogfs.restore") == b"not restored"
    # The counters on the root are not listed, so nothing copies them.
    assert not [name for name in os.listxattr(m.path) if name.startswith("user.")]

    copy, filtered = tmp_path / "copy", tmp_path / "filtered"
    source = str(build / "STANDARD.log")
    subprocess.run(["rsync", "-aX", source, str(copy) + "/"], check=True, timeout=60)
    assert os.getxattr(copy / "STANDARD.log", "user.bklogfs.storage_class") == b"STANDARD"
    subprocess.run(["rsync", "-aX", "--filter=-x user.bklogfs.*", source, str(filtered) + "/"], check=True, timeout=60)
    assert (filtered / "STANDARD.log").read_bytes() == BODY
    assert [name for name in os.listxattr(filtered / "STANDARD.log") if name.startswith("user.bklogfs.")] == []


def moto_list(bucket):
    import boto3
    client = boto3.client("s3", endpoint_url=bucket.endpoint, region_name=REGION,
                          aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"])
    return client.list_objects_v2(Bucket=bucket.name)["Contents"]


def test_restore_of_a_subtree_makes_its_logs_readable(mount, moto, bklogfs_bin):
    """`bklogfs restore DIR` restores every archived log under it and nothing else, says what it
    did, can be run again, and `--status` shows where each restore is; once the directory TTL has
    passed the restored logs read, without a remount, and the others still fail with EREMOTE."""
    bucket = new_moto_bucket(moto, "bk-restore")
    pipeline = "0190a1b2-org/0190a1b3-pipe"
    layout = {"0190a1b5-build-1": ["GLACIER", "DEEP_ARCHIVE", "STANDARD"], "0190a1b6-build-2": ["GLACIER"]}
    for build, classes in layout.items():
        for storage_class in classes:
            moto.client.put_object(Bucket=bucket.name, Key=f"{pipeline}/{build}/{storage_class}.log",
                                   Body=BODY, StorageClass=storage_class)
    m = mount(bucket=bucket, extra_args=["--directory-ttl", "1"])
    first, second = m.path / pipeline / "0190a1b5-build-1", m.path / pipeline / "0190a1b6-build-2"
    for path in [first / "GLACIER.log", second / "GLACIER.log"]:
        with pytest.raises(OSError) as raised:
            path.read_bytes()
        assert raised.value.errno == errno.EREMOTE

    restored = run_bklogfs(bklogfs_bin, "restore", first, "--days", "2", "--tier", "bulk")
    assert restored.returncode == 0, restored
    assert restored.stdout.splitlines() == [
        "2 archived files (and 1 not archived, left alone)",
        "requested: 2, already in progress: 0, already restored (kept for 2 days from now): 0, failed: 0",
    ], restored.stdout
    again = run_bklogfs(bklogfs_bin, "restore", first, "--days", "2")
    assert again.returncode == 0, again
    assert "requested: 0, already in progress: 0, already restored (kept for 2 days from now): 2" in again.stdout

    status = run_bklogfs(bklogfs_bin, "restore", "--status", "--list", m.path / pipeline)
    assert status.returncode == 0, status
    lines = status.stdout.splitlines()
    assert lines[0] == "3 archived files (and 1 not archived, left alone)"
    assert lines[-1] == "not restored: 1, in progress: 0, restored: 2, not archived: 0, failed: 0"
    by_path = {line.split("\t")[1]: line.split("\t")[0] for line in lines[1:-1]}
    assert by_path[str(second / "GLACIER.log")] == "not restored"
    assert by_path[str(first / "GLACIER.log")].startswith("restored until 20")

    time.sleep(1.5)
    assert sorted(p.name for p in first.iterdir()) == ["DEEP_ARCHIVE.log", "GLACIER.log", "STANDARD.log"]
    for name in ["GLACIER.log", "DEEP_ARCHIVE.log", "STANDARD.log"]:
        assert (first / name).read_bytes() == BODY
        assert (first / name).stat().st_blocks > 0
    assert os.getxattr(first / "GLACIER.log", "user.bklogfs.restore").startswith(b"restored until 20")
    with pytest.raises(OSError) as raised:
        (second / "GLACIER.log").read_bytes()
    assert raised.value.errno == errno.EREMOTE
    found = subprocess.run(["grep", "-rls", "needle", str(m.path)], capture_output=True, text=True, timeout=60)
    assert sorted(Path(line).relative_to(m.path).as_posix() for line in found.stdout.splitlines()) == sorted(
        f"{pipeline}/0190a1b5-build-1/{name}" for name in ["GLACIER.log", "DEEP_ARCHIVE.log", "STANDARD.log"])


def test_restore_refuses_paths_outside_a_mount(bklogfs_bin, tmp_path):
    result = run_bklogfs(bklogfs_bin, "restore", tmp_path)
    assert result.returncode != 0
    assert "is not in a bklogfs mount" in result.stderr, result.stderr
    missing = run_bklogfs(bklogfs_bin, "restore", tmp_path / "nothing-here")
    assert missing.returncode != 0 and "does not exist" in missing.stderr, missing.stderr
