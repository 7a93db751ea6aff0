"""Fixtures for bklogfs's end-to-end tests: a moto S3 server, a seeded bucket, real FUSE mounts.

Every fixture cleans up after itself, also when a test fails: mounts are unmounted
(`fusermount3 -u`, then lazily with `-uz`), leftover daemons are killed, servers are
stopped and temp dirs removed.

Environment:
  BKLOGFS_BIN       the binary to test (default: build it with `swift build -c release`)
  BKLOGFS_TESTDATA  the shared testdata dir (default: ../shared/testdata beside the repo)
  CI=true           missing prerequisites fail the run instead of skipping it
  E2E_MOUNT_TIMEOUT seconds a single mount may stay up before a watchdog kills its daemon (default 300)
  BKLOGFS_RGW_ENDPOINT, BKLOGFS_RGW_ACCESS_KEY, BKLOGFS_RGW_SECRET_KEY
                    a RADOS Gateway (scripts/rgw start DIR; . DIR/env), for the tests against a real S3 server
"""

import importlib.machinery
import importlib.util
import contextlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI") == "true"

MiB = 1 << 20
BIG_LOG_SIZE = 64 * MiB + 12345  # not a multiple of any block size
REGION = "us-east-1"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION}


# ---------------------------------------------------------------- prerequisites


def require(condition, reason):
    """Skip when a prerequisite is missing, but fail loudly under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def testdata_dir():
    env = os.environ.get("BKLOGFS_TESTDATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "testdata").resolve()


def require_fuse():
    require(os.path.exists("/dev/fuse"), "/dev/fuse is missing (no FUSE in this kernel/container)")
    require(shutil.which("fusermount3") is not None, "fusermount3 is not on PATH (apt-get install fuse3)")


def load_sample_generator():
    """scripts/make-sample-archive as a module (it has no .py suffix)."""
    path = REPO_ROOT / "scripts" / "make-sample-archive"
    loader = importlib.machinery.SourceFileLoader("make_sample_archive", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sample_generator():
    return load_sample_generator()


# ---------------------------------------------------------------- mounts bookkeeping


def _unescape_mount_field(s):
    # /proc/mounts escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 4 <= len(s) and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mounted_paths():
    with open("/proc/mounts", encoding="utf-8", errors="surrogateescape") as f:
        return {_unescape_mount_field(line.split()[1]) for line in f if line.strip()}


def is_mounted(path):
    # abspath, not resolve(): resolving would stat the mountpoint, which hangs on a hung daemon
    return os.path.abspath(str(path)) in mounted_paths()


def force_unmount(path):
    """fusermount3 -u, then -uz if busy. Never raises; returns True when nothing is mounted there any more."""
    path = str(path)
    for args in (["fusermount3", "-u", path], ["fusermount3", "-uz", path]):
        if not is_mounted(path):
            return True
        try:
            subprocess.run(args, capture_output=True, timeout=20)
        except subprocess.TimeoutExpired:
            pass
    if is_mounted(path):
        try:
            subprocess.run(["umount", "-l", path], capture_output=True, timeout=20)
        except (subprocess.TimeoutExpired, FileNotFoundError):
            pass
    return not is_mounted(path)


def daemon_pids(binary, mountpoint):
    """Processes running the bklogfs binary with this mountpoint on their command line."""
    pids = []
    want_name = os.path.basename(binary).encode()
    want_mnt = str(mountpoint).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == want_name and want_mnt in argv:
            pids.append(int(entry))
    return pids


def kill_pids(pids, grace=5.0):
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if process_alive(p)]
        if alive:
            time.sleep(0.1)
    for p in alive:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def process_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- the binary


_build_result = {}


@pytest.fixture(scope="session")
def bklogfs_bin():
    """Path of the binary under test: $BKLOGFS_BIN, or a release build made once per session."""
    env = os.environ.get("BKLOGFS_BIN")
    if env:
        if not os.access(env, os.X_OK):
            pytest.fail(f"BKLOGFS_BIN={env} is not an executable file", pytrace=False)
        return env
    if "path" not in _build_result:
        try:
            build = subprocess.run(["swift", "build", "-c", "release"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
            if build.returncode != 0:
                _build_result["error"] = "swift build -c release failed:\n" + (build.stdout + build.stderr)[-3000:]
            else:
                bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO_ROOT,
                                         capture_output=True, text=True, check=True).stdout.strip()
                _build_result["path"] = os.path.join(bin_dir, "bklogfs")
        except (OSError, subprocess.SubprocessError) as e:
            _build_result["error"] = f"could not build bklogfs: {e}"
        _build_result.setdefault("path", None)
    if _build_result.get("error"):
        pytest.fail(_build_result["error"], pytrace=False)
    path = _build_result["path"]
    if not os.access(path, os.X_OK):
        pytest.fail(f"no bklogfs binary at {path}", pytrace=False)
    return path


def run_bklogfs(binary, *args, timeout=60, env=None):
    full_env = dict(os.environ)
    full_env.update(CREDS)
    if env:
        full_env.update(env)
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=full_env)


# ---------------------------------------------------------------- moto


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A loopback port with nothing listening (bound then released; nobody else should grab it that fast)."""
    return free_port()


@dataclass
class Moto:
    endpoint: str
    client: object
    log_path: Path


def stop_process_group(proc):
    """SIGTERM to a server started with start_new_session, then SIGKILL if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def moto_process(log_dir, env=None):
    """Runs a moto_server on a free loopback port until the block ends; yields (endpoint, log_path).

    Readiness is checked with a TCP connect only, so no request is spent (a server started with
    INITIAL_NO_AUTH_ACTION_COUNT counts every request)."""
    require(shutil.which("moto_server") is not None, "moto_server is not on PATH (pip install 'moto[server]')")
    log_path = Path(log_dir) / "moto_server.log"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(log_path, "wb")
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}: {log_path.read_text(errors='replace')[-2000:]}",
                            pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not answer on {endpoint} within 30 s", pytrace=False)
                time.sleep(0.1)
        yield endpoint, log_path
    finally:
        stop_process_group(proc)
        log.close()


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """A moto_server on a free loopback port, for the whole session; killed at the end."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        require(False, "boto3 is not installed (pip install boto3)")
    with moto_process(tmp_path_factory.mktemp("moto")) as (endpoint, log_path):
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                              region_name=REGION, config=Config(retries={"max_attempts": 2}))
        deadline = time.monotonic() + 30
        while True:
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield Moto(endpoint=endpoint, client=client, log_path=log_path)


# ---------------------------------------------------------------- RADOS Gateway


@dataclass
class RGW:
    """Ceph's RADOS Gateway that scripts/rgw runs (scripts/test starts one for the whole run): a real
    S3 server, which checks every signature."""
    endpoint: str
    access_key: str
    secret_key: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)


@pytest.fixture(scope="session")
def rgw():
    """The gateway named by BKLOGFS_RGW_ENDPOINT/ACCESS_KEY/SECRET_KEY; skipped without them, failed under CI=true."""
    names = ("BKLOGFS_RGW_ENDPOINT", "BKLOGFS_RGW_ACCESS_KEY", "BKLOGFS_RGW_SECRET_KEY")
    values = [os.environ.get(name, "") for name in names]
    require(all(values), "no RADOS Gateway: BKLOGFS_RGW_ENDPOINT/ACCESS_KEY/SECRET_KEY are not set "
                         "(scripts/rgw start DIR, then . DIR/env)")
    return RGW(*values)


@pytest.fixture(params=["moto", "rgw"])
def s3_server(request):
    """(boto3 client, endpoint, environment for bklogfs) of moto_server, then of Ceph's RADOS Gateway."""
    if request.param == "moto":
        moto = request.getfixturevalue("moto")
        return moto.client, moto.endpoint, None
    rgw = request.getfixturevalue("rgw")
    return rgw.client(), rgw.endpoint, {"AWS_ACCESS_KEY_ID": rgw.access_key, "AWS_SECRET_ACCESS_KEY": rgw.secret_key}


# ---------------------------------------------------------------- private mounts


def clean_env(tmp_path, **extra):
    """The environment without any AWS variable of the caller's, with private XDG directories."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
               XDG_STATE_HOME=str(tmp_path / "xdg-state"), AWS_REGION=REGION)
    env.update(extra)
    return env


@pytest.fixture
def mountpoint(tmp_path, bklogfs_bin):
    """An empty directory to mount on; whatever is mounted there at the end is unmounted and its daemon killed."""
    require_fuse()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    yield mnt
    pids = daemon_pids(bklogfs_bin, mnt)
    force_unmount(mnt)
    kill_pids(pids)


def assert_refused(result, mnt, code, secret):
    """A mount refused in one line of stderr naming `code`, with the secret nowhere in the output."""
    assert result.returncode != 0, "the mount succeeded with refused credentials"
    message = result.stderr.strip()
    assert "\n" not in message, f"more than one line on stderr:\n{result.stderr}"
    assert code in message, message
    assert secret not in result.stderr + result.stdout
    assert not is_mounted(mnt)


# ---------------------------------------------------------------- the seeded bucket


def det_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# Keys that are legal in S3 and should show up as they are. A key with a newline is legal in S3
# and in a file name, but moto_server cannot store it (its URL router 404s on %0A), so the
# newline case is covered by the --archive tests instead.
HOSTILE_KEYS = {
    "with space.log": b"a key with a space\r\n",
    "plus+sign.log": b"a key with a plus\r\n",
    "percent%20literal.log": b"a key with a literal %20\r\n",
    "\u65e5\u672c\u8a9e.log": "\u65e5\u672c\u8a9e: UTF-8 key\r\n".encode(),
    "a/b.log": b"nested under a/\r\n",
    "spaced dir/x y+z%.log": b"all of it in a directory name\r\n",
}
DIR_MARKER = "dir/"


@dataclass
class Bucket:
    """A bucket of the session's moto_server, as `mount(bucket=...)` takes it."""
    name: str
    endpoint: str


def new_moto_bucket(moto, prefix):
    """A new, empty bucket of the session's moto_server, named `prefix` and a random suffix."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    moto.client.create_bucket(Bucket=name)
    return Bucket(name=name, endpoint=moto.endpoint)


@dataclass
class SeededBucket:
    endpoint: str
    name: str
    source: Path  # local copy; source / key == the object's bytes
    keys: dict  # key -> size, every object except the directory marker
    etags: dict  # key -> ETag as listed
    last_modified: dict  # key -> epoch seconds, as listed
    big_key: str
    real_keys: list  # the shared testdata logs
    dir_marker: str = DIR_MARKER
    extra: dict = field(default_factory=dict)

    def path(self, key):
        return self.source / key


@pytest.fixture(scope="session")
def seeded_bucket(moto, tmp_path_factory, sample_generator):
    """A bucket holding real logs, generated ones (one >= 64 MiB, multipart), the old layout and odd keys."""
    from boto3.s3.transfer import TransferConfig

    logs_dir = testdata_dir() / "buildkite" / "logs"
    real_logs = sorted(logs_dir.glob("*.raw")) if logs_dir.is_dir() else []
    require(real_logs, f"no real Buildkite logs in {logs_dir} (set BKLOGFS_TESTDATA)")

    src = tmp_path_factory.mktemp("bucket-source")
    rng = random.Random(4242)
    real_keys = []
    org, pipeline = det_uuid(rng), det_uuid(rng)
    for raw in real_logs:
        key = f"{org}/{pipeline}/{det_uuid(rng)}/{det_uuid(rng)}.log"
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw, src / key)
        real_keys.append(key)

    sample_generator.generate_archive(str(src))  # archive layout and the older layout without org

    big_key = f"{org}/{det_uuid(rng)}/{det_uuid(rng)}/{det_uuid(rng)}.log"
    (src / big_key).parent.mkdir(parents=True, exist_ok=True)
    (src / big_key).write_bytes(sample_generator.big_log(BIG_LOG_SIZE))

    for key, body in HOSTILE_KEYS.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(body)
    (src / DIR_MARKER).mkdir(exist_ok=True)

    bucket = "bk-e2e-" + det_uuid(rng)[:8]
    s3 = moto.client
    s3.create_bucket(Bucket=bucket)
    config = TransferConfig(multipart_threshold=16 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        key = path.relative_to(src).as_posix()
        s3.upload_file(str(path), bucket, key, Config=config)
    s3.put_object(Bucket=bucket, Key=DIR_MARKER, Body=b"")

    keys, etags, mtimes = {}, {}, {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if obj["Key"] == DIR_MARKER:
                continue
            keys[obj["Key"]] = obj["Size"]
            etags[obj["Key"]] = obj["ETag"]
            mtimes[obj["Key"]] = obj["LastModified"].timestamp()
    expected = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    assert set(keys) == expected, f"seeding lost keys: {expected ^ set(keys)}"
    assert etags[big_key].strip('"').rsplit("-", 1)[-1].isdigit() and "-" in etags[big_key], \
        f"big object should be multipart, ETag {etags[big_key]}"
    return SeededBucket(endpoint=moto.endpoint, name=bucket, source=src, keys=keys, etags=etags,
                        last_modified=mtimes, big_key=big_key, real_keys=real_keys)


# ---------------------------------------------------------------- mounts


class Mount:
    """One bklogfs mount; `path` is the mountpoint. Use the `mount` fixture to make these."""

    def __init__(self, factory, path, cache_dir, source_args, extra_args):
        self.factory = factory
        self.path = Path(path)
        self.cache_dir = Path(cache_dir)
        self.source_args = source_args
        self.extra_args = extra_args
        self.pids = []

    def __truediv__(self, rel):
        return self.path / rel

    def stats(self):
        r = run_bklogfs(self.factory.binary, "stats", "--json", self.path, timeout=30)
        assert r.returncode == 0, f"bklogfs stats failed ({r.returncode}): {r.stderr.strip()}"
        return json.loads(r.stdout)

    def unmount(self):
        """Unmount with `bklogfs unmount`, and check it is gone."""
        r = run_bklogfs(self.factory.binary, "unmount", self.path, timeout=30)
        assert r.returncode == 0, f"bklogfs unmount failed ({r.returncode}): {r.stderr.strip()}"
        deadline = time.monotonic() + 10
        while is_mounted(self.path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not is_mounted(self.path), f"{self.path} still mounted after bklogfs unmount"
        kill_pids(self.pids, grace=10)

    def remount(self):
        """Mount the same source again, at the same mountpoint with the same cache dir."""
        if is_mounted(self.path):
            self.unmount()
        return self.factory(cache_dir=self.cache_dir, mountpoint=self.path, _source_args=self.source_args,
                            extra_args=self.extra_args)


class MountFactory:
    def __init__(self, binary, tmp_path, default_source):
        self.binary = binary
        self.tmp_path = tmp_path
        self.default_source = default_source
        self.mounts = []
        self.timers = []
        self.count = 0

    def args_for_bucket(self, bucket):
        return ["--bucket", bucket.name, "--endpoint", bucket.endpoint, "--region", REGION]

    def __call__(self, *, archive=None, bucket=None, cache_dir=None, mountpoint=None, extra_args=(),
                 _source_args=None, check=True, timeout=60, env=None):
        """Mount (daemonised; returns when ready). archive=DIR for --archive, else the seeded bucket."""
        self.count += 1
        if _source_args is not None:
            source_args = list(_source_args)
        elif archive is not None:
            source_args = ["--archive", str(archive)]
        else:
            bucket = bucket or self.default_source()
            source_args = self.args_for_bucket(bucket)
        mnt = Path(mountpoint) if mountpoint else self.tmp_path / f"mnt{self.count}"
        mnt.mkdir(parents=True, exist_ok=True)
        cache = Path(cache_dir) if cache_dir else self.tmp_path / f"cache{self.count}"
        log_file = self.tmp_path / f"bklogfs{self.count}.log"
        args = ["mount", mnt, *source_args, "--cache-dir", cache, "--cache-size", "1G",
                "--log-file", log_file, "--log-level", "debug", *extra_args]
        m = Mount(self, mnt, cache, source_args, list(extra_args))
        m.log_path = log_file
        self.mounts.append(m)
        r = run_bklogfs(self.binary, *args, timeout=timeout, env=env)
        m.pids = daemon_pids(self.binary, mnt)
        if check:
            assert r.returncode == 0, (f"bklogfs mount exited {r.returncode}: {r.stderr.strip() or r.stdout.strip()}"
                                       + _log_tail(log_file))
            assert is_mounted(mnt), f"bklogfs mount returned 0 but {mnt} is not in /proc/mounts"
            self._watchdog(m)
        m.result = r
        return m

    def _watchdog(self, m):
        """A hung FUSE daemon would hang the test forever: kill it after a bound, which fails the reads."""
        limit = float(os.environ.get("E2E_MOUNT_TIMEOUT", "300"))

        def fire():
            pids = daemon_pids(self.binary, m.path)
            if pids:
                print(f"e2e watchdog: mount {m.path} up for {limit:.0f}s; killing {pids}")
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            force_unmount(m.path)

        t = threading.Timer(limit, fire)
        t.daemon = True
        t.start()
        self.timers.append(t)

    def cleanup(self):
        for t in self.timers:
            t.cancel()
        problems = []
        for m in reversed(self.mounts):
            pids = set(m.pids) | set(daemon_pids(self.binary, m.path))
            if not force_unmount(m.path):
                problems.append(f"could not unmount {m.path}")
            kill_pids(pids)
        return problems


@contextlib.contextmanager
def foreground_mount(binary, mnt, source_args, log_path, extra_args=()):
    """Runs `bklogfs mount MNT --foreground ...` as this test's child (so its exit status can be read)
    until the block ends; yields (process, log file) once the mount is up. At the end a process
    still running is killed and whatever it left mounted is unmounted, also when the test fails."""
    require_fuse()
    Path(mnt).mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w+")
    proc = subprocess.Popen([binary, "mount", str(mnt), "--foreground", *map(str, source_args), *map(str, extra_args)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **CREDS})
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mnt):
            if proc.poll() is not None:
                pytest.fail(f"foreground mount exited {proc.returncode} before mounting: {log_text(log)}")
            assert time.monotonic() < deadline, "foreground mount not ready within 30 s"
            time.sleep(0.1)
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        force_unmount(mnt)
        kill_pids(daemon_pids(binary, mnt))
        log.close()


def log_text(log, n=2000):
    """The last n characters written to an open log file."""
    log.flush()
    log.seek(0)
    return log.read()[-n:]


def _log_tail(path, n=1500):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return f"\n--- tail of {path} ---\n{text[-n:]}" if text else ""


@pytest.fixture
def mount(request, bklogfs_bin, tmp_path):
    """Factory: mount(archive=DIR | bucket=..., cache_dir=..., extra_args=[...]) -> Mount.

    Without archive or bucket it mounts the session's seeded bucket (moto). Every mount made
    is unmounted at teardown, lazily if busy, and its daemon killed if it lingers.
    """
    require_fuse()

    def default_source():
        return request.getfixturevalue("seeded_bucket")

    factory = MountFactory(bklogfs_bin, tmp_path, default_source)
    try:
        yield factory
    finally:
        problems = factory.cleanup()
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)


# ---------------------------------------------------------------- helpers for tests


def stat_delta(before, after, *path):
    a, b = after, before
    for p in path:
        a, b = a[p], b[p]
    return a - b


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------- fake Buildkite API (Tests/fake_buildkite)


FAKE_BK_DIR = REPO_ROOT / "Tests" / "fake_buildkite"


def load_fake_buildkite_world():
    """Tests/fake_buildkite/world.py as a module (build_world, SPECIAL, TOKENS, find_build, job_ids, log_bytes)."""
    spec = importlib.util.spec_from_file_location("fake_buildkite_world", FAKE_BK_DIR / "world.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeBuildkite:
    base_url: str
    world: dict
    log_path: Path
    token: str = "bkua_fake_full"

    @property
    def api(self):
        return self.base_url + "/v2"

    def request(self, method, path, *, token=None, headers=None, body=None, timeout=10):
        """One HTTP request (path relative to the server or absolute URL); returns (status, headers, body bytes)."""
        import http.client
        from urllib.parse import urlsplit
        url = path if path.startswith("http") else self.base_url + path
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            h = dict(headers or {})
            tok = self.token if token is None else token
            if tok:
                h["Authorization"] = f"Bearer {tok}"
            data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
            conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=data, headers=h)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def get_json(self, path, **kw):
        status, headers, body = self.request("GET", path, **kw)
        assert status == 200, f"GET {path} -> {status}: {body[:300]!r}"
        return json.loads(body), headers

    def control(self, name, **body):
        status, _, data = self.request("POST", f"/__fake__/{name}", token="", body=body)
        assert status == 200, f"/__fake__/{name} -> {status}: {data[:300]!r}"
        return json.loads(data)

    def counters(self):
        status, _, data = self.request("GET", "/__fake__/requests", token="")
        assert status == 200
        return json.loads(data)


@contextlib.contextmanager
def fake_buildkite_process(work_dir, *, world=None, server_args=(), **world_kwargs):
    """Runs Tests/fake_buildkite/server.py on a free loopback port until the block ends; yields FakeBuildkite.

    The server gets --exit-on-stdin-close, and is SIGTERMed (then SIGKILLed) at the end, also on failure."""
    import importlib.util as _ilu
    import sys
    require(_ilu.find_spec("flask") is not None, "Flask is not installed (pip install flask)")
    logs_dir = testdata_dir() / "buildkite" / "logs"
    require(logs_dir.is_dir() and (testdata_dir() / "buildkite" / "build.json").is_file(),
            f"no Buildkite testdata in {testdata_dir()} (set BKLOGFS_TESTDATA)")
    work_dir = Path(work_dir)
    if world is None:
        world = load_fake_buildkite_world().build_world(1, testdata_dir(), **world_kwargs)
    world_path = work_dir / "world.json"
    world_path.write_text(json.dumps(world))
    port_file = work_dir / "port"
    log_path = work_dir / "fake_buildkite.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, str(FAKE_BK_DIR / "server.py"), "--world", str(world_path), "--port", "0",
                             "--port-file", str(port_file), "--exit-on-stdin-close", *map(str, server_args)],
                            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None:
                pytest.fail(f"fake Buildkite server exited with {proc.returncode}: "
                            f"{log_path.read_text(errors='replace')[-2000:]}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail("fake Buildkite server did not start within 20 s", pytrace=False)
            time.sleep(0.05)
        port = int(port_file.read_text().strip())
        yield FakeBuildkite(base_url=f"http://127.0.0.1:{port}", world=world, log_path=log_path)
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        stop_process_group(proc)
        log.close()


@pytest.fixture(scope="session")
def fake_buildkite_session(tmp_path_factory):
    """One fake Buildkite server for the session, with budgets high enough that tests never hit them."""
    with fake_buildkite_process(tmp_path_factory.mktemp("fake-buildkite"),
                                server_args=["--org-rate-limit", "100000", "--user-rate-limit", "100000"]) as fake:
        yield fake


@pytest.fixture
def fake_buildkite(fake_buildkite_session):
    """The session's fake Buildkite server, reset to its world (builds, logs, counters, budgets, faults) first."""
    fake_buildkite_session.control("reset")
    return fake_buildkite_session


def buildkite_source_args(fake, tmp_path):
    """`bklogfs mount`'s arguments for Buildkite's names from the fake, its token in a 0600 file."""
    token_file = tmp_path / "token"
    token_file.write_text(fake.token + "\n")
    token_file.chmod(0o600)
    return ["--api-token-file", str(token_file), "--api-endpoint", fake.api]
