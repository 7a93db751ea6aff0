"""End-to-end: `bklogfs cache` (issue 15) shows what a mount's disk cache holds, by store, and
verifies, prunes and clears it, which it refuses while a mount uses the cache."""

import time

from conftest import read_file, run_bklogfs


def cache(bklogfs_bin, *args):
    return run_bklogfs(bklogfs_bin, "cache", *args, timeout=120)


def test_show_verify_prune_and_clear_a_mounts_cache(mount, seeded_bucket, bklogfs_bin):
    m = mount(bucket=seeded_bucket)
    big = seeded_bucket.big_key
    assert read_file(m / big) == read_file(seeded_bucket.path(big))
    for key in seeded_bucket.real_keys[:3]:
        read_file(m / key)
    # Written behind the reads: wait until the disk cache holds them all.
    for _ in range(100):
        blocks = m.stats()["cache"]
        if blocks["disk_queue_bytes"] == 0:
            break
        time.sleep(0.1)
    directory = str(m.cache_dir)

    shown = cache(bklogfs_bin, "show", "--cache-dir", directory)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"{directory}: ") and " blocks, " in lines[0], shown.stdout
    assert lines[1].strip().startswith(f"s3://{seeded_bucket.name}"), shown.stdout
    assert "objects" in lines[1]

    # While mounted, nothing that changes the cache runs.
    for args in (["clear"], ["prune", "--to", "1M"], ["verify"]):
        refused = cache(bklogfs_bin, *args, "--cache-dir", directory)
        assert refused.returncode != 0, args
        assert "A bklogfs mount is using the cache directory" in refused.stderr and "unmount it first" in refused.stderr
    m.unmount()

    verified = cache(bklogfs_bin, "verify", "--cache-dir", directory)
    assert verified.returncode == 0 and "every block read and checked" in verified.stdout, verified
    pruned = cache(bklogfs_bin, "prune", "--to", "1M", "--cache-dir", directory)
    assert pruned.returncode == 0 and "evicted" in pruned.stdout, pruned
    left = int(pruned.stdout.split(": ")[1].split(" blocks")[0])
    assert 0 < left <= blocks["disk_blocks"], pruned.stdout
    cleared = cache(bklogfs_bin, "clear", "--cache-dir", directory)
    assert cleared.returncode == 0 and "cleared" in cleared.stdout, cleared
    assert cache(bklogfs_bin, "--cache-dir", directory).stdout.startswith(f"{directory}: 0 blocks")

    # The next mount starts from an empty cache and reads from the store again.
    again = m.remount()
    assert read_file(again / big) == read_file(seeded_bucket.path(big))
    assert again.stats()["cache"]["misses"] > 0
