"""End-to-end: `bklogfs mount --archive DIR` over a local directory with the archive layout."""

import os
import subprocess

import pytest

from conftest import read_file


def tree(root):
    """{relative path: size} of every regular file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = os.stat(p).st_size
    return out


@pytest.fixture(scope="module")
def sample_archive(tmp_path_factory, sample_generator):
    root = tmp_path_factory.mktemp("sample-archive")
    written = sample_generator.generate_archive(str(root))
    assert written
    return root


def test_sample_archive_has_both_layouts(sample_archive):
    depths = {len(rel.split(os.sep)) for rel in tree(sample_archive)}
    assert depths == {3, 4}, "expected {org}/{pipeline}/{build}/{job}.log and {pipeline}/{build}/{job}.log"


def test_every_file_of_the_archive_equals_the_source(mount, sample_archive):
    m = mount(archive=sample_archive)
    want = tree(sample_archive)
    assert tree(m.path) == want
    for rel in want:
        assert read_file(m / rel) == read_file(sample_archive / rel), rel
        assert int(os.stat(m / rel).st_mtime) == int(os.stat(sample_archive / rel).st_mtime), rel


def test_grep_and_tail_on_the_archive(mount, sample_archive):
    m = mount(archive=sample_archive)
    src = subprocess.run(["grep", "-rnaF", "OutOfMemoryError", "."], cwd=sample_archive, capture_output=True, timeout=60)
    mnt = subprocess.run(["grep", "-rnaF", "OutOfMemoryError", "."], cwd=m.path, capture_output=True, timeout=60)
    assert src.returncode == 0 and mnt.returncode == 0, mnt.stderr
    assert sorted(mnt.stdout.splitlines()) == sorted(src.stdout.splitlines())
    biggest = max(tree(sample_archive).items(), key=lambda kv: kv[1])[0]
    t = subprocess.run(["tail", "-c", "300", str(m / biggest)], capture_output=True, timeout=60)
    assert t.stdout == read_file(sample_archive / biggest)[-300:]


HOSTILE_NAMES = [
    "with space.log",
    "plus+sign.log",
    "percent%20literal.log",
    "\u65e5\u672c\u8a9e.log",
    "new\nline.log",  # legal in S3 keys and in file names; moto_server cannot store it, so it is tested here
    "tab\there.log",
    "spaced dir/x y+z%.log",
]


def test_odd_but_legal_names_appear_as_they_are(mount, tmp_path):
    root = tmp_path / "odd-archive"
    for i, name in enumerate(HOSTILE_NAMES):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"file {i}: {name!r}\r\n".encode())
    m = mount(archive=root)
    assert tree(m.path) == tree(root)
    for name in HOSTILE_NAMES:
        assert read_file(m / name) == read_file(root / name), repr(name)
    r = subprocess.run(["find", str(m.path), "-type", "f", "-print0"], capture_output=True, timeout=60)
    assert r.stdout.count(b"\0") == len(HOSTILE_NAMES)
