"""End-to-end: logs that S3 Lifecycle rules moved to archive storage classes (issue 14), against
moto_server, which keeps the storage class an object was written with and refuses a GET of a
GLACIER or DEEP_ARCHIVE object with 403 `InvalidObjectState`, as S3 does until it is restored.

Such a log cannot be read now: its read fails with EREMOTE ("Object is remote", as s3fs answers),
never EACCES, which would blame the credentials, and the log line names the object and its class.
GLACIER_IR (instant retrieval) reads like STANDARD.
"""

import errno
import subprocess
from pathlib import Path

import pytest

from conftest import new_moto_bucket

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
        lines = [line for line in log.splitlines() if f"{storage_class}.log" in line and "InvalidObjectState" in line]
        assert lines, f"no log line names {storage_class}.log:\n{log[-3000:]}"
        assert any(f"archive storage class ({storage_class}) and not restored" in line for line in lines), lines
        assert any("restore-object" in line for line in lines), lines
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
