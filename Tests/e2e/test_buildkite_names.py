"""End-to-end: Buildkite's names through a real FUSE mount, against the project's fake Buildkite API.

The tree is /{org}/{pipeline}/{build number}/ with each script job's log as {job uuid}.log (every
attempt), readable aliases as symbolic links, and build.json. Logs come from Buildkite's storage
through the API. Costs are read from the fake's own request counters.
"""

import datetime
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import is_mounted, load_fake_buildkite_world, read_file, run_bklogfs

WORLD = load_fake_buildkite_world()
SPECIAL = WORLD.SPECIAL
ORG, PIPE = SPECIAL["org"], SPECIAL["pipeline"]


def names_args(fake, tmp_path, token="bkua_fake_full", *extra):
    token_file = tmp_path / f"token-{token}"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return ["--api-token-file", str(token_file), "--api-endpoint", fake.api, *extra]


def script_jobs(fake, number, pipeline=PIPE):
    build = WORLD.find_build(fake.world, ORG, pipeline, number)
    return [j for j in build["jobs"] if j.get("type") == "script"]


def log_requests(fake):
    return [r for r in fake.counters()["log_requests"] if r["method"] == "GET"]


def test_orgs_pipelines_and_the_listing_window(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_fake_full", "--recent-builds", "20"))
    assert {ORG, "empty-org", SPECIAL["real_org"]} <= set(os.listdir(m.path))
    assert {PIPE, SPECIAL["big_pipeline"]} <= set(os.listdir(m / ORG))
    assert sorted(map(int, os.listdir(m / ORG / PIPE))) == [1, 2, 3, 4, 5, 6]
    big = sorted(map(int, os.listdir(m / ORG / SPECIAL["big_pipeline"])))
    assert len(big) == 20 and big[-1] == 302, big
    # Unknown names are ENOENT, at every level.
    for missing in ("no-such-org", f"{ORG}/no-such-pipeline", f"{ORG}/{PIPE}/999999", f"{ORG}/{PIPE}/007"):
        with pytest.raises(FileNotFoundError):
            os.stat(m / missing)


def test_every_attempt_is_a_file_and_aliases_are_links(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    build = m / ORG / PIPE / str(SPECIAL["retried"])
    jobs = script_jobs(fake_buildkite, SPECIAL["retried"])
    files = {p.name for p in build.iterdir() if p.is_file() and not p.is_symlink()}
    assert files == {f"{j['id']}.log" for j in jobs} | {"build.json"}
    for job in jobs:
        assert read_file(build / f"{job['id']}.log") == WORLD.log_bytes(fake_buildkite.world, job["id"])
    links = {p.name: os.readlink(p) for p in build.iterdir() if p.is_symlink()}
    assert set(links) == {"flaky.log", "flaky.attempt1.log", "flaky.attempt2.log", "lint.log", "lint.attempt1.log"}
    latest = next(j for j in jobs if j.get("step_key", j.get("name")) == "flaky" and not j.get("retried"))
    assert links["flaky.log"] == f"{latest['id']}.log"
    assert read_file(build / "flaky.log") == read_file(build / links["flaky.log"])
    # grep -r and find do not follow the links: no log is counted twice.
    listed = subprocess.run(["grep", "-rlc", "", str(build)], capture_output=True, text=True).stdout.split()
    assert sorted(Path(p).name for p in listed) == sorted(files)
    found = subprocess.run(["find", str(build), "-type", "f"], capture_output=True, text=True).stdout.split()
    assert len(found) == len(files)


def test_only_script_jobs_have_files_and_build_json_answers_jq(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    number = SPECIAL["job_types"]
    build = m / ORG / PIPE / str(number)
    all_jobs = WORLD.find_build(fake_buildkite.world, ORG, PIPE, number)["jobs"]
    names = set(os.listdir(build))
    for job in all_jobs:
        assert (f"{job['id']}.log" in names) == (job["type"] == "script"), job["type"]
    data = json.loads(read_file(build / "build.json"))
    assert data["number"] == number
    assert {j["id"] for j in data["jobs"]} >= {j["id"] for j in all_jobs if not j.get("retried")}
    # The three parallel shards have their own aliases.
    assert {"specs-1.log", "specs-2.log", "specs-3.log"} <= names


def test_a_build_outside_the_listing_is_found_by_number(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_fake_full", "--recent-builds", "5"))
    pipeline = SPECIAL["big_pipeline"]
    assert "50" not in os.listdir(m / ORG / pipeline)
    fake_buildkite.control("reset-counters")
    job = script_jobs(fake_buildkite, 50, pipeline)[0]
    assert read_file(m / ORG / pipeline / "50" / f"{job['id']}.log") == WORLD.log_bytes(fake_buildkite.world, job["id"])
    endpoints = fake_buildkite.counters()["endpoints"]
    assert endpoints.get("GET /v2/organizations/{org}/pipelines/{pipeline}/builds/{number}") == 1, endpoints
    assert not (m / ORG / pipeline / "18").exists(), "build 18 was skipped in the world and must not exist"


def test_tail_of_an_api_log_is_one_suffix_request(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    build = m / ORG / PIPE / str(SPECIAL["big_log"])
    job = script_jobs(fake_buildkite, SPECIAL["big_log"])[0]
    path = build / f"{job['id']}.log"
    assert path.stat().st_size == 0, "a log not opened yet shows size 0 (doc/SEMANTICS.md, \"Log sizes\")"
    expected = WORLD.log_bytes(fake_buildkite.world, job["id"])
    fake_buildkite.control("reset-counters")
    tail = subprocess.run(["tail", "-c", "100", str(path)], capture_output=True, check=True).stdout
    assert tail == expected[-100:]
    gets = log_requests(fake_buildkite)
    assert len(gets) == 1, gets
    assert gets[0]["range"].startswith("bytes=-") and gets[0]["status"] == 206, gets
    assert path.stat().st_size == len(expected), "the open that sized it shows the size from then on"


def test_a_remount_makes_no_api_call_for_finished_builds(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    build = m / ORG / PIPE / str(SPECIAL["retried"])
    before = {p.name: read_file(p) for p in sorted(build.iterdir())}
    m.unmount()
    fake_buildkite.control("reset-counters")
    again = m.remount()
    after = {p.name: read_file(p) for p in sorted((again / ORG / PIPE / str(SPECIAL["retried"])).iterdir())}
    assert after == before
    assert fake_buildkite.counters()["total"] == 0, fake_buildkite.counters()["endpoints"]


def test_a_remount_gives_names_and_aliases_their_inode_numbers_again(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    top = m / ORG / PIPE / str(SPECIAL["retried"])
    paths = [m / ORG, m / ORG / PIPE, top] + sorted(top.iterdir())
    assert any(p.is_symlink() for p in paths), "no alias in the build: the test would prove less"
    before = {str(p.relative_to(m.path)): os.lstat(p).st_ino for p in paths}
    m.unmount()
    again = m.remount()
    # The deepest names first, straight by path, before any directory above them is listed.
    after = {rel: os.lstat(again / rel).st_ino for rel in sorted(before, key=lambda r: -r.count("/"))}
    assert after == before
    assert len(set(after.values())) == len(after)


def build_time(build):
    """A build directory's time: when the build finished, else when it was created, in epoch seconds."""
    text = build.get("finished_at") or build["created_at"]
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def test_ls_lt_lists_a_pipelines_builds_newest_first(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_fake_full", "--recent-builds", "20"))
    for pipeline in (SPECIAL["big_pipeline"], PIPE):
        builds = WORLD.find_pipeline(fake_buildkite.world, ORG, pipeline)["builds"]
        out = subprocess.run(["ls", "-lt", "--time-style=+%s", str(m / ORG / pipeline)], capture_output=True,
                             text=True, check=True).stdout
        lines = [line.split() for line in out.splitlines()[1:]]
        listed = [(fields[-1], int(fields[-2])) for fields in lines]
        assert {fields[1] for fields in lines} == {"2"}, "a directory's link count is 2"
        newest = sorted(builds, key=build_time, reverse=True)[:20]
        assert listed == [(str(b["number"]), build_time(b)) for b in newest], out
        # Not the order of names: a test that could not tell them apart would prove nothing.
        assert [name for name, _ in listed] != sorted(name for name, _ in listed)


def test_a_remount_gives_every_directory_and_alias_the_same_time(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_fake_full", "--recent-builds", "5"))

    def times(root):
        """{relative path: st_mtime_ns} of the root and everything below, by lstat; no file is read."""
        found = {".": os.lstat(root).st_mtime_ns}
        for directory, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(directory, name)
                found[os.path.relpath(path, root)] = os.lstat(path).st_mtime_ns
        return found

    first = times(m.path)
    m = m.remount()
    second = times(m.path)
    m = m.remount()
    third = times(m.path)
    assert second == third
    # A build, its files and its aliases have their times from the first listing on. An organization
    # and a pipeline show their newest build the catalog holds: 0 in the first mount, which listed
    # them before it had learned any of their builds.
    builds = {rel for rel in first if rel.count("/") >= 2}
    assert {rel: first[rel] for rel in builds} == {rel: second[rel] for rel in builds}
    web = WORLD.find_pipeline(fake_buildkite.world, ORG, SPECIAL["big_pipeline"])["builds"]
    newest = max(build_time(b) for b in web) * 10**9
    assert (first[f"{ORG}/{SPECIAL['big_pipeline']}"], second[f"{ORG}/{SPECIAL['big_pipeline']}"]) == (0, newest)
    assert second[ORG] == newest and second["."] == 0 and second["empty-org"] == 0
    for rel in builds:
        if rel.count("/") == 2:
            number = int(rel.split("/")[2])
            org, pipeline = rel.split("/")[:2]
            assert second[rel] == build_time(WORLD.find_build(fake_buildkite.world, org, pipeline, number)) * 10**9
    links = [rel for rel in builds if os.path.islink(m.path / rel)]
    assert links and all(second[rel] > 0 for rel in links)


def test_empty_and_deleted_logs(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    number = SPECIAL["empty_deleted"]
    build = m / ORG / PIPE / str(number)
    names = set(os.listdir(build))
    jobs = {j.get("step_key") or j.get("name"): j for j in script_jobs(fake_buildkite, number)}
    quiet, purged = jobs["quiet"], jobs["purged"]
    assert (build / f"{quiet['id']}.log").stat().st_size == 0
    assert read_file(build / f"{quiet['id']}.log") == b""
    # A deleted log is listed until it is opened (no request per job tells it): the open answers ENOENT,
    # and from then on it is left out, in this mount and the next (doc/SEMANTICS.md, "Log sizes").
    assert f"{purged['id']}.log" in names
    with pytest.raises(FileNotFoundError):
        read_file(build / f"{purged['id']}.log")
    assert f"{purged['id']}.log" not in os.listdir(build)
    again = m.remount()
    assert f"{purged['id']}.log" not in os.listdir(again / ORG / PIPE / str(number))
    assert "left out" in Path(m.factory.tmp_path / f"bklogfs{m.factory.count}.log").read_text()


def test_a_refused_token_stops_the_mount(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_wrong_token"), check=False)
    assert m.result.returncode != 0
    message = m.result.stderr.strip()
    assert "token was refused" in message and "\n" not in message, message
    assert "API Access Tokens" in message, message  # where to get a current one
    assert "bkua_wrong_token" not in m.result.stderr
    assert not is_mounted(m.path)


def test_a_token_without_the_log_scope_reads_names_but_not_logs(mount, fake_buildkite, tmp_path):
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_fake_no_logs"))
    build = m / ORG / PIPE / str(SPECIAL["retried"])
    job = script_jobs(fake_buildkite, SPECIAL["retried"])[0]
    assert f"{job['id']}.log" in os.listdir(build), "names need no log request"
    with pytest.raises(PermissionError):
        read_file(build / f"{job['id']}.log")  # reading (and sizing) a log needs read_build_logs
    log = Path(m.factory.tmp_path / f"bklogfs{m.factory.count}.log").read_text()
    assert "read_build_logs" in log
    assert "give a token that has it" in log  # what to do next


def test_an_offline_remount_serves_what_was_cached(mount, fake_buildkite, tmp_path):
    from conftest import closed_port

    m = mount(_source_args=names_args(fake_buildkite, tmp_path))
    build = m / ORG / PIPE / str(SPECIAL["retried"])
    before = {p.name: read_file(p) for p in sorted(build.iterdir())}
    big_log = m / ORG / PIPE / str(SPECIAL["big_log"])
    os.listdir(big_log)  # names known, log never read
    m.unmount()
    # The same cache and catalog, an API that cannot be reached, and every listing out of date.
    offline = ["--api-token-file", str(tmp_path / "token-bkua_fake_full"),
               "--api-endpoint", f"http://127.0.0.1:{closed_port()}/v2", "--directory-ttl", "0"]
    again = mount(cache_dir=m.cache_dir, _source_args=offline)
    assert ORG in os.listdir(again.path)
    build = again / ORG / PIPE / str(SPECIAL["retried"])
    assert {p.name: read_file(p) for p in sorted(build.iterdir())} == before
    job = script_jobs(fake_buildkite, SPECIAL["big_log"])[0]
    with pytest.raises(OSError):
        read_file(again / ORG / PIPE / str(SPECIAL["big_log"]) / f"{job['id']}.log")


def test_logs_come_from_the_private_archive_when_it_holds_them(mount, fake_buildkite, moto, tmp_path):
    """Jobs in the archive (new layout for one build, the older org-less layout for another) are read
    from S3, sized by its listing, with no log request to the API; the others come from the API."""
    import uuid

    world = fake_buildkite.world
    org_id = WORLD.find_org(world, ORG)["id"]
    pipe_id = WORLD.find_pipeline(world, ORG, PIPE)["id"]
    bucket = f"names-archive-{uuid.uuid4().hex[:8]}"
    moto.client.create_bucket(Bucket=bucket)
    retried = WORLD.find_build(world, ORG, PIPE, SPECIAL["retried"])
    archived = [j for j in script_jobs(fake_buildkite, SPECIAL["retried"])][:3]
    for job in archived:
        moto.client.put_object(Bucket=bucket, Key=f"{org_id}/{pipe_id}/{retried['id']}/{job['id']}.log",
                               Body=b"from the archive: " + job["id"].encode())
    legacy = WORLD.find_build(world, ORG, PIPE, SPECIAL["job_types"])
    legacy_job = script_jobs(fake_buildkite, SPECIAL["job_types"])[0]
    moto.client.put_object(Bucket=bucket, Key=f"{pipe_id}/{legacy['id']}/{legacy_job['id']}.log",
                           Body=b"from the older layout")

    m = mount(_source_args=names_args(fake_buildkite, tmp_path) + [
        "--bucket", bucket, "--endpoint", moto.endpoint, "--region", "us-east-1"])
    fake_buildkite.control("reset-counters")
    build = m / ORG / PIPE / str(SPECIAL["retried"])
    for job in script_jobs(fake_buildkite, SPECIAL["retried"]):
        path = build / f"{job['id']}.log"
        if job in archived:
            expected = b"from the archive: " + job["id"].encode()
            assert path.stat().st_size == len(expected), "sized by the archive's listing"
        else:
            expected = WORLD.log_bytes(world, job["id"])
            assert path.stat().st_size == 0, "sized when opened"
        assert read_file(path) == expected
        assert path.stat().st_size == len(expected)
    assert read_file(m / ORG / PIPE / str(SPECIAL["job_types"]) / f"{legacy_job['id']}.log") == b"from the older layout"
    asked = {r["path"].split("/jobs/")[1].split("/")[0] for r in fake_buildkite.counters()["log_requests"]}
    assert not asked & {j["id"] for j in archived}, "an archived log was asked of the API"
    assert legacy_job["id"] not in asked
    assert asked, "the jobs the archive lacks should come from the API"


def test_a_running_build_is_read_fresh_and_settles_when_it_finishes(mount, fake_buildkite, tmp_path):
    import time

    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_fake_full", "--directory-ttl", "1"))
    number = SPECIAL["running"]
    build_dir = m / ORG / PIPE / str(number)
    running = next(j for j in script_jobs(fake_buildkite, number) if j.get("state") == "running")
    path = build_dir / f"{running['id']}.log"
    world = fake_buildkite.world
    # stat and read agree, though the log grows with every GET the API answers.
    first = read_file(path)
    assert len(first) == path.stat().st_size
    # The log as the open's one request found it: the fake's first GET serves one chunk more than
    # the world started with (a listing no longer sizes it with a HEAD, which served none).
    assert first == WORLD.log_bytes(world, running["id"], fetches=1)
    assert json.loads(read_file(build_dir / "build.json"))["state"] == "running"
    # After the listing's short TTL the log is longer, and read afresh (no stale page cache).
    time.sleep(1.5)
    os.listdir(build_dir)
    second = read_file(path)
    assert len(second) == path.stat().st_size
    assert len(second) > len(first) and second.startswith(first)
    # Once the build finishes, the next listing shows the final log, which is then immutable.
    fake_buildkite.control("finish-build", org=ORG, pipeline=PIPE, number=number)
    time.sleep(1.5)
    os.listdir(build_dir)
    assert json.loads(read_file(build_dir / "build.json"))["state"] != "running"
    final = read_file(path)
    assert len(final) == path.stat().st_size
    assert final.startswith(second)


def test_a_build_past_retention_gets_its_names_from_the_build_exports(mount, fake_buildkite, moto, tmp_path):
    """Export a build in Buildkite's layout (gzipped build JSON, jobs' JSON and logs), delete it from
    the API, and find it by number: names from the export, logs from the export's job logs."""
    import gzip
    import uuid

    world = fake_buildkite.world
    number = SPECIAL["retried"]
    org_id = WORLD.find_org(world, ORG)["id"]
    pipe_id = WORLD.find_pipeline(world, ORG, PIPE)["id"]
    build, _ = fake_buildkite.get_json(f"/v2/organizations/{ORG}/pipelines/{PIPE}/builds/{number}"
                                        "?include_retried_jobs=true")
    jobs = build.pop("jobs")  # an export keeps its jobs in jobs/job-{uuid}.json.gz
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    moto.client.create_bucket(Bucket=bucket)
    folder = f"buildkite/build-exports/org={org_id}/date=2024-05-01/pipeline={pipe_id}/build={build['id']}/"
    moto.client.put_object(Bucket=bucket, Key=folder + "build.json.gz", Body=gzip.compress(json.dumps(build).encode()))
    exported = {}
    for job in jobs:
        moto.client.put_object(Bucket=bucket, Key=folder + f"jobs/job-{job['id']}.json.gz",
                               Body=gzip.compress(json.dumps(job).encode()))
        if job["type"] == "script":
            exported[job["id"]] = f"exported log of {job['id']}\r\n".encode()
            moto.client.put_object(Bucket=bucket, Key=folder + f"jobs/job-{job['id']}.log", Body=exported[job["id"]])
    # A build of another pipeline in the same export, which the scan must pass over.
    moto.client.put_object(Bucket=bucket, Key=f"buildkite/build-exports/org={org_id}/date=2024-05-01/"
                           f"pipeline=00000000-other/build=00000000-0000/build.json.gz", Body=b"not even gzip")
    fake_buildkite.control("delete-build", org=ORG, pipeline=PIPE, number=number)

    m = mount(_source_args=names_args(fake_buildkite, tmp_path) + [
        "--exports", f"s3://{bucket}/buildkite/build-exports/", "--endpoint", moto.endpoint, "--region", "us-east-1"])
    directory = m / ORG / PIPE / str(number)
    names = set(os.listdir(directory))
    assert {f"{job_id}.log" for job_id in exported} | {"build.json", "flaky.log", "lint.log"} <= names
    for job_id, body in exported.items():
        assert read_file(directory / f"{job_id}.log") == body
    assert json.loads(read_file(directory / "build.json"))["number"] == number
    asked = {r["path"] for r in fake_buildkite.counters()["log_requests"]}
    assert not asked, f"logs of an exported build were asked of the API: {asked}"


def test_a_later_scan_of_the_build_exports_reads_only_what_came_since(mount, fake_buildkite, moto, tmp_path):
    """Twelve exported builds of a pipeline; the first unknown number scans them all. A build exported
    later (a newer date folder) is found once the scan's TTL passed, by listing only from the last
    date scanned and reading only the new folder."""
    import gzip
    import time
    import uuid

    world = fake_buildkite.world
    org_id = WORLD.find_org(world, ORG)["id"]
    pipe_id = WORLD.find_pipeline(world, ORG, PIPE)["id"]
    template, _ = fake_buildkite.get_json(f"/v2/organizations/{ORG}/pipelines/{PIPE}/builds/{SPECIAL['retried']}")
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    moto.client.create_bucket(Bucket=bucket)
    root = f"buildkite/build-exports/org={org_id}/"

    def export(number, date):
        build = dict(template, id=str(uuid.uuid4()), number=number, jobs=[])
        moto.client.put_object(Bucket=bucket, Key=f"{root}date={date}/pipeline={pipe_id}/build={build['id']}/build.json.gz",
                               Body=gzip.compress(json.dumps(build).encode()))

    old = [900_000 + i for i in range(12)]
    for i, number in enumerate(old):
        export(number, f"2024-04-{1 + i:02d}")
    m = mount(_source_args=names_args(fake_buildkite, tmp_path, "bkua_fake_full", "--directory-ttl", "3") + [
        "--exports", f"s3://{bucket}/buildkite/build-exports/", "--endpoint", moto.endpoint, "--region", "us-east-1"])
    pipeline = m / ORG / PIPE
    before = m.stats()["requests"]
    assert json.loads(read_file(pipeline / str(old[3]) / "build.json"))["number"] == old[3]
    first = m.stats()["requests"]
    assert first["get"] - before["get"] >= len(old), "the first scan reads every export of the pipeline"
    # Within the scan's TTL, every old number is known without a request, and a missing one costs none.
    for number in old:
        assert (pipeline / str(number)).is_dir()
    assert not (pipeline / "900999").exists()
    assert m.stats()["requests"]["list"] == first["list"]
    # A build exported later, under a newer date.
    export(901_000, "2024-06-01")
    time.sleep(3.5)
    assert json.loads(read_file(pipeline / "901000" / "build.json"))["number"] == 901_000
    second = m.stats()["requests"]
    assert second["get"] - first["get"] <= 2, "only the new export is read (its build.json, then the file)"
    assert second["list"] - first["list"] <= 2, second
