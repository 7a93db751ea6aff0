"""End-to-end: a versioned archive as it was (`--as-of`), and every version of one log (issue 14),
against moto_server and against Ceph's RADOS Gateway, which both keep versions as S3 does.

A log deleted since the time shows, a log overwritten since shows its old bytes (read by version
ID), a log written since does not show; a current mount shows the bucket as it is now; the unlisted
attribute `user.bklogfs.versions` lists a log's versions and delete markers, newest first.
"""

import os
import time
import uuid
from datetime import datetime, timezone

import pytest

from conftest import Bucket, require, run_bklogfs

BUILD = "0190a1b2-org/0190a1b3-pipe/0190a1b4-build"
OLD = b"\x1b_bk;t=1700000000000\x07--- the log as the build wrote it\r\nexit 0\r\n"
NEW = b"--- the log as someone rewrote it later\r\nexit 0\r\nand longer\r\n"
DELETED = b"a log deleted after the audit date\r\n"
LATER = b"a log written after the audit date\r\n"


def wait_past_a_second():
    """S3 keeps times to the second or finer; a second and a bit apart they cannot tie."""
    time.sleep(1.2)


@pytest.fixture
def history(s3_server):
    """A versioned bucket with a history around an audit time: returns (bucket, audit time, env)."""
    client, endpoint, env = s3_server
    name = f"bk-versions-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=name, Key=f"{BUILD}/rewritten.log", Body=OLD)
    client.put_object(Bucket=name, Key=f"{BUILD}/deleted.log", Body=DELETED)
    client.put_object(Bucket=name, Key=f"{BUILD}/kept.log", Body=OLD)
    wait_past_a_second()
    audit = datetime.now(timezone.utc).replace(microsecond=0)
    wait_past_a_second()
    client.put_object(Bucket=name, Key=f"{BUILD}/rewritten.log", Body=NEW)
    client.delete_object(Bucket=name, Key=f"{BUILD}/deleted.log")
    client.put_object(Bucket=name, Key=f"{BUILD}/later.log", Body=LATER)
    return Bucket(name=name, endpoint=endpoint), audit, env


def test_as_of_shows_the_archive_as_it_was(mount, history):
    bucket, audit, env = history
    now = mount(bucket=bucket, env=env)
    assert sorted(os.listdir(now / BUILD)) == ["kept.log", "later.log", "rewritten.log"]
    assert (now / BUILD / "rewritten.log").read_bytes() == NEW

    then = mount(bucket=bucket, env=env, extra_args=["--as-of", audit.isoformat().replace("+00:00", "Z")])
    build = then / BUILD
    assert sorted(os.listdir(build)) == ["deleted.log", "kept.log", "rewritten.log"]
    assert (build / "rewritten.log").stat().st_size == len(OLD)
    assert (build / "rewritten.log").read_bytes() == OLD
    assert (build / "deleted.log").read_bytes() == DELETED
    assert (build / "kept.log").read_bytes() == OLD
    assert not (build / "later.log").exists()
    # The version read is named on the file.
    version = os.getxattr(build / "rewritten.log", "user.bklogfs.version_id").decode()
    assert "user.bklogfs.version_id" in os.listxattr(build / "rewritten.log")
    assert version and version != "null"
    # The current mount, reading the same blocks cache directory's neighbour, still reads the new bytes.
    assert (now / BUILD / "rewritten.log").read_bytes() == NEW


def test_a_date_is_its_start_and_a_bad_time_is_refused(mount, history, bklogfs_bin, tmp_path):
    bucket, audit, env = history
    # Everything was written today: as of today's start, the bucket held nothing yet.
    day = mount(bucket=bucket, env=env, extra_args=["--as-of", audit.date().isoformat()])
    assert os.listdir(day / BUILD) == []
    bad = mount(bucket=bucket, env=env, extra_args=["--as-of", "last tuesday"], check=False)
    assert bad.result.returncode != 0
    assert "--as-of takes an RFC 3339 time" in bad.result.stderr, bad.result.stderr
    local = run_bklogfs(bklogfs_bin, "mount", tmp_path / "m", "--archive", tmp_path, "--as-of", "2026-01-01")
    assert local.returncode != 0 and "it needs --bucket" in local.stderr, local.stderr


def test_every_version_of_a_log_is_listed(mount, history):
    bucket, audit, env = history
    for extra, shown_state in [([], "current"), (["--as-of", audit.isoformat()], "old")]:
        m = mount(bucket=bucket, env=env, extra_args=extra)
        listing = os.getxattr(m / BUILD / "rewritten.log", "user.bklogfs.versions").decode()
        rows = [line.split("\t") for line in listing.splitlines()]
        assert [row[4].split()[0] for row in rows] == ["current", "old"], listing
        assert [int(row[2]) for row in rows] == [len(NEW), len(OLD)]
        assert [row[4] for row in rows if row[4].endswith(" shown")] == [f"{shown_state} shown"], listing
        assert rows[0][1] > rows[1][1]  # newest first, RFC 3339 in UTC
        # Not listed: reading it costs a request, which getfattr -d and rsync -X should not make.
        assert "user.bklogfs.versions" not in os.listxattr(m / BUILD / "rewritten.log")
    # A deleted log, seen as of before its deletion: its delete marker is the newest entry.
    then = mount(bucket=bucket, env=env, extra_args=["--as-of", audit.isoformat()])
    listing = os.getxattr(then / BUILD / "deleted.log", "user.bklogfs.versions").decode()
    assert [line.split("\t")[4] for line in listing.splitlines()] == ["deleted", "old shown"], listing
    assert listing.splitlines()[0].split("\t")[2:4] == ["-", "-"]


def test_as_of_by_buildkites_names(mount, fake_buildkite, moto, tmp_path):
    """With an API token, `--as-of` shows the builds created by then (the newest of them in a
    pipeline's listing, older ones by number), and each build's logs as the archive held them then;
    a build created later is not there."""
    from conftest import load_fake_buildkite_world
    from test_buildkite_names import names_args, script_jobs

    world_module = load_fake_buildkite_world()
    special = world_module.SPECIAL
    org, pipe, big = special["org"], special["pipeline"], special["big_pipeline"]
    world = fake_buildkite.world
    bucket = Bucket(name=f"bk-names-asof-{uuid.uuid4().hex[:8]}", endpoint=moto.endpoint)
    moto.client.create_bucket(Bucket=bucket.name)
    moto.client.put_bucket_versioning(Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"})
    source = names_args(fake_buildkite, tmp_path, "bkua_fake_full", "--recent-builds", "5") + [
        "--bucket", bucket.name, "--endpoint", moto.endpoint, "--region", "us-east-1"]

    # Builds: as of the creation of the 11th newest build of the big pipeline.
    builds = sorted(world_module.find_pipeline(world, org, big)["builds"], key=lambda b: b["number"])
    created = lambda b: datetime.fromisoformat(b["created_at"].replace("Z", "+00:00"))
    cut = builds[-11]
    then = mount(_source_args=source, extra_args=["--as-of", created(cut).isoformat()])
    shown = sorted(map(int, os.listdir(then / org / big)))
    assert shown == [b["number"] for b in builds if created(b) <= created(cut)][-5:], shown
    assert os.path.isdir(then / org / big / str(builds[0]["number"])), "an older build, by number"
    with pytest.raises(FileNotFoundError):
        os.stat(then / org / big / str(builds[-1]["number"]))

    # Logs: an archived log rewritten after the time shows its bytes of then.
    org_id = world_module.find_org(world, org)["id"]
    pipe_id = world_module.find_pipeline(world, org, pipe)["id"]
    build = world_module.find_build(world, org, pipe, special["retried"])
    job = script_jobs(fake_buildkite, special["retried"])[0]
    key = f"{org_id}/{pipe_id}/{build['id']}/{job['id']}.log"
    moto.client.put_object(Bucket=bucket.name, Key=key, Body=OLD)
    wait_past_a_second()
    audit = datetime.now(timezone.utc).replace(microsecond=0)
    wait_past_a_second()
    moto.client.put_object(Bucket=bucket.name, Key=key, Body=NEW)
    at_audit = mount(_source_args=source, extra_args=["--as-of", audit.isoformat()])
    log = at_audit / org / pipe / str(special["retried"]) / f"{job['id']}.log"
    assert log.read_bytes() == OLD
    now = mount(_source_args=source)
    assert (now / org / pipe / str(special["retried"]) / f"{job['id']}.log").read_bytes() == NEW
