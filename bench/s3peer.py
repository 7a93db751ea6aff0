#!/usr/bin/env python3
"""The benchmark's S3 peer: moto's S3 server, with objects kept in memory and ranges served in
time proportional to the range.

Stock moto keeps each object in a SpooledTemporaryFile and, for every GET, reads the whole object
out of it, copies it, and only then slices the requested range: a 1-byte range of a 160 MiB object
costs about as much as the whole object. Its listings copy and sort every key of the bucket on
each LIST request, and it computes an object's ETag (an MD5 of all its bytes) on first use. Real
S3 does none of this, and a benchmark of a lazy, ranged filesystem against such a peer would
measure the peer. This launcher runs moto's own server (its Flask app, request parsing, SigV4
handling, XML, errors and conditional requests are unchanged) with four patches:

- FakeKey.value is an immutable `bytes` held as is: reading it copies nothing, a whole GET hands
  that buffer to the socket, and a ranged GET hands the socket a view of the range (moto's own
  `_handle_range_header` does the slicing, of a memoryview), so no GET copies object bytes.
- FakeKey.etag is the MD5 of that buffer, computed once (seeding passes it in).
- ListObjects and ListObjectsV2 walk a sorted index of the bucket's keys from the prefix or the
  marker with `bisect`, skip a whole common prefix in one step, and stop after max-keys, instead
  of copying and sorting the bucket on every page. A ListObjectsV2 continuation token carries the
  last key itself (base64), not an index into one process's memory, so forked workers can share a
  listing; and ListObjects counts common prefixes towards max-keys and answers NextMarker with the
  last key or prefix of the page, as S3 does (stock moto returns every common prefix on every page,
  and a token for NextMarker). Their <Contents> elements are written by a
  plain string template that gives the same bytes as moto's generic, model-driven serializer
  (which spends about 0.2 ms a key, 200 ms a page of 1000), the rest of the document by moto.
- moto's host dispatcher learns its service names once, not by listing its package directory on
  every request; and werkzeug's per-request access log is off.

It stays an S3 peer for what the benchmark and its seeding use: ListObjectsV2 and ListObjects with
and without a delimiter (pages, continuation tokens, start-after, encoding-type=url), HEAD, GET with
Range (`bytes=A-B`, `bytes=A-`, suffix `bytes=-N`), If-Match, and PUT.

Usage:
    bench/s3peer.py [--port 0] [--port-file F] [--bucket NAME [--seed-dir DIR]]... [--workers N]
    bench/s3peer.py --check [--stock] [--json]

With --seed-dir, every regular file under DIR becomes an object of the bucket named before it
(key = its path relative to DIR, LastModified = its mtime), put straight into moto's backend without
HTTP. With --workers N > 1 the seeded server is forked N times onto one listening socket (the
objects are shared copy-on-write), so requests are not all serialised on one interpreter lock;
writes made over HTTP (PUT) then reach one worker only, so use N = 1 for a peer written through
HTTP. When the server listens it prints `s3peer: ready http://HOST:PORT` and writes PORT to
--port-file. SIGTERM or SIGINT stops it.

The server counts every request by kind (LIST, GET, HEAD, PUT, OTHER, and the ranged GETs) and the
response body bytes it actually sent (a response its client abandoned counts what left, not its
Content-Length): GET /__stats returns them as JSON, once no response is still being sent, and
GET /__reset returns them and zeroes them.

--check times, against this peer (or stock moto with --stock) in this process, signed GETs of a
160 MiB object over loopback (the whole object, a 1 MiB range in its middle, a 1-byte range and a
64 KiB suffix range) and ListObjectsV2 pages of a bucket of 20,000 keys, each the median of several
requests, and prints them (JSON with --json).
"""

import argparse
import base64
import bisect
import datetime
import hashlib
import json
import logging
import os
import re
import signal
import socket
import statistics
import sys
import threading
import time

ACCOUNT_ID = "123456789012"  # moto's default account, the one any test credentials map to
REGION = "us-east-1"
MiB = 1 << 20

# ------------------------------------------------------------------ patches


def apply_patches():
    """Makes moto's S3 backend keep objects as bytes and serve ranges and listings in proportion to
    what is asked. Idempotent."""
    from moto.s3 import models
    from moto.s3.utils import _VersionedKeyStore

    if getattr(models, "_bklogfs_bench_patched", False):
        return
    models._bklogfs_bench_patched = True
    FakeKey = models.FakeKey

    def get_value(self):
        value = self.__dict__.get("_bench_value")
        return b"" if value is None else value

    def set_value(self, new_value):
        if isinstance(new_value, str):
            new_value = new_value.encode("utf-8")
        elif not isinstance(new_value, bytes):
            new_value = bytes(new_value)  # a bytearray from a completed multipart upload
        self.__dict__["_bench_value"] = new_value
        self.contentsize = len(new_value)

    def etag(self):
        if self._etag is None:
            self._etag = hashlib.md5(get_value(self)).hexdigest()
        return f'"{self._etag}"'

    original_dispose = FakeKey.dispose

    def dispose(self, garbage=False):
        original_dispose(self, garbage)
        self.__dict__.pop("_bench_value", None)

    FakeKey.value = property(get_value, set_value)
    FakeKey.etag = property(etag)
    FakeKey.dispose = dispose

    # A version counter on every key store, bumped by each change, so a sorted index of its names
    # is rebuilt only after a change.
    def bumping(method):
        def wrapper(self, *args, **kwargs):
            self.__dict__["_bench_version"] = self.__dict__.get("_bench_version", 0) + 1
            return method(self, *args, **kwargs)

        return wrapper

    for name in ("__setitem__", "setlist", "pop", "__delitem__", "clear", "update", "setdefault", "popitem"):
        if hasattr(_VersionedKeyStore, name):
            setattr(_VersionedKeyStore, name, bumping(getattr(_VersionedKeyStore, name)))

    Backend = models.S3Backend
    Backend.list_objects = _list_objects
    Backend.list_objects_v2 = _list_objects_v2

    from moto.s3.responses import S3Response

    original_serialized = S3Response.serialized

    def serialized(self, action_result):
        result = getattr(action_result, "result", None)
        if self.data.get("Action") in ("ListObjects", "ListObjectsV2") and isinstance(result, dict) \
                and result.get("Contents"):
            contents = _render_contents(result["Contents"])
            if contents is not None:
                from moto.core.responses import ActionResult

                status, headers, body = original_serialized(self, ActionResult({**result, "Contents": []}))
                at = body.find("<Name>") if isinstance(body, str) and status == 200 else -1
                if at >= 0:
                    return status, headers, body[:at] + contents + body[at:]
        return original_serialized(self, action_result)

    S3Response.serialized = serialized

    # moto slices a range out of the object's bytes, which copies the range (into freshly mapped
    # memory: about 0.8 ms a MiB here, four times the cost of sending it). Sliced from a
    # memoryview, the range is a view of the object, sent as is by `_CountedBody`.
    original_range = S3Response._handle_range_header

    def handle_range_header(self, request, response_headers, response_content):
        if request.method == "HEAD" or not isinstance(response_content, bytes):
            return original_range(self, request, response_headers, response_content)
        status, headers, content = original_range(self, request, response_headers, memoryview(response_content))
        return status, headers, (_View(content) if isinstance(content, memoryview) else content)

    S3Response._handle_range_header = handle_range_header

    # moto's host dispatcher lists and stats moto's package directory on every request to learn
    # its service names; they do not change while the server runs.
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


_ISO_SECONDS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.000)?Z$")
_ITEM_FIELDS = {"Key", "LastModified", "ETag", "Size", "StorageClass", "Owner"}


def _xml_text(value):
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render_contents(items):
    """The <Contents> elements of a listing, byte for byte as moto's serializer writes them (its
    member order, its escaping, LastModified with .000Z), or None if an item has a field this does not
    render, so that moto's serializer renders the whole listing instead."""
    out = []
    for item in items:
        when = _ISO_SECONDS.match(str(item.get("LastModified", "")))
        if not item.keys() <= _ITEM_FIELDS or not when:
            return None
        owner = item.get("Owner")
        if owner is not None and owner.keys() != {"ID", "DisplayName"}:
            return None
        out.append(f"<Contents><Key>{_xml_text(item['Key'])}</Key>"
                   f"<LastModified>{when.group(1)}.000Z</LastModified>"
                   f"<ETag>{_xml_text(item['ETag'])}</ETag><Size>{int(item['Size'])}</Size>"
                   f"<StorageClass>{_xml_text(item['StorageClass'])}</StorageClass>")
        if owner is not None:
            out.append(f"<Owner><DisplayName>{_xml_text(owner['DisplayName'])}</DisplayName>"
                       f"<ID>{_xml_text(owner['ID'])}</ID></Owner>")
        out.append("</Contents>")
    return "".join(out)


_index_lock = threading.Lock()


def _sorted_names(store):
    """The key names of a bucket's key store in S3's order (UTF-8 byte order is code point order)."""
    version = store.__dict__.get("_bench_version", 0)
    cached = store.__dict__.get("_bench_index")
    if cached is not None and cached[0] == version:
        return cached[1]
    with _index_lock:
        names = sorted(dict.keys(store))
        store.__dict__["_bench_index"] = (version, names)
        return names


def _after_prefix(p):
    """The least string greater than every string that starts with p (p is not empty)."""
    return p[:-1] + chr(ord(p[-1]) + 1)


def _walk(bucket, prefix, delimiter, after):
    """Yields (name, FakeKey or None for a common prefix) in S3's order: the keys starting with
    prefix, those containing delimiter after the prefix rolled up into common prefixes, all greater
    than after."""
    from moto.s3.models import FakeKey

    store = bucket.keys
    names = _sorted_names(store)
    prefix = prefix or ""
    if after and after >= prefix:
        i = bisect.bisect_right(names, after)
    else:
        i = bisect.bisect_left(names, prefix)
    n = len(names)
    while i < n:
        name = names[i]
        if not name.startswith(prefix):
            break
        if delimiter:
            j = name.find(delimiter, len(prefix))
            if j >= 0:
                common = name[: j + len(delimiter)]
                if not (after and common <= after):
                    yield common, None
                i = bisect.bisect_left(names, _after_prefix(common), i)
                continue
        key = store.get(name)
        if isinstance(key, FakeKey):
            yield name, key
        i += 1


def _take(iterator, count):
    out = []
    if count <= 0:
        return out
    for item in iterator:
        out.append(item)
        if len(out) >= count:
            break
    return out


def _encode_token(name):
    """A continuation token that carries the last name itself (opaque to clients, as S3's are), so
    any forked worker can continue a listing another one began."""
    return "b1." + base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_token(token):
    if not token.startswith("b1."):
        return None
    body = token[3:]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _list_objects(self, bucket, prefix, delimiter, marker, max_keys):
    """ListObjects (v1): keys and common prefixes after marker, at most max_keys of them together."""
    from moto.s3.exceptions import MethodNotAllowed
    from moto.s3.models import FakeTableStorageBucket

    if isinstance(bucket, FakeTableStorageBucket):
        raise MethodNotAllowed()
    after = (self._pagination_tokens.get(marker) or marker) if marker else None
    walk = _walk(bucket, prefix, delimiter, after)
    if max_keys is None:
        items, truncated = list(walk), False
    else:
        items = _take(walk, max_keys + 1)
        truncated = len(items) > max_keys
        items = items[:max_keys]
    keys = [key for _, key in items if key is not None]
    folders = [name for name, key in items if key is None]
    next_marker = items[-1][0] if truncated and items else None
    return keys, folders, truncated, next_marker


def _list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):
    """ListObjectsV2: up to max_keys keys and common prefixes, in order, and the next page's token."""
    from moto.s3.exceptions import MethodNotAllowed
    from moto.s3.models import FakeTableStorageBucket

    if isinstance(bucket, FakeTableStorageBucket):
        raise MethodNotAllowed()
    if continuation_token:
        after = _decode_token(continuation_token)
        if after is None:
            after = self._pagination_tokens.get(continuation_token)
    else:
        after = start_after
    items = _take(_walk(bucket, prefix, delimiter, after), max_keys + 1)
    truncated = len(items) > max_keys
    items = items[:max_keys]
    token = _encode_token(items[-1][0]) if truncated and items else None
    return [key if key is not None else name for name, key in items], truncated, token


# ------------------------------------------------------------------ backend and seeding


def s3_backend():
    from moto.s3.models import s3_backends

    return s3_backends[ACCOUNT_ID]["aws"]


def create_bucket(name):
    backend = s3_backend()
    try:
        return backend.get_bucket(name)
    except Exception:
        return backend.create_bucket(name, REGION)


def put_object(bucket, key, data, mtime=None, etag=None):
    """Puts one object straight into the backend (no HTTP), with its MD5 ETag and LastModified."""
    obj = s3_backend().put_object(bucket, key, data, etag=etag or hashlib.md5(data).hexdigest(),
                                  disable_notification=True)
    if mtime is not None:
        obj.last_modified = datetime.datetime.fromtimestamp(int(mtime), datetime.timezone.utc).replace(tzinfo=None)
    return obj


def seed_from_dir(bucket, root, log=print):
    """Every regular file under root becomes an object (key = relative path with '/')."""
    create_bucket(bucket)
    count = total = 0
    started = time.monotonic()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            path = os.path.join(dirpath, fname)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            key = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as f:
                data = f.read()
            put_object(bucket, key, data, mtime=os.stat(path).st_mtime)
            count += 1
            total += len(data)
    log(f"s3peer: seeded s3://{bucket}/ with {count} objects ({total / MiB:.1f} MiB) from {root} "
        f"in {time.monotonic() - started:.1f} s")
    return count, total


# ------------------------------------------------------------------ server


def make_app():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


LIST_PARAMS = {"list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token", "start-after",
               "encoding-type", "fetch-owner", "x-id"}
KINDS = ("LIST", "GET", "HEAD", "PUT", "OTHER")


def classify(method, path, query):
    """A request's kind, as the counters (and bench/latency_proxy.py) name them."""
    from urllib.parse import parse_qs

    bucket, _, key = path.lstrip("/").partition("/")
    if method == "GET":
        if not bucket:
            return "OTHER"  # ListBuckets
        if not key:
            return "LIST" if set(parse_qs(query, keep_blank_values=True)) <= LIST_PARAMS else "OTHER"
        return "GET"
    if method in ("HEAD", "PUT"):
        return method
    return "OTHER"


class Counters:
    """Requests and response body bytes by kind, and requests in flight, in shared memory so forked
    workers add to one set."""

    IN_FLIGHT = 2 * len(KINDS) + 1

    def __init__(self):
        import multiprocessing

        self.lock = multiprocessing.Lock()
        self.values = multiprocessing.RawArray("q", 2 * len(KINDS) + 2)

    def started(self, kind, ranged):
        with self.lock:
            self.values[KINDS.index(kind)] += 1
            if ranged:
                self.values[2 * len(KINDS)] += 1
            self.values[self.IN_FLIGHT] += 1

    def finished(self, kind, nbytes):
        with self.lock:
            self.values[len(KINDS) + KINDS.index(kind)] += nbytes
            self.values[self.IN_FLIGHT] -= 1

    def snapshot(self, reset=False, settle=2.0):
        """The counters, once no response is still being sent (waiting at most `settle` seconds:
        a client that has read a whole response may ask before its byte count is added)."""
        deadline = time.monotonic() + settle
        while self.values[self.IN_FLIGHT] > 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        with self.lock:
            v = list(self.values)
            if reset:
                for i in range(self.IN_FLIGHT):
                    self.values[i] = 0
        n = len(KINDS)
        return {"requests": dict(zip(KINDS, v[:n])), "bytes": dict(zip(KINDS, v[n:2 * n])),
                "ranged_get": v[2 * n], "body_bytes": sum(v[n:2 * n]), "in_flight": v[self.IN_FLIGHT]}


class _View:
    """A response body that is a view of an object's bytes. werkzeug's writer takes only `bytes`, so
    `_CountedBody` (the body of `counting`, around every app this peer serves: `served`) sends a
    view to the socket itself."""

    def __init__(self, view):
        self.view = view

    def __iter__(self):
        yield self.view


_sent = threading.local()


def count_socket_writes():
    """Makes the server's socket writer send with send(2) in a loop and note how many bytes of its
    last write left, so a response its client abandoned counts the bytes actually sent, not its
    Content-Length. (The stock writer uses sendall, which cannot say.)"""
    import socketserver

    def write(self, b):
        return send_counted(self._sock, b)

    socketserver._SocketWriter.write = write


def send_counted(sock, b):
    """Sends all of `b` with send(2), noting in `_sent.last` how much of it left."""
    with memoryview(b) as view:
        total, sent = view.nbytes, 0
        try:
            while sent < total:
                sent += sock.send(view[sent:])
        finally:
            _sent.last = sent
        return total


def served(app):
    """The app as this peer serves it: its socket writes counted, and wrapped in `counting` (whose
    body also sends the ranges' views)."""
    count_socket_writes()
    return counting(app, Counters())


def counting(app, counters):
    """WSGI middleware: counts each request when it arrives, and its response body's bytes as they
    are sent; answers GET /__stats (the counters as JSON) and GET /__reset (the same, then zeroes
    them) itself."""

    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in ("/__stats", "/__reset"):
            body = json.dumps(counters.snapshot(reset=path == "/__reset")).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        method = environ.get("REQUEST_METHOD", "")
        kind = classify(method, path, environ.get("QUERY_STRING", ""))
        counters.started(kind, kind == "GET" and "HTTP_RANGE" in environ)
        try:
            inner = app(environ, start_response)
        except BaseException:
            counters.finished(kind, 0)
            raise
        return _CountedBody(inner, counters, kind, method == "HEAD", environ.get("werkzeug.socket"))

    return wrapped


class _CountedBody:
    """Passes a WSGI body through unchanged, adding up the bytes the server wrote of it: each piece
    whose write returned, and of a piece whose write failed (the client went away) what left."""

    def __init__(self, inner, counters, kind, head, sock):
        self.inner, self.counters, self.kind, self.head, self.sock = inner, counters, kind, head, sock
        self.nbytes = 0
        self.pending = 0

    def __iter__(self):
        for chunk in self.inner:
            # A view of an object (a range, from `handle_range_header`): werkzeug's writer sends
            # the status line and headers on an empty write, then the view goes out as is.
            view = isinstance(chunk, memoryview) and self.sock is not None
            if view:
                yield b""
            self.pending = len(chunk)
            _sent.last = 0
            if view:
                send_counted(self.sock, chunk)
            else:
                yield chunk
            self.nbytes += len(chunk)
            self.pending = 0

    def close(self):
        try:
            if hasattr(self.inner, "close"):
                self.inner.close()
        finally:
            if self.pending:
                self.nbytes += min(getattr(_sent, "last", 0), self.pending)
            self.counters.finished(self.kind, 0 if self.head else self.nbytes)


def warm_up(app, buckets):
    """Sends each kind of request the benchmark makes through the app once, in this process, so
    moto's lazy imports and its service model (a large JSON read and parsed on first use) are loaded
    before the workers fork, not paid by whichever client asks first, once a worker."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    base = "http://127.0.0.1:1"
    requests = [("GET", "/", "")]
    for bucket in buckets:
        requests += [("GET", f"/{bucket}", "list-type=2&delimiter=/&max-keys=2"),
                     ("GET", f"/{bucket}", "list-type=2&prefix=&max-keys=2&encoding-type=url"),
                     ("GET", f"/{bucket}", "delimiter=/&max-keys=2"), ("GET", f"/{bucket}", "max-keys=2"),
                     ("HEAD", f"/{bucket}/s3peer-warm-up-missing", ""),
                     ("GET", f"/{bucket}/s3peer-warm-up-missing", "")]
        first = next(iter(_sorted_names(s3_backend().get_bucket(bucket).keys)), None)
        if first is not None:
            from urllib.parse import quote

            path = f"/{bucket}/{quote(first)}"
            requests += [("HEAD", path, ""), ("GET", path, ""), ("GET", path, "range")]
    for method, path, query in requests:
        headers = {"Range": "bytes=0-0"} if query == "range" else {}
        query = "" if query == "range" else query
        url = base + path + (f"?{query}" if query else "")
        env = EnvironBuilder(method=method, path=path, query_string=query, base_url=base,
                             headers=signed_headers(method, url, headers)).get_environ()
        body, _, _ = run_wsgi_app(app, env)
        b"".join(body)
        if hasattr(body, "close"):
            body.close()


def quiet_werkzeug():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from werkzeug.serving import WSGIRequestHandler

    WSGIRequestHandler.log_request = lambda self, *args, **kwargs: None


def serve_on(sock, app):
    """Serves app with werkzeug's threaded server on an already listening socket, until killed."""
    from werkzeug.serving import ThreadedWSGIServer

    host, port = sock.getsockname()[:2]
    server = ThreadedWSGIServer(host, port, app, fd=sock.fileno())
    server.serve_forever()


def listen(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def run_server(args):
    if not args.stock:
        apply_patches()
    quiet_werkzeug()
    buckets = args.bucket or []
    seeds = args.seed_dir or []
    if len(seeds) > len(buckets):
        sys.exit("s3peer: each --seed-dir needs a --bucket before it")
    for i, bucket in enumerate(buckets):
        create_bucket(bucket)
        if i < len(seeds):
            if not os.path.isdir(seeds[i]):
                sys.exit(f"s3peer: --seed-dir {seeds[i]} is not a directory")
            seed_from_dir(bucket, seeds[i], log=lambda m: print(m, flush=True))
    app = make_app()
    warm_up(app, buckets)
    app = served(app)
    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]

    ready = (f"s3peer: ready http://{args.host}:{port} ({'stock moto' if args.stock else 'patched moto'}, "
             f"{max(args.workers, 1)} worker{'s' if args.workers > 1 else ''})")
    run_forked(lambda: serve_on(sock, app), args.workers, port, args.port_file, ready, "s3peer")


def run_forked(serve, workers, port, port_file, ready, name):
    """Runs serve() (which serves a listening socket until killed) in `workers` forked processes, or
    in this one when workers <= 1; writes PORT to port_file and prints `ready` once they run. SIGTERM
    or SIGINT stops them all, and so does the exit of any worker."""
    children = []
    if workers > 1:
        for _ in range(workers):
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                try:
                    serve()
                finally:
                    os._exit(0)
            children.append(pid)

    def stop(signum, frame):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, port_file)
    print(ready, flush=True)
    if children:
        while True:
            try:
                pid, _ = os.wait()
            except ChildProcessError:
                return
            print(f"{name}: worker {pid} exited; stopping", file=sys.stderr, flush=True)
            stop(None, None)
    else:
        serve()


# ------------------------------------------------------------------ the check


def signed_headers(method, url, headers=None, access_key="testing", secret_key="testing"):
    """SigV4 headers for one request, from botocore's signer."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", REGION).add_auth(request)
    return dict(request.headers.items())


def timed_get(host, port, path, headers=None, query=""):
    """One signed GET on a fresh connection; returns (seconds, status, body length). The body is
    read in 1 MiB pieces into one reused buffer, as a client streaming to /dev/null would."""
    import http.client

    target = path + (f"?{query}" if query else "")
    hdrs = signed_headers("GET", f"http://{host}:{port}{target}", headers)
    conn = http.client.HTTPConnection(host, port, timeout=120)
    buf = bytearray(MiB)
    started = time.perf_counter()
    conn.request("GET", target, headers=hdrs)
    resp = conn.getresponse()
    n = 0
    while True:
        got = resp.readinto(buf)
        if not got:
            break
        n += got
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, resp.status, n


def check(stock=False, size=160 * MiB, repeats=5, list_keys=20000):
    """Times GETs of a `size` object (whole, a 1 MiB range, a 1-byte range, a 64 KiB suffix range)
    and LIST pages of a bucket of `list_keys` small objects."""
    if not stock:
        apply_patches()
    quiet_werkzeug()
    bucket, key = "s3peer-check", "check/object.log"
    create_bucket(bucket)
    data = (os.urandom(MiB) * (size // MiB + 1))[:size]
    put_object(bucket, key, data)
    del data
    list_bucket = "s3peer-check-list"
    create_bucket(list_bucket)
    builds = max(1, list_keys // 100)
    for i in range(list_keys):
        put_object(list_bucket, f"org/pipeline/build-{i % builds:05d}/job-{i:06d}.log", b"x")
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = served(make_app())
    threading.Thread(target=serve_on, args=(sock, app), daemon=True).start()
    path = f"/{bucket}/{key}"
    mid = size // 2
    middle_key = f"org/pipeline/build-{builds // 2:05d}/"
    cases = [
        ("whole object", path, {}, "", size, 200),
        ("1 MiB range", path, {"Range": f"bytes={mid}-{mid + MiB - 1}"}, "", MiB, 206),
        ("1-byte range", path, {"Range": f"bytes={mid}-{mid}"}, "", 1, 206),
        ("64 KiB suffix range", path, {"Range": "bytes=-65536"}, "", 65536, 206),
        (f"LIST 1000 of {list_keys}", f"/{list_bucket}", {}, "list-type=2&prefix=org/", None, 200),
        (f"LIST 1000 of {list_keys}, mid", f"/{list_bucket}", {},
         f"list-type=2&prefix=org/&start-after={middle_key}", None, 200),
        (f"LIST {builds} prefixes", f"/{list_bucket}", {}, "list-type=2&prefix=org/pipeline/&delimiter=/", None, 200),
    ]
    timed_get("127.0.0.1", port, path, {"Range": "bytes=0-0"})  # warm up the app's first-request setup
    results = {}
    for label, target, headers, query, want, want_status in cases:
        times = []
        for _ in range(1 if stock and label == "whole object" and size > 64 * MiB else repeats):
            elapsed, status, n = timed_get("127.0.0.1", port, target, headers, query)
            if status != want_status or (want is not None and n != want):
                raise SystemExit(f"s3peer --check: {label}: status {status}, {n} bytes; wanted {want_status}, {want}")
            times.append(elapsed)
        results[label] = {"median_ms": round(statistics.median(times) * 1000, 2),
                          "min_ms": round(min(times) * 1000, 2), "max_ms": round(max(times) * 1000, 2),
                          "runs": len(times), "bytes": n}
    import moto

    return {"peer": "stock moto" if stock else "patched moto (bench/s3peer.py)", "moto": moto.__version__,
            "object_bytes": size, "list_keys": list_keys, "results": results}


def format_check(report):
    lines = [f"{report['peer']}, moto {report['moto']}, a {report['object_bytes'] // MiB} MiB object and a bucket of "
             f"{report['list_keys']} keys:"]
    for label, r in report["results"].items():
        lines.append(f"  {label:<28} {r['median_ms']:9.2f} ms  (min {r['min_ms']:.2f}, max {r['max_ms']:.2f}, "
                     f"{r['runs']} runs)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--bucket", action="append", help="create this bucket (repeatable)")
    parser.add_argument("--seed-dir", action="append",
                        help="seed the bucket named before it with every file under this directory")
    parser.add_argument("--workers", type=int, default=1, help="forked server processes sharing the objects")
    parser.add_argument("--stock", action="store_true", help="run moto unpatched, for comparison")
    parser.add_argument("--check", action="store_true", help="time ranged GETs of a 160 MiB object and exit")
    parser.add_argument("--check-size-mib", type=int, default=160)
    parser.add_argument("--json", action="store_true", help="--check prints JSON")
    args = parser.parse_args(argv)
    if args.check:
        report = check(stock=args.stock, size=args.check_size_mib * MiB)
        print(json.dumps(report) if args.json else format_check(report))
        return 0
    run_server(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
