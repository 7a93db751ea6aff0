"""The synthetic S3 world of issue 13 (bench/synthetic_s3.py): its listings are S3's listings of
the keys it enumerates, its objects are what it lists, bklogfs mounts and walks it, and the scale
run that measures bklogfs in it (bench/scale.py --smoke) works.

The server is checked against itself only through its own full enumeration: the test pages
through the whole bucket, checks that the keys are strictly sorted, unique, exactly N and in
Buildkite's layout, and then answers every other query from that list with its own (linear,
skip-nothing) implementation of S3's rules."""

import bisect
import hashlib
import http.client
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import time
import types
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from conftest import CREDS, IN_CI, REGION, REPO_ROOT, require, require_fuse

BENCH = REPO_ROOT / "bench"
KEYS = 20_007  # not a multiple of the 20 jobs of a build: the last build has 7
BUILDS_PER_PIPELINE = 300  # 1,001 builds: 4 pipelines of 251 builds, the last of 248
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
KEY_RE = re.compile(f"{UUID}/{UUID}/{UUID}/{UUID}\\.log")


class World:
    def __init__(self, port, tmp):
        import boto3
        from botocore.config import Config

        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.name = "bklogfs-synthetic"
        self.tmp = tmp
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                               aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
                               aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"],
                               config=Config(retries={"max_attempts": 1}))
        self._keys = None

    def control(self, path):
        with urllib.request.urlopen(f"{self.endpoint}{path}", timeout=30) as r:
            return json.loads(r.read())

    def keys(self):
        """Every key, paged with max-keys 1000, checked page by page."""
        if self._keys is None:
            keys, token, pages = [], None, 0
            while True:
                args = {"Bucket": self.name, "MaxKeys": 1000}
                if token:
                    args["ContinuationToken"] = token
                page = self.s3.list_objects_v2(**args)
                pages += 1
                contents = page.get("Contents", [])
                assert page["KeyCount"] == len(contents)
                keys += [o["Key"] for o in contents]
                if not page["IsTruncated"]:
                    assert "NextContinuationToken" not in page
                    break
                assert len(contents) == 1000, f"page {pages} is truncated with {len(contents)} keys"
                token = page["NextContinuationToken"]
            assert pages == -(-KEYS // 1000)
            self._keys = keys
        return self._keys


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    require(importlib.util.find_spec("boto3") is not None, "boto3 is not installed (pip install boto3)")
    tmp = tmp_path_factory.mktemp("synthetic")
    port_file = tmp / "port"
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, str(BENCH / "synthetic_s3.py"), "--keys", str(KEYS),
                             "--builds-per-pipeline", str(BUILDS_PER_PIPELINE), "--port-file", str(port_file)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, (tmp / "server.log").read_text()
            assert time.monotonic() < deadline, "bench/synthetic_s3.py wrote no port within 30 s"
            time.sleep(0.05)
        yield World(int(port_file.read_text()), tmp)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def expected_listing(keys, prefix, delimiter, after):
    """S3's answer from the sorted key list, key by key: ("K", key) and ("P", common prefix)."""
    if after and after >= prefix:
        start = bisect.bisect_right(keys, after)
    else:
        start = bisect.bisect_left(keys, prefix)
    out = []
    for key in keys[start:]:
        if not key.startswith(prefix):
            break
        d = key.find(delimiter, len(prefix)) if delimiter else -1
        if d < 0:
            out.append(("K", key))
            continue
        common = key[: d + len(delimiter)]
        if (after and common <= after) or (out and out[-1] == ("P", common)):
            continue
        out.append(("P", common))
    return out


def listed(world, prefix, delimiter, after, max_keys, pages):
    """The first `pages` pages of a listing, as ("K"|"P", name) items, and whether it ended."""
    items, token = [], None
    for _ in range(pages):
        args = {"Bucket": world.name, "Prefix": prefix, "MaxKeys": max_keys}
        if delimiter:
            args["Delimiter"] = delimiter
        if after is not None:
            args["StartAfter"] = after
        if token:
            args["ContinuationToken"] = token
        page = world.s3.list_objects_v2(**args)
        got = [("K", o["Key"]) for o in page.get("Contents", [])] + \
              [("P", p["Prefix"]) for p in page.get("CommonPrefixes", [])]
        got.sort(key=lambda item: item[1])
        assert page["KeyCount"] == len(got) <= max_keys
        items += got
        if not page["IsTruncated"]:
            return items, True
        assert len(got) == max_keys, f"a truncated page of {len(got)} items, max-keys {max_keys}"
        token = page["NextContinuationToken"]
    return items, False


def test_enumeration_is_sorted_unique_and_complete(world):
    keys = world.keys()
    assert len(keys) == KEYS and len(set(keys)) == KEYS
    assert all(a < b for a, b in zip(keys, keys[1:])), "keys are not strictly sorted"
    bad = [k for k in keys if not KEY_RE.fullmatch(k)]
    assert not bad, bad[:3]
    orgs = {k[:36] for k in keys}
    pipelines = {k[:73] for k in keys}
    builds = {k[:110] for k in keys}
    assert (len(orgs), len(pipelines), len(builds)) == (1, 4, 1001)
    assert sum(1 for k in keys if k.startswith(keys[-1][:110])) == 7


def test_listings_are_slices_of_the_enumeration(world):
    """Prefixes cut anywhere (on directory bounds, mid-name, matching nothing), delimiter "/" or
    none, start-after at keys, inside keys, between keys and outside the bucket, max-keys 1..1000:
    every page is the expected slice, continuation tokens go on where the page ended."""
    keys = world.keys()
    rng = random.Random(13)
    cases = [("", "/", None, 1000), ("", "", None, 1000), (keys[0][:37], "/", None, 2),
             (keys[0][:74], "/", None, 100), (keys[-1][:74], "/", keys[-1][:74], 1000),
             (keys[-1][:111], "", None, 1000), ("", "", keys[-1], 5), ("", "/", "~", 5),
             ("", "", "", 3), ("zz", "/", None, 10), (keys[100][:50] + "g", "", None, 10)]
    for _ in range(90):
        key = keys[rng.randrange(KEYS)]
        prefix = rng.choice(["", key[:rng.choice([37, 74, 111])], key[:rng.randrange(len(key) + 1)]])
        other = keys[rng.randrange(KEYS)]
        after = rng.choice([None, other, other[:rng.randrange(1, len(other))], other + "0", other[:60] + "z",
                            key[:len(prefix) + rng.randrange(40)], "0" * rng.randrange(1, 12)])
        max_keys = rng.choice([1, 2, 3, 7, 20, 99, 250, 1000, rng.randint(1, 1000)])
        cases.append((prefix, rng.choice(["", "/"]), after, max_keys))
    for prefix, delimiter, after, max_keys in cases:
        pages = 3
        got, ended = listed(world, prefix, delimiter, after, max_keys, pages)
        want = expected_listing(keys, prefix, delimiter, after)
        what = f"prefix {prefix!r}, delimiter {delimiter!r}, start-after {after!r}, max-keys {max_keys}"
        if ended:
            assert got == want, what
        else:
            assert got == want[: pages * max_keys] and len(want) > pages * max_keys, what


def raw_get(world, target, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", world.port, timeout=30)
    try:
        conn.request("GET", target, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def test_listing_document_is_what_bklogfs_parses(world):
    """The ListObjectsV2 document as S3 writes it: its namespace, EncodingType echoed exactly when
    asked, quoted ETags, ISO times with milliseconds, KeyCount, and a bad token or max-keys refused."""
    keys = world.keys()
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    for encoded in (False, True):
        query = f"list-type=2&prefix={keys[0][:74]}&delimiter=/&max-keys=5" + ("&encoding-type=url" if encoded else "")
        status, headers, body = raw_get(world, f"/{world.name}?{query}")
        assert status == 200 and headers["content-type"] == "application/xml"
        root = ET.fromstring(body)
        assert root.tag == ns + "ListBucketResult"
        assert (root.findtext(ns + "EncodingType") == "url") == encoded
        assert root.findtext(ns + "KeyCount") == "5" and root.findtext(ns + "IsTruncated") == "true"
        assert root.findtext(ns + "NextContinuationToken")
        assert [p.text for p in root.iter(ns + "Prefix")][1:] == sorted({k[:111] for k in keys[:5 * 20]})[:5]
    status, _, body = raw_get(world, f"/{world.name}?list-type=2&max-keys=2")
    contents = ET.fromstring(body).findall(ns + "Contents")
    assert [c.findtext(ns + "Key") for c in contents] == keys[:2]
    for c in contents:
        assert re.fullmatch(r'"[0-9a-f]{32}"', c.findtext(ns + "ETag"))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", c.findtext(ns + "LastModified"))
        assert c.findtext(ns + "StorageClass") == "STANDARD"
    for query, code in (("list-type=2&continuation-token=nonsense", "InvalidArgument"),
                        ("list-type=2&max-keys=-1", "InvalidArgument"),
                        ("list-type=2&encoding-type=base64", "InvalidArgument")):
        status, _, body = raw_get(world, f"/{world.name}?{query}")
        assert status == 400 and ET.fromstring(body).findtext("Code") == code, (query, body)
    status, _, body = raw_get(world, "/another-bucket?list-type=2")
    assert status == 404 and ET.fromstring(body).findtext("Code") == "NoSuchBucket"


def test_objects_are_what_the_listing_says(world):
    """HEAD and GET agree with the listing (size, ETag = MD5 of the bytes, LastModified); ranges
    are slices of the whole object (206), past the end 416; If-Match and If-None-Match as S3;
    unknown keys and directories 404 NoSuchKey."""
    from botocore.exceptions import ClientError

    keys = world.keys()
    rng = random.Random(7)
    picks = [keys[0], keys[-1], *(keys[rng.randrange(KEYS)] for _ in range(6))]
    listing = {}
    for key in picks:
        page = world.s3.list_objects_v2(Bucket=world.name, Prefix=key, MaxKeys=1)
        [obj] = page["Contents"]
        listing[key] = obj
    sizes = set()
    for key in picks:
        obj = listing[key]
        head = world.s3.head_object(Bucket=world.name, Key=key)
        assert head["ContentLength"] == obj["Size"] and head["ETag"] == obj["ETag"]
        assert head["LastModified"] == obj["LastModified"]
        whole = world.s3.get_object(Bucket=world.name, Key=key)["Body"].read()
        size = len(whole)
        sizes.add(size)
        assert size == obj["Size"] and 1024 <= size <= 8192
        assert f'"{hashlib.md5(whole).hexdigest()}"' == obj["ETag"]
        assert whole.endswith(f"~~~ end of {key}\n".encode()), "the object does not name its key"
        a = rng.randrange(size)
        b = rng.randrange(a, size)
        n = rng.randrange(1, size)
        for spec, want in ((f"bytes={a}-{b}", whole[a:b + 1]), (f"bytes={a}-", whole[a:]), (f"bytes=-{n}", whole[-n:]),
                           (f"bytes={a}-{size + 100}", whole[a:]), (f"bytes=-{size + 5}", whole),
                           (f"bytes={size - 1}-{size - 1}", whole[-1:])):
            r = world.s3.get_object(Bucket=world.name, Key=key, Range=spec)
            assert r["Body"].read() == want, spec
            assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
            first = size - len(want) if spec.startswith("bytes=-") else int(spec[6:].split("-")[0])
            assert r["ContentRange"] == f"bytes {first}-{first + len(want) - 1}/{size}", spec
        with pytest.raises(ClientError) as e:
            world.s3.get_object(Bucket=world.name, Key=key, Range=f"bytes={size}-")
        assert e.value.response["Error"]["Code"] == "InvalidRange"
        assert world.s3.get_object(Bucket=world.name, Key=key, IfMatch=obj["ETag"])["Body"].read() == whole
        with pytest.raises(ClientError) as e:
            world.s3.get_object(Bucket=world.name, Key=key, IfMatch='"0123"')
        assert e.value.response["Error"]["Code"] == "PreconditionFailed"
        with pytest.raises(ClientError) as e:
            world.s3.get_object(Bucket=world.name, Key=key, IfNoneMatch=obj["ETag"])
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    assert len(sizes) > 1, "every object has the same size"
    for missing in (keys[5][:111], keys[5] + "x", keys[5][:-5] + ".txt", "nothing"):
        with pytest.raises(ClientError) as e:
            world.s3.get_object(Bucket=world.name, Key=missing)
        assert e.value.response["Error"]["Code"] == "NoSuchKey", missing
        with pytest.raises(ClientError) as e:
            world.s3.head_object(Bucket=world.name, Key=missing)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_bklogfs_walks_the_world(world, mount):
    """A mount of the synthetic bucket: `find -type f` sees every key, in about one LIST per 1,000
    keys, and the files' bytes are the server's."""
    keys = world.keys()
    bucket = types.SimpleNamespace(name=world.name, endpoint=world.endpoint)
    m = mount(bucket=bucket, extra_args=["--log-level", "info"])
    world.control("/__reset")
    r = subprocess.run(f"find {m.path} -type f | wc -l", shell=True, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and int(r.stdout) == KEYS, r
    stats = world.control("/__stats")["requests"]
    # A page of keys for every 1,000 keys, and at most two listings of each directory above the
    # builds (the mount's root, the organization, the 4 pipelines); never one per build (1,001).
    assert stats["LIST"] <= -(-KEYS // 1000) + 2 * (1 + 1 + 4), f"{stats} for {KEYS} keys"
    assert stats["HEAD"] == 0 and stats["GET"] == 0, stats
    rng = random.Random(3)
    for key in (keys[0], keys[-1], *(keys[rng.randrange(KEYS)] for _ in range(4))):
        served = world.s3.get_object(Bucket=world.name, Key=key)["Body"].read()
        with open(m.path / key, "rb") as f:
            assert f.read() == served, key


def test_scale_smoke(bklogfs_bin, tmp_path):
    """scripts/bench --scale-smoke's driver (bench/scale.py --smoke), with the binary under test: a
    walk of 10^4 synthetic keys that counts them all, its requests and the daemon's memory, and
    its table (and chart, with matplotlib), and the same tree walked by `rsync -a --dry-run`. Speed is
    not asserted: the run is a measurement."""
    require_fuse()
    if IN_CI:
        require(importlib.util.find_spec("matplotlib") is not None,
                "matplotlib is not installed (scripts/setup installs it)")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--scale-smoke", "--out", str(out), "--bklogfs-bin",
                        bklogfs_bin, "--cache-root", str(tmp_path / "cache"), "--settle", "1"],
                       capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert r.returncode == 0, f"bench/scale.py --smoke exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    report = json.loads((out / "results.json").read_text())
    [row] = report["results"]
    assert row["keys"] == 10_000 and row["count"] == 10_000 and "error" not in row, row
    assert 10 <= row["requests"]["LIST"] <= 10 + 2 * 3, row["requests"]
    assert row["requests"]["GET"] == 0 and row["requests"]["HEAD"] == 0, row["requests"]
    assert row["peak_rss"] >= row["rss_after_walk"] > 0
    # The rsync pass walked the same tree, and the daemon's peak during it alone was measured.
    assert "rsync_error" not in row and row["rsync_seconds"] > 0, row
    if os.geteuid() == 0:
        assert 0 < row["rsync_peak_rss"] <= row["peak_rss"] * 2, row
    assert row["names_after_walk"] > 0, row
    # `bklogfs stats` gives the daemon's heap in use: more after the walk, which left names behind.
    assert 0 < row["heap_at_mount"] < row["heap_after_walk"] <= row["peak_rss"], row
    if os.geteuid() == 0:
        assert row["rss_after_drop"] > 0
    table = (out / "results.md").read_text()
    assert "| keys | layout | `find -type f` |" in table and "| 10,000 | 1 × 500 × 20 |" in table, table
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "scale.png").stat().st_size > 10_000
