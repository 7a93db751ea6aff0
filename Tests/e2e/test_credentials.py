"""End-to-end: where credentials come from, what happens when they are refused, and that they never leak.

Refusals are checked against a moto_server that enforces IAM authentication
(INITIAL_NO_AUTH_ACTION_COUNT): it knows only the key it issued, so an unknown key or a wrong
secret is refused as S3 would refuse it. moto's own signature check cannot judge a request whose
query holds an encoded "/" (it rejects botocore's signatures of such requests too), so mounts that
must succeed run against the ordinary moto_server, and the Swift tests have moto verify GET and
HEAD signatures (S3ClientTests).
"""

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REGION, assert_refused, clean_env, daemon_pids, is_mounted, moto_process, read_file

# The IAM calls that create the user, its policy and its key are the only unauthenticated ones.
UNAUTHENTICATED_SETUP_CALLS = 3
BUCKET = "signed-archive"
# Plain names only: moto's signature check itself mishandles a space or "+" in a key (boto3's own
# requests fail it too). Odd names are covered against the unauthenticated server and the SigV4 suite.
KEYS = {
    "0190a1b2-org/0190a1b3-pipe/0190a1b4-build/0190a1b5-job.log": b"\x1b_bk;t=1700000000000\x07--- step one\r\nok\r\n",
    "0190a1b2-org/0190a1b3-pipe/0190a1b4-build/0190a1b6-job.log": b"x" * (3 << 20) + b"tail end\n",
}


@dataclass
class AuthMoto:
    endpoint: str
    access_key: str
    secret_key: str


@pytest.fixture(scope="module")
def auth_moto(tmp_path_factory):
    import boto3

    env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(UNAUTHENTICATED_SETUP_CALLS)}
    with moto_process(tmp_path_factory.mktemp("moto-auth"), env=env) as (endpoint, _log):
        anonymous = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "setup",
                     "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **anonymous)
        iam.create_user(UserName="log-reader")
        iam.put_user_policy(UserName="log-reader", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="log-reader")["AccessKey"]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"])
        s3.create_bucket(Bucket=BUCKET)
        for name, body in KEYS.items():
            s3.put_object(Bucket=BUCKET, Key=name, Body=body)
        yield AuthMoto(endpoint, key["AccessKeyId"], key["SecretAccessKey"])


def mount(binary, mnt, endpoint, env, *extra):
    return subprocess.run([binary, "mount", str(mnt), "--bucket", BUCKET, "--endpoint", endpoint, *extra],
                          capture_output=True, text=True, timeout=60, env=env)


def test_credentials_come_from_a_named_profile(bklogfs_bin, seeded_bucket, mountpoint, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("[logs]\naws_access_key_id = from-profile\naws_secret_access_key = profile-secret\n")
    env = clean_env(tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(credentials))
    r = subprocess.run([bklogfs_bin, "mount", str(mountpoint), "--bucket", seeded_bucket.name, "--endpoint",
                        seeded_bucket.endpoint, "--profile", "logs"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    name = seeded_bucket.real_keys[0]
    assert read_file(mountpoint / name) == read_file(seeded_bucket.path(name))


def test_a_missing_profile_is_a_clear_error(bklogfs_bin, seeded_bucket, mountpoint, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("[logs]\naws_access_key_id = a\naws_secret_access_key = b\n")
    env = clean_env(tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(credentials))
    r = subprocess.run([bklogfs_bin, "mount", str(mountpoint), "--bucket", seeded_bucket.name, "--endpoint",
                        seeded_bucket.endpoint, "--profile", "nosuch"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0
    assert "nosuch" in r.stderr and "\n" not in r.stderr.strip()
    assert not is_mounted(mountpoint)


def test_a_wrong_secret_stops_the_mount_with_one_sentence(bklogfs_bin, auth_moto, mountpoint, tmp_path):
    wrong = "wR0ngSecretValue/For+This+Test00000000000"
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID=auth_moto.access_key, AWS_SECRET_ACCESS_KEY=wrong)
    start = time.monotonic()
    r = mount(bklogfs_bin, mountpoint, auth_moto.endpoint, env)
    assert time.monotonic() - start < 20
    assert_refused(r, mountpoint, "SignatureDoesNotMatch", wrong)
    assert "check AWS_SECRET_ACCESS_KEY" in r.stderr, r.stderr


def test_an_unknown_key_stops_the_mount_with_one_sentence(bklogfs_bin, auth_moto, mountpoint, tmp_path):
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID="AKIAUNKNOWNKEY000000", AWS_SECRET_ACCESS_KEY=auth_moto.secret_key)
    r = mount(bklogfs_bin, mountpoint, auth_moto.endpoint, env)
    assert_refused(r, mountpoint, "InvalidAccessKeyId", auth_moto.secret_key)
    assert "check AWS_ACCESS_KEY_ID" in r.stderr, r.stderr


def test_no_credentials_at_all_is_a_clear_error(bklogfs_bin, auth_moto, mountpoint, tmp_path):
    r = mount(bklogfs_bin, mountpoint, auth_moto.endpoint, clean_env(tmp_path))
    assert r.returncode != 0
    assert "no AWS credentials found" in r.stderr
    assert not is_mounted(mountpoint)


def test_secrets_never_reach_logs_cache_or_argv(bklogfs_bin, seeded_bucket, mountpoint, tmp_path):
    access_key, secret = "AKIAEXAMPLESECRETKEY", "s3cr3t/Value+That-Must-Never-Leak-0123456789"
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret,
                    AWS_SESSION_TOKEN="session-token-that-must-never-leak")
    r = subprocess.run([bklogfs_bin, "mount", str(mountpoint), "--bucket", seeded_bucket.name, "--endpoint",
                        seeded_bucket.endpoint, "--log-level", "trace"], capture_output=True, text=True, timeout=60,
                       env=env)
    assert r.returncode == 0, r.stderr
    for name in seeded_bucket.real_keys[:5]:
        read_file(mountpoint / name)
        subprocess.run(["tail", "-c", "100", str(mountpoint / name)], check=True, capture_output=True)
    # Ask for something missing too, so an error path is logged.
    assert not (mountpoint / "no-such-org").exists()
    pids = daemon_pids(bklogfs_bin, mountpoint)
    assert pids, "no mount process found"
    argv = b" ".join(Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids)
    stats = subprocess.run([bklogfs_bin, "stats", str(mountpoint)], capture_output=True, text=True, env=env)
    unmount = subprocess.run([bklogfs_bin, "unmount", str(mountpoint)], capture_output=True, text=True, env=env)
    assert unmount.returncode == 0, unmount.stderr

    # The documented default places: the log under $XDG_STATE_HOME, the cache under $XDG_CACHE_HOME.
    log = tmp_path / "xdg-state" / "bklogfs" / "bklogfs.log"
    cache = tmp_path / "xdg-cache" / "bklogfs"
    assert "mounted s3://" in log.read_text(), "the default log file has no 'mounted' line"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    cache_files = [p for p in cache.rglob("*") if p.is_file()]
    assert cache_files, "nothing was cached"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in cache_files)

    for value in (secret, secret[:16], "session-token-that-must-never-leak"):
        needle = value.encode()
        assert needle not in argv
        assert needle not in log.read_bytes(), "a secret is in the log"
        assert value not in r.stdout + r.stderr + stats.stdout + stats.stderr
        for path in cache_files:
            assert needle not in path.read_bytes(), f"a secret is in the cache file {path}"
