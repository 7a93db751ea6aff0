"""End-to-end: `bklogfs sync ORG` fills the names catalog ahead of any mount, against the fake Buildkite API.

A mount over the same catalog then lists the organization, its pipelines and their builds without asking
the API. An interrupted sync loses nothing and the next one goes on from where it stopped. Costs are read
from the fake's own request counters.
"""

import contextlib
import datetime
import os
import pty
import signal
import sqlite3
import subprocess
import time

from conftest import CREDS, closed_port, fake_buildkite_process, load_fake_buildkite_world, run_bklogfs

WORLD = load_fake_buildkite_world()
ORG = WORLD.SPECIAL["org"]
TOOLS, WEB = WORLD.SPECIAL["pipeline"], WORLD.SPECIAL["big_pipeline"]
BUILDS = "GET /v2/organizations/{org}/pipelines/{pipeline}/builds"
BUILD = "GET /v2/organizations/{org}/pipelines/{pipeline}/builds/{number}"


def token_file(tmp_path, token="bkua_fake_full"):
    path = tmp_path / f"token-{token}"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def sync(binary, fake, tmp_path, *args, catalog=None, token="bkua_fake_full", endpoint=None, timeout=120):
    catalog = catalog or tmp_path / "cache" / "catalog.sqlite"
    return run_bklogfs(binary, "sync", *args, "--api-token-file", token_file(tmp_path, token),
                       "--api-endpoint", endpoint or fake.api, "--catalog", catalog, timeout=timeout)


def rows(catalog, query, *params):
    with contextlib.closing(sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)) as db:
        return db.execute(query, params).fetchall()


def stored_builds(catalog):
    """Builds the catalog holds so far, read while a sync writes it (0 until its schema exists)."""
    try:
        return rows(catalog, "SELECT count(*) FROM builds")[0][0] if catalog.exists() else 0
    except sqlite3.OperationalError:
        return 0


def numbers(catalog, pipeline):
    return sorted(n for (n,) in rows(catalog, "SELECT number FROM builds WHERE pipeline_slug = ?", pipeline))


def world_numbers(world, pipeline, since=None):
    builds = WORLD.find_pipeline(world, ORG, pipeline)["builds"]
    return sorted(b["number"] for b in builds if since is None or created(b) >= since)


def created(build):
    return datetime.datetime.fromisoformat(build["created_at"].replace("Z", "+00:00"))


def contents(catalog):
    """Everything a mount reads of builds and jobs (not when listings were fetched)."""
    return (rows(catalog, "SELECT * FROM organizations ORDER BY id"), rows(catalog, "SELECT * FROM pipelines ORDER BY id"),
            rows(catalog, "SELECT * FROM builds ORDER BY id"), rows(catalog, "SELECT * FROM jobs ORDER BY id"),
            rows(catalog, "SELECT * FROM sync_progress ORDER BY pipeline_id"))


def test_a_mount_after_a_sync_lists_the_organization_without_asking_the_api(mount, fake_buildkite, bklogfs_bin,
                                                                          tmp_path):
    result = sync(bklogfs_bin, fake_buildkite, tmp_path, ORG)
    assert result.returncode == 0, result.stderr
    catalog = tmp_path / "cache" / "catalog.sqlite"
    world = fake_buildkite.world
    for pipeline in (WEB, TOOLS):
        assert numbers(catalog, pipeline) == world_numbers(world, pipeline)
    jobs = sum(len(b["jobs"]) for p in WORLD.find_org(world, ORG)["pipelines"] for b in p["builds"])
    assert rows(catalog, "SELECT count(*) FROM jobs")[0][0] == jobs, "every attempt of every job"
    assert f"synced {ORG}: 2 of 2 pipelines, 306 builds, {jobs} jobs" in result.stdout, result.stdout
    # About one request per 100 builds: web-app's 300 in 4 pages (each asks again for the second the
    # one before ended in), tools' 6 in 1, plus the organizations and the pipelines.
    endpoints = fake_buildkite.counters()["endpoints"]
    assert endpoints == {"GET /v2/organizations": 1, "GET /v2/organizations/{org}/pipelines": 1, BUILDS: 5}, endpoints

    fake_buildkite.control("reset-counters")
    m = mount(cache_dir=tmp_path / "cache",
              _source_args=["--api-token-file", str(token_file(tmp_path)), "--api-endpoint", fake_buildkite.api])
    assert ORG in os.listdir(m.path)
    assert set(os.listdir(m / ORG)) == {WEB, TOOLS}
    assert sorted(map(int, os.listdir(m / ORG / WEB))) == world_numbers(world, WEB)[-100:]
    assert sorted(map(int, os.listdir(m / ORG / TOOLS))) == world_numbers(world, TOOLS)
    assert (m / ORG / WEB / "50").is_dir(), "a build outside the listing, by number"
    assert "build.json" in os.listdir(m / ORG / TOOLS / str(WORLD.SPECIAL["retried"]))
    asked = fake_buildkite.counters()["endpoints"]
    # A build's directory asks nothing: its logs are sized when opened (doc/SEMANTICS.md, "Log sizes").
    assert asked == {}, asked


def test_a_mount_with_the_api_unreachable_serves_what_sync_fetched(mount, fake_buildkite, bklogfs_bin, tmp_path):
    assert sync(bklogfs_bin, fake_buildkite, tmp_path, ORG).returncode == 0
    offline = ["--api-token-file", str(token_file(tmp_path)), "--api-endpoint", f"http://127.0.0.1:{closed_port()}/v2",
               "--directory-ttl", "0"]
    m = mount(cache_dir=tmp_path / "cache", _source_args=offline)
    assert ORG in os.listdir(m.path)
    assert set(os.listdir(m / ORG)) == {WEB, TOOLS}
    assert sorted(map(int, os.listdir(m / ORG / WEB))) == world_numbers(fake_buildkite.world, WEB)[-100:]
    assert (m / ORG / WEB / "7").is_dir()


def test_since_limits_the_builds_and_a_later_sync_without_it_fetches_only_the_rest(fake_buildkite, bklogfs_bin,
                                                                                 tmp_path):
    world = fake_buildkite.world
    catalog = tmp_path / "catalog.sqlite"
    since = datetime.datetime(2024, 6, 5, tzinfo=datetime.timezone.utc)
    result = sync(bklogfs_bin, fake_buildkite, tmp_path, ORG, "--since", "2024-06-05", catalog=catalog)
    assert result.returncode == 0, result.stderr
    assert numbers(catalog, WEB) == world_numbers(world, WEB, since)
    assert numbers(catalog, TOOLS) == [], "tools' builds are all older"
    assert 0 < len(numbers(catalog, WEB)) < 300
    # A date-time is taken too, and a pipeline already synced since then asks only for newer builds.
    fake_buildkite.control("reset-counters")
    again = sync(bklogfs_bin, fake_buildkite, tmp_path, ORG, "--pipeline", WEB, "--since", "2024-06-06T00:00:00Z",
                 catalog=catalog)
    assert again.returncode == 0, again.stderr
    assert fake_buildkite.counters()["endpoints"].get(BUILDS) == 1
    # Without --since: the builds older than the first sync's date, and no page of those it holds.
    fake_buildkite.control("reset-counters")
    rest = sync(bklogfs_bin, fake_buildkite, tmp_path, ORG, catalog=catalog)
    assert rest.returncode == 0, rest.stderr
    assert numbers(catalog, WEB) == world_numbers(world, WEB)
    assert numbers(catalog, TOOLS) == world_numbers(world, TOOLS)
    older = len(world_numbers(world, WEB)) - len(world_numbers(world, WEB, since))
    # web-app: 1 for newer builds, then the older ones, 100 a page (each page also asks again for the
    # second the one before ended in); tools: 1.
    assert fake_buildkite.counters()["endpoints"][BUILDS] == 1 + (older + 98) // 99 + 1


def test_a_later_sync_fetches_only_newer_builds_and_those_still_running(fake_buildkite, bklogfs_bin, tmp_path):
    catalog = tmp_path / "catalog.sqlite"
    assert sync(bklogfs_bin, fake_buildkite, tmp_path, ORG, catalog=catalog).returncode == 0
    running = WORLD.SPECIAL["running"]
    assert rows(catalog, "SELECT is_finished FROM builds WHERE pipeline_slug = ? AND number = ?", TOOLS, running) == [(0,)]
    fake_buildkite.control("finish-build", org=ORG, pipeline=TOOLS, number=running)
    fake_buildkite.control("reset-counters")
    result = sync(bklogfs_bin, fake_buildkite, tmp_path, ORG, catalog=catalog)
    assert result.returncode == 0, result.stderr
    # One page per pipeline for builds created since the newest held, and the running build by number.
    assert fake_buildkite.counters()["endpoints"] == {
        "GET /v2/organizations": 1, "GET /v2/organizations/{org}/pipelines": 1, BUILDS: 2, BUILD: 1}
    assert rows(catalog, "SELECT is_finished FROM builds WHERE pipeline_slug = ? AND number = ?", TOOLS, running) == [(1,)]


def test_an_interrupted_sync_goes_on_where_it_stopped(bklogfs_bin, tmp_path):
    # 1,500 builds (past the API's 1,000-deep listing limit) at 5 requests a second: a sync takes seconds.
    with fake_buildkite_process(tmp_path, big_builds=1500,
                                server_args=["--user-rate-limit", "5", "--rate-window", "1"]) as fake:
        whole = tmp_path / "whole.sqlite"
        first = sync(bklogfs_bin, fake, tmp_path, ORG, "--progress-interval", "1", catalog=whole)
        assert first.returncode == 0, first.stderr
        uninterrupted = fake.counters()["total"]
        # web-app's 1,500 builds in 16 pages, tools' 6 in 1.
        assert fake.counters()["endpoints"][BUILDS] == 17
        assert len(numbers(whole, WEB)) == 1500
        # Plain progress lines: one a second and one per pipeline, with the API budget left and an ETA.
        lines = [line for line in first.stderr.splitlines() if line.startswith("bklogfs sync: ")]
        assert len(lines) >= 3, first.stderr
        assert all("API budget" in line and " builds, " in line for line in lines), lines
        assert any("ETA" in line for line in lines), lines
        assert lines[-1].startswith(f"bklogfs sync: {ORG}: pipelines 2/2, 1506 builds"), lines

        fake.control("rate-limit")
        fake.control("reset-counters")
        cut = tmp_path / "cut.sqlite"
        args = ["sync", ORG, "--api-token-file", str(token_file(tmp_path)), "--api-endpoint", fake.api,
                "--catalog", str(cut)]
        proc = subprocess.Popen([bklogfs_bin, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, **CREDS})
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if stored_builds(cut) >= 600:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, "the sync ended before it could be interrupted"
            proc.send_signal(signal.SIGKILL)  # a crash: nothing is flushed or tidied
        finally:
            proc.wait(timeout=10)
        kept = len(numbers(cut, WEB))
        assert 600 <= kept < 1500
        before = fake.counters()["total"]
        resumed = sync(bklogfs_bin, fake, tmp_path, ORG, catalog=cut)
        assert resumed.returncode == 0, resumed.stderr
        after = fake.counters()["total"] - before
        assert contents(cut) == contents(whole)
        # The pages already stored are not asked for again: about 6 of 16 pages of web-app.
        assert after <= uninterrupted - 5, (after, uninterrupted)


def test_ctrl_c_ends_a_sync_at_once_keeping_what_it_stored(fake_buildkite, bklogfs_bin, tmp_path):
    catalog = tmp_path / "catalog.sqlite"
    # The builds listing answers 429 with a reset 30 s away: the sync waits in the middle of its work.
    fake_buildkite.control("fail-next", status=429, count=1, path="/pipelines/[^/]+/builds$", reset=30)
    args = ["sync", ORG, "--api-token-file", str(token_file(tmp_path)), "--api-endpoint", fake_buildkite.api,
            "--catalog", str(catalog)]
    proc = subprocess.Popen([bklogfs_bin, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **CREDS})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not fake_buildkite.counters()["statuses"].get("429"):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; what was synced is kept" in err
    assert rows(catalog, "SELECT slug FROM pipelines ORDER BY slug") == [(TOOLS,), (WEB,)]
    # The next sync goes on: it finds the pipelines not begun and fetches them whole.
    result = sync(bklogfs_bin, fake_buildkite, tmp_path, ORG, catalog=catalog)
    assert result.returncode == 0, result.stderr
    assert numbers(catalog, WEB) == world_numbers(fake_buildkite.world, WEB)


def test_progress_on_a_terminal_is_one_line_redrawn(fake_buildkite, bklogfs_bin, tmp_path):
    controller, terminal = pty.openpty()
    args = ["sync", ORG, "--api-token-file", str(token_file(tmp_path)), "--api-endpoint", fake_buildkite.api,
            "--catalog", str(tmp_path / "catalog.sqlite")]
    proc = subprocess.Popen([bklogfs_bin, *args], stdout=subprocess.PIPE, stderr=terminal, env={**os.environ, **CREDS})
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(controller)
    assert proc.returncode == 0
    assert b"\r\x1b[2K" in seen and b"API budget" in seen, seen
    assert b"\n" not in seen, "one line, redrawn: " + repr(seen)
    assert out.decode().startswith(f"synced {ORG}: 2 of 2 pipelines, 306 builds")


def test_errors_are_one_line_lose_nothing_and_never_show_the_token(fake_buildkite, bklogfs_bin, tmp_path):
    catalog = tmp_path / "catalog.sqlite"
    assert sync(bklogfs_bin, fake_buildkite, tmp_path, ORG, "--pipeline", TOOLS, catalog=catalog).returncode == 0
    held = contents(catalog)
    cases = [
        (dict(token="bkua_wrong_token"), [ORG], "token was refused"),
        ({}, ["no-such-org"], "no organization no-such-org"),
        ({}, [ORG, "--pipeline", "no-such-pipeline"], "no pipeline no-such-pipeline"),
        (dict(endpoint=f"http://127.0.0.1:{closed_port()}/v2"), [ORG, "--timeout", "1", "--connect-timeout", "1"],
         "cannot be reached"),
    ]
    for kw, args, expected in cases:
        result = sync(bklogfs_bin, fake_buildkite, tmp_path, *args, catalog=catalog, **kw)
        assert result.returncode != 0, args
        message = result.stderr.strip()
        assert expected in message and "\n" not in message, (args, message)
        assert "bkua_" not in result.stderr + result.stdout
        assert contents(catalog) == held
    bad_date = sync(bklogfs_bin, fake_buildkite, tmp_path, ORG, "--since", "last tuesday", catalog=catalog)
    assert bad_date.returncode != 0 and "--since takes an ISO 8601 date" in bad_date.stderr
    # No token at all, and a token from the environment.
    env = {k: v for k, v in os.environ.items() if k != "BUILDKITE_API_TOKEN"}
    bare = subprocess.run([bklogfs_bin, "sync", ORG, "--api-endpoint", fake_buildkite.api, "--catalog", str(catalog)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert bare.returncode != 0 and "no Buildkite API token" in bare.stderr
    from_env = subprocess.run([bklogfs_bin, "sync", ORG, "--api-endpoint", fake_buildkite.api, "--catalog",
                               str(catalog)], capture_output=True, text=True, timeout=60,
                              env={**env, "BUILDKITE_API_TOKEN": "bkua_fake_full"})
    assert from_env.returncode == 0, from_env.stderr
    assert "bkua_" not in from_env.stderr + from_env.stdout
    assert numbers(catalog, WEB) == world_numbers(fake_buildkite.world, WEB)
