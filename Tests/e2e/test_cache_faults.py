"""End-to-end: a damaged disk cache and a killed daemon (issue 5). Damaged blocks are found by
their checksums and fetched again, so readers see the right bytes; after `kill -9` in the middle of
reads and `fusermount3 -u` of the dead mount, a new mount works, the cache holds no torn block, and
what was cached before is still served from it."""

import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import MiB, daemon_pids, force_unmount, is_mounted, read_file, stat_delta


def block_files(cache_dir):
    return sorted(p for p in Path(cache_dir).rglob("*") if p.is_file() and p.suffix == ".blk")


def test_flipped_and_truncated_blocks_are_refetched_and_reads_stay_right(mount, seeded_bucket):
    m = mount()
    key = seeded_bucket.big_key
    want = read_file(seeded_bucket.path(key))
    assert read_file(m / key) == want
    m.unmount()
    files = block_files(m.cache_dir)
    assert len(files) >= 8, f"too few cached blocks to damage: {len(files)}"
    flipped, truncated, emptied = files[1], files[3], files[5]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x40
    flipped.write_bytes(bytes(data))
    with open(truncated, "r+b") as f:
        f.truncate(truncated.stat().st_size // 2)
    emptied.write_bytes(b"")

    m2 = m.remount()
    before = m2.stats()
    assert read_file(m2 / key) == want
    after = m2.stats()
    # Damage seen at start-up (wrong sizes) is removed then; the flipped byte is found when read.
    assert after["cache"]["corrupt_blocks"] >= 1, after
    assert stat_delta(before, after, "requests", "get") >= 1, "damaged blocks were not fetched again"
    assert stat_delta(before, after, "bytes_fetched") <= 8 * MiB, "more than the damaged blocks was fetched"


def test_kill_9_in_the_middle_of_reads_leaves_a_cache_a_new_mount_trusts(mount, seeded_bucket, bklogfs_bin):
    m = mount()
    small = [k for k in sorted(seeded_bucket.keys) if k != seeded_bucket.big_key][:5]
    for key in small:
        assert read_file(m / key) == read_file(seeded_bucket.path(key))
    # What the kill may lose is what is still queued for the disk cache's writer: wait until it is written.
    deadline = time.monotonic() + 30
    while m.stats()["cache"]["disk_queue_bytes"] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert m.stats()["cache"]["disk_queue_bytes"] == 0, "the disk cache's writer did not catch up"
    reader = subprocess.Popen(["cat", str(m / seeded_bucket.big_key)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    killed = daemon_pids(bklogfs_bin, m.path)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    reader.wait(timeout=60)
    # The killed daemon's temporary files are a new mount's to remove once it is gone (or a zombie).
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert force_unmount(m.path), "the dead mount could not be unmounted"
    assert not is_mounted(m.path)

    m2 = m.remount()
    assert not [p for p in Path(m.cache_dir).rglob("*.tmp")], "a temporary block file was left behind"
    before = m2.stats()
    for key in small:
        assert read_file(m2 / key) == read_file(seeded_bucket.path(key))
    after = m2.stats()
    assert stat_delta(before, after, "requests", "get") == 0, "blocks cached before the kill were fetched again"
    assert after["cache"]["corrupt_blocks"] == 0
    assert read_file(m2 / seeded_bucket.big_key) == read_file(seeded_bucket.path(seeded_bucket.big_key))


def alive(pid):
    """Whether the process runs: it exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False
