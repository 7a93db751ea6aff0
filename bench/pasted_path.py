#!/usr/bin/env python3
"""What a path someone pasted costs on a fresh mount (issue 16, target 3): `tail -c 65536` of
ORG/PIPELINE/BUILD/JOB.log in the UUID tree, against one ranged GET of the same bytes (curl), both
through bench/latency_proxy.py in front of a moto_server on loopback, which holds each response's
first byte until --delay-ms after its request (S3's first-byte latency). doc/BENCHMARKS.md ("A
path someone pasted") shows its results.

Each run mounts afresh (new cache directory), drops the page cache, and times the whole command,
lookups included; the mount's own request counters say what it asked.

    scripts/bench --pasted-path                    # 20 ms a request, 5 runs
    scripts/bench --pasted-path --delay-ms 50 --runs 3
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from loopback import drop_caches, free_port, start_moto, wait_port

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay-ms", type=int, default=20, help="first-byte delay of each request (default 20)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each figure (default 5); the median is shown")
    parser.add_argument("--size", type=int, default=64, help="the log's size in MiB (default 64)")
    parser.add_argument("--bin", default=os.environ.get("BKLOGFS_BIN", str(REPO / ".build/release/bklogfs")))
    args = parser.parse_args()

    import boto3

    work = Path(tempfile.mkdtemp(prefix="bklogfs-pasted-bench-"))
    processes = []
    mounts = []
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    try:
        moto, moto_port = start_moto()
        processes.append(moto)
        proxy_port = free_port()
        processes.append(subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "latency_proxy.py"), "--upstream", f"127.0.0.1:{moto_port}",
             "--port", str(proxy_port), "--delay-ms", str(args.delay_ms)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_port(proxy_port)
        direct = f"http://127.0.0.1:{moto_port}"
        endpoint = f"http://127.0.0.1:{proxy_port}"
        s3 = boto3.client("s3", endpoint_url=direct, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench")
        s3.create_bucket(Bucket="pasted")
        rng = random.Random(16)
        parts = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(4)]
        key = "/".join(parts) + ".log"
        line = b"\x1b_bk;t=1764924000000\x07some output of a long build step, line after line\r\n"
        log = (line * (args.size * MiB // len(line) + 1))[: args.size * MiB - 1000] + b"tail\n" * 200
        s3.put_object(Bucket="pasted", Key=key, Body=log)
        # A few more builds and jobs beside it, as in a real archive.
        for _ in range(20):
            other = parts[:2] + [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2)]
            s3.put_object(Bucket="pasted", Key="/".join(other) + ".log", Body=b"another job\n")

        def reset():
            with urllib.request.urlopen(f"{endpoint}/__reset") as r:
                json.load(r)

        def proxy_stats():
            with urllib.request.urlopen(f"{endpoint}/__stats") as r:
                return json.load(r)

        # curl's GET, signed as a presigned URL through the proxy.
        via_proxy = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                                 aws_secret_access_key="bench")
        url = via_proxy.generate_presigned_url("get_object", Params={"Bucket": "pasted", "Key": key}, ExpiresIn=3600)
        tails, gets, asked = [], [], []
        for run in range(args.runs):
            mnt = work / f"mnt{run}"
            mnt.mkdir()
            subprocess.run([args.bin, "mount", str(mnt), "--bucket", "pasted", "--endpoint", endpoint, "--region",
                            "us-east-1", "--cache-dir", str(work / f"cache{run}")], check=True, env=env)
            mounts.append(mnt)
            drop_caches()
            reset()
            start = time.monotonic()
            out = subprocess.run(["tail", "-c", "65536", str(mnt / key)], capture_output=True, check=True).stdout
            tails.append(time.monotonic() - start)
            assert out == log[-65536:], "tail read the wrong bytes"
            asked.append(proxy_stats())
            subprocess.run([args.bin, "unmount", str(mnt)], check=True)
            mounts.remove(mnt)
            start = time.monotonic()
            got = subprocess.run(["curl", "-sf", "-r", "-65536", url], capture_output=True, check=True).stdout
            gets.append(time.monotonic() - start)
            assert got == log[-65536:], "curl read the wrong bytes"
        tail, get = statistics.median(tails), statistics.median(gets)
        counts = asked[-1]["requests"]
        counts = f"{counts['LIST']} LIST, {counts['HEAD']} HEAD, {counts['GET']} GET"
        print(f"tail -c 65536 of a pasted path ({args.size} MiB log) on a fresh mount, {args.delay_ms} ms a request, "
              f"median of {args.runs} runs\n")
        print("| command | time | requests |")
        print("| --- | --- | --- |")
        print(f"| `tail -c 65536 /mnt/ORG/PIPELINE/BUILD/JOB.log` (fresh mount) | {tail * 1000:.0f} ms | "
              f"{counts} |")
        print(f"| `curl -r -65536` (one ranged GET) | {get * 1000:.0f} ms | 1 GET |")
        print(f"\nratio: {tail / get:.2f}x")
    finally:
        for mnt in mounts:
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
        for p in processes:
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
