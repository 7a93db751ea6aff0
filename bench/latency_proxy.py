#!/usr/bin/env python3
"""An HTTP/1.1 proxy for the benchmark: sits on loopback in front of the S3 peer, holds each
response's first byte until a fixed delay has passed since its request arrived, and counts requests
and response bytes by kind.

Usage:
    bench/latency_proxy.py --upstream 127.0.0.1:PORT [--port 0] [--port-file F] [--delay-ms 20]
                           [--delay-mode floor|add] [--stream-mbps 90] [--total-mbps 600]

Delay. With --delay-mode floor (the default) the request is forwarded at once and its response's
first byte leaves the proxy no earlier than --delay-ms after the request arrived: the time to first
byte is max(delay, the peer's own time), as with S3, whose first-byte latency includes its own
work. With --delay-mode add the proxy waits --delay-ms before forwarding, so the delay adds to the
peer's time. Bodies are relayed as they arrive, with splice(2) when their length is known.

Bandwidth (the benchmark's S3-shaped network model, issue 16). --stream-mbps caps each response
body, --total-mbps the sum of all bodies in flight, in MB/s (10^6 bytes a second); 0, the default,
is no cap. With a cap on, a body moves in chunks of 64-256 KiB (about 3 ms of the slower rate) and
each chunk waits until two schedules allow it: its stream's, which lets the body's first n bytes
leave no earlier than n / stream-rate after its first byte could, and the link's, shared by every
stream under a lock, where each chunk reserves len / total-rate seconds starting no earlier than
the link is free. So one stream never runs ahead of its rate, and streams together never ahead of
the total. Heads are not paced, and the first-byte delay comes first, as above. With no cap the
relay is the plain one (1 MiB splices), so the loopback model pays nothing for this.

Connections. Clients keep their connections open (HTTP/1.1 keep-alive, Content-Length framed
request bodies, `Expect: 100-continue` answered by the proxy) and may open as many as they like,
one thread each. The upstream connection is opened per request, because werkzeug (under moto)
closes every connection after one response; its `Connection: close` is not passed on, so clients
see S3's keep-alive behaviour.

Counters, by kind: LIST (a GET of a bucket with only listing parameters: list-type, prefix,
delimiter, marker, max-keys, continuation-token, start-after, encoding-type, fetch-owner), GET (of
an object; `ranged_get` counts those with a Range header), HEAD, PUT, OTHER; and the response body
bytes of each. Control requests, answered by the proxy itself and not counted:
    GET /__stats            the counters as JSON
    GET /__reset            the counters as JSON, then zeroes them
    GET /__delay?ms=N       sets the delay (and &mode=floor|add)
    GET /__bandwidth?stream=MBPS&total=MBPS
                            sets either cap or both (0 = none) for responses that start after it
/__stats and /__reset also give the delay and the caps. Prints `latency_proxy: ready
http://HOST:PORT -> UPSTREAM (delay D ms, MODE, stream S MB/s, total T MB/s)` and writes PORT to
--port-file.
"""

import argparse
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

LIST_PARAMS = {"list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token", "start-after",
               "encoding-type", "fetch-owner", "x-id"}
KINDS = ("LIST", "GET", "HEAD", "PUT", "OTHER")
MAX_HEAD = 64 * 1024
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# A paced body moves in chunks of about PACE_STEP seconds of its slowest rate, within these bounds:
# small enough that a stream's bytes arrive smoothly, large enough that the proxy's CPU keeps up.
PACE_STEP = 0.003
MIN_PACED_CHUNK = 64 * 1024
MAX_PACED_CHUNK = 256 * 1024


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = {k: 0 for k in KINDS}
        self.bytes = {k: 0 for k in KINDS}
        self.ranged_get = 0
        self.connections = 0
        self.errors = 0
        self.started = time.time()

    def snapshot(self):
        with self.lock:
            return {"requests": dict(self.requests), "bytes": dict(self.bytes), "ranged_get": self.ranged_get,
                    "body_bytes": sum(self.bytes.values()), "connections": self.connections,
                    "upstream_errors": self.errors, "since": self.started}

    def add(self, kind, nbytes, ranged):
        with self.lock:
            self.requests[kind] += 1
            self.bytes[kind] += nbytes
            if ranged:
                self.ranged_get += 1


class Settings:
    def __init__(self, delay_ms, mode, stream_mbps=0.0, total_mbps=0.0):
        self.delay = delay_ms / 1000.0
        self.mode = mode
        self.stream_mbps = stream_mbps
        self.link = Link(total_mbps)

    def describe(self):
        return {"delay_ms": self.delay * 1000.0, "mode": self.mode, "stream_mbps": self.stream_mbps,
                "total_mbps": self.link.mbps}

    def pacer(self):
        """A schedule for one response body, or None when no cap is on (the plain relay)."""
        if self.stream_mbps <= 0 and self.link.mbps <= 0:
            return None
        return Pacer(self.stream_mbps * 1e6, self.link)


class Link:
    """The link all bodies share: a schedule of when it is next free, under a lock."""

    def __init__(self, mbps):
        self.lock = threading.Lock()
        self.mbps = mbps
        self.free_at = 0.0

    def reserve(self, nbytes):
        """Reserves nbytes / rate seconds of the link, from when it is free (or now); returns when
        that time ends, or 0 with no cap."""
        with self.lock:
            if self.mbps <= 0:
                return 0.0
            start = max(time.monotonic(), self.free_at)
            self.free_at = start + nbytes / (self.mbps * 1e6)
            return self.free_at


class Pacer:
    """One body's pacing: its own rate from its first byte, and the shared link's."""

    def __init__(self, stream_rate, link):
        self.stream_rate = stream_rate
        self.link = link
        slowest = min(r for r in (stream_rate, link.mbps * 1e6) if r > 0)
        self.chunk = max(MIN_PACED_CHUNK, min(MAX_PACED_CHUNK, int(slowest * PACE_STEP) // 4096 * 4096))
        self.started = None
        self.sent = 0

    def wait(self, nbytes):
        """Sleeps until the next nbytes may leave."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        self.sent += nbytes
        due = self.started + self.sent / self.stream_rate if self.stream_rate > 0 else now
        due = max(due, self.link.reserve(nbytes))
        if due > now:
            time.sleep(due - now)

    def sendall(self, sock, data):
        view = memoryview(data)
        for at in range(0, len(view), self.chunk):
            piece = view[at: at + self.chunk]
            self.wait(len(piece))
            sock.sendall(piece)


def classify(method, target, headers):
    """The request's kind for the counters, and whether it is a ranged GET."""
    split = urllib.parse.urlsplit(target)
    path = split.path.lstrip("/")
    bucket, _, key = path.partition("/")
    if method == "GET":
        if not bucket:
            return "OTHER", False  # ListBuckets
        if not key:
            params = set(urllib.parse.parse_qs(split.query, keep_blank_values=True))
            return ("LIST" if params <= LIST_PARAMS else "OTHER"), False
        return "GET", "range" in headers
    if method in ("HEAD", "PUT"):
        return method, False
    return "OTHER", False


class ClientClosed(Exception):
    pass


def read_head(sock, buf):
    """Reads from sock until buf holds a whole head (through the blank line). Returns (head bytes,
    rest of buf), or (None, buf) at a clean EOF before any byte."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            return bytes(buf[: end + 4]), buf[end + 4:]
        if len(buf) > MAX_HEAD:
            raise ClientClosed("head too long")
        chunk = sock.recv(65536)
        if not chunk:
            if buf:
                raise ClientClosed("EOF inside a head")
            return None, buf
        buf += chunk


def parse_head(head):
    lines = head[:-4].decode("latin-1").split("\r\n")
    first = lines[0]
    headers = {}
    order = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
        order.append((name.strip(), value.strip()))
    return first, headers, order


def build_head(first, order, drop=()):
    drop = {d.lower() for d in drop}
    lines = [first] + [f"{n}: {v}" for n, v in order if n.lower() not in drop]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def relay_exact(src, dst, count, pipe, pacer=None):
    """Moves exactly count bytes from socket src to socket dst through pipe with splice(2), paced
    by pacer when there is one."""
    pr, pw = pipe
    step = pacer.chunk if pacer else PIPE_SIZE
    moved = 0
    while moved < count:
        n = os.splice(src.fileno(), pw, min(count - moved, step))
        if n == 0:
            raise ConnectionError("upstream closed inside a body")
        if pacer:
            pacer.wait(n)
        left = n
        while left:
            m = os.splice(pr, dst.fileno(), left)
            if m == 0:
                raise ClientClosed("client closed inside a body")
            left -= m
        moved += n
    return moved


def relay_until_eof(src, dst, pacer=None):
    moved = 0
    while True:
        chunk = src.recv(pacer.chunk if pacer else 1 << 20)
        if not chunk:
            return moved
        send(dst, chunk, pacer)
        moved += len(chunk)


def send(sock, data, pacer):
    if pacer:
        pacer.sendall(sock, data)
    else:
        sock.sendall(data)


def relay_chunked(src, dst, buf, pacer=None):
    """Relays a chunked body verbatim; returns its decoded length. buf holds bytes already read."""
    total = 0

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = src.recv(1 << 20)
            if not chunk:
                raise ConnectionError("upstream closed inside a chunked body")
            buf += chunk

    while True:
        while b"\r\n" not in buf:
            need(len(buf) + 1)
        line_end = buf.find(b"\r\n")
        size = int(bytes(buf[:line_end]).split(b";")[0], 16)
        if size == 0:
            # trailers end with an empty line
            while b"\r\n\r\n" not in buf[line_end:]:
                need(len(buf) + 1)
            end = buf.find(b"\r\n\r\n", line_end) + 4
            send(dst, bytes(buf[:end]), pacer)
            return total
        need(line_end + 2 + size + 2)
        piece = line_end + 2 + size + 2
        send(dst, bytes(buf[:piece]), pacer)
        buf = buf[piece:]
        total += size


class Proxy:
    def __init__(self, upstream, settings):
        host, _, port = upstream.rpartition(":")
        self.upstream = (host or "127.0.0.1", int(port))
        self.settings = settings
        self.counters = Counters()

    def control(self, client, target, keep):
        split = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(split.query)
        if split.path == "/__stats":
            body = {**self.counters.snapshot(), **self.settings.describe()}
        elif split.path == "/__reset":
            body = {**self.counters.snapshot(), **self.settings.describe()}
            with self.counters.lock:
                self.counters.reset()
        elif split.path == "/__delay":
            if "ms" in query:
                self.settings.delay = float(query["ms"][0]) / 1000.0
            if "mode" in query and query["mode"][0] in ("floor", "add"):
                self.settings.mode = query["mode"][0]
            body = self.settings.describe()
        elif split.path == "/__bandwidth":
            if "stream" in query:
                self.settings.stream_mbps = float(query["stream"][0])
            if "total" in query:
                with self.settings.link.lock:
                    self.settings.link.mbps = float(query["total"][0])
            body = self.settings.describe()
        else:
            data = b"unknown control path\n"
            client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
            return
        data = json.dumps(body).encode()
        conn = "" if keep else "Connection: close\r\n"
        client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
                       % (conn.encode(), len(data), data))

    def handle(self, client):
        with self.counters.lock:
            self.counters.connections += 1
        buf = bytearray()
        try:
            while True:
                head, buf = read_head(client, buf)
                if head is None:
                    return
                arrived = time.monotonic()
                first, headers, order = parse_head(head)
                method, target, version = (first.split(" ", 2) + ["", ""])[:3]
                keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    client.sendall(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                length = int(headers.get("content-length", "0") or 0)
                drop = ["connection", "keep-alive"]
                if headers.get("expect", "").lower() == "100-continue" and len(buf) < length:
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    drop.append("expect")
                while len(buf) < length:
                    chunk = client.recv(1 << 20)
                    if not chunk:
                        raise ClientClosed("EOF inside a request body")
                    buf += chunk
                body, buf = bytes(buf[:length]), buf[length:]
                if target.startswith("/__"):
                    self.control(client, target, keep)
                    if not keep:
                        return
                    continue
                kind, ranged = classify(method, target, headers)
                if self.settings.mode == "add" and self.settings.delay > 0:
                    time.sleep(self.settings.delay)
                request = build_head(first, order, drop=drop)[:-2] + b"Connection: close\r\n\r\n" + body
                nbytes, upstream_keep = self.forward(client, method, request, arrived, keep)
                self.counters.add(kind, nbytes, ranged)
                if not (keep and upstream_keep):
                    return
        except (ClientClosed, ConnectionError, BrokenPipeError, OSError):
            return
        finally:
            try:
                client.close()
            except OSError:
                pass

    def forward(self, client, method, request, arrived, keep):
        """Sends one request upstream and relays its response; returns (body bytes, whether the
        client connection can carry another request)."""
        try:
            up = socket.create_connection(self.upstream, timeout=600)
        except OSError as e:
            with self.counters.lock:
                self.counters.errors += 1
            msg = f"latency_proxy: upstream {self.upstream[0]}:{self.upstream[1]} unreachable: {e}\n".encode()
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg))
            return 0, True
        up.settimeout(None)  # blocking, for splice(2)
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            up.sendall(request)
            head, rest = read_head(up, bytearray())
            if head is None:
                raise ConnectionError("upstream closed before answering")
            first, headers, order = parse_head(head)
            status = int(first.split(" ", 2)[1])
            if self.settings.mode == "floor":
                wait = arrived + self.settings.delay - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            no_body = method == "HEAD" or 100 <= status < 200 or status in (204, 304)
            chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            length = headers.get("content-length")
            if no_body or chunked or length is not None:
                out_head = build_head(first, order, drop=["connection", "keep-alive"])
                if not keep:
                    out_head = out_head[:-2] + b"Connection: close\r\n\r\n"
                reusable = True
            else:
                out_head = build_head(first, order, drop=["connection", "keep-alive"])[:-2] + b"Connection: close\r\n\r\n"
                reusable = False
            if no_body:
                client.sendall(out_head)
                return 0, reusable
            pacer = self.settings.pacer()
            if chunked:
                client.sendall(out_head)
                return relay_chunked(up, client, rest, pacer), reusable
            if length is None:
                self._send_head_and(client, out_head, bytes(rest), pacer)
                return len(rest) + relay_until_eof(up, client, pacer), False
            length = int(length)
            first_part = bytes(rest[:length])
            self._send_head_and(client, out_head, first_part, pacer)
            moved = len(first_part)
            if moved < length:
                moved += relay_exact(up, client, length - moved, self._pipe(), pacer)
            return moved, reusable
        finally:
            up.close()

    @staticmethod
    def _send_head_and(client, head, body, pacer):
        """The head, and the body bytes that came with it: in one write when unpaced."""
        if pacer is None:
            client.sendall(head + body)
        else:
            client.sendall(head)
            pacer.sendall(client, body)

    _local = threading.local()

    def _pipe(self):
        """This thread's pipe for splice(2), made on first use."""
        pipe = getattr(self._local, "pipe", None)
        if pipe is None:
            pipe = os.pipe()
            try:
                fcntl.fcntl(pipe[1], F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass
            self._local.pipe = pipe
        return pipe

    def serve(self, sock):
        while True:
            client, _ = sock.accept()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._handle_and_release, args=(client,), daemon=True).start()

    def _handle_and_release(self, client):
        try:
            self.handle(client)
        finally:
            pipe = getattr(self._local, "pipe", None)
            if pipe is not None:
                os.close(pipe[0])
                os.close(pipe[1])
                self._local.pipe = None


def mbps_text(mbps):
    return f"{mbps:g} MB/s" if mbps > 0 else "uncapped"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the S3 peer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--delay-mode", choices=("floor", "add"), default="floor")
    parser.add_argument("--stream-mbps", type=float, default=0.0,
                        help="cap on each response body, in MB/s (10^6 bytes/s); 0 = none")
    parser.add_argument("--total-mbps", type=float, default=0.0,
                        help="cap on all response bodies at once, in MB/s; 0 = none")
    args = parser.parse_args(argv)
    proxy = Proxy(args.upstream, Settings(args.delay_ms, args.delay_mode, args.stream_mbps, args.total_mbps))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    port = sock.getsockname()[1]
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.signal(signal.SIGINT, lambda *a: os._exit(0))
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"latency_proxy: ready http://{args.host}:{port} -> {args.upstream} "
          f"(delay {args.delay_ms:g} ms, {args.delay_mode}, stream {mbps_text(args.stream_mbps)}, "
          f"total {mbps_text(args.total_mbps)})", flush=True)
    proxy.serve(sock)


if __name__ == "__main__":
    sys.exit(main())
