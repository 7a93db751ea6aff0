"""End-to-end against a real S3 server, Ceph's RADOS Gateway (scripts/rgw): a bucket mounts and reads
byte-exactly, also under names RGW echoes unescaped in its listings; refused credentials stop the
mount with one sentence that says which key to check, since RGW's error messages are empty."""

import os
import random
import subprocess
import uuid

import pytest

from conftest import assert_refused, clean_env, read_file

KEYS = {
    "0190a1b2-org/0190a1b3-pipe/0190a1b4-build/0190a1b5-job.log": b"\x1b_bk;t=1700000000000\x07--- step one\r\nok\r\n",
    # Larger than a block and a part, not a multiple of either, with bytes that are not text.
    "0190a1b2-org/0190a1b3-pipe/0190a1b4-build/0190a1b6-job.log": random.Random(11).randbytes((5 << 20) + 4321),
    # A '%' that is no escape: RGW echoes Prefix and StartAfter raw, which once failed every listing here.
    "dir 100%/plus+ and space/é.log": b"percent\n",
    "0190a1b2-org/empty.log": b"",
}


@pytest.fixture(scope="module")
def rgw_bucket(rgw):
    s3 = rgw.client()
    bucket = f"e2e-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    for key, body in KEYS.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


def mount(binary, mnt, rgw, bucket, env):
    return subprocess.run([binary, "mount", str(mnt), "--bucket", bucket, "--endpoint", rgw.endpoint],
                          capture_output=True, text=True, timeout=60, env=env)


def test_a_bucket_on_rgw_mounts_and_reads_byte_exactly(bklogfs_bin, rgw, rgw_bucket, mountpoint, tmp_path):
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID=rgw.access_key, AWS_SECRET_ACCESS_KEY=rgw.secret_key)
    r = mount(bklogfs_bin, mountpoint, rgw, rgw_bucket, env)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(mountpoint)) == ["0190a1b2-org", "dir 100%"]
    assert os.listdir(mountpoint / "dir 100%") == ["plus+ and space"]
    for key, body in KEYS.items():
        assert os.stat(mountpoint / key).st_size == len(body), key
        assert read_file(mountpoint / key) == body, key
    # A read in the middle, across a block boundary.
    big = "0190a1b2-org/0190a1b3-pipe/0190a1b4-build/0190a1b6-job.log"
    with open(mountpoint / big, "rb") as f:
        f.seek((1 << 20) - 100)
        assert f.read(300) == KEYS[big][(1 << 20) - 100:(1 << 20) + 200]


def test_a_wrong_secret_on_rgw_names_the_secret_key(bklogfs_bin, rgw, rgw_bucket, mountpoint, tmp_path):
    wrong = "wR0ngSecretValue/For+This+Test00000000000"
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID=rgw.access_key, AWS_SECRET_ACCESS_KEY=wrong)
    r = mount(bklogfs_bin, mountpoint, rgw, rgw_bucket, env)
    assert_refused(r, mountpoint, "SignatureDoesNotMatch", wrong)
    assert "check AWS_SECRET_ACCESS_KEY" in r.stderr, r.stderr
    assert "the secret access key is probably wrong" in r.stderr
    assert rgw.secret_key not in r.stderr + r.stdout


def test_an_unknown_key_on_rgw_names_the_access_key(bklogfs_bin, rgw, rgw_bucket, mountpoint, tmp_path):
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID="AKIAUNKNOWNKEY000000", AWS_SECRET_ACCESS_KEY=rgw.secret_key)
    r = mount(bklogfs_bin, mountpoint, rgw, rgw_bucket, env)
    assert_refused(r, mountpoint, "InvalidAccessKeyId", rgw.secret_key)
    assert "check AWS_ACCESS_KEY_ID" in r.stderr, r.stderr
    assert "the access key is probably wrong" in r.stderr
