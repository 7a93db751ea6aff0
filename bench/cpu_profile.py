#!/usr/bin/env python3
"""The mount daemon's CPU per GiB served (issue 16, target 1), and where it goes: a cold `cat` of a
160 MiB log from a moto_server bucket on loopback, then the same `cat` from the disk cache (page
cache dropped), each with the daemon's user + system CPU seconds from /proc/PID/stat. With
--perf, `perf record -g` of the daemon during the cold read, and the symbols that took the most of
it (kernel and user). doc/BENCHMARKS.md ("What the profiles taught") keeps what it showed.

It also takes the cost apart, each figure in CPU seconds per GiB: curl receiving the object with one
GET to /dev/null (what receiving the bytes costs a process here), the daemon's cold `cat` without a
disk cache (`--cache-size 0`), and the same `cat` with every block already in the daemon's memory
(what serving FUSE's reads costs, without network or disk).

    scripts/bench --cpu-profile                 # CPU per GiB, cold and from the disk cache
    scripts/bench --cpu-profile --perf          # and the profile of the cold read
"""

import argparse
import os
import resource
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
    mounts = []
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="cpu",
                          aws_secret_access_key="cpu")
        s3.create_bucket(Bucket="cpu")
        key = "org/pipeline/build/big.log"
        s3.put_object(Bucket="cpu", Key=key, Body=os.urandom(args.size * MiB))
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "cpu", "AWS_SECRET_ACCESS_KEY": "cpu"}
        gib = args.size / 1024
        figures = []

        def mount(path, *extra):
            path.mkdir()
            subprocess.run([args.bin, "mount", str(path), "--bucket", "cpu", "--endpoint", endpoint, "--region",
                            "us-east-1", "--cache-dir", str(work / f"cache-{path.name}"), *extra], check=True, env=env)
            mounts.append(path)
            pid = int(subprocess.run(["pgrep", "-f", f"bklogfs mount {path}"], capture_output=True, text=True,
                                     check=True).stdout.split()[0])
            os.stat(path / key)
            return pid

        def cpu(pid):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        def measured(what, path, pid):
            drop_caches()
            before, start = cpu(pid), time.monotonic()
            subprocess.run(["cat", str(path / key)], stdout=subprocess.DEVNULL, check=True)
            seconds, used = time.monotonic() - start, cpu(pid) - before
            print(f"{what}: {seconds:.2f} s, daemon CPU {used:.2f} s = {used / gib:.2f} s/GiB")
            figures.append((what, used / gib))

        # curl's own CPU for one GET of the object: the credentials in a file of mode 0600, not argv
        config = work / "curl.conf"
        config.touch(mode=0o600)
        config.write_text('user = "cpu:cpu"\n')
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["curl", "-sS", "-f", "-K", str(config), "--aws-sigv4", "aws:amz:us-east-1:s3", "-o",
                        "/dev/null", f"{endpoint}/cpu/{key}"], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"curl receiving the object with one GET: CPU {used:.2f} s = {used / gib:.2f} s/GiB")
        figures.append(("curl, one GET to /dev/null", used / gib))

        mnt = work / "mnt"
        pid = mount(mnt)
        perf = None
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-g", "-q", "-o", str(work / "perf.data"), "-p", str(pid)])
            time.sleep(0.5)
        measured(f"cold cat of {args.size} MiB", mnt, pid)
        if perf:
            perf.send_signal(2)
            perf.wait()
        measured("the same cat from the disk cache", mnt, pid)
        bare = work / "bare"
        pid = mount(bare, "--cache-size", "0", "--memory-cache-size", f"{2 * args.size}M")
        measured("cold cat, no disk cache", bare, pid)
        measured("the same cat, every block in the daemon's memory", bare, pid)
        print("\nCPU seconds per GiB (target for a cold read: 0.6)")
        for what, value in figures:
            print(f"  {value:5.2f}  {what}")
        if perf:
            report = subprocess.run(["perf", "report", "-i", str(work / "perf.data"), "--stdio", "--no-children",
                                     "--sort", "dso,symbol", "-g", "none"], capture_output=True, text=True)
            rows = [line.rstrip(" -") for line in report.stdout.splitlines() if line.strip() and not line.startswith("#")]
            print("\nwhere the cold read's CPU went (perf, share of samples):")
            print("\n".join(rows[:25]))
    finally:
        for path in mounts:
            subprocess.run([args.bin, "unmount", str(path)], check=False)
        moto.terminate()
        moto.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
