#!/usr/bin/env python3
"""A synthetic S3 bucket of any size: N keys in the layout of Buildkite's private log archive,
generated on demand from their positions, nothing stored. Issue 13's scale run walks it.

The bucket holds `{org}/{pipeline}/{build}/{job}.log`, every part a lowercase UUID: one
organization, P pipelines of up to --builds-per-pipeline builds (default 100,000, so a pipeline's
directory is as big as a busy real one), and --jobs jobs per build (default 20). N keys make
ceil(N / jobs) builds spread evenly over the fewest pipelines that hold them; the last build may
have fewer jobs. Key i is job i % J of build (i // J) % B of pipeline i // (B * J).

Sorted by construction. A UUID's first group (32 bits) is its index among its siblings times a
stride (2^32 / siblings) plus a hash of its indices modulo the stride, and the other 96 bits are
that hash (with the version 4 and variant bits set), so the names look random, their byte order
is their index order, and every part is 36 characters: the key at any position is computed, and
the position of any string (a start-after, a continuation token, a prefix cut anywhere, a rolled up
common prefix's end) is found by binary search over positions, O(log N) key computations. A common
prefix that a "/" delimiter rolls up is a whole organization, pipeline or build, whose end is
computed at once from its indices.

Objects. A key's bytes are one of 1,024 log-like bodies (timestamped build output lines, 1-8 KiB),
chosen by the key's hash, followed by one line naming the key; so each key's size and bytes are
fixed, and its ETag (the quoted MD5 of its bytes) costs a copy of the body's precomputed MD5
state and one update. LastModified is 2024-01-01 plus a minute per build and a second per job.

Requests, path style (http://HOST:PORT/BUCKET/KEY), any SigV4 Authorization accepted (none is
checked, as with moto):
- ListObjectsV2 (`list-type=2`): prefix (any string), delimiter (any; "/" skips a rolled up
  organization, pipeline or build at once, others by binary search), start-after,
  continuation-token, max-keys (default and cap 1000), encoding-type=url, fetch-owner; the answer
  as S3 writes it (KeyCount, IsTruncated, NextContinuationToken). ListObjects (v1, marker and
  NextMarker) too.
- GET and HEAD of an object: Range (`bytes=A-B`, `bytes=A-`, `bytes=-N`; 206, or 416 InvalidRange
  past the end; a malformed or multiple range is ignored, as S3 does), If-Match (412) and
  If-None-Match (304); 404 NoSuchKey for any other key.
- HEAD of the bucket, GET ?location, and ListBuckets (GET /); NoSuchBucket for another bucket;
  every other method answers 405 MethodNotAllowed (the bucket is read-only).

Counters as bench/s3peer.py keeps them (requests and body bytes by kind: LIST, GET, HEAD, PUT,
OTHER, and ranged GETs), in shared memory across --workers: GET /__stats returns them as JSON,
GET /__reset returns them and zeroes them.

Usage:
    bench/synthetic_s3.py --keys N [--bucket NAME] [--jobs 20] [--builds-per-pipeline 100000]
                          [--seed 0] [--host 127.0.0.1] [--port 0] [--port-file F] [--workers 1]
    bench/synthetic_s3.py --keys N --print-keys [--limit K]    # the keys in order, one a line

N may be written 1e6 or 1_000_000. --workers N > 1 forks N processes onto one listening socket (the
world is computed, so they share nothing but the counters). When listening it prints
`synthetic_s3: ready http://HOST:PORT` and writes PORT to --port-file. SIGTERM or SIGINT stops it.
"""

import argparse
import email.utils
import functools
import hashlib
import json
import os
import random
import re
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3peer import Counters, _decode_token, _encode_token, _take, classify, listen, run_forked  # noqa: E402

REGION = "us-east-1"
DEFAULT_BUCKET = "bklogfs-synthetic"
MAX_KEYS = 1000
BODIES = 1024
BASE_TIME = 1704067200  # 2024-01-01T00:00:00Z
UUID_LEN = 36
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
WORDS = ("compiling", "linking", "testing", "fetching", "resolving", "uploading", "caching", "building",
         "checking", "running")
MODULES = ("core", "api", "web", "cli", "storage", "auth", "billing", "search", "worker", "scheduler")
EXTENSIONS = ("swift", "go", "ts", "py", "rs", "c", "rb", "java")


def parse_count(text):
    """An integer written as 1000000, 1_000_000 or 1e6."""
    try:
        value = float(text.replace("_", "")) if re.fullmatch(r"[0-9_.]+(e[0-9]+)?", text.lower()) else None
    except ValueError:
        value = None
    if value is None or value != int(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of keys")
    return int(value)


def after_prefix(p):
    """The least string greater than every string that starts with p (p is not empty)."""
    return p[:-1] + chr(ord(p[-1]) + 1)


class World:
    """The bucket's keys and objects, computed from positions."""

    def __init__(self, keys, jobs=20, builds_per_pipeline=100_000, seed=0):
        if keys < 0 or jobs < 1 or builds_per_pipeline < 1:
            raise ValueError("keys must be >= 0, jobs and builds per pipeline >= 1")
        self.n = keys
        self.jobs = jobs
        builds = -(-keys // jobs)
        self.pipelines = max(1, -(-builds // builds_per_pipeline))
        self.builds = max(1, -(-builds // self.pipelines))  # builds in each pipeline but maybe the last
        self.per_pipeline = self.builds * jobs
        self.seed = seed
        self._salt = hashlib.blake2b(f"bklogfs-synthetic:{seed}".encode(), digest_size=16).digest()
        self.org = self._uuid(0, 1, "o")
        self._bodies, self._md5 = self._make_bodies()

    # ---- names

    def _hash(self, tag):
        return int.from_bytes(hashlib.blake2b(tag.encode(), digest_size=16, key=self._salt).digest(), "big")

    def _uuid(self, index, siblings, tag, h=None):
        """The UUID of sibling `index` of `siblings`: its first group grows with the index."""
        if h is None:
            h = self._hash(tag)
        stride = (1 << 32) // siblings
        first = index * stride + (h >> 96) % stride
        s = f"{first:08x}{h & ((1 << 96) - 1):024x}"
        return f"{s[:8]}-{s[8:12]}-4{s[13:16]}-{'89ab'[int(s[16], 16) & 3]}{s[17:20]}-{s[20:]}"

    @functools.lru_cache(maxsize=4096)
    def pipeline(self, p):
        return self._uuid(p, self.pipelines, f"p:{p}")

    @functools.lru_cache(maxsize=65536)
    def build(self, p, b):
        return self._uuid(b, self.builds, f"b:{p}:{b}")

    def _job(self, i):
        """(key, hash) of position i."""
        p, r = divmod(i, self.per_pipeline)
        b, j = divmod(r, self.jobs)
        h = self._hash(f"j:{p}:{b}:{j}")
        return f"{self.org}/{self.pipeline(p)}/{self.build(p, b)}/{self._uuid(j, self.jobs, '', h)}.log", h

    def key(self, i):
        return self._job(i)[0]

    def lower_bound(self, s, lo=0, hi=None):
        """The first position in [lo, hi) whose key is >= s (hi when none is)."""
        hi = self.n if hi is None else hi
        while lo < hi:
            mid = (lo + hi) // 2
            if self.key(mid) < s:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def upper_bound(self, s, lo=0):
        """The first position whose key is > s."""
        hi = self.n
        while lo < hi:
            mid = (lo + hi) // 2
            if self.key(mid) <= s:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find(self, key):
        """The position of key, or None when the bucket has no such key."""
        i = self.lower_bound(key)
        return i if i < self.n and self.key(i) == key else None

    def subtree_end(self, i, common):
        """The first position after those whose keys start with `common`, a prefix of key i."""
        depth = len(common)
        if common.endswith("/") and depth in (UUID_LEN + 1, 2 * UUID_LEN + 2, 3 * UUID_LEN + 3):
            if depth == UUID_LEN + 1:
                return self.n
            if depth == 2 * UUID_LEN + 2:
                return min(self.n, (i // self.per_pipeline + 1) * self.per_pipeline)
            return min(self.n, (i // self.jobs + 1) * self.jobs)
        return self.lower_bound(after_prefix(common), lo=i + 1)

    # ---- objects

    def _make_bodies(self):
        """The log bodies objects are made of, and the MD5 state of each."""
        bodies, states = [], []
        trailer = len(self._trailer("x" * (3 * UUID_LEN + 3 + UUID_LEN + 4)))
        for v in range(BODIES):
            rng = random.Random(f"{self.seed}:{v}")
            size = rng.randrange(1024, 8192 - trailer)
            lines, total, t = [], 0, rng.randrange(86400)
            while total < size:
                t += rng.randrange(3)
                line = (f"[{t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d}] {rng.choice(WORDS)} "
                        f"{rng.choice(MODULES)}/{rng.getrandbits(32):08x}.{rng.choice(EXTENSIONS)}: "
                        f"{'FAILED' if rng.random() < 0.0025 else 'ok'} ({rng.randrange(5000)} ms)\n")
                lines.append(line)
                total += len(line)
            body = "".join(lines).encode()[: size - 1] + b"\n"
            bodies.append(body)
            states.append(hashlib.md5(body))
        return bodies, states

    @staticmethod
    def _trailer(key):
        return f"~~~ end of {key}\n".encode()

    def object(self, i, job=None):
        """(key, size, quoted ETag, LastModified in epoch seconds) of position i (whose `_job`, when
        the caller has it already)."""
        key, h = job or self._job(i)
        v = h % BODIES
        trailer = self._trailer(key)
        md5 = self._md5[v].copy()
        md5.update(trailer)
        return key, len(self._bodies[v]) + len(trailer), f'"{md5.hexdigest()}"', self.last_modified(i)

    def content(self, i):
        key, h = self._job(i)
        return self._bodies[h % BODIES] + self._trailer(key)

    def last_modified(self, i):
        return BASE_TIME + (i // self.jobs) * 60 + i % self.jobs

    # ---- listings

    def walk(self, prefix, delimiter, after):
        """Yields (name, position, its `_job`) in S3's order, position and job None for a common
        prefix: the keys starting with prefix, those holding delimiter after it rolled up into common
        prefixes, all after `after`."""
        if after and after >= prefix:
            i = self.upper_bound(after)
        else:
            i = self.lower_bound(prefix) if prefix else 0
        while i < self.n:
            job = self._job(i)
            key = job[0]
            if not key.startswith(prefix):
                return
            if delimiter:
                d = key.find(delimiter, len(prefix))
                if d >= 0:
                    common = key[: d + len(delimiter)]
                    if not (after and common <= after):
                        yield common, None, None
                    i = self.subtree_end(i, common)
                    continue
            yield key, i, job
            i += 1


# ------------------------------------------------------------------ HTTP


class S3Error(Exception):
    def __init__(self, status, code, message, **fields):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


def iso_time(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "AmazonS3"

    def log_message(self, format, *args):
        # SYNTHETIC_S3_LOG=1: one line a request on standard error, to see what a walk asks for.
        if os.environ.get("SYNTHETIC_S3_LOG"):
            sys.stderr.write("%.3f %s\n" % (time.time(), urllib.parse.unquote(self.requestline)))

    def do_GET(self):
        self.serve("GET")

    def do_HEAD(self):
        self.serve("HEAD")

    def do_PUT(self):
        self.serve("PUT")

    def do_POST(self):
        self.serve("POST")

    def do_DELETE(self):
        self.serve("DELETE")

    # ---- dispatch

    def serve(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        split = urllib.parse.urlsplit(self.path)
        if split.path in ("/__stats", "/__reset"):
            body = json.dumps(self.server.counters.snapshot(reset=split.path == "/__reset")).encode()
            self.respond(200, body, {"Content-Type": "application/json"})
            return
        kind = classify(method, split.path, split.query)
        counters = self.server.counters
        counters.started(kind, kind == "GET" and "Range" in self.headers)
        sent = 0
        try:
            sent = self.route(method, split)
        except S3Error as e:
            sent = self.error(method, e)
        finally:
            counters.finished(kind, sent)

    def route(self, method, split):
        bucket, _, raw_key = split.path.lstrip("/").partition("/")
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        if not bucket:
            if method != "GET":
                raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
            return self.xml(200, f'<ListAllMyBucketsResult xmlns="{XMLNS}"><Owner><ID>synthetic</ID>'
                                 f'<DisplayName>synthetic</DisplayName></Owner><Buckets><Bucket><Name>'
                                 f'{escape(self.server.bucket)}</Name><CreationDate>{iso_time(BASE_TIME)}'
                                 f'</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>')
        if bucket != self.server.bucket:
            raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)
        if method not in ("GET", "HEAD"):
            raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        if raw_key:
            return self.object(method, urllib.parse.unquote(raw_key))
        if method == "HEAD":
            return self.respond(200, b"", {"x-amz-bucket-region": REGION}, head=True)
        if "location" in query:
            return self.xml(200, f'<LocationConstraint xmlns="{XMLNS}"/>')
        if set(query) - {"list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token",
                         "start-after", "encoding-type", "fetch-owner", "x-id"}:
            raise S3Error(501, "NotImplemented", "A header or query you provided implies functionality that is "
                                                 "not implemented.")
        return self.listing(query)

    # ---- listings

    def listing(self, query):
        def arg(name):
            values = query.get(name)
            return values[0] if values else None

        v2 = arg("list-type") == "2"
        if arg("list-type") not in (None, "2"):
            raise S3Error(400, "InvalidArgument", "Invalid List Type specified", ArgumentName="list-type")
        encoding = arg("encoding-type")
        if encoding not in (None, "url"):
            raise S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request",
                          ArgumentName="encoding-type")
        try:
            max_keys = MAX_KEYS if arg("max-keys") is None else int(arg("max-keys"))
        except ValueError:
            max_keys = -1
        if max_keys < 0:
            raise S3Error(400, "InvalidArgument", "Provided max-keys not an integer or within integer range",
                          ArgumentName="max-keys")
        max_keys = min(max_keys, MAX_KEYS)
        prefix, delimiter = arg("prefix") or "", arg("delimiter") or ""
        token = arg("continuation-token") if v2 else None
        start_after = arg("start-after") if v2 else arg("marker")
        if token is not None:
            after = _decode_token(token)
            if after is None:
                raise S3Error(400, "InvalidArgument", "The continuation token provided is incorrect",
                              ArgumentName="continuation-token")
        else:
            after = start_after
        world = self.server.world
        items = _take(world.walk(prefix, delimiter, after), max_keys + 1)
        truncated = len(items) > max_keys
        items = items[:max_keys]

        def name(text):
            return escape(urllib.parse.quote(text, safe="/") if encoding else text)

        out = [f'<ListBucketResult xmlns="{XMLNS}"><Name>{escape(self.server.bucket)}</Name>'
               f"<Prefix>{name(prefix)}</Prefix>"]
        if v2:
            if start_after is not None:
                out.append(f"<StartAfter>{name(start_after)}</StartAfter>")
            if token is not None:
                out.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
            if truncated and items:
                out.append(f"<NextContinuationToken>{_encode_token(items[-1][0])}</NextContinuationToken>")
            out.append(f"<KeyCount>{len(items)}</KeyCount>")
        else:
            out.append(f"<Marker>{name(start_after or '')}</Marker>")
            if truncated and items and delimiter:
                out.append(f"<NextMarker>{name(items[-1][0])}</NextMarker>")
        out.append(f"<MaxKeys>{max_keys}</MaxKeys>")
        if delimiter:
            out.append(f"<Delimiter>{name(delimiter)}</Delimiter>")
        if encoding:
            out.append("<EncodingType>url</EncodingType>")
        out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        owner = "<Owner><ID>synthetic</ID><DisplayName>synthetic</DisplayName></Owner>" \
            if (arg("fetch-owner") == "true" or not v2) else ""
        for key, i, job in items:
            if i is not None:
                _, size, etag, modified = world.object(i, job)
                out.append(f"<Contents><Key>{key}</Key><LastModified>{iso_time(modified)}</LastModified>"
                           f"<ETag>&quot;{etag[1:-1]}&quot;</ETag><Size>{size}</Size>{owner}"
                           f"<StorageClass>STANDARD</StorageClass></Contents>")
        for common, i, _ in items:
            if i is None:
                out.append(f"<CommonPrefixes><Prefix>{name(common)}</Prefix></CommonPrefixes>")
        out.append("</ListBucketResult>")
        return self.xml(200, "".join(out))

    # ---- objects

    def object(self, method, key):
        world = self.server.world
        i = world.find(key)
        if i is None:
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        _, size, etag, modified = world.object(i)
        headers = {"ETag": etag, "Last-Modified": email.utils.formatdate(modified, usegmt=True),
                   "Accept-Ranges": "bytes", "Content-Type": "text/plain"}
        if_match = self.headers.get("If-Match")
        if if_match is not None and not etag_matches(if_match, etag):
            raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                          Condition="If-Match")
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None and etag_matches(if_none_match, etag):
            return self.respond(304, b"", headers, head=True, length=False)
        wanted = parse_range(self.headers.get("Range"), size)
        if wanted == "unsatisfiable":
            raise S3Error(416, "InvalidRange", "The requested range is not satisfiable",
                          RangeRequested=self.headers.get("Range"), ActualObjectSize=str(size),
                          _headers={"Content-Range": f"bytes */{size}"})
        body = world.content(i) if method == "GET" else b""
        if wanted is None:
            return self.respond(200, body, headers, head=method == "HEAD", length=size)
        first, last = wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return self.respond(206, body[first:last + 1], headers, head=method == "HEAD", length=last - first + 1)

    # ---- answers

    def xml(self, status, document):
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n' + document).encode()
        return self.respond(status, body, {"Content-Type": "application/xml"})

    def error(self, method, e):
        extra = dict(e.fields)
        headers = extra.pop("_headers", {})
        fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in extra.items())
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{e.code}</Code>'
                f"<Message>{escape(e.message)}</Message>{fields}<RequestId>{self.request_id()}</RequestId>"
                f"</Error>").encode()
        return self.respond(e.status, body, {"Content-Type": "application/xml", **headers}, head=method == "HEAD")

    def request_id(self):
        return f"{os.getpid():x}{id(self) & 0xFFFFFF:06X}".upper()

    def respond(self, status, body, headers, head=False, length=None):
        """Sends the answer; returns the body bytes sent. A HEAD gets the headers a GET would."""
        self.send_response(status)
        self.send_header("x-amz-request-id", self.request_id())
        for name, value in headers.items():
            self.send_header(name, value)
        if length is not False:
            self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if head or not body:
            return 0
        self.wfile.write(body)
        return len(body)


def etag_matches(header, etag):
    wanted = [t.strip() for t in header.split(",")]
    return "*" in wanted or any(t.removeprefix("W/").strip('"') == etag.strip('"') for t in wanted)


def parse_range(value, size):
    """(first, last) of a Range header, None to serve the whole object (no header, or one S3 ignores:
    malformed, several ranges), or "unsatisfiable"."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:
        n = int(m[2])
        return "unsatisfiable" if n == 0 or size == 0 else (max(0, size - n), size - 1)
    first = int(m[1])
    last = int(m[2]) if m[2] else size - 1
    if m[2] and last < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock, world, bucket, counters):
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.world, self.bucket, self.counters = world, bucket, counters

    def handle_error(self, request, client_address):
        # A client that went away mid-answer is not the server's problem.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def run_server(args):
    started = time.monotonic()
    world = World(args.keys, args.jobs, args.builds_per_pipeline, args.seed)
    counters = Counters()
    sock = listen(args.host, args.port)
    # Workers share the socket: one that wakes for a connection another took must not block in accept.
    sock.setblocking(False)
    port = sock.getsockname()[1]
    ready = (f"synthetic_s3: ready http://{args.host}:{port} (s3://{args.bucket}: {world.n:,} keys, "
             f"{world.pipelines} pipeline{'s' if world.pipelines != 1 else ''} of {world.builds:,} builds of "
             f"{world.jobs} jobs; {max(args.workers, 1)} worker{'s' if args.workers > 1 else ''}; "
             f"{time.monotonic() - started:.1f} s to start)")
    run_forked(lambda: Server(sock, world, args.bucket, counters).serve_forever(), args.workers, port,
               args.port_file, ready, "synthetic_s3")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--keys", type=parse_count, required=True, help="keys in the bucket (1e6, 1_000_000)")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--jobs", type=int, default=20, help="jobs (keys) per build (default 20)")
    parser.add_argument("--builds-per-pipeline", type=int, default=100_000,
                        help="at most this many builds in a pipeline (default 100,000)")
    parser.add_argument("--seed", type=int, default=0, help="another seed gives other names and bodies")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--workers", type=int, default=1, help="forked server processes (default 1)")
    parser.add_argument("--print-keys", action="store_true", help="print the keys in order and exit")
    parser.add_argument("--limit", type=parse_count, help="with --print-keys: only the first this many")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.builds_per_pipeline < 1:
        parser.error("--jobs and --builds-per-pipeline must be at least 1")
    if args.print_keys:
        world = World(args.keys, args.jobs, args.builds_per_pipeline, args.seed)
        for i in range(min(world.n, world.n if args.limit is None else args.limit)):
            sys.stdout.write(world.key(i) + "\n")
        return 0
    run_server(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
