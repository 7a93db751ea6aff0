"""End-to-end: Buildkite's names through a throttling, flaky API (issue 5). The fault proxy sits in
front of the project's fake Buildkite API and answers a share of requests `429` with
`RateLimit-Remaining: 0` and `RateLimit-Reset`, `503`, a connection reset mid-body, a short body or
a stall. Every directory still lists the same names and every log reads the same bytes as through
a clean API, the client waits each reset out before asking again, and nothing fails."""

import os
from urllib.parse import urlparse

from conftest import load_fake_buildkite_world, read_file
from fault_proxy import FaultProxy
from test_buildkite_names import names_args

WORLD = load_fake_buildkite_world()
SPECIAL = WORLD.SPECIAL
RESET_SECONDS = 2


def walk(root):
    """Every path under root: a directory's sorted names, a file's bytes, a link's target.

    The running build is left out: its log grows with every GET the API answers."""
    running = os.path.join(SPECIAL["org"], SPECIAL["pipeline"], str(SPECIAL["running"]))
    tree = {}
    def fail(error):
        raise error

    for directory, dirs, files in os.walk(root, onerror=fail):
        rel = os.path.relpath(directory, root)
        if rel == running:
            dirs[:] = []
            continue
        dirs.sort()
        tree[rel + "/"] = sorted(dirs + files)
        for name in sorted(files):
            path = os.path.join(directory, name)
            relpath = os.path.join(rel, name)
            if os.path.islink(path):
                tree[relpath] = ("link", os.readlink(path))
                continue
            try:
                tree[relpath] = ("file", read_file(path))
            except FileNotFoundError:
                # A log Buildkite deleted is listed until it is opened (doc/SEMANTICS.md, "Log sizes").
                tree[relpath] = ("gone", None)
    return tree


def test_names_and_logs_are_right_through_429s_resets_and_stalls(mount, fake_buildkite, tmp_path):
    proxy = FaultProxy(urlparse(fake_buildkite.base_url).port, seed=3, reset_seconds=RESET_SECONDS,
                       kinds=("429", "429", "503", "reset", "short", "stall"))
    try:
        fake_api = type("Api", (), {"api": proxy.endpoint + "/v2"})
        args = names_args(fake_api, tmp_path, "bkua_fake_full", "--recent-builds", "6", "--timeout", "2")
        clean = walk(mount(_source_args=args).path)  # the same URLs in build.json: through the proxy
        logs = [p for p, v in clean.items() if isinstance(v, tuple) and v[0] == "file" and p.endswith(".log")]
        assert len(logs) >= 10 and any(p.endswith("build.json") for p in clean), sorted(clean)
        gone = [p for p, v in clean.items() if v == ("gone", None)]
        deleted_build = f"{SPECIAL['org']}/{SPECIAL['pipeline']}/{SPECIAL['empty_deleted']}/"
        assert len(gone) == 1 and gone[0].startswith(deleted_build), f"only the deleted log is gone: {gone}"
        fake_buildkite.control("reset")

        # A new cache and catalog, so every name and log is asked of the API again.
        m = mount(_source_args=args, cache_dir=tmp_path / "cache-faulty")
        first = len(proxy.events)
        proxy.next_faults = ["429", "stall", "reset"]
        proxy.rate = 0.15
        assert walk(m.path) == clean
        events = proxy.events[first:]
        print(f"{len(events)} requests, spoiled: {dict(proxy.injected)}")
        assert proxy.injected["429"] >= 2 and proxy.injected["stall"] >= 1 and proxy.injected["reset"] >= 1, \
            dict(proxy.injected)
        # Each request answered 429 was asked again, and not before the reset it was told.
        for n, (at, identity, fault) in enumerate(events):
            if fault != "429":
                continue
            again = next((t for t, i, _ in events[n + 1:] if i == identity), None)
            assert again is not None, f"{identity} was not asked again after its 429"
            assert again - at >= RESET_SECONDS - 0.1, f"{identity} was asked again {again - at:.2f} s after a 429"
        log = m.log_path.read_text(errors="replace")
        assert "rate limited (HTTP 429)" in log
        assert not [line for line in log.splitlines() if " error " in line], "a call failed after its retries"
    finally:
        proxy.stop()
