"""End-to-end: 32 concurrent readers (cat, tail, grep -r, ls -R) over the seeded bucket for a
while (E2E_LOAD_SECONDS, 60 by default): no errors, no deadlock, right bytes, bounded memory
(issue 5). The run ends with the readers stopped and a clean unmount."""

import os
import random
import subprocess
import threading
import time
from types import SimpleNamespace

from conftest import read_file

READERS = 32
MEMORY_CACHE_MIB = 64


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_32_readers_at_once_make_no_error_and_use_bounded_memory(mount, seeded_bucket, bklogfs_bin):
    from conftest import daemon_pids

    seconds = float(os.environ.get("E2E_LOAD_SECONDS", "60"))
    m = mount(extra_args=["--memory-cache-size", f"{MEMORY_CACHE_MIB}M"])
    (pid,) = daemon_pids(bklogfs_bin, m.path)
    files = sorted(k for k in seeded_bucket.keys if k != seeded_bucket.big_key)
    directories = sorted({k.rsplit("/", 1)[0] for k in files})
    expected = {k: read_file(seeded_bucket.path(k)) for k in files}
    big_tail = read_file(seeded_bucket.path(seeded_bucket.big_key))[-65536:]
    deadline = time.monotonic() + seconds
    problems, counts, peak = [], {"cat": 0, "tail": 0, "grep": 0, "ls": 0}, [0.0]
    lock = threading.Lock()

    def worker(seed):
        rng = random.Random(seed)
        while time.monotonic() < deadline and len(problems) < 5:
            kind = rng.choice(["cat", "cat", "tail", "grep", "ls"])
            if kind == "cat":
                key = rng.choice(files)
                r = subprocess.run(["cat", str(m / key)], capture_output=True, timeout=120)
                ok = r.returncode == 0 and r.stdout == expected[key]
            elif kind == "tail":
                r = subprocess.run(["tail", "-c", "65536", str(m / seeded_bucket.big_key)], capture_output=True,
                                   timeout=120)
                ok = r.returncode == 0 and r.stdout == big_tail
            elif kind == "grep":
                r = subprocess.run(["grep", "-rc", "error", str(m / rng.choice(directories))], capture_output=True,
                                   timeout=120)
                ok = r.returncode in (0, 1)
            else:
                r = subprocess.run(["ls", "-lR", str(m / rng.choice(directories).split("/")[0])], capture_output=True,
                                   timeout=120)
                ok = r.returncode == 0
            with lock:
                counts[kind] += 1
                if not ok:
                    problems.append(f"{kind}: exit {r.returncode}, {r.stderr[-300:]!r}")

    def sampler():
        # As root, the page cache is dropped every few seconds, so reads keep reaching the daemon
        # (its memory and disk caches) instead of being answered by the kernel alone.
        last_drop = time.monotonic()
        while time.monotonic() < deadline:
            peak[0] = max(peak[0], rss_mib(pid))
            if os.geteuid() == 0 and time.monotonic() - last_drop > 3:
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
                last_drop = time.monotonic()
            time.sleep(0.2)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(READERS)]
    threads.append(threading.Thread(target=sampler))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 300)
    assert not any(t.is_alive() for t in threads), "a reader hung (deadlock?)"
    print(f"{sum(counts.values())} commands in {seconds:.0f} s: {counts}; peak RSS {peak[0]:.0f} MiB")
    assert not problems, problems
    assert sum(counts.values()) >= READERS, counts
    assert peak[0] < MEMORY_CACHE_MIB + 150, f"peak RSS {peak[0]:.0f} MiB"
    assert m.stats()["failures"] == 0
    m.unmount()


def test_parallel_sequential_readers_share_the_memory_cache_and_fetch_each_byte_once(mount, moto):
    """Eight readers at once, each of a different 16 MiB log, through a 64 MiB memory cache: their
    readahead windows at full size (the whole log each) would be twice the cache, so each reader's
    window is held to a share of half of it (4 MiB; with the 3 blocks each keeps behind it, 56 MiB
    in all), and nothing fetched ahead of one reader is pushed out by another's before it is read.
    Every byte comes over the network once, and every read block comes from memory, none from the
    disk cache (which holds what memory lost; without the shares, blocks were read back from it)."""
    bucket = "bk-parallel-readers"
    moto.client.create_bucket(Bucket=bucket)
    size = 16 << 20
    logs = {f"o/p/b/job-{n}.log": (bytes([65 + n]) * 1023 + b"\n") * (size // 1024) for n in range(8)}
    for key, body in logs.items():
        moto.client.put_object(Bucket=bucket, Key=key, Body=body)
    m = mount(bucket=SimpleNamespace(name=bucket, endpoint=moto.endpoint),
              extra_args=["--memory-cache-size", "64M"])
    results = {}
    all_started = threading.Barrier(len(logs), timeout=120)

    def read_slowly(key):
        # A reader slower than the network, so readahead runs a full window ahead of it; all eight
        # are reading before any goes past its first read, so each share is of eight.
        chunks = []
        with open(m / key, "rb", buffering=0) as f:
            chunks.append(f.read(64 * 1024))
            all_started.wait()
            while chunk := f.read(256 * 1024):
                chunks.append(chunk)
                time.sleep(0.01)
        results[key] = b"".join(chunks)

    readers = [threading.Thread(target=read_slowly, args=(key,)) for key in logs]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=300)
    assert not any(reader.is_alive() for reader in readers), "a reader hung"
    assert results == logs
    stats = m.stats()
    assert stats["bytes_fetched"] == 8 * size, stats
    assert stats["cache"]["disk_hits"] == 0, stats
    assert stats["failures"] == 0, stats
    m.unmount()
