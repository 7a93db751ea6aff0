#!/usr/bin/env python3
"""The scale run of issue 13: how long bklogfs takes to walk a whole archive of 10^5, 10^6, 10^7
keys, with how many requests, and how much memory its daemon holds while and after it walks.

Usually started by scripts/bench, which builds bklogfs (release) first:

    scripts/bench --scale                              # 10^5, 10^6 and 10^7 keys, 20 ms per request
    scripts/bench --scale --scale-keys 1e5,1e6         # only these sizes
    scripts/bench --scale-smoke                        # 10^4 keys, no added latency, with --rsync (what CI runs)
    scripts/bench --scale --rsync                      # also `rsync -a --dry-run` of each tree, after the find
    scripts/bench --scale --write-doc                  # also rewrite the doc's scale results and doc/scale.png

For each size it starts bench/synthetic_s3.py with that many keys (Buildkite's archive layout,
generated on demand), bench/latency_proxy.py in front of it (--delay-ms, default 20: every answer's
first byte leaves no earlier than that after its request), mounts bklogfs on the proxy with a
fresh cache, and times `find MOUNT -type f | wc -l` (the count must be the number of keys). It
records the server's request counters (LIST, GET, HEAD), the daemon's peak RSS (VmHWM) and RSS
after the walk, and its RSS after the kernel forgot the mount's dentries and inodes (`sync; echo 2 >
/proc/sys/vm/drop_caches`, then --settle seconds, default 5). A walk whose daemon grows past
--max-rss (default: three quarters of the memory available when the run starts) is stopped and
recorded as such. Writes results.json, results.md and scale.png to --out.
"""

import argparse
import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from run import (  # noqa: E402
    REGION,
    Janitor,
    alive,
    default_bklogfs_bin,
    force_unmount,
    is_mounted,
    kib_field,
    kill_pids,
    load_pyplot,
    machine_info,
    output_dirs,
    pids_with_arg,
    proc_status,
    require_binary_and_fuse,
    rewrite_doc,
    stop_group,
    wait_port_file,
)
from synthetic_s3 import DEFAULT_BUCKET, World, parse_count  # noqa: E402

MiB = 1 << 20
ACCESS_KEY = "scale-access-key"
SECRET_KEY = "scale-secret-key"
DOC_BEGIN = "<!-- BEGIN SCALE RESULTS: scripts/bench --scale --write-doc rewrites this part -->"
DOC_END = "<!-- END SCALE RESULTS -->"
TARGET_SECONDS = {10**6: 30, 10**7: 300}  # issue 13's targets for a walk at 20 ms a request
TARGET_PEAK_RSS = 256 * MiB


def log(msg):
    print(f"scale: {msg}", flush=True)


def available_memory():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def start(janitor, argv, logfile, port_file, what):
    proc = janitor.add_proc(subprocess.Popen(argv, stdout=open(logfile, "wb"), stderr=subprocess.STDOUT,
                                             start_new_session=True))
    return proc, wait_port_file(port_file, proc, what, timeout=120)


def control(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
        return json.loads(r.read())


def drop_dentries_and_inodes():
    """sync; echo 2 > /proc/sys/vm/drop_caches. False without the right to."""
    subprocess.run(["sync"], check=False)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")
        return True
    except OSError:
        return False


class ScaleMount:
    """A bklogfs mount in the shape bench/run.py's Janitor undoes."""

    def __init__(self, binary, path):
        self.binary, self.path, self.pids = binary, Path(path), []

    def force_down(self):
        kill_pids([p for p in self.pids if alive(p)], grace=5)
        force_unmount(self.path)


def walk(args, janitor, run_dir, keys):
    """One size: servers up, mount, timed find, memory, all down. Returns the row."""
    world = World(keys, args.jobs, args.builds_per_pipeline)
    row = {"keys": keys, "pipelines": world.pipelines, "builds_per_pipeline": world.builds, "jobs": world.jobs,
           "delay_ms": args.delay_ms}
    here = run_dir / f"{keys}"
    (here / "logs").mkdir(parents=True)
    log(f"{keys:,} keys ({world.pipelines} pipeline{'s' if world.pipelines != 1 else ''} of {world.builds:,} "
        f"builds of {world.jobs} jobs), {args.delay_ms:g} ms a request")
    server, server_port = start(
        janitor, [sys.executable, str(HERE / "synthetic_s3.py"), "--keys", str(keys), "--jobs", str(args.jobs),
                  "--builds-per-pipeline", str(args.builds_per_pipeline), "--workers", str(args.server_workers),
                  "--port-file", str(here / "server.port")],
        here / "logs" / "synthetic_s3.log", here / "server.port", "the synthetic S3 server (bench/synthetic_s3.py)")
    proxy = None
    endpoint_port = server_port
    try:
        if args.delay_ms > 0:
            proxy, endpoint_port = start(
                janitor, [sys.executable, str(HERE / "latency_proxy.py"), "--upstream", f"127.0.0.1:{server_port}",
                          "--port-file", str(here / "proxy.port"), "--delay-ms", str(args.delay_ms)],
                here / "logs" / "latency_proxy.log", here / "proxy.port", "the latency proxy (bench/latency_proxy.py)")
        mnt = here / "mnt"
        mnt.mkdir()
        m = ScaleMount(args.bklogfs_bin, mnt)
        janitor.add_mount(m)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION=REGION)
        r = subprocess.run([args.bklogfs_bin, "mount", str(mnt), "--bucket", DEFAULT_BUCKET, "--endpoint",
                            f"http://127.0.0.1:{endpoint_port}", "--region", REGION, "--cache-dir", str(here / "cache"),
                            "--log-file", str(here / "logs" / "bklogfs.log"), *shlex.split(args.bklogfs_args)],
                           capture_output=True, text=True, timeout=120, env=env)
        if r.returncode != 0 or not is_mounted(mnt):
            row["error"] = f"bklogfs mount failed ({r.returncode}): {(r.stderr or r.stdout).strip()}"
            return row
        m.pids = pids_with_arg(args.bklogfs_bin, mnt)
        if len(m.pids) != 1:
            row["error"] = f"expected one bklogfs daemon for {mnt}, found {m.pids}"
            return row
        pid = m.pids[0]
        control(server_port, "/__reset")
        row["rss_at_mount"] = kib_field(proc_status(pid), "VmRSS")
        row["heap_at_mount"] = daemon_stats(args, mnt).get("heap_bytes")
        load = os.getloadavg()[0]
        row.update(timed_find(args, mnt, pid, keys))
        # The machine may be shared: how busy it was says how far to trust the time.
        row["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        row["requests"] = control(server_port, "/__stats")["requests"]
        status = proc_status(pid)
        row["peak_rss"] = kib_field(status, "VmHWM")
        row["rss_after_walk"] = kib_field(status, "VmRSS")
        after_walk = daemon_stats(args, mnt)
        row["names_after_walk"] = after_walk.get("cached_names")
        row["heap_after_walk"] = after_walk.get("heap_bytes")
        if drop_dentries_and_inodes():
            time.sleep(args.settle)
            row["rss_after_drop"] = kib_field(proc_status(pid), "VmRSS")
        else:
            row["rss_after_drop"] = None
            row["note"] = "not root: the kernel's dentries and inodes were not dropped"
        if args.rsync:
            row.update(timed_rsync(args, mnt, pid, here, keys))
        row["bklogfs_stats"] = daemon_stats(args, mnt)
        subprocess.run([args.bklogfs_bin, "unmount", str(mnt)], capture_output=True, timeout=120)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        m.force_down()
        janitor.mounts.remove(m)
        return row
    finally:
        for p in (proxy, server):
            if p is not None:
                stop_group(p)
                janitor.procs.remove(p)


def daemon_stats(args, mnt):
    """`bklogfs stats` of the mount, as a dict (empty if it could not be read)."""
    stats = subprocess.run([args.bklogfs_bin, "stats", "--json", str(mnt)], capture_output=True, text=True, timeout=60)
    with contextlib.suppress(ValueError):
        return json.loads(stats.stdout)
    return {}


def timed_find(args, mnt, pid, keys):
    """Times `find MNT -type f | wc -l`, stopping it when the daemon passes --max-rss or the run
    its time budget."""
    return timed_walk(args, pid, keys, f"find {shlex.quote(str(mnt))} -type f | wc -l", "find")


def timed_rsync(args, mnt, pid, here, keys):
    """Times `rsync -a --dry-run` of the whole tree (after the find: its names are then known, or
    evicted), with the daemon's peak RSS during it alone (the high-water mark reset first, as root)."""
    target = here / "rsync-target"
    target.mkdir()
    reset = False
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        reset = True
    command = (f"rsync -a --dry-run --out-format=%n {shlex.quote(str(mnt))}/ {shlex.quote(str(target))}/"
               f" | grep -c '[.]log$'")
    result = timed_walk(args, pid, keys, command, "rsync -a --dry-run")
    out = {"rsync_seconds": result["seconds"]}
    if "error" in result:
        out["rsync_error"] = result["error"]
    out["rsync_peak_rss"] = kib_field(proc_status(pid), "VmHWM") if reset else None
    return out


def timed_walk(args, pid, keys, command, what):
    """Times a shell command that prints the number of files it saw, as timed_find says."""
    proc = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    stopped = {}

    def watch():
        while proc.poll() is None:
            rss = kib_field(proc_status(pid), "VmRSS")
            if rss > args.max_rss:
                stopped["why"] = f"the daemon's RSS passed {args.max_rss / MiB:,.0f} MiB"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                return
            time.sleep(0.5)

    started = time.perf_counter()
    threading.Thread(target=watch, daemon=True).start()
    try:
        out, err = proc.communicate(timeout=args.run_timeout)
    except subprocess.TimeoutExpired:
        stopped["why"] = f"the walk took over {args.run_timeout:g} s"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if "why" in stopped:
        log(f"  stopped: {stopped['why']} after {seconds:.1f} s")
        return {"seconds": round(seconds, 2), "error": f"stopped: {stopped['why']}"}
    count = int(out.strip() or -1) if proc.returncode == 0 else None
    log(f"  {what}: {count} files in {seconds:.1f} s")
    if count != keys:
        return {"seconds": round(seconds, 2), "count": count,
                "error": f"{what} counted {count} files, the bucket has {keys}: {err.decode(errors='replace')[-300:]}"}
    return {"seconds": round(seconds, 2), "count": count}


# ------------------------------------------------------------------ the report


def mib(n):
    return "–" if n is None else f"{n / MiB:,.0f} MiB"


def render_markdown(report):
    cfg = report["config"]
    m = report["machine"]
    rsync = any("rsync_seconds" in row for row in report["results"])
    lines = [f"Run on {report['date']} with `{report['command']}`, binary of commit "
             f"`{m['versions']['bklogfs']}`, on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB), "
             f"{m['os']}, kernel {m['kernel']}. "
             + (f"Latency proxy: {cfg['delay_ms']:g} ms a request; " if cfg["delay_ms"] else "No latency proxy; ") +
             f"{cfg['jobs']} jobs a build, at most {cfg['builds_per_pipeline']:,} builds a pipeline; "
             f"{cfg['server_workers']} server processes.", "",
             "| keys | layout | `find -type f` | LIST | GET | HEAD | peak RSS | RSS after the walk | "
             "after `drop_caches` | names held after the walk | RSS per name held | heap per name held |"
             + (" `rsync -a --dry-run` | its peak RSS |" if rsync else ""),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
             + (" --- | --- |" if rsync else "")]
    for row in report["results"]:
        layout = f"{row['pipelines']} × {row['builds_per_pipeline']:,} × {row['jobs']}"
        if row.get("metadata_cache_names"):
            layout += f", `--metadata-cache-names {row['metadata_cache_names']:,}`"
        if row.get("error") and "requests" not in row:
            lines.append(f"| {row['keys']:,} | {layout} | {row['error']} | | | | | | | | |")
            continue
        req = row.get("requests", {})
        walk = (f"{row['seconds']:,.0f} s" if row["seconds"] >= 100 else f"{row['seconds']:.1f} s") \
            if not row.get("error") else row["error"]
        # What the names the daemon holds cost: its RSS after the walk less its RSS once mounted.
        held = row.get("names_after_walk")
        per_name = (f"{(row['rss_after_walk'] - row['rss_at_mount']) / held:,.0f}"
                    if held and row.get("rss_after_walk") and row.get("rss_at_mount") else "–")
        # The same over the heap in use (`heap_bytes` of `bklogfs stats`), which leaves out the
        # freed memory glibc keeps for reuse: what the names and the listings kept around them take.
        heap_per_name = (f"{(row['heap_after_walk'] - row['heap_at_mount']) / held:,.0f}"
                         if held and row.get("heap_after_walk") and row.get("heap_at_mount") else "–")
        line = (f"| {row['keys']:,} | {layout} | {walk} | {req.get('LIST', 0):,} | {req.get('GET', 0):,} | "
                f"{req.get('HEAD', 0):,} | {mib(row.get('peak_rss'))} | {mib(row.get('rss_after_walk'))} | "
                f"{mib(row.get('rss_after_drop'))} | {held if held is None else f'{held:,}'} | {per_name} | {heap_per_name} |")
        if rsync:
            rs = row.get("rsync_seconds")
            line += (f" {row.get('rsync_error') or (f'{rs:.1f} s' if rs is not None else '–')} |"
                     f" {mib(row.get('rsync_peak_rss'))} |")
        lines.append(line)
    if report.get("skipped") or report.get("per_name") or any(
            r.get("note") or r.get("load_average") for r in report["results"]):
        lines.append("")
    for skipped in report.get("skipped", []):
        lines.append(f"- {skipped}")
    cost = report.get("per_name")
    if cost:
        heap = f" and {cost['heap_bytes']:,.0f} bytes of heap" if cost.get("heap_bytes") is not None else ""
        lines.append(f"- One more name held costs {cost['rss_bytes']:,.0f} bytes of RSS{heap} (from "
                     f"{cost['names_from']:,} to {cost['names_to']:,} names held)")
    notes = [f"{r['keys']:,} keys: {r['note']}" for r in report["results"] if r.get("note")]
    notes += [f"{r['keys']:,} keys: load average {r['load_average'][0]:g} before the walk, "
              f"{r['load_average'][1]:g} after it ({report['machine']['cores']} cores)"
              for r in report["results"] if r.get("load_average")]
    for note in notes:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def render_chart(report, path):
    plt = load_pyplot()
    if plt is None:
        return False
    if report.get("per_name") is not None or any(r.get("metadata_cache_names") for r in report["results"]):
        return False  # walks of one size: nothing to draw against keys
    rows = [r for r in report["results"] if not r.get("error")]
    # A walk stopped for its time or memory: what it had reached when stopped, marked apart.
    stopped = [r for r in report["results"] if str(r.get("error", "")).startswith("stopped") and r.get("peak_rss")]
    if not rows and not stopped:
        return False
    keys = [r["keys"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(keys, [r["seconds"] for r in rows], "o-", color="#1f77b4", label="bklogfs")
    if stopped:
        left.plot([r["keys"] for r in stopped], [r["seconds"] for r in stopped], "^", color="#1f77b4",
                  mfc="none", label="bklogfs, stopped unfinished")
        right.plot([r["keys"] for r in stopped], [r["peak_rss"] / MiB for r in stopped], "^", color="#d62728",
                   mfc="none", label="peak RSS when stopped")
    targets = sorted(TARGET_SECONDS.items())
    left.plot([k for k, _ in targets], [s for _, s in targets], "x--", color="#7f7f7f", label="issue 13's target")
    left.set_ylabel("seconds")
    left.set_title(f"find -type f ({report['config']['delay_ms']:g} ms a request)", fontsize=9)
    right.plot(keys, [r["peak_rss"] / MiB for r in rows], "o-", color="#d62728", label="peak RSS")
    drop = [(r["keys"], r["rss_after_drop"] / MiB) for r in rows if r.get("rss_after_drop")]
    if drop:
        right.plot([k for k, _ in drop], [v for _, v in drop], "s--", color="#ff7f0e", label="RSS after drop_caches")
    right.axhline(TARGET_PEAK_RSS / MiB, color="#7f7f7f", linestyle=":", label="target peak (256 MiB)")
    right.set_ylabel("MiB")
    right.set_title("the daemon's memory", fontsize=9)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("keys")
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    fig.suptitle("bklogfs over a synthetic archive (bench/synthetic_s3.py)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_doc(markdown, chart):
    rewrite_doc(DOC_BEGIN, DOC_END, markdown + "\n![scale chart](scale.png)\n", chart, "scale.png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--scale", action="store_true", help="(what scripts/bench passes on; changes nothing)")
    parser.add_argument("--smoke", "--scale-smoke", action="store_true",
                        help="10^4 keys, no added latency, output to a temporary directory")
    parser.add_argument("--keys", "--scale-keys", help="comma-separated sizes (default 1e5,1e6,1e7)")
    parser.add_argument("--delay-ms", type=float, help="the proxy's delay (default 20; 0 with --smoke: no proxy)")
    parser.add_argument("--jobs", type=int, default=20, help="jobs per build (default 20)")
    parser.add_argument("--builds-per-pipeline", type=int, default=100_000, help="default 100,000")
    parser.add_argument("--server-workers", type=int, default=2, help="synthetic server processes (default 2)")
    parser.add_argument("--run-timeout", type=float, default=1800, help="a walk's time budget in seconds")
    parser.add_argument("--max-rss", type=parse_count,
                        help="stop a walk whose daemon's RSS passes this many bytes (default: 3/4 of MemAvailable)")
    parser.add_argument("--settle", type=float, default=5, help="seconds between drop_caches and reading RSS")
    parser.add_argument("--bklogfs-bin", default=default_bklogfs_bin(),
                        help="the bklogfs binary (default: $BKLOGFS_BIN, else .build/release/bklogfs)")
    parser.add_argument("--bklogfs-args", default="", help="extra `bklogfs mount` flags, one shell-quoted string")
    parser.add_argument("--name-capacities", metavar="N,M",
                        help="walk the first size once with each of these --metadata-cache-names and report what "
                             "one more name held costs: the difference in RSS and in heap after the walks over the "
                             "difference in names held (fixed costs, such as listings kept ahead, cancel out)")
    parser.add_argument("--rsync", action="store_true",
                        help="after the find, also time `rsync -a --dry-run` of the tree and the daemon's peak RSS "
                             "during it")
    parser.add_argument("--cache-root", default=os.environ.get("BENCH_CACHE_ROOT", "/var/tmp/bklogfs-bench"),
                        help="where the run's mounts and caches live")
    parser.add_argument("--out",
                        help="output directory (default: CACHE_ROOT/scale-DATE, or a temporary one with --smoke)")
    parser.add_argument("--write-doc", action="store_true",
                        help="also rewrite doc/BENCHMARKS.md's scale results and doc/scale.png")
    parser.add_argument("--render", metavar="RESULTS_JSON",
                        help="run nothing: write results.md and scale.png (and with --write-doc the doc) from a "
                             "run's results.json, next to it")
    args = parser.parse_args(argv)
    capacities = [parse_count(c.strip()) for c in (args.name_capacities or "").split(",") if c.strip()]
    if args.name_capacities is not None and (len(capacities) < 2 or args.write_doc):
        parser.error("--name-capacities takes two or more sizes, and writes no doc")
    if args.render:
        return render(Path(args.render), args.write_doc)

    sizes = [parse_count(s.strip()) for s in (args.keys or ("1e4" if args.smoke else "1e5,1e6,1e7")).split(",")
             if s.strip()]
    if args.delay_ms is None:
        args.delay_ms = 0.0 if args.smoke else 20.0
    # The smoke run, which CI runs, goes through every step, so that none can rot.
    args.rsync = args.rsync or args.smoke
    if args.max_rss is None:
        args.max_rss = available_memory() * 3 // 4
    require_binary_and_fuse(args.bklogfs_bin, "scale")
    _, out_dir, run_dir = output_dirs(args, "scale", "scale")
    janitor = Janitor()

    def on_signal(signum, frame):
        raise KeyboardInterrupt()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    started = time.monotonic()
    machine = machine_info(args)  # before the walks: the commit checked out when they began
    results, skipped = [], []
    try:
        with contextlib.ExitStack() as at_exit:  # last in, first out: unmount and stop, then remove
            at_exit.callback(shutil.rmtree, run_dir, ignore_errors=True)
            at_exit.callback(janitor.cleanup)
            for capacity in capacities:
                run_args = argparse.Namespace(**vars(args))
                run_args.bklogfs_args = f"{args.bklogfs_args} --metadata-cache-names {capacity}".strip()
                results.append(walk(run_args, janitor, run_dir / f"names-{capacity}", sizes[0]))
                results[-1]["metadata_cache_names"] = capacity
            for keys in sizes if not capacities else []:
                done = [r for r in results if r.get("peak_rss")]
                if done and done[-1]["peak_rss"] * keys / done[-1]["keys"] > args.max_rss:
                    last = done[-1]
                    skipped.append(f"{keys:,} keys: not run; at {last['peak_rss'] / last['keys']:,.0f} bytes a "
                                   f"name (the peak at {last['keys']:,} keys) the daemon would need about "
                                   f"{last['peak_rss'] * keys / last['keys'] / (1 << 30):,.1f} GiB, over --max-rss "
                                   f"({args.max_rss / (1 << 30):,.1f} GiB)")
                    log(skipped[-1])
                    continue
                results.append(walk(args, janitor, run_dir, keys))
                row = results[-1]
                if row.get("error"):
                    log(f"  {row['error']}")
                else:
                    log(f"  {row['seconds']:.1f} s, LIST {row['requests']['LIST']:,}, peak RSS {mib(row['peak_rss'])}, "
                        f"after drop_caches {mib(row['rss_after_drop'])}")
    except KeyboardInterrupt:
        log("interrupted: unmounting and stopping servers")
        return 130
    command = os.environ.get("BENCH_COMMAND") or " ".join(map(shlex.quote, ["bench/scale.py", *sys.argv[1:]]))
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": machine,
        "config": {"delay_ms": args.delay_ms, "jobs": args.jobs, "builds_per_pipeline": args.builds_per_pipeline,
                   "server_workers": args.server_workers, "bklogfs_args": args.bklogfs_args,
                   "max_rss": args.max_rss, "settle_s": args.settle},
        "results": results,
        "per_name": per_name_cost(results) if capacities else None,
        "skipped": skipped,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    (out_dir / "results.json").write_text(json.dumps(report, indent=2))
    log(f"done in {report['elapsed_s']} s; results in {out_dir}")
    render(out_dir / "results.json", args.write_doc)
    return 1 if any(r.get("error") for r in results) else 0


def per_name_cost(rows):
    """What one more name held costs, from the walks with the fewest and the most names held."""
    rows = sorted((r for r in rows if not r.get("error") and r.get("names_after_walk")),
                  key=lambda r: r["names_after_walk"])
    if len(rows) < 2 or rows[-1]["names_after_walk"] == rows[0]["names_after_walk"]:
        return None
    low, high = rows[0], rows[-1]
    names = high["names_after_walk"] - low["names_after_walk"]
    cost = {"names_from": low["names_after_walk"], "names_to": high["names_after_walk"],
            "rss_bytes": (high["rss_after_walk"] - low["rss_after_walk"]) / names}
    if low.get("heap_after_walk") and high.get("heap_after_walk"):
        cost["heap_bytes"] = (high["heap_after_walk"] - low["heap_after_walk"]) / names
    return cost


def render(results_json, write):
    """results.md and scale.png beside results.json, printed; and in the doc with `write`."""
    report = json.loads(results_json.read_text())
    out_dir = results_json.parent
    markdown = render_markdown(report)
    (out_dir / "results.md").write_text(markdown)
    chart = out_dir / "scale.png"
    if not render_chart(report, chart):
        chart = None
    print()
    print(markdown)
    if write:
        write_doc(markdown, chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
