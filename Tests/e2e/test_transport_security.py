"""End-to-end: plain http is accepted only to this machine, unless the user passes the loudly named
--insecure-http; https is verified (doc/CONFIGURATION.md)."""

import os
import subprocess
import time

import pytest

from conftest import CREDS, REGION, is_mounted, read_file

# TEST-NET-1 (RFC 5737): an address on another machine that nothing answers.
REMOTE = "http://192.0.2.1:9"


@pytest.fixture
def mnt(mountpoint):
    return mountpoint


def env_for(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "BUILDKITE_API_TOKEN"}
    env.update(CREDS, HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               XDG_STATE_HOME=str(tmp_path / "state"), AWS_REGION=REGION)
    env.update(extra)
    return env


def run_mount(binary, mnt, env, *args):
    started = time.monotonic()
    r = subprocess.run([binary, "mount", str(mnt), *args], capture_output=True, text=True, timeout=60, env=env)
    return r, time.monotonic() - started


def assert_refused_as_plain_http(r, elapsed, mnt, what):
    assert r.returncode != 0, "a plain-http endpoint on another machine was accepted"
    message = r.stderr.strip()
    assert "\n" not in message, r.stderr
    assert what in message and "plain http" in message and "--insecure-http" in message, message
    assert CREDS["AWS_SECRET_ACCESS_KEY"] not in r.stderr + r.stdout
    assert elapsed < 5, f"refusing took {elapsed:.1f} s: no request should be made"
    assert not is_mounted(mnt)


def test_a_plain_http_s3_endpoint_on_another_machine_is_refused(bklogfs_bin, mnt, tmp_path):
    r, elapsed = run_mount(bklogfs_bin, mnt, env_for(tmp_path), "--bucket", "logs", "--endpoint", REMOTE)
    assert_refused_as_plain_http(r, elapsed, mnt, "the S3 endpoint http://192.0.2.1:9")


def test_a_plain_http_endpoint_from_the_environment_is_refused_too(bklogfs_bin, mnt, tmp_path):
    r, elapsed = run_mount(bklogfs_bin, mnt, env_for(tmp_path, AWS_ENDPOINT_URL=REMOTE), "--bucket", "logs")
    assert_refused_as_plain_http(r, elapsed, mnt, "the S3 endpoint")


def test_a_plain_http_buildkite_api_on_another_machine_is_refused(bklogfs_bin, mnt, tmp_path):
    token = "bkua_" + "7" * 40
    r, elapsed = run_mount(bklogfs_bin, mnt, env_for(tmp_path, BUILDKITE_API_TOKEN=token),
                           "--api-endpoint", REMOTE + "/v2")
    assert_refused_as_plain_http(r, elapsed, mnt, "the Buildkite API endpoint")
    assert token not in r.stderr + r.stdout


def test_insecure_http_lets_the_mount_go_on_and_it_fails_only_as_unreachable(bklogfs_bin, mnt, tmp_path):
    r, _ = run_mount(bklogfs_bin, mnt, env_for(tmp_path), "--bucket", "logs", "--endpoint", REMOTE,
                     "--insecure-http")
    assert r.returncode != 0
    assert "plain http" not in r.stderr and "--insecure-http" not in r.stderr, r.stderr
    assert not is_mounted(mnt)


def test_plain_http_to_this_machine_by_name_is_accepted(bklogfs_bin, mnt, tmp_path, seeded_bucket):
    endpoint = seeded_bucket.endpoint.replace("127.0.0.1", "localhost")
    r, _ = run_mount(bklogfs_bin, mnt, env_for(tmp_path), "--bucket", seeded_bucket.name, "--endpoint", endpoint)
    assert r.returncode == 0, r.stderr
    key = seeded_bucket.real_keys[0]
    assert read_file(mnt / key) == read_file(seeded_bucket.path(key))
