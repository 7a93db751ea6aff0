#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (Fuzz/Corpus/<target>/seed-*), in the shapes S3 and the
Buildkite API send (their API references' examples), written here rather than copied from anywhere.
Inputs libFuzzer adds with `scripts/fuzz --keep` sit beside them under libFuzzer's own names, and
inputs that once crashed a target as `crash-*` (each also a unit test's case).

    python3 Fuzz/make-seeds.py
"""
import gzip
import json
import os
import struct
import zlib

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")


def write(target, name, data):
    folder = os.path.join(root, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


# --- S3 -------------------------------------------------------------------------------------------
PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'
NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def contents(key, size=434234, modified="2023-10-12T17:50:30.000Z", etag="&quot;fba9dede5f27731c9771645a39863328&quot;"):
    return (f"<Contents><Key>{key}</Key><LastModified>{modified}</LastModified><ETag>{etag}</ETag>"
            f"<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><Size>{size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>")


org = "0190f1c2-1f0e-4c3b-9c61-3b0d7f6a2e11"
pipe = "018f7ee5-7a2b-429f-83ad-89e3b6c6c3ef"
build = "0190f1c3-55aa-4e8e-b0a4-9d2f3e4a5b6c"
jobs = ["0190f1c4-0001-4a1b-8c2d-3e4f5a6b7c8d", "0190f1c4-0002-4a1b-8c2d-3e4f5a6b7c8d"]

write("FuzzS3XML", "list-truncated.xml", PROLOG + f"<ListBucketResult{NS}><Name>acme-buildkite-logs</Name>"
      f"<Prefix>{org}/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><EncodingType>url</EncodingType>"
      "<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
      "</NextContinuationToken>" + "".join(contents(f"{org}/{pipe}/{build}/{j}.log") for j in jobs)
      + "</ListBucketResult>")
write("FuzzS3XML", "list-delimiter.xml", PROLOG + f"<ListBucketResult{NS}><Name>acme-buildkite-logs</Name>"
      f"<Prefix>{org}/</Prefix><Delimiter>/</Delimiter><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
      f"<CommonPrefixes><Prefix>{org}%2F{pipe}%2F</Prefix></CommonPrefixes>"
      f"<CommonPrefixes><Prefix>{org}/old+pipeline/</Prefix></CommonPrefixes></ListBucketResult>")
write("FuzzS3XML", "list-odd-keys.xml", PROLOG + f"<ListBucketResult{NS}><Name>b</Name><EncodingType>url</EncodingType>"
      "<StartAfter>a%2Bb</StartAfter><IsTruncated>false</IsTruncated>"
      + contents("with+space%25and%2Bplus.log", size=0, modified="2009-10-12T17:50:30.123456789Z",
                 etag='"599bab3ed2c697f1d26842727561fd94-2"')
      + contents("caf%C3%A9/%E2%9C%93%0Anewline", size=18446744073709551615, modified="2024-02-29T23:59:60+01:00")
      + "<Contents><Key>x/</Key><LastModified>2023-01-01T00:00:00Z</LastModified><Size>0</Size></Contents>"
      + "</ListBucketResult>")
write("FuzzS3XML", "list-raw-keys.xml", f"<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated>"
      + contents("a&amp;b&lt;c&gt;&#65;&#x1F600;<![CDATA[<raw>]]>") + "<!-- comment --><?pi x?></ListBucketResult>")
write("FuzzS3XML", "list-not-utf8.xml", PROLOG + f"<ListBucketResult{NS}><Name>b</Name><EncodingType>url</EncodingType>"
      "<IsTruncated>false</IsTruncated>" + contents("bad%FF%FEkey.log") + contents("fine.log")
      + "<CommonPrefixes><Prefix>%C0%AF/</Prefix></CommonPrefixes></ListBucketResult>")
write("FuzzS3XML", "list-empty.xml", PROLOG + f"<ListBucketResult{NS}><Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount>"
      "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>")
write("FuzzS3XML", "list-pretty.xml", PROLOG + "<ListBucketResult>\n  <Name>b</Name>\n  <IsTruncated>false</IsTruncated>\n"
      "  <Contents>\n    <Key>k</Key>\n    <LastModified>2023-10-12T17:50:30Z</LastModified>\n    <Size>1</Size>\n"
      "    <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f</ID><DisplayName>logs</DisplayName></Owner>\n  </Contents>\n"
      "</ListBucketResult>\n")
write("FuzzS3XML", "error-nosuchbucket.xml", PROLOG + "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does "
      "not exist</Message><BucketName>acme-buildkite-logs</BucketName><RequestId>4442587FB7D0A2F9</RequestId>"
      "<HostId>dGVzdA==</HostId></Error>")
write("FuzzS3XML", "error-redirect.xml", PROLOG + "<Error><Code>PermanentRedirect</Code><Message>The bucket you are "
      "attempting to access must be addressed using the specified endpoint.</Message>"
      "<Endpoint>acme.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>acme</Bucket><Region>eu-west-1</Region></Error>")
write("FuzzS3XML", "error-signature.xml", PROLOG + "<Error><Code>SignatureDoesNotMatch</Code><Message>The request "
      "signature we calculated does not match the signature you provided.</Message><AWSAccessKeyId>AKIDEXAMPLE"
      "</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n20150830T123600Z</StringToSign></Error>")
write("FuzzS3XML", "error-slowdown.xml", "<Error><Code>SlowDown</Code><Message>Please reduce your request rate."
      "</Message></Error>")
write("FuzzS3XML", "http-date.txt", "Wed, 21 Oct 2015 07:28:00 GMT")

# --- Buildkite ------------------------------------------------------------------------------------
api = "https://api.buildkite.com/v2/organizations/acme/pipelines/web-app"


def job(i, **extra):
    j = {"id": jobs[i % 2], "graphql_id": "Sm9iLS0t", "type": "script", "name": f":rspec: rspec {i}",
         "step_key": "rspec", "priority": {"number": 0}, "agent_query_rules": ["queue=default"],
         "state": "passed", "build_url": f"{api}/builds/8812", "web_url": "https://buildkite.com/acme/web-app/builds/8812",
         "log_url": f"{api}/builds/8812/jobs/{jobs[i % 2]}/log", "raw_log_url": f"{api}/builds/8812/jobs/{jobs[i % 2]}/log.txt",
         "command": "bundle exec rspec", "soft_failed": False, "exit_status": 0, "artifact_paths": "log/**/*",
         "agent": {"id": "0190aaaa", "name": "agent-1", "meta_data": ["queue=default"]},
         "created_at": "2024-05-16T00:55:26.401Z", "scheduled_at": "2024-05-16T00:55:26.256Z",
         "started_at": "2024-05-16T00:55:30.670Z", "finished_at": "2024-05-16T00:58:58.887Z",
         "retried": False, "retried_in_job_id": None, "retries_count": None, "retry_type": None,
         "parallel_group_index": i, "parallel_group_total": 2, "matrix": None}
    j.update(extra)
    return j


def build_object(number, job_list):
    return {"id": build, "graphql_id": "QnVpbGQtLS0=", "url": f"{api}/builds/{number}",
            "web_url": f"https://buildkite.com/acme/web-app/builds/{number}", "number": number, "state": "failed",
            "blocked": False, "message": "Merge pull request #42\n\nwith \"quotes\" and \u00e9", "commit": "a" * 40,
            "branch": "main", "tag": None, "env": {}, "source": "webhook", "creator": {"id": "0183c4e6"},
            "created_at": "2024-05-16T00:55:26.401Z", "started_at": "2024-05-16T00:55:30.670Z",
            "finished_at": "2024-05-16T00:58:58.887+00:00", "meta_data": {"k": "v"}, "pull_request": {},
            "pipeline": {"id": pipe, "slug": "web-app", "name": "Web app", "steps": [{"type": "script"}]},
            "jobs": job_list}


write("FuzzBuildkiteJSON", "build.json", json.dumps(build_object(8812, [
    job(0), job(1, state="failed", exit_status=1, retried=True, retried_in_job_id=jobs[0], retries_count=1),
    {"id": "0190f1c4-0003-4a1b-8c2d-3e4f5a6b7c8d", "type": "waiter", "name": None, "step_key": None,
     "state": "passed"}]), indent=2))
write("FuzzBuildkiteJSON", "builds-list.json", json.dumps([build_object(8812, [job(0)]), build_object(8811, [])]))
write("FuzzBuildkiteJSON", "builds-empty.json", " [ ] \n")
write("FuzzBuildkiteJSON", "job-odd-types.json", json.dumps(job(0, parallel_group_index="1", retried=None, name=7,
                                                                 finished_at="2024-05-16 00:58:58,887Z")))
write("FuzzBuildkiteJSON", "jobs-page.json", json.dumps({"items": [job(0), job(1)], "links": {
    "self": f"{api}/builds/8812/jobs?per_page=2", "next": f"{api}/builds/8812/jobs?cursor=eyJpZCI6MX0%3D&per_page=2"}}))
write("FuzzBuildkiteJSON", "organizations.json", json.dumps([
    {"id": "0190f1c2", "graphql_id": "T3Jn", "url": "https://api.buildkite.com/v2/organizations/acme",
     "name": "ACME", "slug": "acme", "created_at": "2019-01-01T00:00:00.000Z"}, {"id": "x", "slug": "no-name"}]))
write("FuzzBuildkiteJSON", "pipelines.json", json.dumps([
    {"id": pipe, "slug": "web-app", "name": "Web app", "repository": "git@github.com:acme/web-app.git",
     "steps": [{"type": "script", "command": "make"}], "tags": None}]))
write("FuzzBuildkiteJSON", "error.json", '{"message": "Your access token does not have the read_builds scope"}')
write("FuzzBuildkiteJSON", "link-header.txt", f'<{api}/builds?page=2&per_page=100>; rel="next", '
      f'<{api}/builds?page=14&per_page=100>; rel="last"')
write("FuzzBuildkiteJSON", "content-range.txt", "bytes 1048576-2097151/2097152")
write("FuzzBuildkiteJSON", "ratelimit.txt", "47, 50;w=60")

# --- gzip -----------------------------------------------------------------------------------------
write("FuzzGzip", "text.gz", gzip.compress(b"hello, build exports\n", mtime=0))
write("FuzzGzip", "build.json.gz", gzip.compress(json.dumps(build_object(8812, [job(0)])).encode(), mtime=0))
write("FuzzGzip", "empty.gz", gzip.compress(b"", mtime=0))
write("FuzzGzip", "zeros.gz", gzip.compress(bytes(200_000), mtime=0))
write("FuzzGzip", "two-members.gz", gzip.compress(b"one\n", mtime=0) + gzip.compress(b"two\n", mtime=0))

# --- disk cache block files (format version 1: zlib's CRC-32) -------------------------------------
# The block FuzzBlockFile caches: these bytes, under this key, with 4096-byte blocks.
def identity(source, key, etag, index, block_size):
    out = b""
    for field in (source, key, etag):
        out += struct.pack("<I", len(field.encode())) + field.encode()
    return out + struct.pack("<QQ", index, block_size)


def block_file(ident, data):
    fixed = b"BKLOGBLK" + struct.pack("<IIQI", 1, 32 + len(ident), len(data), zlib.crc32(data))
    header_checksum = zlib.crc32(ident, zlib.crc32(fixed))
    return fixed + struct.pack("<I", header_checksum) + ident + data


block = bytes((i * 7) & 0xFF for i in range(1000))
ident = identity("s3://fuzz", "org/pipeline/build/job.log", '"e"', 3, 4096)
write("FuzzBlockFile", "valid.blk", block_file(ident, block))
write("FuzzBlockFile", "valid-empty.blk", block_file(ident, b""))
write("FuzzBlockFile", "other-block-size.blk", block_file(identity("s3://fuzz", "org/pipeline/build/job.log", '"e"', 3, 1 << 20), block))
write("FuzzBlockFile", "truncated.blk", block_file(ident, block)[:-1])

# FuzzPlainText: job logs as an agent writes them from a terminal.
ESC = b"\x1b"
write("FuzzPlainText", "colours.log", ESC + b"[90m$" + ESC + b"[0m make test\r\n" + ESC + b"[1;31mFAIL" + ESC + b"[0m\n")
write("FuzzPlainText", "progress.log", b"Downloading  10%\rDownloading  55%\rDownloading 100%\ndone\n")
write("FuzzPlainText", "markers.log", ESC + b"_bk;t=1764924000000\x07~~~ Preparing\n" + ESC + b"_bk;dt=1500\x07--- Running\n")
write("FuzzPlainText", "moves.log", b"abcdef" + ESC + b"[3D" + ESC + b"[K!\x08?" + ESC + b"[5CX" + ESC + b"[2G" + ESC + b"[1K\n")
write("FuzzPlainText", "sequences.log", ESC + b"]8;;https://buildkite.com\x07link" + ESC + b"]8;;" + ESC + b"\\ " + ESC + b"(Bx" + ESC + b"[?25l\n")
write("FuzzPlainText", "utf8.log", "héllo wörld █▌\rX\n".encode() + b"\xff\xc3(\n")
