#!/usr/bin/env python3
"""The benchmark of issue 4: bklogfs side by side with s3fs, rclone mount, curl GETs (the physical
limit) and a local copy (the page-cache limit), on one S3 peer and one data set, in one run.

Usually started by scripts/bench, which installs what is missing and builds bklogfs first:

    scripts/bench                          # the full benchmark (5 runs of every workload and system)
    scripts/bench --smoke                  # tiny data, one run, output to a temporary directory
    scripts/bench --systems bklogfs,curl --workloads 1,4 --runs 3
    scripts/bench --network both           # loopback, then the S3-shaped network, a table for each
    scripts/bench --write-doc              # also rewrite doc/BENCHMARKS.md's results and doc/benchmarks.png

What it does, in order: makes (or reuses) the data set (bench/dataset.py), runs the peer's check
(bench/s3peer.py --check, and stock moto's for comparison), starts the peer seeded with the data
set and a proxy in front of it for each network model (bench/latency_proxy.py: the latency proxy
of loopback, and with --network s3 or both the bandwidth-capped one, checked first by
network_check), then for each workload, network model and system does the runs, and writes
results.json, results.md and benchmarks.png (and benchmarks-s3.png with both) to the output
directory. doc/BENCHMARKS.md says what each workload does, what the network models are, and how
each figure is taken. The workloads are issue 4's and workload 10; the targets they are judged by
(evaluate) are issue 16's, some under one network model only, as each workload's `goals` say.
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import dataset  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
REGION = "us-east-1"
# Test credentials for the loopback peer, which accepts any. They go to the tools through the
# environment or files of mode 0600, never on a command line, and are never printed.
ACCESS_KEY = "bench-access-key"
SECRET_KEY = "bench-secret-key"
BUCKET = "bklogfs-bench"
SYSTEMS = ("bklogfs", "s3fs", "rclone", "curl", "local")
FS_SYSTEMS = ("bklogfs", "s3fs", "rclone")
W8_MEMORY_CACHE = "64M"
W8_CACHE_SIZE = "256M"
PARALLEL = 8  # workload 7's readers
NETWORK_LABELS = {"loopback": "loopback", "s3": "S3-shaped network"}
# The network models (issue 16). loopback: the peer on loopback, and the (L) workloads through the
# latency proxy's first-byte delay. s3: every workload through the proxy with S3's first-byte
# delay, a cap on each GET stream and one on them all (the host's network card).
NETWORKS = {
    "loopback": {"caps": lambda args: [],
                 "describe": lambda args: f"{args.delay_ms:g} ms first-byte delay for the (L) workloads"},
    "s3": {"caps": lambda args: ["--stream-mbps", str(args.stream_mbps), "--total-mbps", str(args.total_mbps)],
           "describe": lambda args: (f"every workload: {args.delay_ms:g} ms first-byte delay, {args.stream_mbps:g} MB/s "
                                     f"a stream, {args.total_mbps:g} MB/s in all")},
}
CURL_PARALLEL = 16  # workload 5's curl transfers at once
BOTH = ("loopback", "s3")
MODEL_NAMES = {"loopback": "loopback", "s3": "the S3-shaped network"}
# Issue 16's first target, under both network models: the daemon's CPU seconds (user and system,
# every thread) per GiB the command read through the mount, cold (workloads 1, 7 and 8).
CPU_PER_GIB_TARGET = 0.6
CPU_PER_GIB_WORKLOADS = (1, 7, 8)


def log(msg):
    print(f"bench: {msg}", flush=True)


class BenchError(Exception):
    """A failure that stops one cell (workload x system) with a sentence."""


class RunTimeout(Exception):
    pass


# ------------------------------------------------------------------ processes and mounts


def unescape_mount_field(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounted_paths():
    with open("/proc/mounts", encoding="utf-8", errors="surrogateescape") as f:
        return {unescape_mount_field(line.split()[1]) for line in f if line.strip()}


def is_mounted(path):
    return os.path.abspath(str(path)) in mounted_paths()


def force_unmount(path):
    """fusermount3 -u, then lazily. Never raises; True when nothing is mounted there any more."""
    path = str(path)
    for args in (["fusermount3", "-u", path], ["fusermount3", "-uz", path], ["umount", "-l", path]):
        if not is_mounted(path):
            return True
        with contextlib.suppress(subprocess.TimeoutExpired, FileNotFoundError):
            subprocess.run(args, capture_output=True, timeout=20)
    return not is_mounted(path)


def pids_with_arg(program, arg):
    """Processes running program (by argv[0]'s name, or by /proc/PID/exe) whose argv holds arg. bklogfs
    starts its daemon again as `bklogfs mount ...`, so a binary of another name (BKLOGFS_BIN=/tmp/x)
    is found by its executable."""
    out = []
    want = str(arg).encode()
    real = os.path.realpath(program)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or want not in argv:
            continue
        exe = None
        with contextlib.suppress(OSError):
            exe = os.readlink(f"/proc/{entry}/exe").removesuffix(" (deleted)")
        if os.path.basename(argv[0]) == os.path.basename(program).encode() or exe == real:
            out.append(int(entry))
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def cpu_times(pids):
    """User and system CPU time of the processes (all their threads), in seconds, apart; a process
    that is gone counts nothing. System time is the kernel's work while one of their threads ran,
    including interrupt work the kernel did then (such as a loopback sender's packets)."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(") ", 1)[-1].split()
            user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def cpu_seconds(pids):
    """User and system CPU time of the processes (all their threads), in seconds."""
    return sum(cpu_times(pids))


def wait_until_idle(pids, quiet=0.3, limit=10.0):
    """Waits until the processes have used no CPU for `quiet` seconds (at most `limit` seconds from
    now), and returns how long that took."""
    start = time.monotonic()
    last, since = cpu_seconds(pids), start
    while True:
        time.sleep(0.05)
        now, used = time.monotonic(), cpu_seconds(pids)
        if used != last:
            last, since = used, now
        elif now - since >= quiet or now - start >= limit:
            return round(now - start, 2)


def idle_seconds():
    """Time every core has spent idle (or waiting for I/O) since boot, summed, in seconds."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return (int(fields[4]) + int(fields[5])) / CLOCK_TICKS


def kill_pids(pids, grace=5.0):
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in pids:
        if alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


def proc_status(pid):
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
    except OSError:
        pass
    return fields


def kib_field(status, name):
    value = status.get(name, "0 kB").split()[0]
    return int(value) * 1024


def mapped_files(pid):
    """The regular files a process has mapped (its binary, its libraries)."""
    out = set()
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/") and not parts[5].rstrip().endswith("(deleted)"):
                    out.add(parts[5].rstrip("\n"))
    return out


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(") ", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
    return out


def disk_usage(path):
    """(bytes as du -s counts them: allocated blocks of files and directories, apparent bytes of files)."""
    used = apparent = 0
    stack = [str(path)]
    while stack:
        d = stack.pop()
        try:
            st = os.lstat(d)
            used += st.st_blocks * 512
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        else:
                            st = e.stat(follow_symlinks=False)
                            used += st.st_blocks * 512
                            apparent += st.st_size
                    except OSError:
                        pass
        except OSError:
            pass
    return used, apparent


class Janitor:
    """Everything the bench started or mounted, undone at exit, on failure and on Ctrl-C."""

    def __init__(self):
        self.mounts = []  # (path, pids getter)
        self.procs = []

    def add_proc(self, proc):
        self.procs.append(proc)
        return proc

    def add_mount(self, mount):
        self.mounts.append(mount)

    def cleanup(self):
        for m in list(reversed(self.mounts)):
            with contextlib.suppress(Exception):
                m.force_down()
        for p in reversed(self.procs):
            stop_group(p)


def stop_group(proc, grace=10):
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)


# ------------------------------------------------------------------ servers


def wait_port_file(path, proc, what, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {what} exited with status {proc.returncode}; see its log")
        try:
            port = int(Path(path).read_text().strip())
            return port
        except (OSError, ValueError):
            time.sleep(0.1)
    raise SystemExit(f"bench: {what} did not start within {timeout} s")


class Servers:
    """The seeded S3 peer and the proxies in front of it: the latency proxy of the loopback model
    (for the (L) workloads) and the S3-shaped one (for every workload), as the network models run
    ask for."""

    def __init__(self, janitor, run_dir, data, args, networks):
        self.janitor = janitor
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        peer_port_file = run_dir / "peer.port"
        workers = args.peer_workers
        log(f"starting the S3 peer ({workers} worker{'s' if workers > 1 else ''}), seeded with "
            f"{len(data.manifest['sizes'])} objects")
        self.peer = janitor.add_proc(subprocess.Popen(
            [sys.executable, str(HERE / "s3peer.py"), "--bucket", BUCKET, "--seed-dir", str(data.root),
             "--port-file", str(peer_port_file), "--workers", str(workers)],
            stdout=open(self.logs / "s3peer.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True))
        self.peer_port = wait_port_file(peer_port_file, self.peer, "the S3 peer (bench/s3peer.py)")
        self.delay_ms = args.delay_ms
        self.proxies = {}  # network model: (process, port)
        for network in networks:
            caps = NETWORKS[network]["caps"](args)
            self.proxies[network] = self._start_proxy(network, ["--delay-ms", str(args.delay_ms), *caps])
            log(f"{network} model: proxy on 127.0.0.1:{self.proxies[network][1]} in front of the S3 peer on "
                f"127.0.0.1:{self.peer_port} ({NETWORKS[network]['describe'](args)})")
        self.network = networks[0]

    def _start_proxy(self, network, options):
        port_file = self.logs.parent / f"proxy-{network}.port"
        proc = self.janitor.add_proc(subprocess.Popen(
            [sys.executable, str(HERE / "latency_proxy.py"), "--upstream", f"127.0.0.1:{self.peer_port}",
             "--port-file", str(port_file), *options],
            stdout=open(self.logs / f"latency_proxy-{network}.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True))
        return proc, wait_port_file(port_file, proc, f"the {network} model's proxy (bench/latency_proxy.py)")

    def proxy_pids(self):
        return [proc.pid for proc, _ in self.proxies.values()]

    def endpoint(self, latency):
        """Where the current network model sends a workload: under loopback the (L) workloads through
        the latency proxy and the others to the peer; under s3 every one through the S3 proxy."""
        if self.network == "s3" or latency:
            return f"http://127.0.0.1:{self.proxies[self.network][1]}"
        return f"http://127.0.0.1:{self.peer_port}"

    def proxy_control(self, path):
        port = self.proxies[self.network][1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return json.loads(r.read())

    def _control(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.peer_port}{path}", timeout=30) as r:
            return json.loads(r.read())

    def reset_counters(self):
        self._control("/__reset")

    def peer_pids(self):
        """The peer's processes: the one started and the workers it forked."""
        children = []
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{self.peer.pid}/task"):
                with open(f"/proc/{self.peer.pid}/task/{task}/children") as f:
                    children += [int(p) for p in f.read().split()]
        return [self.peer.pid, *children]

    def counters(self):
        return self._control("/__stats")


# ------------------------------------------------------------------ systems


class Mount:
    """One mount of a FUSE system, at a mountpoint, over an endpoint, with a cache directory."""

    def __init__(self, bench, system, mnt, cache_dir, endpoint, extra):
        self.bench, self.system, self.path, self.cache_dir = bench, system, Path(mnt), Path(cache_dir)
        self.endpoint, self.extra = endpoint, extra
        self.proc = None
        self.pids = []

    def up(self):
        b = self.bench
        self.path.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        logfile = b.run_dir / "logs" / f"{self.system}-{b.next_id()}.log"
        b.janitor.add_mount(self)
        if self.system == "bklogfs":
            args = [b.bklogfs_bin, "mount", str(self.path), "--bucket", BUCKET, "--endpoint", self.endpoint,
                    "--region", REGION, "--cache-dir", str(self.cache_dir), "--log-file", str(logfile),
                    *self.extra, *b.bklogfs_args]
            r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=b.tool_env)
            if r.returncode != 0:
                raise BenchError(f"bklogfs mount failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
            self.pids = pids_with_arg(b.bklogfs_bin, self.path)
        elif self.system == "s3fs":
            opts = ["ro", f"url={self.endpoint}", "use_path_request_style", f"passwd_file={b.s3fs_passwd}",
                    f"use_cache={self.cache_dir}", f"endpoint={REGION}", *self.extra, *b.s3fs_options]
            self.proc = subprocess.Popen(["s3fs", BUCKET, str(self.path), "-f", "-o", ",".join(opts)],
                                         stdout=open(logfile, "wb"), stderr=subprocess.STDOUT,
                                         start_new_session=True, env=b.tool_env)
            self.pids = [self.proc.pid]
        elif self.system == "rclone":
            self.proc = subprocess.Popen(
                ["rclone", "mount", f"bench:{BUCKET}", str(self.path), "--read-only", "--vfs-cache-mode", "full",
                 "--cache-dir", str(self.cache_dir), "--config", str(b.rclone_config),
                 "--s3-endpoint", self.endpoint, "--log-file", str(logfile), "--log-level", "NOTICE", *self.extra,
                 *b.rclone_args],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True, env=b.tool_env)
            self.pids = [self.proc.pid]
        if self.proc is not None:
            deadline = time.monotonic() + 60
            while not is_mounted(self.path):
                if self.proc.poll() is not None:
                    tail = Path(logfile).read_text(errors="replace")[-1500:] if Path(logfile).exists() else ""
                    raise BenchError(f"{self.system} exited with {self.proc.returncode} before mounting: {tail.strip()}")
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.system} did not mount within 60 s")
                time.sleep(0.05)
            os.listdir(self.path)  # answers
        if not is_mounted(self.path):
            raise BenchError(f"{self.system}: {self.path} is not mounted")
        return self

    def daemon_pid(self):
        pids = [p for p in self.pids if alive(p)]
        return pids[0] if pids else None

    def stats(self):
        if self.system != "bklogfs":
            return None
        r = subprocess.run([self.bench.bklogfs_bin, "stats", "--json", str(self.path)], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            return {"error": r.stderr.strip()}
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"error": "unparsable: " + r.stdout[:200]}

    def down(self):
        """Unmount the ordinary way and wait for the daemon to exit."""
        unmounted = True
        if is_mounted(self.path):
            cmd = ([self.bench.bklogfs_bin, "unmount", str(self.path)] if self.system == "bklogfs"
                   else ["fusermount3", "-u", str(self.path)])
            try:
                unmounted = subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
            except subprocess.TimeoutExpired:
                unmounted = False
        deadline = time.monotonic() + (20 if unmounted else 0)
        while any(alive(p) for p in self.pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.force_down()

    def force_down(self):
        kill_pids([p for p in self.pids if alive(p)], grace=5)
        if self.proc is not None:
            stop_group(self.proc, grace=5)
        force_unmount(self.path)
        if self in self.bench.janitor.mounts:
            self.bench.janitor.mounts.remove(self)


# ------------------------------------------------------------------ the bench


class Run:
    """One timed run: its figure, and what was counted."""

    def __init__(self, value, seconds=None, **extra):
        self.value = value
        self.seconds = value if seconds is None else seconds
        self.extra = extra

    def as_dict(self):
        return {"value": self.value, "seconds": self.seconds, **self.extra}


class Bench:
    def __init__(self, args, data, servers, janitor, run_dir):
        self.args, self.data, self.servers, self.janitor, self.run_dir = args, data, servers, janitor, run_dir
        self.bklogfs_bin = args.bklogfs_bin
        self.bklogfs_args = shlex.split(args.bklogfs_args or "")
        self.s3fs_options = [o for o in (args.s3fs_options or "").split(",") if o]
        self.rclone_args = shlex.split(args.rclone_args or "")
        self.timeout = args.run_timeout
        self._ids = 0
        self.can_drop = True
        self.tool_env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                         "AWS_REGION": REGION}
        # The endpoints are plain HTTP on loopback. rclone refuses to start at all when AWS_CA_BUNDLE
        # is set (LoadCustomCABundleError), and this machine's environment sets it.
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE",
                    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            self.tool_env.pop(var, None)
        secrets = run_dir / "secrets"
        secrets.mkdir(mode=0o700, exist_ok=True)
        self.s3fs_passwd = secrets / "s3fs-passwd"
        self.s3fs_passwd.write_text(f"{ACCESS_KEY}:{SECRET_KEY}\n")
        os.chmod(self.s3fs_passwd, 0o600)
        self.rclone_config = secrets / "rclone.conf"
        self.rclone_config.write_text(
            "[bench]\ntype = s3\nprovider = Other\n"
            f"access_key_id = {ACCESS_KEY}\nsecret_access_key = {SECRET_KEY}\nregion = {REGION}\n"
            "force_path_style = true\n")
        os.chmod(self.rclone_config, 0o600)
        self.curl_config = secrets / "curl.conf"
        self.curl_config.write_text(f'user = "{ACCESS_KEY}:{SECRET_KEY}"\naws-sigv4 = "aws:amz:{REGION}:s3"\n'
                                    'silent\nshow-error\nfail\n')
        os.chmod(self.curl_config, 0o600)

    def next_id(self):
        self._ids += 1
        return self._ids

    # ---- helpers

    def drop_caches(self, mount=None):
        """Drops the page cache, dentries and inodes, then reads back the code that runs the
        measurement: the tools' binaries and libraries, and the files mapped by the peer, the proxy
        and the mount's daemon. A cold run should fetch the data cold, not page in grep, curl or the
        daemon's own code from disk."""
        subprocess.run(["sync"], check=False)
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        except OSError:
            self.can_drop = False
            return
        pids = [*self.servers.proxy_pids(), self.servers.peer.pid, *children_of(self.servers.peer.pid)]
        if mount is not None:
            pids += [p for p in mount.pids if alive(p)]
        for path in sorted({f for pid in pids for f in mapped_files(pid)}):
            with contextlib.suppress(OSError), open(path, "rb") as f:
                while f.read(1 << 20):
                    pass
        for tool in ("grep", "cat", "head", "tail", "stat", "find", "du", "wc", "curl", "bash"):
            subprocess.run([tool, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    def url(self, rel, latency):
        return f"{self.servers.endpoint(latency)}/{BUCKET}/{urllib.parse.quote(rel)}"

    def curl(self, *args):
        return ["curl", "-K", str(self.curl_config), *args]

    def timed(self, cmd, *, shell=False, timeout=None, discard=False, watch_memory=False):
        """Runs cmd; returns (seconds, stdout bytes, peak RSS in bytes or None). With discard, stdout
        goes to /dev/null. With watch_memory, the command's VmHWM is sampled every 10 ms (rusage's
        maxrss would report the Python process it was forked from). The command's process group is
        killed and RunTimeout raised when it passes the time budget."""
        timeout = self.timeout if timeout is None else timeout
        with tempfile.TemporaryFile(dir=self.run_dir) as out, tempfile.TemporaryFile(dir=self.run_dir) as err, \
                tempfile.NamedTemporaryFile(dir=self.run_dir) as peak:
            argv = ["bash", "-c", cmd] if shell else cmd
            if watch_memory and GNU_TIME:
                # A command that ends within the first sample (a `cat` of a small file) would show no
                # figure: GNU time reports its peak too, in KiB.
                argv = [GNU_TIME, "-f", "%M", "-o", peak.name, *argv]
            result = {"hwm": 0}
            started = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL if discard else out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

            def reap():
                _, status, _ = os.wait4(proc.pid, 0)
                result["elapsed"] = time.perf_counter() - started
                result["status"] = os.waitstatus_to_exitcode(status)

            def watch():
                while "status" not in result:
                    hwm = kib_field(proc_status(proc.pid), "VmHWM")
                    result["hwm"] = max(result["hwm"], hwm)
                    time.sleep(0.01)

            waiter = threading.Thread(target=reap, daemon=True)
            waiter.start()
            if watch_memory:
                threading.Thread(target=watch, daemon=True).start()
            try:
                waiter.join(timeout)
            except BaseException:  # Ctrl-C or SIGTERM: the command must not outlive the bench
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                raise
            if waiter.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                waiter.join(30)
                proc.returncode = -9
                raise RunTimeout()
            proc.returncode = result["status"]
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
            if watch_memory and GNU_TIME:
                with contextlib.suppress(ValueError, OSError):
                    result["hwm"] = max(result["hwm"], int(open(peak.name).read().split()[-1]) * 1024)
        if result["status"] != 0:
            shown = cmd if shell else " ".join(map(shlex.quote, cmd))
            raise BenchError(f"`{shown}` exited with {result['status']}: {stderr.decode(errors='replace').strip()[-600:]}")
        return result["elapsed"], stdout, (result["hwm"] if watch_memory else None)

    def fresh_cache(self, system):
        cache = self.run_dir / "cache" / system
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        return cache

    def mount(self, system, latency, keep_cache=False, extra=()):
        cache = self.run_dir / "cache" / system
        if not keep_cache:
            cache = self.fresh_cache(system)
        mnt = self.run_dir / "mnt" / system
        if is_mounted(mnt):
            force_unmount(mnt)
        return Mount(self, system, mnt, cache, self.servers.endpoint(latency), list(extra)).up()

    @contextlib.contextmanager
    def mounted(self, system, latency, keep_cache=False, extra=()):
        m = self.mount(system, latency, keep_cache, extra)
        try:
            yield m
        finally:
            m.down()

    def counted(self, fn, mount=None):
        """Resets the peer's counters, runs fn, and returns (fn's result, the counters, bklogfs's stats).
        The counters also say where the cores' time went meanwhile (`cpu`): the mount's daemon, the
        peer's processes, and idle."""
        self.servers.reset_counters()
        daemons = list(mount.pids) if mount is not None else []
        peers = self.servers.peer_pids()
        daemon_before = cpu_times(daemons)
        before = (sum(daemon_before), cpu_seconds(peers), idle_seconds())
        value = fn()
        after = (cpu_seconds(daemons), cpu_seconds(peers), idle_seconds())
        counters = self.servers.counters()
        counters["cpu"] = {name: round(a - b, 3) for name, a, b in zip(("daemon", "peer", "idle"), after, before)}
        if daemons:
            # What the daemon does for the command after it ends (bklogfs's disk-cache writer, an
            # idle-priority thread; s3fs's and rclone's cache files) is part of serving it.
            waited = wait_until_idle(daemons)
            user, system = cpu_times(daemons)
            counters["cpu"]["daemon_at_end"] = counters["cpu"]["daemon"]
            counters["cpu"]["daemon"] = round(user + system - before[0], 3)
            counters["cpu"]["settle_seconds"] = waited
            # the part of it that was the kernel's (the copies into and out of the daemon's memory)
            counters["cpu"]["daemon_system"] = round(system - daemon_before[1], 3)
        stats = mount.stats() if mount is not None else None
        return value, counters, stats

    def check_count(self, got, want, what):
        if got != want:
            raise BenchError(f"wrong result: {what} gave {got}, the local copy has {want}")


def grep_count(stdout):
    return int(stdout.decode().strip().splitlines()[-1])


# ------------------------------------------------------------------ workloads


class Workload:
    number = 0
    title = ""
    latency = False
    unit = "s"
    limit = None  # the system whose figure is the limit for this workload
    goals = ()  # (the network models, what bklogfs must do under them): issue 16's targets

    @property
    def target(self):
        """What is checked under which network model, in one line."""
        parts = []
        for models, text in self.goals:
            where = ("both network models" if set(models) == set(BOTH)
                     else " and ".join(MODEL_NAMES[m] for m in models) + " only")
            parts.append(f"under {where}: {text}")
        parts += [f"under {MODEL_NAMES[m]}: none" for m in BOTH if not any(m in models for models, _ in self.goals)]
        return "; ".join(parts)

    def has_goal(self, network):
        return any(network in models for models, _ in self.goals)

    def target_for(self, network):
        """What is checked under one network model."""
        texts = [text for models, text in self.goals if network in models]
        return f"under {MODEL_NAMES[network]}: " + ("; ".join(texts) if texts else "none")

    def setup(self, b, system):
        return {}

    def run(self, b, system, state):
        raise NotImplementedError

    def teardown(self, b, system, state):
        m = state.get("mount")
        if m is not None:
            m.down()


def timed_fs_or_local(b, system, rel, latency, command, *, drop=True, mount=None, keep_cache=False):
    """A cold run of command(path) on system: a fresh mount (unless one is given), caches dropped,
    counters reset, command timed. Returns (seconds, stdout, counters, stats, maxrss)."""
    if system == "local":
        if drop:
            b.drop_caches()
        t, out, rss = b.timed(command(str(b.data.path(rel))), shell=True)
        return t, out, None, None, rss
    ctx = contextlib.nullcontext(mount) if mount is not None else b.mounted(system, latency, keep_cache)
    with ctx as m:
        if drop:
            b.drop_caches(m)
        (t, out, rss), counters, stats = b.counted(lambda: b.timed(command(str(m.path / rel)), shell=True), m)
        return t, out, counters, stats, rss


def grep_c(path):
    return f"grep -c {dataset.MATCH_WORD} {shlex.quote(str(path))}"


def grep_big_log(b, system, *, drop=True, mount=None, keep_cache=False):
    """`grep -c` of the first big log on a filesystem or the local copy, its count checked."""
    rel = b.data.big[0]
    t, out, counters, stats, _ = timed_fs_or_local(b, system, rel, False, grep_c, drop=drop, mount=mount,
                                                   keep_cache=keep_cache)
    b.check_count(grep_count(out), b.data.matches(rel), "grep -c")
    return Run(t, counters=counters, bklogfs_stats=stats, answer=grep_count(out))


def curl_grep_big_log(b):
    """What a `grep -c` costs without a filesystem's cache: fetch the object again and grep it."""
    rel = b.data.big[0]
    b.drop_caches()
    (t, out, _), counters, _ = b.counted(lambda: b.timed(
        f"{shlex.join(b.curl(b.url(rel, False)))} | grep -c {dataset.MATCH_WORD}", shell=True))
    b.check_count(grep_count(out), b.data.matches(rel), "curl | grep -c")
    return Run(t, counters=counters, answer=grep_count(out))


CPU_GOAL = f"bklogfs's daemon at most {CPU_PER_GIB_TARGET:g} CPU seconds per GiB served"


def with_cpu_per_gib(run, system, served):
    """Adds to a filesystem's run the daemon's CPU seconds per GiB of the `served` bytes the command
    read through the mount (issue 16), the kernel's part of them (its system time per GiB), and
    those bytes."""
    cpu = (run.extra.get("counters") or {}).get("cpu")
    if system in FS_SYSTEMS and cpu is not None:
        run.extra["served_bytes"] = served
        run.extra["cpu_per_gib"] = round(cpu["daemon"] / (served / GiB), 3)
        if "daemon_system" in cpu:
            run.extra["system_cpu_per_gib"] = round(cpu["daemon_system"] / (served / GiB), 3)
    return run


class W1(Workload):
    number, title, limit = 1, "Cold `grep -c` over one {big} log", "curl"
    goals = ((BOTH, CPU_GOAL),
             (("s3",), "bklogfs at least 4x faster than curl's one GET of the object to /dev/null, and at least 2x "
                       "faster than the best of s3fs and rclone"))

    def run(self, b, system, state):
        if system == "curl":
            b.drop_caches()
            url = b.url(b.data.big[0], False)
            (t, _, _), counters, _ = b.counted(lambda: b.timed(b.curl("-o", "/dev/null", url)))
            return Run(t, counters=counters)
        return with_cpu_per_gib(grep_big_log(b, system), system, b.data.size(b.data.big[0]))


class W2(Workload):
    number, title, limit = 2, "Warm `grep -c` of the same {big} log, same mount", "local"
    goals = ((BOTH, "bklogfs within 1.3x of the local copy (page cache warm)"),)

    def setup(self, b, system):
        if system == "local":
            b.timed(grep_c(b.data.path(b.data.big[0])), shell=True)
            return {}
        if system == "curl":
            return {}
        m = b.mount(system, False)
        b.drop_caches(m)
        b.timed(grep_c(m.path / b.data.big[0]), shell=True)  # the first, cold read warms it
        return {"mount": m}

    def run(self, b, system, state):
        if system == "curl":
            return curl_grep_big_log(b)
        return grep_big_log(b, system, drop=False, mount=state.get("mount"))


def floor_args(nbytes):
    """bklogfs's options for a floor's mount (workloads 3 and 7): no disk cache, and a memory cache
    that holds `nbytes` of logs, so that once read every block is served from the daemon's memory."""
    return ["--cache-size", "0", "--memory-cache-size", f"{max(nbytes // MiB + 64, 256)}M"]


class W3(Workload):
    number, title, limit = 3, "Remount, page cache dropped, disk cache warm: `grep -c` of the {big} log", "local"
    goals = ((("loopback",), "bklogfs within 1.5x of the local copy (page cache dropped)"),)

    def setup(self, b, system):
        if system in FS_SYSTEMS:
            with b.mounted(system, False) as m:
                b.timed(f"cat {shlex.quote(str(m.path / b.data.big[0]))} > /dev/null", shell=True)
        return {}

    def run(self, b, system, state):
        if system == "curl":
            return curl_grep_big_log(b)
        result = grep_big_log(b, system, keep_cache=True)
        if system == "bklogfs":
            # The floor of this workload for a FUSE filesystem: the same grep with every block in
            # the daemon's memory (no disk cache, so a sequential read keeps its blocks), so no disk
            # and no network is read, only the FUSE path from the daemon to grep. (The disk cache,
            # off, is left as it is for the next run.)
            with b.mounted(system, False, keep_cache=True, extra=floor_args(b.data.size(b.data.big[0]))) as m:
                b.timed(f"cat {shlex.quote(str(m.path / b.data.big[0]))} > /dev/null", shell=True)
                result.extra["memory_floor_seconds"] = grep_big_log(b, system, mount=m).value
        return result


def ranged_read(b, system, rel, want, curl_range, command):
    """One cold read of part of a log (workloads 4 and 10): curl's one ranged GET (`-r curl_range`),
    `command` on the local copy, or `command` on a fresh mount. curl is handed the key, so the
    filesystem's lookup of the path is an untimed `stat` first, timed and counted apart. The bytes
    read must be `want`."""
    what = shlex.join(command)

    def checked(out, who):
        if out != want:
            raise BenchError(f"wrong result: {who} returned {len(out)} bytes that differ from the local copy")
        return hashlib.sha256(out).hexdigest()

    if system == "curl":
        b.drop_caches()
        (t, out, _), counters, _ = b.counted(lambda: b.timed(b.curl("-r", curl_range, b.url(rel, True))))
        return Run(t, counters=counters, answer=checked(out, f"curl -r {curl_range}"))
    if system == "local":
        b.drop_caches()
        t, out, _ = b.timed([*command, str(b.data.path(rel))])
        return Run(t, answer=checked(out, f"{what} of the local copy"))
    with b.mounted(system, True) as m:
        b.drop_caches(m)
        path = str(m.path / rel)
        (lookup_t, _, _), lookup_counters, _ = b.counted(lambda: b.timed(["stat", "-c", "%s", path]))
        (t, out, _), counters, stats = b.counted(lambda: b.timed([*command, path]), m)
    return Run(t, counters=counters, bklogfs_stats=stats, lookup_seconds=lookup_t, lookup_counters=lookup_counters,
               answer=checked(out, what))


class W4(Workload):
    number, title, latency, limit = 4, "(L) Cold `tail -c 65536` of a {huge} log", True, "curl"
    goals = ((BOTH, "bklogfs at most 2 GETs and 2 MiB transferred, and within 2x of one ranged GET (curl)"),)

    def run(self, b, system, state):
        rel = b.data.huge
        with open(b.data.path(rel), "rb") as f:
            f.seek(-65536, os.SEEK_END)
            want = f.read()
        return ranged_read(b, system, rel, want, "-65536", ["tail", "-c", "65536"])


class W5(Workload):
    number, title, latency = 5, "(L) Cold `grep -r` over {medium_count} logs of {medium} in {medium_builds} builds", True
    goals = ((BOTH, "bklogfs at least 5x faster than the best of s3fs and rclone"),)
    limit = "curl"

    def run(self, b, system, state):
        rel_dir = b.data.medium_dir
        files = b.data.files_under(rel_dir)
        want = b.data.matches_under(rel_dir)
        if system == "curl":
            return curl_fetch_all(b, files)
        t, out, counters, stats, _ = timed_fs_or_local(
            b, system, rel_dir, True, lambda p: f"grep -r -c {dataset.MATCH_WORD} {shlex.quote(p)}")
        lines = out.decode(errors="replace").splitlines()
        got = sum(int(line.rsplit(":", 1)[1]) for line in lines)
        b.check_count(len(lines), len(files), "grep -r -c (files)")
        b.check_count(got, want, "grep -r -c (matching lines)")
        return Run(t, counters=counters, bklogfs_stats=stats, answer=f"{len(lines)} files, {got} lines")


def curl_fetch_all(b, files):
    """What fetching every one of the files costs with no filesystem: {CURL_PARALLEL} curl GETs at once."""
    cfg = b.run_dir / "curl-urls.conf"
    cfg.write_text("".join(f'url = "{b.url(rel, True)}"\noutput = "/dev/null"\n' for rel in files))
    b.drop_caches()
    (t, _, _), counters, _ = b.counted(lambda: b.timed(
        b.curl("--parallel", "--parallel-max", str(CURL_PARALLEL), "-K", str(cfg))))
    if counters["requests"]["GET"] != len(files):
        raise BenchError(f"curl made {counters['requests']['GET']} GETs for {len(files)} objects")
    return Run(t, counters=counters, answer=f"{len(files)} objects")


class W6(Workload):
    number, title, latency = 6, "(L) Cold `find -type f | wc -l` then `du -s` over {small_count} logs", True
    goals = ((BOTH, "bklogfs at least 5x faster than the best of s3fs and rclone, and about one LIST per 1,000 keys"),)
    limit = "curl"

    def run(self, b, system, state):
        rel_dir = b.data.small_dir
        want = len(b.data.files_under(rel_dir))
        if system == "curl":
            b.drop_caches()

            def list_all():
                token, keys, started = None, 0, time.perf_counter()
                while True:
                    query = {"list-type": "2", "prefix": rel_dir + "/"}
                    if token:
                        query["continuation-token"] = token
                    url = f"{b.servers.endpoint(True)}/{BUCKET}?{urllib.parse.urlencode(query)}"
                    _, body, _ = b.timed(b.curl(url))
                    text = body.decode()
                    keys += text.count("<Key>")
                    m = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", text)
                    if not m:
                        return time.perf_counter() - started, keys
                    token = m.group(1)

            (t, keys), counters, _ = b.counted(list_all)
            b.check_count(keys, want, "a paged ListObjectsV2")
            return Run(t, counters=counters, answer=keys)
        cmd = lambda p: f"find {shlex.quote(p)} -type f | wc -l; du -s {shlex.quote(p)}"  # noqa: E731
        t, out, counters, stats, _ = timed_fs_or_local(b, system, rel_dir, True, cmd)
        lines = out.decode().split("\n")
        b.check_count(int(lines[0].strip()), want, "find -type f | wc -l")
        return Run(t, counters=counters, bklogfs_stats=stats, answer=int(lines[0].strip()),
                   du=lines[1].split()[0] if len(lines) > 1 else None)


class W7(Workload):
    number, title, limit = 7, f"{PARALLEL} parallel readers, each `cat` of a different {{big}} log, cold", "curl"
    goals = ((BOTH, CPU_GOAL), (("s3",), f"bklogfs within 1.3x of {PARALLEL} parallel curls (aggregate throughput)"))

    def run(self, b, system, state):
        rels = (b.data.big * PARALLEL)[:PARALLEL]
        total = sum(b.data.size(r) for r in rels)
        if system == "curl":
            curls = all_at_once([shlex.join(b.curl("-o", "/dev/null", b.url(r, False))) for r in rels])
            b.drop_caches()
            (t, _, _), counters, _ = b.counted(lambda: b.timed(curls, shell=True))
            return Run(t, counters=counters, mib_per_s=round(total / MiB / t, 1))

        def script(root):
            return all_at_once([f"cat {shlex.quote(str(Path(root) / r))} > /dev/null" for r in rels])

        if system == "local":
            b.drop_caches()
            t, _, _ = b.timed(script(b.data.root), shell=True)
            return Run(t, mib_per_s=round(total / MiB / t, 1))
        with b.mounted(system, False) as m:
            b.drop_caches(m)
            (t, _, _), counters, stats = b.counted(lambda: b.timed(script(m.path), shell=True), m)
        result = with_cpu_per_gib(Run(t, counters=counters, bklogfs_stats=stats, mib_per_s=round(total / MiB / t, 1)),
                                  system, total)
        if system == "bklogfs":
            # The floor for a FUSE filesystem, as in workload 3: the same cats with every block in
            # the daemon's memory.
            with b.mounted(system, False, extra=floor_args(total)) as m:
                b.timed(script(m.path), shell=True)
                b.drop_caches(m)
                result.extra["memory_floor_seconds"] = b.timed(script(m.path), shell=True)[0]
        return result


def all_at_once(commands):
    """A bash script that starts every command at once and fails if any of them fails."""
    starts = "".join(f"{c} & pids+=($!); " for c in commands)
    return f'pids=(); {starts}for p in "${{pids[@]}}"; do wait "$p" || exit 1; done'


class W8(Workload):
    number, title, unit = 8, "Peak RSS while streaming (`cat`) the {huge} log, cold", "MiB"
    goals = ((BOTH, f"bklogfs (--memory-cache-size {W8_MEMORY_CACHE}, --cache-size {W8_CACHE_SIZE}): peak RSS under "
                    f"{W8_MEMORY_CACHE} + 150 MiB; disk cache never above {W8_CACHE_SIZE} + one 1 MiB block; " + CPU_GOAL),)

    def run(self, b, system, state):
        rel = b.data.huge
        if system == "curl":
            b.drop_caches()
            (t, _, rss), counters, _ = b.counted(
                lambda: b.timed(b.curl("-o", "/dev/null", b.url(rel, False)), watch_memory=True))
            return Run(round(rss / MiB, 1), seconds=t, counters=counters)
        if system == "local":
            b.drop_caches()
            t, _, rss = b.timed(["cat", str(b.data.path(rel))], discard=True, watch_memory=True)
            return Run(round(rss / MiB, 1), seconds=t)
        extra = ["--memory-cache-size", W8_MEMORY_CACHE, "--cache-size", W8_CACHE_SIZE] if system == "bklogfs" else []
        with b.mounted(system, False, extra=extra) as m:
            pid = m.daemon_pid()
            if pid is None:
                raise BenchError(f"no {system} daemon process found for {m.path}")
            b.drop_caches(m)
            samples = {"disk_max": 0, "apparent_max": 0, "rss_max": 0, "own_max": 0, "n": 0}
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    used, apparent = disk_usage(m.cache_dir)
                    rss = kib_field(proc_status(pid), "VmRSS")
                    samples["disk_max"] = max(samples["disk_max"], used)
                    samples["apparent_max"] = max(samples["apparent_max"], apparent)
                    samples["rss_max"] = max(samples["rss_max"], rss)
                    if system == "bklogfs":
                        # bklogfs's own count of its cache files, written and being written: exact,
                        # where a walk of the directory counts a block evicted behind it and its
                        # replacement written ahead of it both.
                        try:
                            cache = json.loads(os.getxattr(m.path, "user.bklogfs.stats"))["cache"]
                            own = cache["disk_bytes_on_disk"]
                            samples["own_max"] = max(samples["own_max"], own)
                        except (OSError, ValueError, KeyError):
                            pass
                    samples["n"] += 1
                    stop.wait(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                (t, _, _), counters, stats = b.counted(
                    lambda: b.timed(f"cat {shlex.quote(str(m.path / rel))} > /dev/null", shell=True), m)
            finally:
                stop.set()
                sampler.join()
            used, apparent = disk_usage(m.cache_dir)
            hwm = kib_field(proc_status(pid), "VmHWM")
        return with_cpu_per_gib(Run(round(hwm / MiB, 1), seconds=t, counters=counters, bklogfs_stats=stats,
                                    disk_cache_max_mib=round(max(samples["disk_max"], used) / MiB, 2),
                                    disk_cache_apparent_max_mib=round(max(samples["apparent_max"], apparent) / MiB, 2),
                                    disk_cache_own_max_mib=round(samples["own_max"] / MiB, 2),
                                    rss_sampled_max_mib=round(samples["rss_max"] / MiB, 1), samples=samples["n"]),
                                system, b.data.size(rel))


class W9(Workload):
    number, title, latency = 9, "(L) `sha256sum -c` of a manifest of the {medium_count} logs, fresh mount", True
    goals = ((BOTH, "bklogfs within 1.5x of the same `sha256sum -c` after a `find` listed the tree, and about one LIST "
                    "per 1,000 keys"),)
    limit = "local"

    def setup(self, b, system):
        # The manifest names each log by its path under the mount, in key order, as `find | sort`
        # or a build's artifact list would.
        files = sorted(b.data.files_under(b.data.medium_dir))
        manifest = b.run_dir / "w9-SHA256SUMS"
        manifest.write_text("".join(f"{hashlib.sha256(b.data.path(rel).read_bytes()).hexdigest()}  {rel}\n"
                                    for rel in files))
        return {"files": files, "manifest": manifest}

    def run(self, b, system, state):
        files, manifest = state["files"], state["manifest"]
        if system == "curl":
            return curl_fetch_all(b, files)
        command = f"sha256sum -c --quiet {shlex.quote(str(manifest))}"
        if system == "local":
            b.drop_caches()
            t, out, _ = b.timed(f"cd {shlex.quote(str(b.data.root))} && {command}", shell=True)
            return Run(t, answer=f"{len(files)} files")
        with b.mounted(system, True) as m:
            b.drop_caches(m)
            (t, out, _), counters, stats = b.counted(
                lambda: b.timed(f"cd {shlex.quote(str(m.path))} && {command}", shell=True), m)
        if out.strip():
            raise BenchError(f"sha256sum -c reported: {out.decode(errors='replace')[:200]}")
        result = Run(t, counters=counters, bklogfs_stats=stats, answer=f"{len(files)} files")
        if system == "bklogfs":
            # The limit: the same on a fresh mount where `find` listed the tree first (untimed).
            with b.mounted(system, True) as m:
                b.timed(["find", str(m.path / b.data.medium_dir), "-type", "f"])
                b.drop_caches(m)
                (t, _, _), counters, _ = b.counted(
                    lambda: b.timed(f"cd {shlex.quote(str(m.path))} && {command}", shell=True), m)
            result.extra["after_find_seconds"] = t
            result.extra["after_find_counters"] = counters
        return result


HEAD_BYTES = 1000  # workload 10's


class W10(Workload):
    number, title, latency, limit = 10, f"(L) Cold `head -c {HEAD_BYTES}` of a {{big}} log", True, "curl"
    goals = ((BOTH, f"bklogfs within 1.2x of one ranged GET of the first {HEAD_BYTES} bytes (curl)"),)

    def run(self, b, system, state):
        rel = b.data.big[0]
        with open(b.data.path(rel), "rb") as f:
            want = f.read(HEAD_BYTES)
        return ranged_read(b, system, rel, want, f"0-{HEAD_BYTES - 1}", ["head", "-c", str(HEAD_BYTES)])


WORKLOADS = {w.number: w for w in (W1(), W2(), W3(), W4(), W5(), W6(), W7(), W8(), W9(), W10())}


def size_text(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def title_for(wl, spec):
    """The workload's title with the data set's sizes (the smoke data set's are smaller)."""
    return wl.title.format(big=size_text(spec.big_size), huge=size_text(spec.huge_size),
                           medium=size_text(spec.medium_size), medium_count=f"{spec.medium_count:,}",
                           medium_builds=spec.medium_builds, small_count=f"{spec.small_count:,}")


# ------------------------------------------------------------------ running cells


def summarize(runs, unit):
    values = [r["value"] for r in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def run_cell(b, wl, system, runs, network="loopback"):
    cell = {"workload": wl.number, "system": system, "unit": wl.unit, "runs": [], "timed_out": False, "error": None}
    under = "" if network == "loopback" else f" ({network} network)"
    log(f"workload {wl.number}, {system}{under}: {runs} run{'s' if runs > 1 else ''}")
    state = {}
    try:
        state = wl.setup(b, system) or {}
        for i in range(runs):
            r = wl.run(b, system, state)
            cell["runs"].append(r.as_dict())
            shown = f"{r.value:.3f} s" if wl.unit == "s" else f"{r.value} {wl.unit} ({r.seconds:.2f} s)"
            log(f"  run {i + 1}: {shown}")
    except RunTimeout:
        cell["timed_out"] = True
        done = len(cell["runs"])
        cell["note"] = (f"a run took over {b.timeout:g} s; stopped after {done} complete run{'s' if done != 1 else ''} "
                        f"and skipped the rest")
        log(f"  over the {b.timeout:g} s budget: skipping the remaining runs")
    except BenchError as e:
        cell["error"] = str(e)
        log(f"  FAILED: {e}")
    finally:
        try:
            wl.teardown(b, system, state)
        except Exception as e:  # noqa: BLE001 - a failed teardown must not hide the cell's result
            log(f"  teardown: {e}")
        for m in list(b.janitor.mounts):
            m.force_down()
    if cell["runs"]:
        cell.update(summarize(cell["runs"], wl.unit))
    return cell


# ------------------------------------------------------------------ machine and report


def first_line(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def machine_info(args):
    info = {"cpu": None, "cores": os.cpu_count(), "memory_gib": None, "kernel": platform.release(), "os": None}
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
    with contextlib.suppress(OSError):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip().strip('"')
    try:
        import moto

        moto_version = moto.__version__
    except ImportError:
        moto_version = None
    commit = first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    checkout = f"{commit}{' (with uncommitted changes)' if dirty else ''}" if commit else None
    if checkout and not Path(args.bklogfs_bin).resolve().is_relative_to(REPO_ROOT / ".build"):
        # A binary from elsewhere (BKLOGFS_BIN) was not necessarily built from this checkout: its hash says which it is.
        with open(args.bklogfs_bin, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        checkout = f"a binary from outside the checkout (sha256 {digest[:16]}); the checkout is at {checkout}"
    info["versions"] = {
        "bklogfs": checkout,
        "bklogfs_binary": args.bklogfs_bin,
        "s3fs": first_line(["s3fs", "--version"]) if shutil.which("s3fs") else None,
        "rclone": first_line(["rclone", "version"]) if shutil.which("rclone") else None,
        "curl": first_line(["curl", "--version"]),
        "moto": moto_version,
        "python": platform.python_version(),
        "grep": first_line(["grep", "--version"]),
    }
    return info


def peer_check(args):
    """The peer's --check, and stock moto's for comparison (skipped with --no-stock-check)."""
    out = {}
    for stock in ([False] if args.no_stock_check else [False, True]):
        cmd = [sys.executable, str(HERE / "s3peer.py"), "--check", "--json"]
        if stock:
            cmd.append("--stock")
        label = "stock" if stock else "patched"
        log(f"peer check ({'stock moto' if stock else 'bench/s3peer.py'})")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            out[label] = {"error": (r.stderr or r.stdout).strip()[-800:]}
        else:
            out[label] = json.loads(r.stdout)
    return out


# The S3 model's caps (issue 16). One S3 GET stream delivers about 90 MB/s. The total stands for
# the host's network card: 10 Gb/s (1,250 MB/s) is more than this 2-core machine carries through
# the proxy while the peer, the filesystem and the reader share its cores (8 uncapped GETs of
# 160 MiB through the proxy alone moved 1,170-1,980 MB/s in eight tries, 2026-12-05), and 8
# streams at 90 MB/s would never reach it; 500 MB/s (4 Gb/s) is well inside what the machine
# carries, and below 8 x 90 MB/s, so 8 GETs at once are held by it and the check sees it hold.
S3_STREAM_MBPS = 90.0
S3_TOTAL_MBPS = 500.0
CHECK_BYTES = 160 * MiB  # one GET of the S3 model's check (4 MiB with --smoke)
SMOKE_CHECK_BYTES = 4 * MiB
SMOKE_CHECK_MBPS = 20.0
STREAM_TOLERANCE = 0.15
TOTAL_TOLERANCE = 0.20


def network_check(b, args):
    """The S3 model's own check (issue 16), on the S3 proxy, before any workload runs under it: one
    GET of 160 MiB must take size / stream rate + the first-byte delay (within 15%), and PARALLEL
    GETs at once must together reach the total cap, or what the machine carries through the proxy
    with no cap if that is lower (within 20%). Every figure under the model stands on these, so a
    miss stops the run (SystemExit). With --smoke, only that pacing is in effect: a GET of 4 MiB at
    20 MB/s a stream, and PARALLEL of them under a 20 MB/s total, take at least 90% of their
    paced time."""
    saved, b.servers.network = b.servers.network, "s3"
    try:
        return (smoke_network_check if args.smoke else full_network_check)(b, args)
    finally:
        b.servers.proxy_control(f"/__bandwidth?stream={args.stream_mbps:g}&total={args.total_mbps:g}")
        b.servers.network = saved


def timed_gets(b, nbytes, count):
    """Seconds for count GETs at once of the first nbytes of the huge log, through the S3 proxy."""
    url = b.url(b.data.huge, True)
    get = shlex.join(b.curl("-r", f"0-{nbytes - 1}", "-o", "/dev/null", url))
    return b.timed(all_at_once([get] * count), shell=True)[0]


def full_network_check(b, args):
    nbytes = CHECK_BYTES
    log(f"S3 model check: {PARALLEL} GETs of {nbytes // MiB} MiB at once with no cap, then one and "
        f"{PARALLEL} at once with the caps")
    b.servers.proxy_control("/__bandwidth?stream=0&total=0")
    uncapped = PARALLEL * nbytes / timed_gets(b, nbytes, PARALLEL) / 1e6
    b.servers.proxy_control(f"/__bandwidth?stream={args.stream_mbps:g}&total={args.total_mbps:g}")
    one = timed_gets(b, nbytes, 1)
    together = PARALLEL * nbytes / timed_gets(b, nbytes, PARALLEL) / 1e6
    one_expected = nbytes / (args.stream_mbps * 1e6) + args.delay_ms / 1000
    together_expected = min(args.total_mbps, uncapped, PARALLEL * args.stream_mbps)
    check = {"object_bytes": nbytes, "parallel": PARALLEL, "uncapped_mbps": round(uncapped),
             "one_get_s": round(one, 3), "one_get_expected_s": round(one_expected, 3),
             "parallel_mbps": round(together), "parallel_expected_mbps": round(together_expected)}
    log(f"  no cap: {uncapped:.0f} MB/s; one GET {one:.3f} s (expected {one_expected:.3f} s); "
        f"{PARALLEL} at once {together:.0f} MB/s (expected {together_expected:.0f} MB/s)")
    misses = []
    if abs(one / one_expected - 1) > STREAM_TOLERANCE:
        misses.append(f"one GET of {nbytes // MiB} MiB took {one:.3f} s, not {one_expected:.3f} s "
                      f"(± {STREAM_TOLERANCE:.0%})")
    if abs(together / together_expected - 1) > TOTAL_TOLERANCE:
        misses.append(f"{PARALLEL} GETs at once moved {together:.0f} MB/s, not {together_expected:.0f} MB/s "
                      f"(± {TOTAL_TOLERANCE:.0%})")
    if misses:
        raise SystemExit("bench: the S3 network model is off, so every figure under it would be wrong: "
                         + "; ".join(misses) + ". Is the machine busy? (bench/latency_proxy.py paces the bodies.)")
    return check


def smoke_network_check(b, args):
    nbytes, mbps = SMOKE_CHECK_BYTES, SMOKE_CHECK_MBPS
    log(f"S3 model check (smoke): pacing of {nbytes // MiB} MiB GETs at {mbps:g} MB/s")
    b.servers.proxy_control(f"/__bandwidth?stream={mbps:g}&total=0")
    one = timed_gets(b, nbytes, 1)
    b.servers.proxy_control(f"/__bandwidth?stream=0&total={mbps:g}")
    together = timed_gets(b, nbytes, PARALLEL)
    one_floor, together_floor = 0.9 * nbytes / (mbps * 1e6), 0.9 * PARALLEL * nbytes / (mbps * 1e6)
    check = {"smoke": True, "object_bytes": nbytes, "parallel": PARALLEL, "smoke_mbps": mbps,
             "one_get_s": round(one, 3), "parallel_s": round(together, 3)}
    log(f"  one GET {one:.3f} s (at least {one_floor:.3f} s); {PARALLEL} at once {together:.3f} s "
        f"(at least {together_floor:.3f} s)")
    if one < one_floor or together < together_floor:
        raise SystemExit(f"bench: the S3 network model's proxy does not pace: one GET of {nbytes // MiB} MiB at "
                         f"{mbps:g} MB/s took {one:.3f} s, {PARALLEL} under a {mbps:g} MB/s total {together:.3f} s")
    return check


def fmt_value(v, unit):
    if unit == "s":
        if v >= 100:
            return f"{v:.0f} s"
        if v >= 1:
            return f"{v:.2f} s"
        return f"{v * 1000:.0f} ms" if v >= 0.01 else f"{v * 1000:.1f} ms"
    return f"{v:.0f} {unit}" if v >= 100 else f"{v:.1f} {unit}"


def cell_text(cell, unit, timeout):
    if cell is None:
        return "—"
    if cell.get("skipped"):
        return "not run"
    parts = []
    if cell.get("runs"):
        lo, hi = cell["min"], cell["max"]
        rng = f" [{fmt_value(lo, unit)}–{fmt_value(hi, unit)}]" if cell["n"] > 1 else ""
        parts.append(f"{fmt_value(cell['median'], unit)}{rng}")
    if cell.get("timed_out"):
        parts.append(f"> {timeout:g} s" + (f" ({cell['n']} runs done)" if cell.get("runs") else ""))
    if cell.get("error"):
        parts.append("failed")
    return "; ".join(parts) if parts else "—"


def ratio(a, b):
    if not a or not b or not a.get("runs") or not b.get("runs") or b["median"] == 0:
        return None
    return a["median"] / b["median"]


def median_run(cell):
    """The run whose figure is the median (the upper one of an even number), as the tables show."""
    runs = cell["runs"]
    return sorted(runs, key=lambda r: r["value"])[len(runs) // 2]


def evaluate(results, wl, config, network="loopback"):
    """Whether bklogfs met the workload's target under the network model: (text, met). met is True when
    every part of the target was judged and met, False when a part was missed, None when a part had no
    figure to judge (or the workload has no target under the model)."""
    cells = results.get(wl.number, {})
    bk = cells.get("bklogfs")
    if not bk or not bk.get("runs"):
        return "no bklogfs figure", None
    s3 = network == "s3"
    checks = []  # (text, met) of each part

    def within(factor, other):
        r = ratio(bk, cells.get(other))
        if r is None:
            return f"no {other} figure", None
        return f"bklogfs / {other} = {r:.2f} (target ≤ {factor:g})", r <= factor

    def faster(factor, other):
        r = ratio(cells.get(other), bk)
        if r is None:
            return f"no {other} figure", None
        return f"{other} / bklogfs = {r:.2f} (target ≥ {factor:g})", r >= factor

    def faster_than_rivals(factor):
        rivals = [c for s in ("s3fs", "rclone") if (c := cells.get(s)) and (c.get("runs") or c.get("timed_out"))]
        if not rivals:
            return "no s3fs or rclone figure", None
        # a rival that ran out of time counts as the time budget, and its ratio as a lower bound
        best, bound = min((c["median"], False) if c.get("runs") and not c.get("timed_out")
                          else (config["run_timeout"], True) for c in rivals)
        r = best / bk["median"]
        return f"best of s3fs, rclone / bklogfs = {'≥ ' if bound else ''}{r:.1f} (target ≥ {factor:g})", r >= factor

    def cpu_per_gib():
        run = median_run(bk)
        value = run.get("cpu_per_gib")
        if value is None:
            return "no CPU figure", None
        kernel = run.get("system_cpu_per_gib")
        return (f"daemon {value:.2f} CPU s per GiB served ({run['counters']['cpu']['daemon']:.2f} s for "
                f"{run['served_bytes'] / GiB:.3g} GiB"
                + ("" if kernel is None else f"; the kernel's part {kernel:.2f} s per GiB")
                + f"; target ≤ {CPU_PER_GIB_TARGET:g})"), value <= CPU_PER_GIB_TARGET

    def list_bound(count, keys, allowed):
        if count is None:
            return "no LIST count", None
        return f"{count} LISTs for {keys} keys (target ≤ {allowed})", count <= allowed

    if wl.number in CPU_PER_GIB_WORKLOADS:
        checks.append(cpu_per_gib())
    if wl.number == 1 and s3:
        checks += [faster(4, "curl"), faster_than_rivals(2)]
    if wl.number == 2:
        checks.append(within(1.3, "local"))
    if wl.number == 3 and not s3:
        checks.append(within(1.5, "local"))
    if wl.number == 4:
        checks.append(within(2, "curl"))
        counters = median_run(bk).get("counters") or {}
        gets, nbytes = counters.get("requests", {}).get("GET"), counters.get("body_bytes")
        checks.append(("no request counters", None) if gets is None else
                      (f"{gets} GET{'s' if gets != 1 else ''}, {nbytes / MiB:.2f} MiB (target ≤ 2, ≤ 2 MiB)",
                       gets <= 2 and nbytes <= 2 * MiB))
    if wl.number in (5, 6):
        checks.append(faster_than_rivals(5))
    if wl.number == 6:
        keys = config["small_count"]
        # one a 1,000 keys, plus one for each level above the builds
        # One a 1,000 keys, one for each level above the builds, and one for every two ranges of about
        # 4,000 keys listed ahead at once (issue 13), whose last pages stop short: about half a page each.
        checks.append(list_bound((median_run(bk).get("counters") or {}).get("requests", {}).get("LIST"), keys,
                                 -(-keys // 1000) + 4 + -(-keys // 8000)))
    if wl.number == 7 and s3:
        checks.append(within(1.3, "curl"))
    if wl.number == 8:
        mem = parse_size(W8_MEMORY_CACHE) / MiB
        cache = parse_size(W8_CACHE_SIZE) / MiB
        rss = max(r["value"] for r in bk["runs"])
        disk = max(r.get("disk_cache_max_mib", 0) for r in bk["runs"])
        apparent = max(r.get("disk_cache_apparent_max_mib", 0) for r in bk["runs"])
        own = max(r.get("disk_cache_own_max_mib", 0) for r in bk["runs"])
        # du's walk is not a snapshot: with blocks evicted behind it and written ahead of it, it counts
        # both; bklogfs's own count (files written and being written, under one lock) is exact.
        checks.insert(0, (f"peak RSS {rss:.0f} MiB (target < {mem + 150:.0f}); disk cache files at most {own:.1f} MiB "
                          f"by bklogfs's own count (target ≤ {cache + 1:.0f}); a walk of the directory while it "
                          f"changes counted at most {disk:.1f} MiB by du, {apparent:.1f} MiB of file sizes",
                          rss < mem + 150 and own <= cache + 1))
    if wl.number == 9:
        after = [r["after_find_seconds"] for r in bk["runs"] if r.get("after_find_seconds") is not None]
        if not after:
            checks.append(("no figure after a find", None))
        else:
            r = bk["median"] / statistics.median(after)
            checks.append((f"fresh / after a find = {r:.2f} (target ≤ 1.5; after a find "
                           f"{statistics.median(after):.2f} s)", r <= 1.5))
        keys = config["medium_count"]
        # a page a 1,000 keys and one to finish the build it stopped in, plus the first lookups
        checks.append(list_bound((median_run(bk).get("counters") or {}).get("requests", {}).get("LIST"), keys,
                                 2 * -(-keys // 1000) + 4))
    if wl.number == 10:
        checks.append(within(1.2, "curl"))
        counters = median_run(bk).get("counters") or {}
        gets, nbytes = counters.get("requests", {}).get("GET"), counters.get("body_bytes")
        if gets is not None:  # shown, not bounded
            checks.append((f"{gets} GET{'s' if gets != 1 else ''}, {nbytes / MiB:.2f} MiB", True))
    if not checks:
        return f"no target under {MODEL_NAMES[network]}", None
    mets = [met for _, met in checks]
    return "; ".join(text for text, _ in checks), (False if False in mets else None if None in mets else True)


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    s = s.strip().upper().rstrip("B").rstrip("I")
    return int(float(s[:-1]) * units[s[-1]]) if s[-1] in units else int(s)


def report_title(report, n):
    entry = report["workloads"].get(n) or report["workloads"].get(str(n))
    return entry["title"] if entry else WORKLOADS[n].title


def network_results(report):
    """{network model: {workload: {system: cell}}}, in the order they ran."""
    networks = report["config"].get("networks") or ["loopback"]
    out = {networks[0]: report["results"]}
    if "results_s3" in report:
        out["s3"] = report["results_s3"]
    return {network: {int(k): v for k, v in results.items()} for network, results in out.items()}


def chart_file(network, first):
    return "benchmarks.png" if first else f"benchmarks-{network}.png"


def render_markdown(report):
    cfg = report["config"]
    lines = []
    m = report["machine"]
    lines.append(f"Run on {report['date']} with `{report['command']}`.")
    lines.append("")
    lines.append(f"- Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB RAM, "
                 f"Linux {m.get('kernel')}, {m.get('os')}")
    v = m["versions"]
    lines.append(f"- bklogfs {v.get('bklogfs')}; {v.get('s3fs') or 's3fs: not installed'}; "
                 f"{v.get('rclone') or 'rclone: not installed'}; {v.get('curl')}; moto {v.get('moto')}; "
                 f"Python {v.get('python')}")
    lines.append(f"- Data set `{cfg['dataset']}`: {cfg['data_summary']}")
    lines.append(f"- {cfg['runs']} run{'s' if cfg['runs'] != 1 else ''} of each figure (median [min–max]); "
                 f"latency proxy delay {cfg['delay_ms']:g} ms for the (L) workloads; time budget "
                 f"{cfg['run_timeout']:g} s a run; page cache dropped: {'yes' if cfg['page_cache_dropped'] else 'NO (not root)'}")
    extra_flags = [f"{name} `{cfg[key]}`" for name, key in (("bklogfs mount", "bklogfs_args"),
                   ("s3fs -o", "s3fs_options"), ("rclone mount", "rclone_args")) if cfg.get(key)]
    if extra_flags:
        lines.append("- Extra flags: " + "; ".join(extra_flags))
    if report.get("skipped_systems"):
        for s, why in report["skipped_systems"].items():
            lines.append(f"- {s}: {why}")
    pc = report.get("peer_check", {})
    for label in ("patched", "stock"):
        c = pc.get(label)
        if not c:
            continue
        if "error" in c:
            lines.append(f"- Peer check ({label}): failed: {c['error']}")
            continue
        r = c["results"]
        keys = [k for k in r if k.startswith("LIST 1000")]
        lines.append(
            f"- Peer check, {c['peer']}, {c['object_bytes'] // MiB} MiB object: whole GET "
            f"{r['whole object']['median_ms']:.0f} ms, 1 MiB range {r['1 MiB range']['median_ms']:.1f} ms, 1-byte range "
            f"{r['1-byte range']['median_ms']:.1f} ms, 64 KiB suffix {r['64 KiB suffix range']['median_ms']:.1f} ms"
            + (f", {keys[0]} keys {r[keys[0]]['median_ms']:.0f} ms" if keys else ""))
    networks = cfg.get("networks") or ["loopback"]
    if "s3" in networks:
        lines.append("- Network models: " + "; ".join(f"{NETWORK_LABELS[n]} ({NETWORKS[n]['describe'](argparse.Namespace(**cfg))})"
                                                       for n in networks))
    nc = report.get("network_check")
    if nc and nc.get("smoke"):
        lines.append(f"- S3 model check (smoke, pacing only): one GET of {nc['object_bytes'] // MiB} MiB at "
                     f"{nc['smoke_mbps']:g} MB/s a stream {nc['one_get_s']:.3f} s; {nc['parallel']} at once under "
                     f"{nc['smoke_mbps']:g} MB/s in all {nc['parallel_s']:.3f} s")
    elif nc:
        lines.append(f"- S3 model check, {nc['object_bytes'] // MiB} MiB GETs through the proxy: {nc['parallel']} at once "
                     f"with no cap {nc['uncapped_mbps']:,} MB/s (what this machine carries); with the caps one took "
                     f"{nc['one_get_s']:.3f} s (expected {nc['one_get_expected_s']:.3f} s) and {nc['parallel']} at once "
                     f"moved {nc['parallel_mbps']:,} MB/s (expected {nc['parallel_expected_mbps']:,} MB/s)")
    for i, (network, results) in enumerate(network_results(report).items()):
        if len(networks) > 1:
            lines.append("")
            lines.append(f"**{NETWORK_LABELS[network].capitalize()}**: {NETWORKS[network]['describe'](argparse.Namespace(**cfg))}.")
        lines += render_tables(report, results, network)
        lines.append(f"![benchmark chart, {NETWORK_LABELS[network]}]({chart_file(network, i == 0)})"
                     if len(networks) > 1 else "![benchmark chart](benchmarks.png)")
    return "\n".join(lines) + "\n"


def render_tables(report, results, network="loopback"):
    """The tables of one network model's results, and the notes under them."""
    cfg = report["config"]
    systems = [s for s in SYSTEMS if any(s in cells for cells in results.values())]
    lines = []
    lines.append("")
    header = "| workload | " + " | ".join(systems) + " | target under this network model (issue 16) | met |"
    lines.append(header)
    lines.append("|" + "---|" * (len(systems) + 3))
    notes = []
    for n in sorted(results):
        wl = WORKLOADS[n]
        cells = results[n]
        bk = cells.get("bklogfs")
        row = [f"{n}. {report_title(report, n)}"]
        for s in systems:
            c = cells.get(s)
            text = cell_text(c, wl.unit, cfg["run_timeout"])
            ratios = []
            if c and s != "bklogfs" and bk and (r := ratio(c, bk)) is not None:
                ratios.append(f"{r:.2f}× bklogfs")
            if c and s in FS_SYSTEMS and wl.limit and (r := ratio(c, cells.get(wl.limit))) is not None:
                ratios.append(f"{r:.2f}× {wl.limit}")
            if ratios:
                text += "<br>" + ", ".join(ratios)
            if c and c.get("error"):
                notes.append(f"{n}/{s}: {c['error']}")
            if c and c.get("note"):
                notes.append(f"{n}/{s}: {c['note']}")
            row.append(text)
        text, met = evaluate(results, wl, cfg, network)
        row.append(f"{wl.target_for(network)}: {text}" if text and wl.has_goal(network) else wl.target_for(network))
        row.append({True: "yes", False: "**no**", None: "n/a"}[met])
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines.append("")
    # requests
    lines.append("Requests the S3 peer answered during the timed command (median run): GET / LIST / HEAD, and "
                 "response body bytes.")
    lines.append("")
    lines.append("| workload | " + " | ".join(s for s in systems if s != "local") + " |")
    lines.append("|" + "---|" * (len([s for s in systems if s != "local"]) + 1))
    for n in sorted(results):
        row = [str(n)]
        for s in systems:
            if s == "local":
                continue
            c = results[n].get(s)
            if not c or not c.get("runs"):
                row.append("—")
                continue
            k = median_run(c).get("counters")
            if not k:
                row.append("—")
                continue
            q = k["requests"]
            row.append(f"{q['GET']} / {q['LIST']} / {q['HEAD']}, {k['body_bytes'] / MiB:.1f} MiB")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    # where the cores' time went
    lines.append(f"Where the {os.cpu_count()} cores' time went during the timed command (median run), in CPU "
                 "seconds: the filesystem's daemon / the S3 peer / idle. The rest went to the command itself "
                 "(grep, cat, curl), the latency proxy and the kernel's own threads.")
    lines.append("")
    cpu_systems = [s for s in systems if s not in ("local",)]
    lines.append("| workload | " + " | ".join(cpu_systems) + " |")
    lines.append("|" + "---|" * (len(cpu_systems) + 1))
    for n in sorted(results):
        row = [str(n)]
        for s in cpu_systems:
            c = results[n].get(s)
            runs = (c or {}).get("runs") or []
            cpu = ((median_run(c) if runs else {}).get("counters") or {}).get("cpu")
            row.append("—" if not cpu else
                       f"{'—' if s == 'curl' else format(cpu.get('daemon_at_end', cpu['daemon']), '.2f')} / {cpu['peer']:.2f} / "
                       f"{cpu['idle']:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    # CPU per GiB (issue 16)
    cpu_rows = [n for n in CPU_PER_GIB_WORKLOADS if n in results]
    fs_systems = [s for s in FS_SYSTEMS if s in systems]
    if cpu_rows and fs_systems:
        lines.append(f"CPU seconds per GiB served: the filesystem's daemon's CPU seconds (user and system) from the start "
                     f"of the timed command until the daemon has used none for 0.3 s after it (what it does for the "
                     f"command once the command has ended, such as bklogfs's disk-cache writer, counts), over the GiB "
                     f"the command read through the mount, cold; in parentheses the CPU seconds themselves, counted "
                     f"in clock ticks of {1 / CLOCK_TICKS * 1000:g} ms, and after the semicolon the kernel's part "
                     f"(system time: the copies into and out of the daemon's memory, the files it writes, and "
                     f"interrupt work that ran in its threads) in CPU seconds per GiB (median run). "
                     f"bklogfs's target is at most {CPU_PER_GIB_TARGET:g} under both network models.")
        lines.append("")
        lines.append("| workload | GiB served | " + " | ".join(fs_systems) + " |")
        lines.append("|" + "---|" * (len(fs_systems) + 2))
        for n in cpu_rows:
            row, served = [f"{n}. {report_title(report, n)}"], None
            for s in fs_systems:
                c = results[n].get(s)
                run = median_run(c) if c and c.get("runs") else {}
                if run.get("cpu_per_gib") is None:
                    row.append("—")
                    continue
                served = run["served_bytes"]
                kernel = run.get("system_cpu_per_gib")
                row.append(f"{run['cpu_per_gib']:.2f} ({run['counters']['cpu']['daemon']:.2f} s"
                           + ("" if kernel is None else f"; kernel {kernel:.2f}") + ")")
            row.insert(1, "—" if served is None else f"{served / GiB:.3g}")
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        lines.append("")
    extra = {}
    for n in (4, 10):
        for s in FS_SYSTEMS:
            c = results.get(n, {}).get(s)
            if c and c.get("runs"):
                lk = [r.get("lookup_seconds") for r in c["runs"] if r.get("lookup_seconds") is not None]
                lc = c["runs"][0].get("lookup_counters", {}).get("requests", {})
                if lk:
                    extra.setdefault(n, []).append(f"{s} {fmt_value(statistics.median(lk), 's')} ({lc.get('LIST', 0)} "
                                                   f"LIST, {lc.get('HEAD', 0)} HEAD, {lc.get('GET', 0)} GET)")
    if extra:
        lines.append("Workloads 4 and 10 time `tail` and `head` after an untimed `stat` of the file, as curl is handed "
                     "the key; the cold `stat` of the 4-level path took, "
                     + "; ".join(f"before workload {n}'s `{'tail' if n == 4 else 'head'}`: " + ", ".join(parts)
                                 for n, parts in extra.items()) + ".")
        lines.append("")
    floors = []
    for n, what, limit in ((3, "the same `grep -c`", "local"), (7, f"the same {PARALLEL} `cat`s", "curl")):
        runs = (results.get(n, {}).get("bklogfs") or {}).get("runs") or []
        values = [r["memory_floor_seconds"] for r in runs if r.get("memory_floor_seconds") is not None]
        if not values:
            continue
        floor = statistics.median(values)
        limit_runs = (results.get(n, {}).get(limit) or {}).get("runs") or []
        versus = (f" ({floor / statistics.median(r['value'] for r in limit_runs):.2f}× "
                  f"{'the local copy' if limit == 'local' else limit})" if limit_runs else "")
        floors.append(f"workload {n}, {what}: {fmt_value(floor, 's')}{versus}")
    if floors:
        lines.append("The floor of a FUSE read on this machine: bklogfs with every block already in the daemon's memory "
                     "(`--cache-size 0`, a memory cache that holds the logs, an untimed first read, then the page cache "
                     "dropped), so that neither disk nor network is read, only FUSE's path from the daemon to the "
                     "readers (median of the runs): " + "; ".join(floors) + ".")
        lines.append("")
    w8 = results.get(8, {})
    extra = []
    for s in FS_SYSTEMS:
        c = w8.get(s)
        if c and c.get("runs"):
            extra.append(f"{s}: disk cache at most {max(r.get('disk_cache_max_mib', 0) for r in c['runs']):.1f} MiB "
                         f"(apparent {max(r.get('disk_cache_apparent_max_mib', 0) for r in c['runs']):.1f} MiB), "
                         f"{statistics.median(r['seconds'] for r in c['runs']):.2f} s")
    if extra:
        lines.append("Workload 8, sampled every 50 ms while streaming: " + "; ".join(extra) + ". s3fs and rclone run "
                     "with their default cache limits.")
        lines.append("")
    if notes:
        lines.append("Notes:")
        lines.append("")
        for note in notes:
            lines.append(f"- {note}")
        lines.append("")
    return lines


def load_pyplot():
    """matplotlib.pyplot drawing to files, or None (and a line saying so) when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install matplotlib): no chart")
        return None
    return plt


def render_chart(report, path, results, network=None):
    """The chart of one network model's results (named in the title when the run had two)."""
    plt = load_pyplot()
    if plt is None:
        return False
    cfg = report["config"]
    colors = {"bklogfs": "#1f77b4", "s3fs": "#ff7f0e", "rclone": "#2ca02c", "curl": "#7f7f7f", "local": "#bcbd22"}
    nums = sorted(results)
    cols = min(4, len(nums))
    rows = -(-len(nums) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(nums):]:
        ax.axis("off")
    for ax, n in zip(axes.flat, nums):
        wl = WORKLOADS[n]
        names, medians, los, his, hatches = [], [], [], [], []
        for s in SYSTEMS:
            c = results[n].get(s)
            if not c or (not c.get("runs") and not c.get("timed_out")):
                continue
            names.append(s)
            if c.get("runs") and not c.get("timed_out"):
                medians.append(c["median"])
                los.append(c["median"] - c["min"])
                his.append(c["max"] - c["median"])
                hatches.append("")
            else:
                medians.append(cfg["run_timeout"])
                los.append(0)
                his.append(0)
                hatches.append("//")
        bars = ax.bar(names, medians, yerr=[los, his], capsize=3, color=[colors[s] for s in names])
        for bar, hatch, med in zip(bars, hatches, medians):
            bar.set_hatch(hatch)
            ax.annotate(("> " if hatch else "") + fmt_value(med, wl.unit), (bar.get_x() + bar.get_width() / 2, med),
                        ha="center", va="bottom", fontsize=7)
        ax.set_title(f"{n}. {report_title(report, n)}".replace("`", ""), fontsize=8, wrap=True)
        ax.set_ylabel("peak RSS, MiB" if wl.unit == "MiB" else "seconds (lower is better)", fontsize=7)
        ax.tick_params(labelsize=7)
    shown = f"{NETWORK_LABELS[network]}, " if network else ""
    fig.suptitle(f"bklogfs benchmark ({shown}{cfg['dataset']} data set, median of {cfg['runs']}, min–max bars)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


DOC_BEGIN = "<!-- BEGIN GENERATED RESULTS: scripts/bench --write-doc rewrites this part -->"
DOC_END = "<!-- END GENERATED RESULTS -->"


def rewrite_doc(begin, end, markdown, chart, chart_name):
    """Replaces what stands between the markers begin and end in doc/BENCHMARKS.md with markdown, and
    doc/CHART_NAME with chart (when there is one)."""
    doc = REPO_ROOT / "doc" / "BENCHMARKS.md"
    text = doc.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"bench: {doc} has no markers {begin}; not rewriting it")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(head + begin + "\n\n" + markdown + "\n" + end + tail)
    if chart and chart.exists():
        shutil.copyfile(chart, REPO_ROOT / "doc" / chart_name)
    log(f"wrote {doc} and doc/{chart_name}")


def write_doc(markdown, charts):
    """charts: the rendered charts, the first model's first; each is copied to doc/ by its name."""
    rewrite_doc(DOC_BEGIN, DOC_END, markdown, charts[0] if charts else None, "benchmarks.png")
    for chart in charts[1:]:
        shutil.copyfile(chart, REPO_ROOT / "doc" / chart.name)


# ------------------------------------------------------------------ main


def parse_list(text, allowed, what):
    if not text:
        return list(allowed)
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        value = int(item) if isinstance(next(iter(allowed)), int) else item
        if value not in allowed:
            raise SystemExit(f"bench: unknown {what} {item!r}; choose from {', '.join(map(str, allowed))}")
        out.append(value)
    return out


def default_bklogfs_bin():
    env = os.environ.get("BKLOGFS_BIN")
    if env:
        return env
    return str(REPO_ROOT / ".build" / "release" / "bklogfs")


def require_binary_and_fuse(binary, who):
    """Exits saying why when the bklogfs binary or FUSE is missing."""
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"{who}: no bklogfs binary at {binary} (build it with `swift build -c release`, "
                         f"or pass --bklogfs-bin)")
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        raise SystemExit(f"{who}: FUSE is not usable here (/dev/fuse and fusermount3 are needed)")


def output_dirs(args, kind, results):
    """(--cache-root, the output directory, a new directory for the run's mounts and caches in the
    cache root). The output directory is --out, else a temporary one with --smoke, else
    CACHE_ROOT/RESULTS-DATE."""
    cache_root = Path(args.cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.out:
        out_dir = Path(args.out)
    elif args.smoke:
        out_dir = Path(tempfile.mkdtemp(prefix=f"bklogfs-{kind}-smoke-"))
    else:
        out_dir = cache_root / f"{results}-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    return cache_root, out_dir, Path(tempfile.mkdtemp(prefix=f"{kind}-run-", dir=cache_root))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data, one run, 5 ms latency, output to a temporary directory")
    parser.add_argument("--runs", type=int, help="runs of each figure (default 5; 1 with --smoke)")
    parser.add_argument("--systems", help=f"comma-separated, from {','.join(SYSTEMS)} (default: all installed)")
    parser.add_argument("--workloads", help=f"comma-separated numbers, from 1-{max(WORKLOADS)} (default: all)")
    parser.add_argument("--only", help="comma-separated WORKLOAD:SYSTEM cells, e.g. 1:bklogfs,4:curl")
    parser.add_argument("--network", choices=("loopback", "s3", "both"), default="loopback",
                        help="the network model: loopback (the (L) workloads through the latency proxy, the others "
                             "straight to the peer), s3 (every workload through an S3-shaped proxy: first-byte delay, "
                             "a cap a stream and one in all), or both, one after the other for each workload "
                             "(default loopback)")
    parser.add_argument("--delay-ms", type=float,
                        help="the proxy's first-byte delay for (L) workloads, and for every one under s3 "
                             "(default 20; 5 with --smoke)")
    parser.add_argument("--stream-mbps", type=float, default=S3_STREAM_MBPS,
                        help=f"under s3, the cap on each GET's body in MB/s (default {S3_STREAM_MBPS:g})")
    parser.add_argument("--total-mbps", type=float, default=S3_TOTAL_MBPS,
                        help=f"under s3, the cap on all bodies at once in MB/s (default {S3_TOTAL_MBPS:g})")
    parser.add_argument("--run-timeout", type=float, help="a run's time budget in seconds (default 300; 60 with --smoke)")
    parser.add_argument("--bklogfs-bin", default=default_bklogfs_bin(),
                        help="the bklogfs binary (default: $BKLOGFS_BIN, else .build/release/bklogfs)")
    parser.add_argument("--bklogfs-args", default="", help="extra `bklogfs mount` flags, one shell-quoted string")
    parser.add_argument("--s3fs-options", default="", help="extra s3fs -o options, comma-separated")
    parser.add_argument("--rclone-args", default="", help="extra `rclone mount` flags, one shell-quoted string")
    parser.add_argument("--cache-root", default=os.environ.get("BENCH_CACHE_ROOT", "/var/tmp/bklogfs-bench"),
                        help="where the data set is kept between runs, and the run's mounts and caches live")
    parser.add_argument("--out", help="output directory (default: CACHE_ROOT/results-DATE, or a temporary one with --smoke)")
    parser.add_argument("--write-doc", action="store_true", help="also rewrite doc/BENCHMARKS.md's results and doc/benchmarks.png")
    parser.add_argument("--peer-workers", type=int, default=2, help="forked S3 peer processes (default 2)")
    parser.add_argument("--no-peer-check", action="store_true", help="skip the peer's check (not the S3 model's)")
    parser.add_argument("--no-stock-check", action="store_true", help="skip stock moto's check (default with --smoke)")
    args = parser.parse_args(argv)

    spec = dataset.SMOKE if args.smoke else dataset.FULL
    args.runs = args.runs or (1 if args.smoke else 5)
    args.delay_ms = args.delay_ms if args.delay_ms is not None else (5.0 if args.smoke else 20.0)
    args.run_timeout = args.run_timeout or (60.0 if args.smoke else 300.0)
    if args.smoke:
        args.no_stock_check = True
    if args.runs < 1:
        raise SystemExit("bench: --runs must be at least 1")
    if args.stream_mbps <= 0 or args.total_mbps <= 0:
        raise SystemExit("bench: --stream-mbps and --total-mbps must be above 0 (the loopback model has no caps)")
    networks = ["loopback", "s3"] if args.network == "both" else [args.network]

    workloads = parse_list(args.workloads, tuple(WORKLOADS), "workload")
    systems = parse_list(args.systems, SYSTEMS, "system")
    only = None
    if args.only:
        only = set()
        for pair in args.only.split(","):
            w, _, s = pair.partition(":")
            if not w.strip().isdigit() or int(w) not in WORKLOADS or s.strip() not in SYSTEMS:
                raise SystemExit(f"bench: --only wants WORKLOAD:SYSTEM pairs like 1:bklogfs, not {pair!r}")
            only.add((int(w), s.strip()))
        workloads = sorted({w for w, _ in only})
        systems = [s for s in SYSTEMS if any(s == x for _, x in only)]

    skipped = {}
    for tool in ("s3fs", "rclone"):
        if tool in systems and not shutil.which(tool):
            skipped[tool] = f"not installed (apt-get install {tool}): left out"
            systems.remove(tool)
    if not shutil.which("curl") and "curl" in systems:
        skipped["curl"] = "not installed: left out"
        systems.remove("curl")
    if any(s in systems for s in FS_SYSTEMS):
        if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
            raise SystemExit("bench: FUSE is not usable here (/dev/fuse and fusermount3 are needed)")
    if "bklogfs" in systems and not os.access(args.bklogfs_bin, os.X_OK):
        raise SystemExit(f"bench: no bklogfs binary at {args.bklogfs_bin} (build it with `swift build -c release`, "
                         f"or pass --bklogfs-bin)")

    cache_root, out_dir, run_dir = output_dirs(args, "bench", "results")

    janitor = Janitor()

    def on_signal(signum, frame):
        raise KeyboardInterrupt()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a background job ignores it
        signal.signal(signum, on_signal)
    started = time.monotonic()
    report = None
    try:
        data = dataset.ensure(cache_root, spec, log=log)
        checks = {} if args.no_peer_check else peer_check(args)
        servers = Servers(janitor, run_dir, data, args, networks)
        b = Bench(args, data, servers, janitor, run_dir)
        network_checked = network_check(b, args) if "s3" in networks else None
        by_network = {network: {} for network in networks}
        for n in workloads:
            wl = WORKLOADS[n]
            for network in networks:
                servers.network = network
                for s in systems:
                    if only is not None and (n, s) not in only:
                        continue
                    by_network[network].setdefault(n, {})[s] = run_cell(b, wl, s, args.runs, network)
        results = by_network[networks[0]]
        m = data.manifest
        summary = (f"{len(m['sizes'])} logs, {m['total_bytes'] / MiB:.0f} MiB: {spec.big_count} of "
                   f"{spec.big_size / MiB:g} MiB, 1 of {spec.huge_size / MiB:g} MiB, {spec.medium_count} of "
                   f"{spec.medium_size / 1024:g} KiB in {spec.medium_builds} builds, {spec.small_count} of "
                   f"{spec.small_min // 1024}–{spec.small_max // 1024} KiB in {spec.small_builds} builds")
        command = os.environ.get("BENCH_COMMAND") or " ".join(map(shlex.quote, ["bench/run.py", *sys.argv[1:]]))
        report = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command,
            "machine": machine_info(args),
            "config": {"dataset": spec.name, "data_summary": summary, "runs": args.runs, "delay_ms": args.delay_ms,
                       "networks": networks, "stream_mbps": args.stream_mbps, "total_mbps": args.total_mbps,
                       "run_timeout": args.run_timeout, "peer_workers": args.peer_workers,
                       "bklogfs_args": args.bklogfs_args, "s3fs_options": args.s3fs_options,
                       "rclone_args": args.rclone_args, "page_cache_dropped": b.can_drop,
                       "small_count": spec.small_count, "medium_count": spec.medium_count, "match_word": dataset.MATCH_WORD,
                       "w8_memory_cache": W8_MEMORY_CACHE, "w8_cache_size": W8_CACHE_SIZE},
            "peer_check": checks,
            "network_check": network_checked,
            "skipped_systems": skipped,
            "workloads": {n: {"title": title_for(WORKLOADS[n], spec), "target": WORKLOADS[n].target,
                              "targets": {network: WORKLOADS[n].target_for(network) for network in networks},
                              "unit": WORKLOADS[n].unit, "latency": WORKLOADS[n].latency, "limit": WORKLOADS[n].limit}
                          for n in workloads},
            "results": results,
            "elapsed_s": None,
        }
        if "s3" in networks[1:]:
            report["results_s3"] = by_network["s3"]
        for network in networks:
            suffix = "" if network == networks[0] else f"_{network}"
            for n in workloads:
                text, met = evaluate(by_network[network], WORKLOADS[n], report["config"], network)
                report["workloads"][n][f"target_result{suffix}"] = {"text": text, "met": met}
    except KeyboardInterrupt:
        log("interrupted: unmounting and stopping servers")
        return 130
    finally:
        janitor.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    (out_dir / "results.json").write_text(json.dumps(report, indent=2))
    markdown = render_markdown(report)
    (out_dir / "results.md").write_text(markdown)
    charts = []
    for i, (network, model_results) in enumerate(network_results(report).items()):
        chart = out_dir / chart_file(network, i == 0)
        if render_chart(report, chart, model_results, network if len(networks) > 1 else None):
            charts.append(chart)
    log(f"done in {report['elapsed_s']} s; results in {out_dir} (results.json, results.md"
        f"{''.join(', ' + c.name for c in charts)})")
    print()
    print(markdown)
    if args.write_doc:
        write_doc(markdown, charts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
