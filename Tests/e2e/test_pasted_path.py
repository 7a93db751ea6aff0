"""End-to-end: a path someone pasted, on a fresh mount (issue 16): `tail -c 65536` of
ORG/PIPELINE/BUILD/JOB.log in the UUID tree costs one HEAD and one GET, and no listing; a mistyped
log is not found after one HEAD, a mistyped directory shows empty (doc/SEMANTICS.md, "Lookups by
path"). Against moto_server and Ceph's RADOS Gateway."""

import errno
import os
import random
import subprocess
import uuid

import pytest

from conftest import Bucket


def ids(rng, n):
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def requests(m):
    r = m.stats()["requests"]
    return r["list"], r["head"], r["get"]


def test_tail_of_a_pasted_path_costs_a_head_and_a_get_and_no_listing(mount, s3_server):
    client, endpoint, env = s3_server
    rng = random.Random(16)
    org, pipeline, build, job, other = ids(rng, 5)
    bucket = f"pasted-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    # 3.1 MiB: the last 64 KiB lie in its last 1 MiB block, which one ranged GET fetches.
    log = rng.randbytes((3 << 20) + (100 << 10)) + b"the end\n"
    key = f"{org}/{pipeline}/{build}/{job}.log"
    client.put_object(Bucket=bucket, Key=key, Body=log)
    client.put_object(Bucket=bucket, Key=f"{org}/{pipeline}/{build}/{other}.log", Body=b"other\n")
    m = mount(bucket=Bucket(name=bucket, endpoint=endpoint), env=env)
    before = requests(m)
    out = subprocess.run(["tail", "-c", "65536", str(m / key)], capture_output=True, timeout=60)
    assert out.returncode == 0 and out.stdout == log[-65536:]
    lists, heads, gets = (a - b for a, b in zip(requests(m), before))
    assert (lists, heads, gets) == (0, 1, 1), (lists, heads, gets)
    assert os.stat(m / key).st_size == len(log)

    # A mistyped job beside it: the second lookup in that directory lists its keys (one page), and
    # the name is not there.
    before = requests(m)
    typo = f"{org}/{pipeline}/{build}/{ids(rng, 1)[0]}.log"
    with pytest.raises(FileNotFoundError):
        os.stat(m / typo)
    lists, heads, gets = (a - b for a, b in zip(requests(m), before))
    assert (lists, heads, gets) == (1, 0, 0), (lists, heads, gets)

    # A mistyped job on a fresh mount: not found, after one HEAD.
    m2 = mount(bucket=Bucket(name=bucket, endpoint=endpoint), env=env)
    before = requests(m2)
    with pytest.raises(FileNotFoundError):
        os.stat(m2 / typo)
    lists, heads, gets = (a - b for a, b in zip(requests(m2), before))
    assert (lists, heads, gets) == (0, 1, 0), (lists, heads, gets)


def test_a_mistyped_directory_on_a_fresh_mount_shows_empty(mount, s3_server):
    client, endpoint, env = s3_server
    rng = random.Random(17)
    org, pipeline, build, job = ids(rng, 4)
    bucket = f"pasted-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=f"{org}/{pipeline}/{build}/{job}.log", Body=b"log\n")
    m = mount(bucket=Bucket(name=bucket, endpoint=endpoint), env=env)
    wrong = m / org / pipeline / ids(rng, 1)[0]
    assert wrong.is_dir()
    assert os.listdir(wrong) == []
    with pytest.raises(OSError) as refused:
        open(wrong / f"{job}.log", "rb")
    assert refused.value.errno == errno.ENOENT
    # The real build is there all along.
    assert (m / org / pipeline / build / f"{job}.log").read_bytes() == b"log\n"


def test_tail_of_a_pasted_path_by_names_costs_three_requests_then_one(mount, fake_buildkite, tmp_path):
    """By Buildkite's names: the organization's pipelines (to know the pipeline), the build by its
    number (with its jobs: whether the job is finished, and whether the archive has its log), and the
    log's end, one suffix request that gives its size too. With the build in the catalog (an earlier
    mount, or `bklogfs sync`), only the log's end."""
    from conftest import buildkite_source_args, load_fake_buildkite_world

    world = load_fake_buildkite_world()
    org, pipeline, number = world.SPECIAL["org"], world.SPECIAL["pipeline"], world.SPECIAL["big_log"]
    build = world.find_build(fake_buildkite.world, org, pipeline, number)
    job = next(j for j in build["jobs"] if j.get("type") == "script")
    catalog = tmp_path / "catalog.sqlite"
    source = [*buildkite_source_args(fake_buildkite, tmp_path), "--catalog", str(catalog)]
    costs = []
    for _ in range(2):
        m = mount(_source_args=source)
        fake_buildkite.control("reset-counters")
        path = m / org / pipeline / str(number) / f"{job['id']}.log"
        out = subprocess.run(["tail", "-c", "65536", str(path)], capture_output=True, timeout=60)
        assert out.returncode == 0 and len(out.stdout) == 65536
        costs.append(fake_buildkite.counters()["endpoints"])
        m.unmount()
    log = "GET /v2/organizations/{org}/pipelines/{pipeline}/builds/{number}/jobs/{job}/log"
    assert costs[0] == {"GET /v2/organizations/{org}/pipelines": 1,
                        "GET /v2/organizations/{org}/pipelines/{pipeline}/builds/{number}": 1, log: 1}, costs[0]
    assert costs[1] == {log: 1}, costs[1]
