#!/usr/bin/env python3
"""The mount daemon's CPU per GiB served (issue 16, target 1), and where it goes: a cold `cat` of a
160 MiB log from a moto_server bucket on loopback, then the same `cat` from the disk cache (page
cache dropped), each with the daemon's user + system CPU seconds from /proc/PID/stat. With
--perf, `perf record -g` of the daemon during the cold read, and the symbols that took the most of
it (kernel and user). doc/BENCHMARKS.md ("What the profiles taught") keeps what it showed.

    scripts/bench --cpu-profile                 # CPU per GiB, cold and from the disk cache
    scripts/bench --cpu-profile --perf          # and the profile of the cold read
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loopback import drop_caches, start_moto

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=160, help="the log's size in MiB (default 160)")
    parser.add_argument("--perf", action="store_true", help="profile the cold read with perf record -g")
    parser.add_argument("--bin", default=os.environ.get("BKLOGFS_BIN", str(REPO / ".build/release/bklogfs")))
    args = parser.parse_args()

    import boto3

    work = Path(tempfile.mkdtemp(prefix="bklogfs-cpu-profile-"))
    moto, port = start_moto()
    mnt = work / "mnt"
    mounted = False
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="cpu",
                          aws_secret_access_key="cpu")
        s3.create_bucket(Bucket="cpu")
        key = "org/pipeline/build/big.log"
        s3.put_object(Bucket="cpu", Key=key, Body=os.urandom(args.size * MiB))
        mnt.mkdir()
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "cpu", "AWS_SECRET_ACCESS_KEY": "cpu"}
        subprocess.run([args.bin, "mount", str(mnt), "--bucket", "cpu", "--endpoint", endpoint, "--region",
                        "us-east-1", "--cache-dir", str(work / "cache")], check=True, env=env)
        mounted = True
        pid = int(subprocess.run(["pgrep", "-f", f"bklogfs mount {mnt}"], capture_output=True, text=True,
                                 check=True).stdout.split()[0])

        def cpu():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        def measured(what):
            drop_caches()
            before, start = cpu(), time.monotonic()
            subprocess.run(["cat", str(mnt / key)], stdout=subprocess.DEVNULL, check=True)
            seconds, used = time.monotonic() - start, cpu() - before
            print(f"{what}: {seconds:.2f} s, daemon CPU {used:.2f} s = {used / (args.size / 1024):.2f} s/GiB")

        os.stat(mnt / key)
        perf = None
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-g", "-q", "-o", str(work / "perf.data"), "-p", str(pid)])
            time.sleep(0.5)
        measured(f"cold cat of {args.size} MiB")
        if perf:
            perf.send_signal(2)
            perf.wait()
        measured("the same cat from the disk cache")
        if perf:
            report = subprocess.run(["perf", "report", "-i", str(work / "perf.data"), "--stdio", "--no-children",
                                     "--sort", "dso,symbol", "-g", "none"], capture_output=True, text=True)
            rows = [line.rstrip(" -") for line in report.stdout.splitlines() if line.strip() and not line.startswith("#")]
            print("\nwhere the cold read's CPU went (perf, share of samples):")
            print("\n".join(rows[:25]))
    finally:
        if mounted:
            subprocess.run([args.bin, "unmount", str(mnt)], check=False)
        moto.terminate()
        moto.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
