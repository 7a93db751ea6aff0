"""End-to-end: the rest of a real archive bucket (issue 14), against moto_server and Ceph's RADOS
Gateway (whose scripts/rgw configuration turns on SSE-KMS with a test key, and SSE-C over loopback
http): server-side encrypted logs read like any other; a log encrypted with a customer's key
(SSE-C) fails with ENOKEY and one sentence that says why; a Requester Pays bucket mounts with
--requester-pays (a header RGW checks the signature of); keys holding characters XML 1.0 cannot
carry show under their own names (listings ask for `encoding-type=url`).
"""

import errno
import os
import uuid
from pathlib import Path

import pytest

from conftest import Bucket

BUILD = "0190a1b2-org/0190a1b3-pipe/0190a1b4-build"
XML_ILLEGAL = ["ctl\x01char.log", "esc\x1b[31mred.log", "tab\tin.log", "cr\rin.log", "nonchar\uffff.log"]


@pytest.fixture(params=["moto", "rgw"])
def server(request):
    """(name, boto3 client, endpoint, environment for bklogfs)."""
    if request.param == "moto":
        moto = request.getfixturevalue("moto")
        return "moto", moto.client, moto.endpoint, None
    rgw = request.getfixturevalue("rgw")
    return "rgw", rgw.client(), rgw.endpoint, {"AWS_ACCESS_KEY_ID": rgw.access_key,
                                               "AWS_SECRET_ACCESS_KEY": rgw.secret_key}


def new_bucket(client, endpoint, prefix):
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    return Bucket(name=name, endpoint=endpoint)


def test_server_side_encrypted_logs_read_like_any_other(mount, server):
    name, client, endpoint, env = server
    bucket = new_bucket(client, endpoint, "bk-sse")
    # moto takes any key ID; RGW's test KMS backend holds testkey-1 (scripts/rgw).
    kms_key = "testkey-1"
    logs = {
        "plain.log": ({}, b"plain\r\n"),
        "sse-s3.log": ({"ServerSideEncryption": "AES256"}, b"encrypted by the server, its key\r\n"),
        "sse-kms.log": ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key}, b"encrypted with a KMS key\r\n"),
    }
    for key, (extra, body) in logs.items():
        client.put_object(Bucket=bucket.name, Key=f"{BUILD}/{key}", Body=body, **extra)
    if name == "rgw":
        # Really encrypted at rest on RGW, by the key RGW names.
        head = client.head_object(Bucket=bucket.name, Key=f"{BUILD}/sse-kms.log")
        assert head["ServerSideEncryption"] == "aws:kms"
    m = mount(bucket=bucket, env=env)
    for key, (_, body) in logs.items():
        assert (m / BUILD / key).read_bytes() == body, key


def test_a_log_encrypted_with_a_customers_key_fails_with_ENOKEY(mount, rgw):
    """moto returns an SSE-C object to a GET without its key (a mock), so this runs on RGW only."""
    client = rgw.client()
    bucket = new_bucket(client, rgw.endpoint, "bk-ssec")
    client.put_object(Bucket=bucket.name, Key=f"{BUILD}/customer.log", Body=b"needs the customer's key\r\n",
                      SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)
    client.put_object(Bucket=bucket.name, Key=f"{BUILD}/plain.log", Body=b"plain\r\n")
    m = mount(bucket=bucket, env={"AWS_ACCESS_KEY_ID": rgw.access_key, "AWS_SECRET_ACCESS_KEY": rgw.secret_key})
    assert (m / BUILD / "customer.log").stat().st_size == len(b"needs the customer's key\r\n")
    with pytest.raises(OSError) as raised:
        (m / BUILD / "customer.log").read_bytes()
    assert raised.value.errno == errno.ENOKEY, raised.value
    assert (m / BUILD / "plain.log").read_bytes() == b"plain\r\n"
    log = Path(m.log_path).read_text(errors="replace")
    lines = [line for line in log.splitlines() if "customer.log" in line and "SSE-C" in line]
    assert lines and "customer-provided key" in lines[0] and "Required key not available" in lines[0], log[-2000:]


def test_a_requester_pays_bucket_mounts_with_requester_pays(mount, rgw, bklogfs_bin):
    client = rgw.client()
    bucket = new_bucket(client, rgw.endpoint, "bk-payer")
    client.put_bucket_request_payment(Bucket=bucket.name, RequestPaymentConfiguration={"Payer": "Requester"})
    client.put_object(Bucket=bucket.name, Key=f"{BUILD}/paid.log", Body=b"the requester pays\r\n")
    env = {"AWS_ACCESS_KEY_ID": rgw.access_key, "AWS_SECRET_ACCESS_KEY": rgw.secret_key}
    # RGW checks the signature, which covers x-amz-request-payer: a header sent unsigned or signed
    # wrong fails the mount.
    m = mount(bucket=bucket, env=env, extra_args=["--requester-pays"])
    assert (m / BUILD / "paid.log").read_bytes() == b"the requester pays\r\n"
    assert m.stats()["failures"] == 0


def test_keys_xml_cannot_carry_show_under_their_own_names(mount, server):
    name, client, endpoint, env = server
    bucket = new_bucket(client, endpoint, "bk-xmlkeys")
    for key in XML_ILLEGAL:
        client.put_object(Bucket=bucket.name, Key=f"{BUILD}/{key}", Body=key.encode() + b"\r\n")
    m = mount(bucket=bucket, env=env)
    assert sorted(os.listdir(m / BUILD)) == sorted(XML_ILLEGAL)
    for key in XML_ILLEGAL:
        assert (m / BUILD / key).read_bytes() == key.encode() + b"\r\n", repr(key)


def test_a_bucket_the_credentials_may_not_list_says_what_to_check(moto, bklogfs_bin, mountpoint):
    """AccessDenied at the mount's check (a bucket policy, or a Requester Pays bucket asked without
    --requester-pays): one sentence naming the permission needed and the flag."""
    from urllib.parse import urlparse

    from conftest import REGION, run_bklogfs
    from fault_proxy import FaultProxy

    proxy = FaultProxy(urlparse(moto.endpoint).port)
    proxy.fail_all = "403"
    try:
        r = run_bklogfs(bklogfs_bin, "mount", mountpoint, "--bucket", "any-bucket", "--endpoint", proxy.endpoint,
                        "--region", REGION)
    finally:
        proxy.stop()
    message = r.stderr.strip()
    assert r.returncode == 1 and "\n" not in message, r.stderr
    assert "AccessDenied" in message and "s3:ListBucket" in message and "--requester-pays" in message, message
