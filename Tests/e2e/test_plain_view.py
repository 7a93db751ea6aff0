"""End-to-end: `bklogfs mount --plain`, logs as a terminal finally shows them (doc/SEMANTICS.md, "Plain view")."""

import os
import re
import subprocess

from conftest import read_file


def run(*args, cwd=None, timeout=120):
    return subprocess.run(list(args), cwd=cwd, capture_output=True, timeout=timeout)


def test_plain_logs_have_no_escapes_and_stat_gives_the_bytes_read(mount, seeded_bucket):
    raw = mount(bucket=seeded_bucket)
    m = mount(bucket=seeded_bucket, extra_args=["--plain"])
    escapes = 0
    for key in seeded_bucket.real_keys:
        original = read_file(seeded_bucket.path(key))
        # stat first, as rsync and `wc -c` do, before any read
        size = os.stat(m / key).st_size
        text = read_file(m / key)
        assert size == len(text), key
        assert b"\x1b" not in text and b"\r" not in text, key
        assert read_file(raw / key) == original, key
        escapes += original.count(b"\x1b")
        assert run("wc", "-c", str(m / key)).stdout.split()[0] == str(len(text)).encode(), key
        assert run("tail", "-c", "200", str(m / key)).stdout == text[-200:], key
    assert escapes > 100, "the real logs should carry escape sequences"
    # curl's progress meter, rewritten by \r, shows its last state only
    curl = next(k for k in seeded_bucket.real_keys if read_file(seeded_bucket.path(k)).startswith(b"\x1b[90m$\x1b[0m curl"))
    lines = read_file(m / curl).splitlines()
    assert len(lines) == 4 and lines[-1].startswith(b"100   170  100   170"), lines


def test_grep_finds_section_markers_that_the_raw_log_hides(mount, seeded_bucket):
    m = mount(bucket=seeded_bucket, extra_args=["--plain"])
    raw = mount(bucket=seeded_bucket)
    keys = seeded_bucket.real_keys
    plain_hits = run("grep", "-c", "^~~~ Preparing working directory", *keys, cwd=m.path)
    raw_hits = run("grep", "-c", "^~~~ Preparing working directory", *keys, cwd=raw.path)
    count = lambda out: sum(int(line.rsplit(b":", 1)[1]) for line in out.splitlines())
    assert count(raw_hits.stdout) == 0, "in the raw logs each marker line starts with ESC _ bk;t=..."
    marked = sum(len(re.findall(rb"(?m)^\x1b_bk;t=\d+\x07~~~ Preparing working directory", read_file(seeded_bucket.path(k))))
                 for k in seeded_bucket.real_keys)
    assert marked >= 1
    assert count(plain_hits.stdout) == marked, plain_hits.stdout


def test_timestamps_start_the_lines_that_have_them(mount, seeded_bucket):
    m = mount(bucket=seeded_bucket, extra_args=["--timestamps"])
    stamped = 0
    for key in seeded_bucket.real_keys:
        text = read_file(m / key)
        assert os.stat(m / key).st_size == len(text)
        stamped += len(re.findall(rb"(?m)^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ ", text))
    assert stamped >= 50, stamped


def test_rsync_copies_the_plain_text(mount, seeded_bucket, tmp_path):
    m = mount(bucket=seeded_bucket, extra_args=["--plain"])
    pipeline = "/".join(seeded_bucket.real_keys[0].split("/")[:2])
    dest = tmp_path / "copy"
    r = run("rsync", "-a", str(m / pipeline) + "/", str(dest) + "/", timeout=300)
    assert r.returncode == 0, r.stderr
    copied = [k for k in seeded_bucket.real_keys if k.startswith(pipeline + "/")]
    assert copied
    for key in copied:
        assert read_file(dest / key[len(pipeline) + 1:]) == read_file(m / key), key


def test_a_big_log_reads_whole_and_from_its_end(mount, seeded_bucket):
    m = mount(bucket=seeded_bucket, extra_args=["--plain"])
    path = m / seeded_bucket.big_key
    size = os.stat(path).st_size
    text = read_file(path)
    assert size == len(text) > 0
    assert run("tail", "-c", "5000", str(path)).stdout == text[-5000:]
    with open(path, "rb") as f:
        f.seek(size // 2)
        assert f.read(4096) == text[size // 2:size // 2 + 4096]
