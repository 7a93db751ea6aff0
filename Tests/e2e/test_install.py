"""End-to-end: `scripts/install` puts bklogfs where a system looks for it (issue 15): the binary, man
pages and shell completions made from the argument parser, and the mount helper link for
/etc/fstab; `--uninstall` takes them away. Installed under a temporary prefix, so the machine is
left as it was."""

import re
import shutil
import subprocess

from conftest import REPO_ROOT


def install(*args):
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "install"), *map(str, args)], capture_output=True,
                          text=True, timeout=900)


def test_install_and_uninstall(tmp_path):
    prefix, sbin = tmp_path / "usr", tmp_path / "sbin"
    r = install("--prefix", prefix, "--sbin", sbin)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    binary = prefix / "bin" / "bklogfs"
    assert subprocess.run([binary, "--help"], capture_output=True, text=True).stdout.startswith("OVERVIEW:")
    man = prefix / "share" / "man" / "man1"
    pages = {p.name for p in man.iterdir()}
    # One page for the program and one for each of its commands (none for the parser's own `help`).
    commands = ["mount", "unmount", "stats", "sync", "restore", "warm", "cache", "cache.show", "cache.verify",
                "cache.prune", "cache.clear"]
    assert pages == {"bklogfs.1"} | {f"bklogfs.{command}.1" for command in commands}, sorted(pages)
    page = (man / "bklogfs.mount.1").read_text()
    assert ".Dt BKLOGFS.MOUNT 1" in page and "Fl -as-of" in page and "Fl -requester-pays" in page  # mdoc: --as-of
    if shutil.which("groff"):
        rendered = subprocess.run(["groff", "-mandoc", "-Tutf8", str(man / "bklogfs.mount.1")], capture_output=True,
                                  text=True, check=True).stdout
        # Bold and underline are overstruck (a character, a backspace, the character again).
        assert "--as-of" in re.sub(".\x08", "", rendered)
    completion = prefix / "share" / "bash-completion" / "completions" / "bklogfs"
    r = subprocess.run(["bash", "-c", f"source {completion} && complete -p bklogfs"], capture_output=True, text=True)
    assert r.returncode == 0 and "_bklogfs" in r.stdout, r.stderr
    assert (prefix / "share" / "zsh" / "site-functions" / "_bklogfs").read_text().startswith("#compdef bklogfs")
    assert "complete -c 'bklogfs'" in (prefix / "share" / "fish" / "vendor_completions.d" / "bklogfs.fish").read_text()
    helper = sbin / "mount.fuse.bklogfs"
    assert helper.is_symlink() and helper.resolve() == binary.resolve()
    # mount(8)'s "fake" flag: the helper parses the line and mounts nothing.
    r = subprocess.run([helper, "s3://bucket/prefix", tmp_path / "mnt", "-f", "-o", "rw,_netdev,region=eu-west-1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr

    r = install("--uninstall", "--prefix", prefix, "--sbin", sbin)
    assert r.returncode == 0, r.stderr
    left = [p for p in tmp_path.rglob("*") if p.is_file() or p.is_symlink()]
    assert left == [], left
