"""End-to-end: `bklogfs mount --metrics FILE` (issue 15) writes the mount's counters in Prometheus's
text format for node_exporter's textfile collector, again every --metrics-interval seconds and once
more at unmount; `bklogfs stats --prometheus` prints the same text once."""

import math
import re
import time

from conftest import buildkite_source_args, free_port, is_mounted, load_fake_buildkite_world, new_moto_bucket, read_file, run_bklogfs

try:  # a real implementation of the format, when installed (scripts/setup installs it)
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover
    text_string_to_metric_families = None

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """Every sample as (name, labels, value); every line a comment or a sample; HELP and TYPE of a
    family before its samples."""
    samples, typed = [], {}
    assert text.endswith("\n"), text[-200:]
    for line in text.splitlines():
        if line.startswith("# "):
            kind, name, rest = line[2:].split(" ", 2)
            assert kind in ("HELP", "TYPE"), line
            if kind == "TYPE":
                assert rest in ("counter", "gauge", "histogram"), line
                typed[name] = rest
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample: {line!r}"
        name, _, labels, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        assert family in typed, f"{name} has no TYPE line before it"
        assert name.startswith("bklogfs_"), name
        if typed[family] == "counter":
            assert name.endswith("_total"), name
        parsed = dict(LABEL.findall(labels or ""))
        value = float(value)
        assert math.isfinite(value), line
        samples.append((name, parsed, value))
    if text_string_to_metric_families is not None:
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert "bklogfs_requests" in families or "bklogfs_requests_total" in families, sorted(families)
    return samples


def value(samples, name, **labels):
    found = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def check_histogram(samples, name, **labels):
    """The buckets never decrease and end with +Inf, which equals _count; returns the count."""
    buckets = [(l["le"], v) for n, l, v in samples
               if n == name + "_bucket" and all(l.get(k) == w for k, w in labels.items())]
    assert buckets and buckets[-1][0] == "+Inf", buckets
    bounds = [float(le) for le, _ in buckets]
    assert bounds == sorted(bounds), buckets
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"buckets decrease: {buckets}"
    count = value(samples, name + "_count", **labels)
    assert counts[-1] == count
    assert value(samples, name + "_sum", **labels) >= 0
    return count


def small_bucket(moto, files=6):
    bucket = new_moto_bucket(moto, "metrics")
    keys = []
    for index in range(files):
        key = f"org/pipe/build/job{index}.log"
        moto.client.put_object(Bucket=bucket.name, Key=key, Body=(f"line {index}\n" * 5000).encode())
        keys.append(key)
    return bucket, keys


def wait_for(predicate, seconds=15, what="the metrics"):
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_the_metrics_file_matches_the_counters_and_is_rewritten(mount, moto, tmp_path, bklogfs_bin):
    bucket, keys = small_bucket(moto)
    metrics = tmp_path / "textfile" / "bklogfs.prom"
    metrics.parent.mkdir()
    m = mount(bucket=bucket, extra_args=["--metrics", metrics, "--metrics-interval", "1"])
    mnt = str(m.path)
    for key in keys[:3]:
        read_file(m / key)

    def agrees():
        if not metrics.exists():
            return None
        stats = m.stats()
        samples = parse(metrics.read_text())
        gets = value(samples, "bklogfs_requests_total", kind="get", mountpoint=mnt)
        counted = check_histogram(samples, "bklogfs_request_duration_seconds", kind="get", mountpoint=mnt)
        if gets == stats["requests"]["get"] == counted and gets > 0:
            return samples
        return None

    samples = wait_for(agrees)
    store = f"s3://{bucket.name}"
    assert value(samples, "bklogfs_requests_total", kind="list", store=store) >= 1
    assert check_histogram(samples, "bklogfs_request_duration_seconds", kind="list") == \
        value(samples, "bklogfs_requests_total", kind="list")
    assert value(samples, "bklogfs_fetched_bytes_total") > 0
    assert value(samples, "bklogfs_cache_bytes", cache="memory") >= 0
    assert not (tmp_path / "textfile" / "bklogfs.prom.tmp").exists()
    assert oct(metrics.stat().st_mode & 0o777) == "0o644"

    # More reads: the file is written again with more GETs.
    first = value(samples, "bklogfs_requests_total", kind="get")
    for key in keys[3:]:
        read_file(m / key)
    wait_for(lambda: value(parse(metrics.read_text()), "bklogfs_requests_total", kind="get") > first,
             what="the file to be rewritten")

    # `stats --prometheus` prints the same families.
    printed = run_bklogfs(bklogfs_bin, "stats", "--prometheus", m.path)
    assert printed.returncode == 0, printed.stderr
    assert {n for n, _, _ in parse(printed.stdout)} == {n for n, _, _ in parse(metrics.read_text())}

    # The table shows the latencies.
    table = run_bklogfs(bklogfs_bin, "stats", m.path)
    assert re.search(r"^latency +.*get \d+ (ms|s) mean, 95% ≤ ", table.stdout, re.M), table.stdout

    # At unmount, a last snapshot: the counters as they were at the end.
    final = m.stats()
    m.unmount()
    samples = parse(metrics.read_text())
    assert value(samples, "bklogfs_requests_total", kind="get") == final["requests"]["get"]
    modified = metrics.stat().st_mtime
    time.sleep(2.5)
    assert metrics.stat().st_mtime == modified, "the file was written after unmount"


def test_a_metrics_file_in_a_missing_directory_refuses_the_mount(mount, moto, tmp_path):
    bucket, _ = small_bucket(moto, files=1)
    missing = tmp_path / "no-such-dir" / "bklogfs.prom"
    m = mount(bucket=bucket, extra_args=["--metrics", missing], check=False)
    assert m.result.returncode != 0
    assert "--metrics" in m.result.stderr and "does not exist" in m.result.stderr, m.result.stderr
    assert not is_mounted(m.path)
    assert not missing.parent.exists()


def test_a_metrics_interval_out_of_range_refuses_the_mount(mount, moto, tmp_path):
    bucket, _ = small_bucket(moto, files=1)
    m = mount(bucket=bucket, extra_args=["--metrics", tmp_path / "m.prom", "--metrics-interval", "0"], check=False)
    assert m.result.returncode != 0 and "--metrics-interval" in m.result.stderr, m.result.stderr
    assert not is_mounted(m.path)


def test_a_buildkite_mount_exports_its_api_latencies_and_budget(mount, fake_buildkite, tmp_path, bklogfs_bin):
    """A mount of Buildkite's names times each request to the API, and its logs' GETs."""
    special = load_fake_buildkite_world().SPECIAL
    m = mount(_source_args=buildkite_source_args(fake_buildkite, tmp_path))
    build = m / special["org"] / special["pipeline"] / str(special["big_log"])
    logs = sorted(p for p in build.iterdir() if p.is_file() and not p.is_symlink() and p.suffix == ".log")
    read_file(logs[0])
    printed = run_bklogfs(bklogfs_bin, "stats", "--prometheus", m.path)
    assert printed.returncode == 0, printed.stderr
    assert fake_buildkite.token not in printed.stdout
    samples = parse(printed.stdout)
    assert check_histogram(samples, "bklogfs_api_request_duration_seconds") > 0
    assert check_histogram(samples, "bklogfs_request_duration_seconds", kind="get") >= 1
    assert value(samples, "bklogfs_api_rate_limit_remaining") > 0


def test_a_failed_write_is_logged_once_and_the_mount_goes_on(mount, moto, tmp_path):
    bucket, keys = small_bucket(moto, files=2)
    metrics = tmp_path / "textfile" / "bklogfs.prom"
    metrics.parent.mkdir()
    m = mount(bucket=bucket, extra_args=["--metrics", metrics, "--metrics-interval", "1"])
    wait_for(metrics.exists)
    # A directory where the temporary file goes: every write fails (as root, permissions would not).
    blocker = tmp_path / "textfile" / "bklogfs.prom.tmp"
    blocker.mkdir()
    time.sleep(3.5)
    assert read_file(m / keys[0]) == ("line 0\n" * 5000).encode()
    warnings = [line for line in m.log_path.read_text().splitlines() if "cannot write the metrics" in line]
    assert len(warnings) == 1, warnings
    blocker.rmdir()
    wait_for(lambda: "writing the metrics to" in m.log_path.read_text() and "works again" in m.log_path.read_text(),
             what="the writes to work again")
    wait_for(lambda: value(parse(metrics.read_text()), "bklogfs_requests_total", kind="get") >= 1)


def get(url, method="GET"):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type"), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), error.read().decode()


def test_the_counters_are_served_over_http_at_metrics(mount, moto):
    import socket

    bucket, keys = small_bucket(moto, files=2)
    port = free_port()
    m = mount(bucket=bucket, extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
    read_file(m / keys[0])
    status, kind, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and kind == "text/plain; version=0.0.4; charset=utf-8", (status, kind)
    samples = parse(body)
    assert value(samples, "bklogfs_requests_total", kind="get", mountpoint=str(m.path)) >= 1
    assert get(f"http://127.0.0.1:{port}/")[0] == 404
    assert get(f"http://127.0.0.1:{port}/metrics", method="POST")[0] == 404

    # A client that sends nothing is dropped after the read timeout; one that sends too much, or
    # not HTTP, is answered 400; and the next request is served.
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    started = time.monotonic()
    assert idle.recv(100) == b"" and time.monotonic() - started < 6
    idle.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as flood:
        head = b"GET /metrics HTTP/1.1\r\nX-Filler: "
        flood.sendall(head + b"a" * (8192 - len(head)))  # 8 KiB, the most read, and no end of head
        assert flood.recv(100).startswith(b"HTTP/1.1 400 ")
    assert get(f"http://127.0.0.1:{port}/metrics")[0] == 200

    m.unmount()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        raise AssertionError("the metrics port still answers after unmount")
    except ConnectionRefusedError:
        pass


def test_a_metrics_address_in_use_refuses_the_mount(mount, moto):
    import socket

    bucket, _ = small_bucket(moto, files=1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        m = mount(bucket=bucket, extra_args=["--metrics-listen", f"127.0.0.1:{port}"], check=False)
    assert m.result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in m.result.stderr, m.result.stderr
    assert not is_mounted(m.path)
    bad = mount(bucket=bucket, extra_args=["--metrics-listen", "localhost"], check=False)
    assert bad.result.returncode != 0
    assert "--metrics-listen takes an IPv4 address and a port" in bad.result.stderr, bad.result.stderr
