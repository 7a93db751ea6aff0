"""Checks of the harness itself (no bklogfs binary needed): the sample generator and the seeded bucket."""

import hashlib
import re

from conftest import BIG_LOG_SIZE, MiB, read_file

MARKER = re.compile(rb"\x1b_bk;t=\d{13}\x07")


def test_sample_archive_is_deterministic_and_looks_like_buildkite(tmp_path, sample_generator):
    a, b = tmp_path / "a", tmp_path / "b"
    wa, wb = sample_generator.generate_archive(str(a)), sample_generator.generate_archive(str(b))
    assert wa == wb
    total = 0
    for rel, size in wa:
        data_a, data_b = read_file(a / rel), read_file(b / rel)
        assert data_a == data_b and len(data_a) == size
        total += size
        assert MARKER.match(data_a), rel  # every log starts with a timestamp marker
        assert b"\r\n" in data_a and b"\x1b[" in data_a
        assert b"~~~ " in data_a
    assert total < 8 * MiB
    everything = b"".join(read_file(a / rel) for rel, _ in wa)
    for needle in (b"OutOfMemoryError", b"FAILED", b"error:", b"+++ ", b"--- ", b"^^^ +++", b"\x1b[K"):
        assert needle in everything, needle


def test_big_log_is_large_and_realistic(sample_generator):
    data = sample_generator.big_log(BIG_LOG_SIZE)
    assert len(data) >= 64 * MiB
    assert MARKER.match(data) and data.endswith(b"\r\n")
    assert data.count(b"\r\n") > 100_000


def test_seeded_bucket_matches_its_local_copy(seeded_bucket, moto):
    s3 = moto.client
    assert seeded_bucket.big_key in seeded_bucket.keys
    assert seeded_bucket.keys[seeded_bucket.big_key] >= 64 * MiB
    assert re.fullmatch(r'"[0-9a-f]{32}-\d+"', seeded_bucket.etags[seeded_bucket.big_key])
    for key, size in seeded_bucket.keys.items():
        assert seeded_bucket.path(key).stat().st_size == size, key
        if size < MiB:
            body = s3.get_object(Bucket=seeded_bucket.name, Key=key)["Body"].read()
            assert body == read_file(seeded_bucket.path(key)), key
            assert seeded_bucket.etags[key] == f'"{hashlib.md5(body).hexdigest()}"'
    tail = s3.get_object(Bucket=seeded_bucket.name, Key=seeded_bucket.big_key, Range="bytes=-4096")["Body"].read()
    assert tail == read_file(seeded_bucket.path(seeded_bucket.big_key))[-4096:]
    marker = s3.head_object(Bucket=seeded_bucket.name, Key=seeded_bucket.dir_marker)
    assert marker["ContentLength"] == 0


def test_moto_url_encodes_listed_keys_when_asked(seeded_bucket, moto):
    r = moto.client.list_objects_v2(Bucket=seeded_bucket.name, Prefix="with ", EncodingType="url")
    # An explicit EncodingType makes botocore hand the keys back still encoded, as the server sent them.
    assert r["EncodingType"] == "url"
    assert [o["Key"] for o in r["Contents"]] == ["with%20space.log"]
    r = moto.client.list_objects_v2(Bucket=seeded_bucket.name, Prefix="plus", EncodingType="url")
    assert [o["Key"] for o in r["Contents"]] == ["plus%2Bsign.log"]
