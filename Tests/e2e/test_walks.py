"""End-to-end: walks of a big tree (find, du, grep -r) list a subtree per page of keys and fetch
the next files of a directory ahead of the walker."""

import os
import random
import time
import subprocess
from types import SimpleNamespace

import pytest

from conftest import run_bklogfs

PIPELINES, BUILDS, JOBS = 2, 30, 20


@pytest.fixture(scope="module")
def walk_bucket(moto):
    """A bucket of 1,200 small logs: 1 organization, 2 pipelines, 30 builds each, 20 jobs each."""
    rng = random.Random(77)
    name = "bk-walk-%08x" % rng.getrandbits(32)
    moto.client.create_bucket(Bucket=name)
    bodies = {}
    for p in range(PIPELINES):
        for b in range(BUILDS):
            for j in range(JOBS):
                key = f"org/pipeline-{p}/build-{b:03d}/job-{j:02d}.log"
                body = "".join(f"_bk;t={1700000000000 + i} step {j} line {i} {'MATCH' if i == j else 'ok'}\n"
                               for i in range(rng.randint(20, 120))).encode()
                moto.client.put_object(Bucket=name, Key=key, Body=body)
                bodies[key] = body
    return SimpleNamespace(name=name, endpoint=moto.endpoint, bodies=bodies)


def run(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_find_and_du_cost_about_one_list_per_page_of_keys(mount, walk_bucket):
    m = mount(bucket=walk_bucket)
    before = m.stats()["requests"]["list"]
    files = run(["find", str(m.path), "-type", "f"]).splitlines()
    assert len(files) == len(walk_bucket.bodies)
    lists = m.stats()["requests"]["list"] - before
    # By delimiter this walk costs 64 LISTs (root, organization, 2 pipelines, 60 builds). With
    # subtree pages of 1,000 keys: the root, the organization, two pages of keys and at most one
    # more for each of the directories with subdirectories.
    assert lists <= 8, f"find over {len(files)} keys in 60 builds made {lists} LISTs"
    du = run(["du", "-s", "--apparent-size", "--block-size=1", str(m.path)])
    assert int(du.split()[0]) >= sum(len(b) for b in walk_bucket.bodies.values())
    assert m.stats()["requests"]["list"] - before == lists, "du after find must be served from the listings"


def test_grep_r_fetches_the_next_files_ahead_and_each_once(mount, walk_bucket):
    m = mount(bucket=walk_bucket)
    pipeline = m / "org" / "pipeline-1"
    found = sorted(run(["grep", "-rl", "MATCH", "."], cwd=pipeline).splitlines())
    expected = sorted("./" + k.split("/", 2)[2] for k, body in walk_bucket.bodies.items()
                      if k.startswith("org/pipeline-1/") and b"MATCH" in body)
    assert found == expected
    s = m.stats()
    files = BUILDS * JOBS
    assert s["requests"]["get"] == files, "every file is fetched exactly once"
    # All but the first file or two of each build come ahead of grep.
    assert s["cache"]["prefetched_blocks"] >= files - 2 * BUILDS, s


def test_sha256sum_c_of_a_manifest_on_a_fresh_mount_costs_about_one_list_per_page_of_keys(mount, walk_bucket, tmp_path):
    import hashlib
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text("".join(f"{hashlib.sha256(body).hexdigest()}  {key}\n"
                                for key, body in sorted(walk_bucket.bodies.items())))
    m = mount(bucket=walk_bucket)
    out = run(["sha256sum", "-c", "--quiet", str(manifest)], cwd=m.path)
    assert out == "", out
    s = m.stats()
    # Looked up name by name, each alone would cost a LIST (1,262 here). A page of 1,000 keys from
    # the name on answers the names after it: two pages a pipeline, the first (targeted) lookups in
    # the root, the organization, each pipeline and its first build, and a page to finish each build
    # a page stopped inside.
    assert s["requests"]["list"] <= 14, s["requests"]
    assert s["requests"]["get"] == len(walk_bucket.bodies), "every file is fetched exactly once"
    # The builds a page covered are taken as listed, so their files come ahead of the reader.
    assert s["cache"]["prefetched_blocks"] >= len(walk_bucket.bodies) // 2, s


def test_past_its_metadata_cache_the_mount_asks_the_kernel_to_forget_and_holds_about_its_capacity(
        mount, walk_bucket):
    m = mount(bucket=walk_bucket, extra_args=["--metadata-cache-names", "1000"])
    everything = len(walk_bucket.bodies) + 2 * (1 + BUILDS) + 2  # files, pipelines and builds, org, root
    files = run(["find", str(m.path), "-type", "f"]).splitlines()
    assert len(files) == len(walk_bucket.bodies)
    # The kernel held every name find looked at; the names the table let go were invalidated, and
    # the kernel forgot them.
    held = m.stats()["cached_names"]
    assert held <= 1000 + JOBS + 1, f"{held} of {everything} names held"
    # What was let go is found again, with the same numbers and bytes.
    key = sorted(walk_bucket.bodies)[0]
    before = (m / key).stat().st_ino
    found = sorted(run(["grep", "-rl", "MATCH", "."], cwd=m.path).splitlines())
    assert found == sorted("./" + k for k, body in walk_bucket.bodies.items() if b"MATCH" in body)
    assert (m / key).stat().st_ino == before
    assert (m / key).read_bytes() == walk_bucket.bodies[key]


def test_names_the_kernel_forgot_go_once_their_listings_expire(mount, walk_bucket):
    m = mount(bucket=walk_bucket, extra_args=["--directory-ttl", "1"])
    files = run(["find", str(m.path), "-type", "f"]).splitlines()
    assert len(files) == len(walk_bucket.bodies)
    assert m.stats()["cached_names"] >= len(walk_bucket.bodies)
    time.sleep(1.5)
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
    deadline = time.monotonic() + 10
    while m.stats()["cached_names"] > 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert m.stats()["cached_names"] <= 10, m.stats()
    assert len(run(["find", str(m.path), "-type", "f"]).splitlines()) == len(walk_bucket.bodies)


@pytest.fixture(scope="module")
def flat_bucket(moto):
    """One directory of 5,050 logs: more than the 5 pages of 1,000 keys listed when it is opened."""
    from concurrent.futures import ThreadPoolExecutor

    name = "bk-flat-%08x" % random.Random(5).getrandbits(32)
    moto.client.create_bucket(Bucket=name)
    keys = [f"org/pipeline/build-{i:05d}.log" for i in range(5050)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: moto.client.put_object(Bucket=name, Key=k, Body=k.encode()), keys))
    return SimpleNamespace(name=name, endpoint=moto.endpoint, keys=keys)


def test_a_directory_bigger_than_five_pages_is_streamed_and_not_kept(mount, flat_bucket):
    m = mount(bucket=flat_bucket)
    directory = m / "org" / "pipeline"
    # readdirplus of the entries past the first 5,000 gives the kernel names and numbers only.
    names = run(["ls", "-f", str(directory)]).split()
    assert sorted(n for n in names if n not in (".", "..")) == [k.rsplit("/", 1)[1] for k in flat_bucket.keys]
    assert m.stats()["cached_names"] <= 5000 + 10, m.stats()
    # readdir's d_ino is each entry's position, in name order (gnulib's fts sorts a big directory by
    # it); stat gives the inode number, the same on each lookup, and the bytes are the object's.
    listed = [(entry.name, entry.inode()) for entry in os.scandir(directory)]  # d_ino, as readdir gives it
    positions = [ino for _, ino in listed]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert [name for name, _ in listed] == sorted(n for n in names if n not in (".", ".."))
    last = flat_bucket.keys[-1].rsplit("/", 1)[1]
    number = (directory / last).stat().st_ino
    assert number > 1 << 32 and (directory / last).stat().st_ino == number
    assert (directory / last).read_bytes() == flat_bucket.keys[-1].encode()
    # ls -l stats every entry: all are found, with their sizes.
    long = run(["ls", "-l", str(directory)]).splitlines()[1:]
    assert len(long) == len(flat_bucket.keys)
    assert all(int(line.split()[4]) == len(f"org/pipeline/{line.split()[-1]}") for line in long)
    # Read again, once those names were looked up: each still comes once.
    again = run(["ls", "-f", str(directory)]).split()
    assert sorted(again) == sorted(names)


@pytest.mark.parametrize("value", ["0", "65", "many"])
def test_a_bad_list_concurrency_is_refused_with_one_clear_error(bklogfs_bin, tmp_path, value):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_bklogfs(bklogfs_bin, "mount", mnt, "--bucket", "b", "--endpoint", "http://127.0.0.1:9",
                    "--list-concurrency", value, timeout=20)
    assert r.returncode != 0
    assert "--list-concurrency" in r.stderr, r.stderr
    assert "Error:" in r.stderr.splitlines()[0], r.stderr
    assert not os.listdir(mnt)
