"""End-to-end: `--shared-cache s3://BUCKET/PREFIX`, a block cache a fleet of machines shares (doc/SHARED-CACHE.md).

Two mounts with separate local caches stand for two machines. The shared bucket is on the session's
moto_server; logs come from the project's fake Buildkite API (whose own counters say what each mount
asked of it) and from the seeded archive bucket (whose GETs `bklogfs stats` counts).
"""

import errno
import random
import struct
import subprocess
import time
import zlib
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest

from conftest import REGION, clean_env, closed_port, is_mounted, load_fake_buildkite_world, read_file, run_bklogfs
from fault_proxy import FaultProxy

WORLD = load_fake_buildkite_world()
SPECIAL = WORLD.SPECIAL
ORG, WEB = SPECIAL["org"], SPECIAL["big_pipeline"]
LOG = "/v2/organizations/{org}/pipelines/{pipeline}/builds/{number}/jobs/{job}/log"
HEAD_LOG, GET_LOG = "HEAD " + LOG, "GET " + LOG
FOLDER = "bklogfs-blocks/v1/"
SIZES = "bklogfs-sizes/v1/"


@pytest.fixture
def shared_bucket(moto):
    """A fresh bucket on moto for the shared cache; returns (name, prefix)."""
    name = f"bk-shared-{random.randrange(1 << 32):08x}"
    moto.client.create_bucket(Bucket=name)
    return name, "fleet"


def shared_args(moto, bucket):
    name, prefix = bucket
    return ["--shared-cache", f"s3://{name}/{prefix}", "--shared-cache-endpoint", moto.endpoint,
            "--shared-cache-region", REGION]


def block_objects(moto, bucket, folder=FOLDER):
    """{key: bytes} of the shared blocks in the bucket (the mount's check object left out)."""
    name, prefix = bucket
    listed = moto.client.list_objects_v2(Bucket=name, Prefix=f"{prefix}/{folder}").get("Contents", [])
    keys = [o["Key"] for o in listed if not o["Key"].endswith("/mount-check")]
    return {k: moto.client.get_object(Bucket=name, Key=k)["Body"].read() for k in keys}


def size_records(moto, bucket):
    """{key: bytes} of the shared size records in the bucket."""
    return block_objects(moto, bucket, folder=SIZES)


def forged_size_record(record, size):
    """`record` (a good size record) saying `size` instead, with checksums that hold (doc/SHARED-CACHE.md):
    the header's data CRC-32 at bytes 24..28, its own CRC-32 (of bytes 0..28, then the identity) at 28..32."""
    header_length = struct.unpack_from("<I", record, 12)[0]
    data = struct.pack("<Q", size)
    forged = bytearray(record[:header_length] + data)
    struct.pack_into("<I", forged, 24, zlib.crc32(data))
    struct.pack_into("<I", forged, 28, zlib.crc32(bytes(forged[32:header_length]), zlib.crc32(bytes(forged[:28]))))
    return bytes(forged)


def ls_l(path):
    subprocess.run(["ls", "-l", str(path)], check=True, capture_output=True, timeout=60)


def names_args(fake, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(fake.token + "\n")
    token_file.chmod(0o600)
    return ["--api-token-file", str(token_file), "--api-endpoint", fake.api]


def spent(fake):
    """Requests per endpoint template since the last call, then zero the counters."""
    c = fake.counters()
    fake.control("reset-counters")
    return c["endpoints"]


def wait_for(m, field, at_least, timeout=30):
    deadline = time.monotonic() + timeout
    while (stats := m.stats())["cache"][field] < at_least:
        assert time.monotonic() < deadline, stats
        time.sleep(0.1)
    return stats


def read_by_a_first_mount(mount, fake, moto, shared_bucket, tmp_path):
    """A finished job's log read through Buildkite's API by a first mount with the shared cache;
    returns (the mount's source arguments, the log's path in a mount, its bytes, the mount)."""
    builds = WORLD.find_pipeline(fake.world, ORG, WEB)["builds"]
    number = max(b["number"] for b in builds)
    job = [j for j in WORLD.find_build(fake.world, ORG, WEB, number)["jobs"] if j.get("type") == "script"][0]["id"]
    expected = WORLD.log_bytes(fake.world, job)
    relative = f"{ORG}/{WEB}/{number}/{job}.log"
    source = names_args(fake, tmp_path) + shared_args(moto, shared_bucket)
    first = mount(_source_args=source)
    assert read_file(first / relative) == expected
    return source, relative, expected, first


def read_after_writing_over(mount, fake, moto, shared_bucket, key, body, source, relative, expected):
    """Writes `body` over the shared object `key`, then reads the log in a new mount, after `ls -l`
    of its build; returns the mount and the requests the read asked of the API."""
    moto.client.put_object(Bucket=shared_bucket[0], Key=key, Body=body)
    reader = mount(_source_args=source)
    ls_l((reader / relative).parent)
    spent(fake)
    assert read_file(reader / relative) == expected
    return reader, spent(fake)


def test_a_second_mount_reads_a_buildkite_log_the_first_fetched_without_asking_the_api(
        mount, fake_buildkite, moto, shared_bucket, tmp_path):
    fake = fake_buildkite
    source, relative, expected, first = read_by_a_first_mount(mount, fake, moto, shared_bucket, tmp_path)
    blocks = (len(expected) + (1 << 20) - 1) >> 20
    wait_for(first, "shared_writes", blocks)
    stats = wait_for(first, "shared_size_writes", 1)["cache"]
    # No machine had recorded its size: the first mount sized it with the API (its last 1 MiB, which
    # brought its blocks), then shared the blocks and the size.
    assert stats["shared_size_misses"] == 1 and stats["shared_size_hits"] == 0, stats
    assert stats["shared_corrupt_blocks"] == 0 and stats["shared_corrupt_sizes"] == 0, stats
    assert len(block_objects(moto, shared_bucket)) == blocks and len(size_records(moto, shared_bucket)) == 1
    name, prefix = shared_bucket
    check = moto.client.get_object(Bucket=name, Key=f"{prefix}/{FOLDER}mount-check")["Body"].read()
    assert check.startswith(b"bklogfs shared block cache")
    assert spent(fake).get(GET_LOG) == (1 if len(expected) <= 1 << 20 else 2)

    # The second machine, with a catalog of its own, lists the build without a request per log...
    second = mount(_source_args=source)
    ls_l((second / relative).parent)
    listing = spent(fake)
    assert GET_LOG not in listing and HEAD_LOG not in listing, listing
    # ...and opens and reads the log with its size and bytes from the shared cache: not one request to the API.
    assert read_file(second / relative) == expected
    assert spent(fake) == {}, "opening or reading the log asked the API"
    assert (second / relative).stat().st_size == len(expected)
    stats = second.stats()["cache"]
    assert stats["shared_size_hits"] == 1 and stats["shared_hits"] == blocks and stats["misses"] == 0, stats
    assert stats["shared_writes"] == 0 and stats["shared_size_writes"] == 0, stats


def test_a_damaged_shared_block_is_detected_refetched_and_rewritten(
        mount, fake_buildkite, moto, shared_bucket, tmp_path):
    fake = fake_buildkite
    source, relative, expected, first = read_by_a_first_mount(mount, fake, moto, shared_bucket, tmp_path)
    wait_for(first, "shared_writes", 1)
    (key, good), = block_objects(moto, shared_bucket).items()
    # One flipped byte of the data, written over the object as S3 would serve any other object.
    damaged = bytearray(good)
    damaged[-1] ^= 0xFF
    second, asked = read_after_writing_over(
        mount, fake, moto, shared_bucket, key, bytes(damaged), source, relative, expected)
    assert asked == {GET_LOG: 1}, "the damaged block was not fetched from the API"
    stats = wait_for(second, "shared_writes", 1)["cache"]
    assert stats["shared_corrupt_blocks"] == 1 and stats["shared_hits"] == 0, stats
    # The size came from the shared record, which was sound.
    assert stats["shared_size_hits"] == 1 and stats["shared_size_writes"] == 0, stats
    assert "is damaged" in second.log_path.read_text(errors="replace")
    # Written again, byte for byte what the first mount wrote.
    assert block_objects(moto, shared_bucket) == {key: good}

    # A truncated object is refused the same way.
    third, asked = read_after_writing_over(
        mount, fake, moto, shared_bucket, key, good[: len(good) // 2], source, relative, expected)
    assert asked == {GET_LOG: 1}
    assert third.stats()["cache"]["shared_corrupt_blocks"] == 1

    # A damaged size record is refused too: the size is asked of the API (one request, which brings
    # the log whole), and the record written again as it was.
    (record_key, record), = size_records(moto, shared_bucket).items()
    damaged = bytearray(record)
    damaged[-1] ^= 0x01
    fourth, asked = read_after_writing_over(
        mount, fake, moto, shared_bucket, record_key, bytes(damaged), source, relative, expected)
    assert asked == {GET_LOG: 1}, "the size was not asked of the API"
    stats = wait_for(fourth, "shared_size_writes", 1)["cache"]
    assert stats["shared_corrupt_sizes"] == 1 and stats["shared_size_hits"] == 0, stats
    assert "shared size record" in fourth.log_path.read_text(errors="replace")
    assert size_records(moto, shared_bucket) == {record_key: record}


def test_a_shared_size_the_api_contradicts_is_dropped_and_asked_of_the_api(
        mount, fake_buildkite, moto, shared_bucket, tmp_path):
    fake = fake_buildkite
    source, relative, expected, first = read_by_a_first_mount(mount, fake, moto, shared_bucket, tmp_path)
    wait_for(first, "shared_size_writes", 1)
    (record_key, record), = size_records(moto, shared_bucket).items()
    # A sound record of a wrong size (a bug, or a hand in the bucket): no block of that size is shared.
    moto.client.put_object(Bucket=shared_bucket[0], Key=record_key, Body=forged_size_record(record, len(expected) - 1))

    second = mount(_source_args=source)
    ls_l((second / relative).parent)
    spent(fake)
    # The open takes the recorded size; the read asks the API for the log of that size, which has
    # another: the read fails as a read of a changed object does...
    with pytest.raises(OSError) as failed:
        read_file(second / relative)
    assert failed.value.errno in (errno.ESTALE, errno.EIO), failed.value
    assert spent(fake) == {GET_LOG: 1}
    stats = second.stats()["cache"]
    assert stats["shared_size_hits"] == 1 and stats["shared_stale_sizes"] == 1, stats
    assert "disagrees with the source" in second.log_path.read_text(errors="replace")
    # ...and the record is dropped: the next open asks the API for the size (one request), reads
    # every byte, and records the right size over the wrong one.
    assert read_file(second / relative) == expected
    assert spent(fake) == {GET_LOG: 1}
    assert (second / relative).stat().st_size == len(expected)
    wait_for(second, "shared_size_writes", 1)
    assert size_records(moto, shared_bucket) == {record_key: record}


def test_an_archived_log_read_by_one_mount_is_served_to_another_from_the_shared_cache(mount, moto, shared_bucket):
    # An archive of its own: one log of 3.5 blocks, in Buildkite's layout.
    archive = SimpleNamespace(name=f"bk-archive-{random.randrange(1 << 32):08x}", endpoint=moto.endpoint)
    moto.client.create_bucket(Bucket=archive.name)
    key = "0190a1b2-org/0190a1b3-pipeline/0190a1b4-build/0190a1b5-job.log"
    body = random.Random(13).randbytes(3 * (1 << 20) + (1 << 19))
    moto.client.put_object(Bucket=archive.name, Key=key, Body=body)
    blocks = 4

    first = mount(bucket=archive, extra_args=shared_args(moto, shared_bucket))
    assert read_file(first / key) == body
    stats = wait_for(first, "shared_writes", blocks)
    assert stats["requests"]["get"] >= 1 and stats["cache"]["shared_misses"] >= 1, stats
    assert len(block_objects(moto, shared_bucket)) == blocks

    second = mount(bucket=archive, extra_args=shared_args(moto, shared_bucket))
    assert read_file(second / key) == body
    stats = second.stats()
    assert stats["requests"]["get"] == 0, stats
    assert stats["cache"]["shared_hits"] == blocks and stats["cache"]["misses"] == 0, stats

    # The object replaced in the archive: its new ETag names other blocks, so nothing stale is served.
    changed = bytes(b ^ 0x55 for b in body[: 1 << 20]) + body[1 << 20:]
    moto.client.put_object(Bucket=archive.name, Key=key, Body=changed)
    third = mount(bucket=archive, extra_args=shared_args(moto, shared_bucket))
    assert read_file(third / key) == changed
    stats = third.stats()
    assert stats["cache"]["shared_hits"] == 0 and stats["requests"]["get"] >= 1, stats


@pytest.mark.parametrize("location, message", [
    ("my-bucket/prefix", "--shared-cache takes s3://BUCKET/PREFIX"),
    ("s3://", "--shared-cache takes s3://BUCKET/PREFIX"),
    ("s3:///prefix", "is not a bucket name"),
])
def test_a_bad_shared_cache_url_is_refused_before_mounting(bklogfs_bin, seeded_bucket, mountpoint, location, message):
    r = run_bklogfs(bklogfs_bin, "mount", mountpoint, "--bucket", seeded_bucket.name, "--endpoint",
                    seeded_bucket.endpoint, "--shared-cache", location)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert not is_mounted(mountpoint)


def test_a_missing_or_unreachable_shared_bucket_stops_the_mount_with_one_sentence(
        bklogfs_bin, seeded_bucket, moto, mountpoint):
    source = ["--bucket", seeded_bucket.name, "--endpoint", seeded_bucket.endpoint, "--region", REGION]
    r = run_bklogfs(bklogfs_bin, "mount", mountpoint, *source, "--shared-cache", "s3://no-such-shared-bucket/x")
    message = r.stderr.strip()
    assert r.returncode == 1 and "\n" not in message, r.stderr
    assert "cannot use the shared cache s3://no-such-shared-bucket/x/" in message and "NoSuchBucket" in message
    assert not is_mounted(mountpoint)

    start = time.monotonic()
    r = run_bklogfs(bklogfs_bin, "mount", mountpoint, *source, "--shared-cache", "s3://shared/x",
                    "--shared-cache-endpoint", f"http://127.0.0.1:{closed_port()}")
    assert r.returncode == 1 and "cannot use the shared cache s3://shared/x/" in r.stderr, r.stderr
    assert time.monotonic() - start < 30
    assert not is_mounted(mountpoint)


def test_a_forbidden_shared_bucket_stops_the_mount_with_one_sentence(bklogfs_bin, seeded_bucket, moto, mountpoint,
                                                                     shared_bucket):
    # The shared bucket behind a proxy that refuses every request, as a bucket policy would.
    proxy = FaultProxy(urlparse(moto.endpoint).port)
    proxy.fail_all = "403"
    try:
        r = run_bklogfs(bklogfs_bin, "mount", mountpoint, "--bucket", seeded_bucket.name, "--endpoint",
                        seeded_bucket.endpoint, "--region", REGION, "--shared-cache", f"s3://{shared_bucket[0]}/x",
                        "--shared-cache-endpoint", proxy.endpoint)
    finally:
        proxy.stop()
    message = r.stderr.strip()
    assert r.returncode == 1 and "\n" not in message, r.stderr
    assert f"cannot use the shared cache s3://{shared_bucket[0]}/x/" in message and "AccessDenied" in message
    assert "testing" not in r.stderr  # the secret of the test's credentials
    assert not is_mounted(mountpoint)


def test_the_shared_cache_needs_credentials_even_for_a_public_archive(bklogfs_bin, seeded_bucket, mountpoint,
                                                                      tmp_path):
    # The archive is read unsigned; the shared cache is written, so it is never unsigned.
    r = subprocess.run([bklogfs_bin, "mount", str(mountpoint), "--bucket", seeded_bucket.name, "--endpoint",
                        seeded_bucket.endpoint, "--region", REGION, "--no-sign-request", "--shared-cache",
                        "s3://shared/x", "--shared-cache-endpoint", seeded_bucket.endpoint],
                       capture_output=True, text=True, timeout=60, env=clean_env(tmp_path))
    message = r.stderr.strip()
    assert r.returncode == 1 and "\n" not in message, r.stderr
    assert "cannot use the shared cache s3://shared/x/: no AWS credentials found" in message
    assert "--no-sign-request" not in message
    assert not is_mounted(mountpoint)
