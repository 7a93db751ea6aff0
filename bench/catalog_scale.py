#!/usr/bin/env python3
"""The catalog at scale (issue 13): `bklogfs sync` of a generated Buildkite organization of 10^5-10^6 builds,
how many bytes a job takes in the catalog, and how fast `ls` of the organization, a pipeline and a build
is when served from it.

Usually started by scripts/bench, which builds bklogfs (release) first:

    scripts/bench --catalog-scale                          # 10^5 builds of 10 jobs, 10 pipelines
    scripts/bench --catalog-scale --catalog-builds 1e6     # 10^6 builds, 10^7 jobs
    scripts/bench --catalog-scale-smoke                    # 5,000 builds in 2 pipelines (what CI runs)
    scripts/bench --catalog-scale --write-doc              # also rewrite doc/BENCHMARKS.md's catalog results

It writes a world for the fake Buildkite API (Tests/fake_buildkite) whose organization `scale` holds the
builds (computed per request, nothing stored), starts the fake with --no-rate-limit (so the sync goes at
the pace of the fake and bklogfs, not of Buildkite's budget), and times `bklogfs sync scale` into a new
catalog, counting the API requests it made. It then checkpoints the catalog, reads its size (bytes per job:
the file over the jobs it holds; the part each table and index takes, from SQLite's dbstat), mounts bklogfs
on the same catalog with a listing TTL long enough that nothing is asked of the API, and times, on a fresh
mount, the first listing of the organization, a pipeline (its newest builds), its newest build, and a build of
the pipeline's first day (`ls`: the names), then the same with every entry's attributes (`ls -l`), with the
API requests each made. Writes results.json and results.md to --out.
"""

import argparse
import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
FAKE = REPO_ROOT / "Tests" / "fake_buildkite"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(FAKE))
from run import Janitor, alive, default_bklogfs_bin, is_mounted, machine_info, output_dirs  # noqa: E402
from run import pids_with_arg, require_binary_and_fuse, rewrite_doc, stop_group, wait_port_file  # noqa: E402
from scale import ScaleMount  # noqa: E402
from synthetic_s3 import parse_count  # noqa: E402

import world as fake_world  # noqa: E402

DOC_BEGIN = "<!-- BEGIN CATALOG SCALE RESULTS: scripts/bench --catalog-scale --write-doc rewrites this part -->"
DOC_END = "<!-- END CATALOG SCALE RESULTS -->"
TARGET_BYTES_PER_JOB = 300
ORG = fake_world.GENERATED["org"]
TOKEN = "bkua_fake_full"


def log(msg):
    print(f"catalog-scale: {msg}", flush=True)


def requests_made(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__fake__/requests", timeout=60) as r:
        return json.loads(r.read())


def reset_counters(port):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/__fake__/reset-counters", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=60):
        pass


def catalog_figures(path):
    """The catalog's size once checkpointed, what it holds, and each table's and index's share (dbstat)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        builds = db.execute("SELECT count(*) FROM build_records").fetchone()[0]
        jobs = db.execute("SELECT count(*) FROM job_records").fetchone()[0]
        json_bytes = db.execute("SELECT coalesce(sum(length(json)), 0) FROM build_records").fetchone()[0]
        parts = {}
        with contextlib.suppress(sqlite3.OperationalError):  # an SQLite built without dbstat
            parts = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall())
    size = os.path.getsize(path) + sum(os.path.getsize(f"{path}{s}") for s in ("-wal",) if os.path.exists(f"{path}{s}"))
    return {"catalog_bytes": size, "builds_stored": builds, "jobs_stored": jobs, "json_bytes": json_bytes,
            "bytes_per_job": round(size / jobs, 1) if jobs else None, "parts": parts}


def timed(body):
    started = time.perf_counter()
    result = body()
    return round((time.perf_counter() - started) * 1000, 2), result


def listing(path, port):
    """A directory listed on a fresh mount: its names (`ls`), then each entry's attributes too (`ls -l`), each
    timed in milliseconds with the API requests it made."""
    out = {}
    reset_counters(port)
    out["ls_ms"], names = timed(lambda: os.listdir(path))
    out["entries"] = len(names)
    out["ls_requests"] = requests_made(port)["total"]
    reset_counters(port)
    out["ls_l_ms"], _ = timed(lambda: [os.lstat(os.path.join(path, name)) for name in os.listdir(path)])
    asked = requests_made(port)
    out["ls_l_requests"] = asked["total"]
    out["ls_l_requests_by_endpoint"] = asked["endpoints"]
    return out


def run(args, janitor, work):
    spec = fake_world.generated_spec(args.builds, args.pipelines, args.jobs)
    world = fake_world.build_world(1, args.testdata, big_builds=3, generated_builds=args.builds,
                                   generated_pipelines=args.pipelines, generated_jobs=args.jobs)
    (work / "world.json").write_text(json.dumps(world))
    token = work / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    logs = work / "logs"
    logs.mkdir()
    server = janitor.add_proc(subprocess.Popen(
        [sys.executable, str(FAKE / "server.py"), "--world", str(work / "world.json"), "--port", "0", "--port-file",
         str(work / "port"), "--no-rate-limit"],
        stdout=open(logs / "fake_buildkite.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True))
    port = wait_port_file(work / "port", server, "the fake Buildkite API (Tests/fake_buildkite/server.py)", timeout=60)
    api = f"http://127.0.0.1:{port}/v2"
    catalog = work / "catalog.sqlite"
    row = {"builds": args.builds, "pipelines": spec["pipelines"], "jobs_per_build": args.jobs,
           "jobs": args.builds * args.jobs}
    try:
        log(f"syncing {args.builds:,} builds of {args.jobs} jobs in {spec['pipelines']} pipelines")
        load = os.getloadavg()[0]
        started = time.perf_counter()
        sync = subprocess.run([args.bklogfs_bin, "sync", ORG, "--api-token-file", str(token), "--api-endpoint", api,
                               "--catalog", str(catalog)], capture_output=True, text=True, timeout=args.timeout)
        row["sync_seconds"] = round(time.perf_counter() - started, 1)
        row["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        (logs / "sync.log").write_text(sync.stdout + sync.stderr)
        if sync.returncode != 0:
            row["error"] = f"bklogfs sync failed ({sync.returncode}): {(sync.stderr or sync.stdout).strip()[-500:]}"
            return row
        asked = requests_made(port)
        row["api_requests"] = asked["total"]
        row["api_requests_by_endpoint"] = asked["endpoints"]
        row.update(catalog_figures(catalog))
        log(f"  sync: {row['sync_seconds']:,.1f} s, {row['api_requests']:,} API requests, "
            f"{row['catalog_bytes'] / (1 << 20):,.1f} MiB, {row['bytes_per_job']} bytes a job")
        if row["builds_stored"] != args.builds or row["jobs_stored"] != row["jobs"]:
            row["error"] = (f"the catalog holds {row['builds_stored']:,} builds and {row['jobs_stored']:,} jobs, "
                            f"the organization {args.builds:,} and {row['jobs']:,}")
            return row
        row["ls"] = listings(args, janitor, work, api, token, catalog, port, spec)
        return row
    finally:
        stop_group(server)
        janitor.procs.remove(server)


def listings(args, janitor, work, api, token, catalog, port, spec):
    mnt = work / "mnt"
    mnt.mkdir()
    m = ScaleMount(args.bklogfs_bin, mnt)
    janitor.add_mount(m)
    r = subprocess.run([args.bklogfs_bin, "mount", str(mnt), "--api-token-file", str(token), "--api-endpoint", api,
                        "--catalog", str(catalog), "--cache-dir", str(work / "cache"), "--directory-ttl", "86400",
                        "--log-file", str(work / "logs" / "bklogfs.log")],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not is_mounted(mnt):
        raise SystemExit(f"catalog-scale: bklogfs mount failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
    m.pids = pids_with_arg(args.bklogfs_bin, mnt)
    try:
        pipeline = fake_world.generated_pipeline_slug(0)
        newest = fake_world.generated_build_count(spec, 0)
        out = {}
        for what, path in (("organization", mnt / ORG), ("pipeline", mnt / ORG / pipeline),
                           ("newest build", mnt / ORG / pipeline / str(newest)),
                           ("first build", mnt / ORG / pipeline / "1")):
            out[what] = listing(path, port)
            log(f"  ls {path.relative_to(mnt)}: {out[what]['entries']} entries in {out[what]['ls_ms']:.1f} ms, "
                f"{out[what]['ls_requests']} API requests; ls -l {out[what]['ls_l_ms']:.1f} ms, "
                f"{out[what]['ls_l_requests']} API requests")
        return out
    finally:
        subprocess.run([args.bklogfs_bin, "unmount", str(mnt)], capture_output=True, timeout=120)
        deadline = time.monotonic() + 30
        while any(alive(p) for p in m.pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        m.force_down()
        janitor.mounts.remove(m)


def render_markdown(report):
    m = report["machine"]
    row = report["result"]
    lines = [f"Run on {report['date']} with `{report['command']}`, binary of commit `{m['versions']['bklogfs']}`, "
             f"on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB), {m['os']}, kernel {m['kernel']}. The fake "
             f"Buildkite API ran without rate limits; its generated builds look like the fake's others (every "
             f"documented field of a build and its jobs).", ""]
    if row.get("error") and "sync_seconds" not in row:
        return "\n".join(lines + [f"Failed: {row['error']}"]) + "\n"
    lines += ["| builds | jobs | `bklogfs sync` | API requests | catalog | bytes per job | of which build JSON |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    if row.get("catalog_bytes"):
        lines.append(f"| {row['builds']:,} | {row['jobs']:,} | {row['sync_seconds']:,.0f} s | {row['api_requests']:,} | "
                     f"{row['catalog_bytes'] / (1 << 20):,.1f} MiB | {row['bytes_per_job']:,.0f} | "
                     f"{row['json_bytes'] / row['jobs_stored']:,.0f} |")
    if row.get("error"):
        lines += ["", f"Failed: {row['error']}"]
    if row.get("ls"):
        ls = row["ls"]
        lines += ["", "| from the catalog, fresh mount | entries | `ls` | API requests | `ls -l` | API requests |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for what in ("organization", "pipeline", "newest build", "first build"):
            d = ls[what]
            lines.append(f"| {what} | {d['entries']} | {d['ls_ms']:.1f} ms | {d['ls_requests']} | "
                         f"{d['ls_l_ms']:.1f} ms | {d['ls_l_requests']} |")
    if row.get("parts"):
        total = sum(row["parts"].values())
        shares = ", ".join(f"`{name}` {size / total:.0%}" for name, size in row["parts"].items() if size / total >= 0.01)
        lines += ["", f"Where the bytes are (SQLite's dbstat, share of the pages): {shares}."]
    if row.get("load_average"):
        lines += ["", f"Load average {row['load_average'][0]:g} before the sync, {row['load_average'][1]:g} after it "
                      f"({m['cores']} cores)."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--catalog-scale", action="store_true", help="(what scripts/bench passes on; changes nothing)")
    parser.add_argument("--smoke", "--catalog-scale-smoke", action="store_true",
                        help="5,000 builds in 2 pipelines, output to a temporary directory")
    parser.add_argument("--builds", "--catalog-builds", type=parse_count, help="builds (default 1e5; 5,000 with --smoke)")
    parser.add_argument("--pipelines", "--catalog-pipelines", type=int, help="default 10; 2 with --smoke")
    parser.add_argument("--jobs", "--catalog-jobs", type=int, default=10, help="jobs per build (default 10)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="the sync's time budget in seconds")
    parser.add_argument("--testdata", default=None, help="default: $BKLOGFS_TESTDATA or ../shared/testdata")
    parser.add_argument("--bklogfs-bin", default=default_bklogfs_bin(),
                        help="the bklogfs binary (default: $BKLOGFS_BIN, else .build/release/bklogfs)")
    parser.add_argument("--cache-root", default=os.environ.get("BENCH_CACHE_ROOT", "/var/tmp/bklogfs-bench"),
                        help="where the run's catalog and mount live")
    parser.add_argument("--out", help="output directory (default: CACHE_ROOT/catalog-scale-DATE, or a temporary one "
                                      "with --smoke)")
    parser.add_argument("--write-doc", action="store_true", help="also rewrite doc/BENCHMARKS.md's catalog results")
    parser.add_argument("--render", metavar="RESULTS_JSON", help="run nothing: write results.md (and with --write-doc "
                                                                 "the doc) from a run's results.json")
    args = parser.parse_args(argv)
    if args.render:
        return render(Path(args.render), args.write_doc)
    if args.builds is None:
        args.builds = 5_000 if args.smoke else 100_000
    if args.pipelines is None:
        args.pipelines = 2 if args.smoke else 10
    require_binary_and_fuse(args.bklogfs_bin, "catalog-scale")
    _, out_dir, work = output_dirs(args, "catalog-scale", "catalog-scale")
    janitor = Janitor()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    started = time.monotonic()
    machine = machine_info(args)
    try:
        with contextlib.ExitStack() as at_exit:
            at_exit.callback(shutil.rmtree, work, ignore_errors=True)
            at_exit.callback(janitor.cleanup)
            result = run(args, janitor, work)
            with contextlib.suppress(OSError):
                shutil.copytree(work / "logs", out_dir / "logs", dirs_exist_ok=True)
    except KeyboardInterrupt:
        log("interrupted: unmounting and stopping the fake")
        return 130
    command = os.environ.get("BENCH_COMMAND") or " ".join(map(shlex.quote, ["bench/catalog_scale.py", *sys.argv[1:]]))
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
              "machine": machine, "target_bytes_per_job": TARGET_BYTES_PER_JOB, "result": result,
              "elapsed_s": round(time.monotonic() - started, 1)}
    (out_dir / "results.json").write_text(json.dumps(report, indent=2))
    log(f"done in {report['elapsed_s']} s; results in {out_dir}")
    render(out_dir / "results.json", args.write_doc)
    return 1 if result.get("error") else 0


def render(results_json, write):
    report = json.loads(results_json.read_text())
    markdown = render_markdown(report)
    (results_json.parent / "results.md").write_text(markdown)
    print()
    print(markdown)
    if write:
        rewrite_doc(DOC_BEGIN, DOC_END, markdown, None, "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
