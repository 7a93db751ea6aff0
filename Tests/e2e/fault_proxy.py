"""A fault-injecting HTTP/1.1 proxy (issue 5): it sits on loopback in front of moto_server or the
fake Buildkite API and spoils a share of the responses, the ways a flaky network and a throttling
S3 do. The end-to-end tests import it (`FaultProxy`); the Swift tests run it as a program, through
`FaultProxy` in Tests/TestSupport:

    python3 fault_proxy.py --port PORT --upstream PORT --next 503,503 [--redirect-region REGION]

Faults, each spoiling one response:
    503     S3's `503 SlowDown`, with its XML error body
    503:S   the same with `Retry-After: S` (seconds): only as one of `next_faults`
    500     S3's `500 InternalError`
    reset   the head and half the body, then a TCP reset
    short   the head (its Content-Length) and half the body, then an orderly close
    range   a 206 whose Content-Range starts one byte off (the body unchanged)
    stall   the head and half the body (a HEAD: half the head), then nothing, the connection held
            open until the client gives up (or `stall_seconds` pass)
    silent  half the head, then nothing, held open as `stall` is: a store that answers no byte of
            any body
    429     Buildkite's rate limit: `429` with `RateLimit-Remaining: 0` and `RateLimit-Reset:
            reset_seconds`, and its JSON message
    long    the whole body and 10 bytes more, its Content-Length grown to match
    403     S3's `403 AccessDenied`, as a bucket policy refuses a request: only as `fail_all` or
            one of `next_faults`
    redirect
            S3's `301 PermanentRedirect` with `x-amz-bucket-region: redirect_region`, as S3 answers
            a request signed for another region than the bucket's

`next_faults` are injected first, in order, each into the next request it fits (a request with a
body: one that is not a HEAD; "range": a ranged GET); then `rate` is the share of requests spoiled, with a
kind drawn from `kinds` (by default the first five: S3's faults that cost no time), from a seeded
RNG; one request (method, path, Range) is spoiled at most `max_in_a_row` times in a row, so a
client that retries gets through. `fail_all` spoils every request: True with a 503 (a dead store),
or the name of a fault ("silent": a store that answers nothing). Every answer closes its connection
(`Connection: close`), so each request is one connection. `events` lists (monotonic time, request
identity, fault or None) for every request, in order of arrival. Standard library only.
"""

import json
import random
import re
import socket
import threading
import time
from collections import Counter

FAULTS = ("503", "500", "reset", "short", "range")
ALL_FAULTS = FAULTS + ("stall", "silent", "429", "long", "redirect", "403")
# Faults that spoil a body, so fit only a request answered with one.
BODY_FAULTS = ("reset", "short", "long")

ERROR_BODIES = {
    "503": (b"503 Slow Down", b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
            b"<Message>Please reduce your request rate.</Message></Error>"),
    "500": (b"500 Internal Server Error", b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
            b"<Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"),
    "403": (b"403 Forbidden", b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
            b"<Message>Access Denied</Message></Error>"),
}


def _read_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, _, rest = buf.partition(marker)
    return head, rest


def _headers(head):
    lines = head.split(b"\r\n")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields.append((name.strip(), value.strip()))
    return lines[0], fields


def _get(fields, name):
    for key, value in fields:
        if key.lower() == name:
            return value
    return None


def _fits(fault, ranged, head_only):
    """Whether a fault can spoil a request: a Content-Range needs a ranged GET; a cut or grown body a body."""
    return (fault != "range" or ranged) and not (head_only and fault in BODY_FAULTS)


def _answer(client, status, headers, body, head_only):
    """Sends a whole answer of the proxy's own, then the connection closes (a HEAD's without its body)."""
    out = b"HTTP/1.1 " + status + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    out += b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    client.sendall(out + (b"" if head_only else body))


class FaultProxy:
    def __init__(self, upstream_port, rate=0.0, seed=1, max_in_a_row=2, upstream_host="127.0.0.1", kinds=FAULTS,
                 reset_seconds=1, stall_seconds=120, redirect_region="eu-west-3", port=0):
        self.upstream = (upstream_host, upstream_port)
        self.rate = rate
        self.kinds = tuple(kinds)
        assert set(self.kinds) <= set(ALL_FAULTS), self.kinds
        self.reset_seconds = reset_seconds
        self.stall_seconds = stall_seconds
        self.redirect_region = redirect_region
        self.fail_all = False
        self.events = []
        # Faults to inject first, in order, each into the next request it fits ("range": a ranged GET).
        self.next_faults = []
        self.max_in_a_row = max_in_a_row
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.in_a_row = Counter()
        self.injected = Counter()
        self.requests = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.stopped = False
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def stop(self):
        """Stops accepting, and only then closes the listener. Closing it under a thread blocked in
        accept() let that thread accept on the descriptor number reused by the next proxy's listener,
        and answer one of its requests with this proxy's faults (a 403 in another test)."""
        self.stopped = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        except OSError:
            pass
        self.accepting.join(timeout=10)
        self.listener.close()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.stopped:
                client.close()
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _choose(self, identity, ranged, head_only):
        with self.lock:
            fault = self._draw(identity, ranged, head_only)
            self.requests += 1
            self.events.append((time.monotonic(), identity, fault))
            if fault:
                self.injected[fault] += 1
            return fault

    def _draw(self, identity, ranged, head_only):
        if self.fail_all:
            return "503" if self.fail_all is True else self.fail_all
        if self.next_faults and _fits(self.next_faults[0], ranged, head_only):
            return self.next_faults.pop(0)
        if self.in_a_row[identity] >= self.max_in_a_row or self.random.random() >= self.rate:
            self.in_a_row[identity] = 0
            return None
        choices = [k for k in self.kinds if _fits(k, ranged, head_only)]
        if not choices:
            return None
        self.in_a_row[identity] += 1
        return self.random.choice(choices)

    def _hold(self, client):
        """Keeps a stalled connection open, sending nothing, until the client closes it (or a bound)."""
        client.settimeout(0.5)
        deadline = time.monotonic() + self.stall_seconds
        while not self.stopped and time.monotonic() < deadline:
            try:
                if not client.recv(65536):
                    return
            except socket.timeout:
                continue

    def _serve(self, client):
        try:
            head, rest = _read_until(client, b"", b"\r\n\r\n")
            if head is None:
                return
            first, fields = _headers(head)
            length = int(_get(fields, b"content-length") or 0)
            while len(rest) < length:
                chunk = client.recv(65536)
                if not chunk:
                    return
                rest += chunk
            method, target = first.split(b" ")[:2]
            request_range = _get(fields, b"range")
            fault = self._choose((method, target, request_range), request_range is not None and method == b"GET",
                                 method == b"HEAD")
            head_only = method == b"HEAD"
            retry_after = []
            if fault and fault.startswith("503:"):
                fault, retry_after = "503", [(b"Retry-After", fault[4:].encode())]
            if fault in ERROR_BODIES:
                status, body = ERROR_BODIES[fault]
                return _answer(client, status, [(b"Content-Type", b"application/xml")] + retry_after, body, head_only)
            if fault == "429":
                reset = self.reset_seconds
                body = json.dumps({"message": "You have exceeded your API rate limit. Please wait "
                                   f"{reset} seconds before making more requests.", "scope": "rest",
                                   "limit": 200, "current": 201, "reset": reset}).encode()
                headers = [(b"Content-Type", b"application/json"), (b"RateLimit-Scope", b"rest"),
                           (b"RateLimit-Remaining", b"0"), (b"RateLimit-Limit", b"200"),
                           (b"RateLimit-Reset", str(reset).encode())]
                return _answer(client, b"429 Too Many Requests", headers, body, head_only)
            if fault == "redirect":
                region = self.redirect_region.encode()
                body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PermanentRedirect</Code>"
                        b"<Message>The bucket you are attempting to access must be addressed using the specified "
                        b"endpoint.</Message><Endpoint>s3." + region + b".amazonaws.com</Endpoint></Error>")
                headers = [(b"Content-Type", b"application/xml"), (b"x-amz-bucket-region", region)]
                return _answer(client, b"301 Moved Permanently", headers, body, head_only)
            kept = [(k, v) for k, v in fields if k.lower() not in (b"connection", b"keep-alive")]
            request = first + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in kept)
            request += b"Connection: close\r\n\r\n" + rest[:length]
            with socket.create_connection(self.upstream, timeout=30) as upstream:
                upstream.sendall(request)
                response = b""
                while True:
                    chunk = upstream.recv(1 << 20)
                    if not chunk:
                        break
                    response += chunk
            head, body = response.split(b"\r\n\r\n", 1) if b"\r\n\r\n" in response else (response, b"")
            status_line, out_fields = _headers(head)
            out_fields = [(k, v) for k, v in out_fields if k.lower() not in (b"connection", b"keep-alive")]
            if fault == "long" and not head_only and _get(out_fields, b"content-length") is not None:
                body += b"0123456789"
                out_fields = [(k, str(len(body)).encode() if k.lower() == b"content-length" else v)
                              for k, v in out_fields]
            if fault == "range" and _get(out_fields, b"content-range"):
                spoiled = []
                for k, v in out_fields:
                    if k.lower() == b"content-range":
                        unit, _, span = v.partition(b" ")
                        start, _, tail = span.partition(b"-")
                        v = unit + b" " + str(int(start) + 1).encode() + b"-" + tail
                    spoiled.append((k, v))
                out_fields = spoiled
            out_head = status_line + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in out_fields)
            out_head += b"Connection: close\r\n\r\n"
            if fault in ("stall", "silent"):
                if fault == "stall" and method != b"HEAD" and len(body) > 1:
                    client.sendall(out_head + body[: len(body) // 2])
                else:
                    client.sendall(out_head[: len(out_head) // 2])
                self._hold(client)
                return
            if fault in ("reset", "short") and method != b"HEAD" and len(body) > 1:
                client.sendall(out_head + body[: len(body) // 2])
                if fault == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return
            client.sendall(out_head + (b"" if method == b"HEAD" else body))
        except OSError:
            pass
        finally:
            client.close()


def main():
    import argparse

    parser = argparse.ArgumentParser(description="Serve a fault proxy on loopback until killed.")
    parser.add_argument("--port", type=int, required=True, help="the port to listen on")
    parser.add_argument("--upstream", type=int, required=True, help="the loopback port to proxy to")
    parser.add_argument("--next", default="", help="faults for the next requests, in order, comma-separated")
    parser.add_argument("--redirect-region", default="eu-west-3", help="the region a `redirect` names")
    args = parser.parse_args()
    proxy = FaultProxy(args.upstream, port=args.port, redirect_region=args.redirect_region)
    proxy.next_faults = [fault for fault in args.next.split(",") if fault]
    unknown = [f for f in proxy.next_faults if f not in ALL_FAULTS and not re.fullmatch(r"503:\d+", f)]
    if unknown:
        parser.error(f"unknown faults: {unknown}")
    threading.Event().wait()


if __name__ == "__main__":
    main()
