#!/usr/bin/env python3
"""What the plain view (`bklogfs mount --plain`) costs: `grep -c` of one big log through a raw mount
and a plain one, cold and warm. doc/BENCHMARKS.md ("The plain view") shows its results.

The log is scripts/make-sample-archive's big log (colours, `bk;t=` markers, `\\r` progress lines,
CRLF), in a bucket of a moto_server on loopback. Each view gets its own cache directory.

- cold: a new mount and an empty disk cache, the page cache dropped: the plain view's first lookup
  renders the whole log to learn its size (fetching it), then grep reads the text;
- disk: the mount again over the disk cache it filled, the page cache dropped: the blocks come from
  the disk cache; the plain view renders the log again (its indexes are kept in memory only);
- warm: grep again on the same mount: the kernel's page cache serves it.

    scripts/bench --plain-view                 # 160 MiB, 3 runs of each
    scripts/bench --plain-view --size 16 --runs 1
"""

import argparse
import importlib.machinery
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loopback import drop_caches, start_moto

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def load_generator():
    loader = importlib.machinery.SourceFileLoader("make_sample_archive", str(REPO / "scripts" / "make-sample-archive"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def timed(command):
    start = time.monotonic()
    r = subprocess.run(command, capture_output=True, check=True)
    return time.monotonic() - start, r.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=160, help="the log's size in MiB (default 160)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each figure (default 3); the median is shown")
    parser.add_argument("--bin", default=os.environ.get("BKLOGFS_BIN", str(REPO / ".build/release/bklogfs")))
    args = parser.parse_args()

    import boto3

    work = Path(tempfile.mkdtemp(prefix="bklogfs-plain-bench-"))
    moto, port = start_moto()
    endpoint = f"http://127.0.0.1:{port}"
    mounts = []
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    try:
        log = load_generator().big_log(args.size * MiB)[: args.size * MiB]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench")
        s3.create_bucket(Bucket="plain")
        key = "org/pipeline/build/job.log"
        s3.put_object(Bucket="plain", Key=key, Body=log)
        expected = str(log.count(b"PASSED")).encode()  # lines, in the raw log and the plain text alike

        made = [0]

        def mount(view, cache):
            made[0] += 1
            mnt = work / f"mnt-{view}-{made[0]}"
            mnt.mkdir()
            extra = ["--plain"] if view == "plain" else []
            subprocess.run([args.bin, "mount", str(mnt), "--bucket", "plain", "--endpoint", endpoint, "--region",
                            "us-east-1", "--cache-dir", str(cache), *extra], check=True, env=env)
            mounts.append(mnt)
            return mnt

        def unmount(mnt):
            subprocess.run([args.bin, "unmount", str(mnt)], check=True)
            mounts.remove(mnt)

        rows = []
        for view in ("raw", "plain"):
            figures = {"cold": [], "disk": [], "warm": []}
            for run in range(args.runs):
                cache = work / f"cache-{view}-{run}"
                mnt = mount(view, cache)
                drop_caches()
                seconds, count = timed(["grep", "-c", "PASSED", str(mnt / key)])
                assert count == expected, (view, count, expected)
                figures["cold"].append(seconds)
                seconds, count = timed(["grep", "-c", "PASSED", str(mnt / key)])
                assert count == expected
                figures["warm"].append(seconds)
                size = os.stat(mnt / key).st_size
                unmount(mnt)
                mnt = mount(view, cache)
                drop_caches()
                seconds, count = timed(["grep", "-c", "PASSED", str(mnt / key)])
                assert count == expected
                figures["disk"].append(seconds)
                unmount(mnt)
            rows.append((view, size, {k: statistics.median(v) for k, v in figures.items()}))

        print(f"grep -c of a {args.size} MiB log (scripts/make-sample-archive's big log), median of {args.runs} runs;")
        print("MiB/s of the log's bytes (the raw size), so the views compare by the log read\n")
        print("| view | size shown | cold (S3 on loopback) | disk cache | page cache |")
        print("| --- | --- | --- | --- | --- |")
        for view, size, f in rows:
            rate = lambda s: f"{args.size / s:,.0f} MiB/s ({s:.2f} s)"
            print(f"| {view} | {size / MiB:.1f} MiB | {rate(f['cold'])} | {rate(f['disk'])} | {rate(f['warm'])} |")
    finally:
        for mnt in list(mounts):
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
        moto.terminate()
        moto.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
