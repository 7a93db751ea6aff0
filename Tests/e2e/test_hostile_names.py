"""End-to-end: hostile names through a real FUSE mount (doc/SEMANTICS.md "Hostile names", doc/NAMES.md).

S3 keys are stored in moto_server as they are. moto cannot store a key with a newline (its router
404s on %0A) and no S3 can hold one that is not UTF-8: those cells are checked by
`HostileNamesTests` (LogFSTests) and `ListObjectsXMLTests` instead, and by
`test_archive_mount.py::test_odd_but_legal_names_appear_as_they_are` for the newline.

Buildkite names come from the fake API's hostile world (`world.py --hostile`, see HOSTILE there).

Every test checks: the names `find` lists; that no entry and no link target resolves outside the
mount; the bytes of what is kept; one log line for each name left out; a daemon that still answers.
"""

import errno
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import fake_buildkite_process, load_fake_buildkite_world, new_moto_bucket, read_file

WORLD = load_fake_buildkite_world()
HOSTILE = WORLD.HOSTILE

LONG = "n" * 1000
DEEP = "/".join(["d" * 200] * 6) + "/deep.log"  # 1,209 bytes with its prefix; each component a legal name

# key -> bytes, and what the mount shows of it (relative path, or None: left out)
S3_KEYS = {
    "h/ok.log": "h/ok.log",
    "h/a/./dot.log": None,
    "h/a/../up.log": None,
    "h/a//empty.log": None,
    "/lead.log": None,
    "h/nul\x00x.log": None,
    "h/cr\rx.log": "h/cr\rx.log",
    "h/tab\tx.log": "h/tab\tx.log",
    "h/   ": "h/   ",
    "h/sp/   /x.log": "h/sp/   /x.log",
    "h/" + LONG: None,
    "h/x": None,  # hidden by the directory h/x
    "h/x/y.log": "h/x/y.log",
    "h/" + DEEP: "h/" + DEEP,
    "h/.fuse_hidden0000000100000001": "h/.fuse_hidden0000000100000001",
    "h/.Trash-0/x.log": "h/.Trash-0/x.log",
    "h/caf\u00e9.log": "h/caf\u00e9.log",
    "h/cafe\u0301.log": "h/cafe\u0301.log",
    "h/\u212a.log": "h/\u212a.log",  # KELVIN SIGN: canonically the same as "K"
    "h/K.log": "h/K.log",
    "h/-dash.log": "h/-dash.log",
    "h/\\back\\slash.log": "h/\\back\\slash.log",
}

# key left out -> what its log line says (control bytes are written \xNN in the log)
S3_LEFT_OUT = {
    "h/a/./": "cannot be a file name",
    "h/a/../": "cannot be a file name",
    "h/a//": "its name is empty",
    "/": "its name is empty",
    "h/nul\\x0x.log": "NUL",
    "h/" + LONG: "1000 bytes long",
    "h/x": "a directory of the same name hides it",
}


def body(key):
    return f"object {key!r}\r\n".encode("utf-8", "surrogateescape")


def find(root):
    """Every path under root, relative, as find -print0 lists them (bytes decoded as the OS does)."""
    r = subprocess.run(["find", ".", "-mindepth", "1", "-print0"], cwd=root, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {os.fsdecode(p)[2:] for p in r.stdout.split(b"\0") if p}


def assert_nothing_leads_outside(root):
    """realpath of every entry and every link target stays under the mount."""
    root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            real = os.path.realpath(p)
            assert real == root or real.startswith(root + os.sep), f"{p!r} resolves to {real!r}"
            if os.path.islink(p):
                target = os.readlink(p)
                assert not target.startswith("/") and ".." not in target.split("/"), (p, target)
                assert os.path.exists(p), f"dangling link {p!r} -> {target!r}"


def log_text(m):
    return Path(m.log_path).read_text(errors="replace")


def assert_alive(m):
    assert os.listdir(m.path)
    m.stats()
    assert not m.result.returncode and m.pids, "no daemon"
    for pid in m.pids:
        assert os.path.exists(f"/proc/{pid}"), f"daemon {pid} is gone"


@pytest.fixture(scope="module")
def hostile_bucket(moto):
    bucket = new_moto_bucket(moto, "bk-hostile")
    name = bucket.name
    for key in S3_KEYS:
        moto.client.put_object(Bucket=name, Key=key, Body=body(key))
    listed = {o["Key"] for page in moto.client.get_paginator("list_objects_v2").paginate(Bucket=name)
              for o in page.get("Contents", [])}
    assert listed == set(S3_KEYS), f"moto lost keys: {set(S3_KEYS) ^ listed}"
    return bucket


@pytest.mark.parametrize("walk", [True, False], ids=["subtree-listings", "one-listing-per-directory"])
def test_hostile_s3_keys_are_shown_as_they_are_or_left_out_with_a_warning(mount, hostile_bucket, walk):
    extra = [] if walk else ["--directory-ttl", "0"]
    m = mount(bucket=hostile_bucket, extra_args=extra)
    kept = {path for path in S3_KEYS.values() if path}
    directories = {str(Path(p).parent) for p in kept} | {"h/a"}
    directories |= {str(parent) for d in list(directories) for parent in Path(d).parents if str(parent) != "."}
    assert find(m.path) == kept | directories
    assert sorted(os.listdir(m / "h" / "a")) == []
    assert_nothing_leads_outside(m.path)
    for key, path in S3_KEYS.items():
        if path:
            assert read_file(m / path) == body(key), repr(key)
    # The names that Python's str (like Swift's String) could confuse are told apart by the kernel and by bklogfs.
    assert os.stat(m / "h/caf\u00e9.log").st_ino != os.stat(m / "h/cafe\u0301.log").st_ino
    with pytest.raises(OSError) as too_long:
        os.stat(m / "h" / LONG)
    assert too_long.value.errno == errno.ENAMETOOLONG
    assert os.path.isdir(m / "h" / "x")
    # A name that is not UTF-8, asked of the mount (the kernel passes any bytes), is simply not there.
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(os.fsencode(m / "h"), b"bad\xffname.log"))
    text = log_text(m)
    for key, reason in S3_LEFT_OUT.items():
        lines = [line for line in text.splitlines() if f"left out {key}:" in line]
        assert len(lines) == 1, (key, lines)
        assert reason in lines[0] and " warning " in f" {lines[0]} ", lines[0]
    assert_alive(m)


# ---------------------------------------------------------------- Buildkite names


@pytest.fixture(scope="module")
def hostile_api(tmp_path_factory):
    with fake_buildkite_process(tmp_path_factory.mktemp("fake-buildkite-hostile"), big_builds=3, hostile=True,
                                server_args=["--org-rate-limit", "100000", "--user-rate-limit", "100000"]) as fake:
        yield fake


def names_args(fake, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("bkua_fake_full\n")
    token_file.chmod(0o600)
    return ["--api-token-file", str(token_file), "--api-endpoint", fake.api]


def job(fake, key):
    return WORLD.hostile_job(fake.world, key)


def test_hostile_organization_and_pipeline_slugs(mount, hostile_api, tmp_path):
    m = mount(_source_args=names_args(hostile_api, tmp_path))
    top = set(os.listdir(m.path))
    assert {"acme", "buildkite", "empty-org", "hostile"} == top
    assert set(os.listdir(m / "hostile")) == set(HOSTILE["kept_pipelines"])
    assert_nothing_leads_outside(m / "hostile")
    builds = sorted(os.listdir(m / "hostile" / "names"), key=int)
    assert builds == ["1", "2", "3"], builds
    # Of the two builds numbered 3, the last the API listed is shown, and a warning says so.
    assert json.loads(read_file(m / "hostile/names/3/build.json"))["message"] == "second of two 3s"
    text = log_text(m)
    for slug in HOSTILE["left_out_orgs"]:
        shown = slug.replace("\x00", "\\x0")
        assert sum(f"left out /{shown}:" in line for line in text.splitlines()) == 1, slug
    for slug in HOSTILE["left_out_pipelines"]:
        shown = slug.replace("\x00", "\\x0")
        assert sum(f"left out /hostile/{shown}:" in line for line in text.splitlines()) == 1, slug
    assert sum("left out /hostile/names/-1:" in line for line in text.splitlines()) == 1
    assert sum("of 2 pipelines in /hostile named dup" in line for line in text.splitlines()) == 1
    assert sum("of 2 builds in /hostile/names named 3" in line for line in text.splitlines()) == 1
    # Slugs with spaces, a newline, UTF-8 or 255 bytes are reached through the API like any other.
    for slug in HOSTILE["kept_pipelines"]:
        os.listdir(m / "hostile" / slug)
    assert_alive(m)


def test_hostile_job_names_ids_and_aliases(mount, hostile_api, tmp_path):
    m = mount(_source_args=names_args(hostile_api, tmp_path))
    build = m / "hostile" / "names" / "1"
    names = set(os.listdir(build))
    files = {n for n in names if not (build / n).is_symlink()}
    links = {n: os.readlink(build / n) for n in names if (build / n).is_symlink()}
    shown_ids = ["plain", "traversal", "slash_key", "dot", "dotdot", "empty", "nul", "newline", "long", "same1",
                 "same2", "uuid_label", "build_json", "not_uuid", "id_lint", "key_lint", "id_newline"]
    assert files == {f"{job(hostile_api, k)['id']}.log" for k in shown_ids} | {"build.json"}
    # Every link is a name of this directory: no "/", no "..".
    assert set(links.values()) == files - {"build.json"}
    assert all("/" not in t for t in links.values())
    assert len(links) == len(shown_ids)
    alias = {k: next(n for n, t in links.items() if t == f"{job(hostile_api, k)['id']}.log") for k in shown_ids}
    assert alias["plain"] == "plain.log"
    assert alias["traversal"] == "etc-passwd.log"
    assert alias["slash_key"] == "a-b.log"
    assert alias["nul"] == "nul-byte.log"
    assert alias["newline"] == "line-break.log"
    assert alias["long"] == "x" * 100 + ".log"
    assert alias["build_json"] == "build.json.log"
    assert alias["not_uuid"] == "not-uuid.log"
    assert alias["id_lint"] == "id-lint.log"
    assert alias["id_newline"] == "newline-id.log"
    # Labels that are nothing once made safe, or the same as another's, get a piece of their UUID.
    for k in ("dot", "dotdot", "empty"):
        assert alias[k] == f"job-{job(hostile_api, k)['id'][-8:]}.log", (k, alias[k])
    for k in ("same1", "same2"):
        assert alias[k] == f"Unit-tests-{job(hostile_api, k)['id'][-8:]}.log", (k, alias[k])
    # A label that reads as a UUID, and a step key that is another job's log file name, are renamed too.
    assert alias["uuid_label"] == f"{job(hostile_api, 'plain')['id']}-{job(hostile_api, 'uuid_label')['id'][-8:]}.log"
    assert alias["key_lint"] == f"lint-{job(hostile_api, 'key_lint')['id'][-8:]}.log"
    assert (build / "lint.log").resolve() == (build / "lint.log")  # the job whose ID is "lint": a file
    assert_nothing_leads_outside(build)
    for k in shown_ids:
        expected = WORLD.log_bytes(hostile_api.world, job(hostile_api, k)["id"])
        assert read_file(build / alias[k]) == expected, k
        assert read_file(build / f"{job(hostile_api, k)['id']}.log") == expected, k
    text = log_text(m)
    for k in ("id_slash", "id_dotdot", "id_long", "id_dot", "id_nul", "id_empty"):
        jid = job(hostile_api, k)["id"].replace("\x00", "\\x0")
        assert sum(f"left out job {jid} of hostile/names/1:" in line for line in text.splitlines()) == 1, k
    plain = job(hostile_api, "plain")["id"]
    assert sum(f"of 2 jobs in /hostile/names/1 named {plain}" in line for line in text.splitlines()) == 1
    assert_alive(m)


def test_a_lone_surrogate_in_a_label(mount, hostile_api, tmp_path):
    m = mount(_source_args=names_args(hostile_api, tmp_path))
    build = m / "hostile" / "names" / str(HOSTILE["surrogate_build"])
    names = set(os.listdir(build))
    stored = WORLD.find_build(hostile_api.world, "hostile", "names", HOSTILE["surrogate_build"])["jobs"]
    assert {f"{j['id']}.log" for j in stored} | {"build.json", "fine.log"} <= names
    bad = stored[0]
    alias = next(n for n in names if (build / n).is_symlink() and os.readlink(build / n) == f"{bad['id']}.log")
    # The label is read with U+FFFD for the lone surrogate (the rest of the build stands); the alias drops it.
    assert alias == "bad-label.log", alias
    assert read_file(build / alias) == b"surrogate label\r\n"
    assert_nothing_leads_outside(build)
    assert_alive(m)


def test_a_hostile_build_from_the_build_exports_has_the_same_names(mount, hostile_api, moto, tmp_path):
    """Build exports carry names too: hostile build 1, exported in Buildkite's layout and deleted from
    the API, shows the same files and aliases as from the API (but for the job whose ID holds a
    newline: moto cannot store its log, so it is left out as a log Buildkite no longer has)."""
    import gzip

    world = hostile_api.world
    org_id = WORLD.find_org(world, "hostile")["id"]
    pipe_id = WORLD.find_pipeline(world, "hostile", "names")["id"]
    build, _ = hostile_api.get_json("/v2/organizations/hostile/pipelines/names/builds/1?include_retried_jobs=true")
    bucket = f"exports-hostile-{uuid.uuid4().hex[:8]}"
    moto.client.create_bucket(Bucket=bucket)
    folder = f"build-exports/org={org_id}/date=2024-05-01/pipeline={pipe_id}/build={build['id']}/"
    moto.client.put_object(Bucket=bucket, Key=folder + "build.json.gz", Body=gzip.compress(json.dumps(build).encode()))
    exported = {}
    for j in build["jobs"]:
        if j["type"] == "script" and "\n" not in j["id"]:
            exported[j["id"]] = f"exported log of {j['id']!r}\r\n".encode()
            moto.client.put_object(Bucket=bucket, Key=folder + f"jobs/job-{j['id']}.log", Body=exported[j["id"]])
    hostile_api.control("delete-build", org="hostile", pipeline="names", number=1)
    try:
        m = mount(_source_args=names_args(hostile_api, tmp_path) + [
            "--exports", f"s3://{bucket}/build-exports/", "--endpoint", moto.endpoint, "--region", "us-east-1"])
        directory = m / "hostile" / "names" / "1"
        names = set(os.listdir(directory))
        files = {n for n in names if not (directory / n).is_symlink()}
        shown = [job(hostile_api, k)["id"] for k in ("plain", "traversal", "slash_key", "dot", "dotdot", "empty",
                                                     "nul", "newline", "long", "same1", "same2", "uuid_label",
                                                     "build_json", "not_uuid", "id_lint", "key_lint")]
        assert files == {f"{i}.log" for i in shown} | {"build.json"}
        assert_nothing_leads_outside(directory)
        for i in shown:
            assert read_file(directory / f"{i}.log") == exported[i], i
        assert os.readlink(directory / "etc-passwd.log") == f"{job(hostile_api, 'traversal')['id']}.log"
        assert os.readlink(directory / "plain.log") == f"{job(hostile_api, 'plain')['id']}.log"
        text = log_text(m)
        for k in ("id_slash", "id_dotdot", "id_long", "id_dot", "id_nul", "id_empty"):
            jid = job(hostile_api, k)["id"].replace("\x00", "\\x0")
            assert sum(f"left out job {jid} of hostile/names/1:" in line for line in text.splitlines()) == 1, k
        assert sum("left out the log of job nl\\xaid in hostile/names/1" in line for line in text.splitlines()) == 1
        assert_alive(m)
    finally:
        hostile_api.control("reset")
