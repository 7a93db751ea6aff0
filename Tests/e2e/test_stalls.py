"""End-to-end: a store that stops answering mid-transfer (issue 5). The fault proxy's `stall` sends
the head and part of the body, then nothing, holding the connection open. `--timeout` (the stall
timeout) abandons such a request and tries again; when every attempt stalls, reads, lookups and
listings fail with ETIMEDOUT within the timeout times the attempts, the log says which object and
why, and the same mount reads correctly once the store answers again."""

import errno
import os
import subprocess
import time
from urllib.parse import urlparse

import pytest

from conftest import read_file, run_bklogfs
from fault_proxy import FAULTS, FaultProxy
from test_faults import cat_every_file_through_faults, through

ATTEMPTS = 5  # S3Configuration.maxAttempts' default
# The most jitter a call's backoffs add up to (S3Configuration: 0.1 s doubling, 5 s at most).
BACKOFF = sum(min(5, 0.1 * 2 ** n) for n in range(ATTEMPTS - 1))


@pytest.fixture
def stalling_proxy(seeded_bucket):
    p = FaultProxy(urlparse(seeded_bucket.endpoint).port, seed=11, kinds=FAULTS + ("stall",))
    yield p
    p.stop()


def test_every_file_reads_right_when_10_percent_of_requests_stall_or_fail(mount, seeded_bucket, stalling_proxy):
    proxy = stalling_proxy
    # 3 s: long enough for the proxy to relay an 8 MiB part from moto before its first byte.
    m = mount(bucket=through(proxy, seeded_bucket), extra_args=["--timeout", "3"])
    proxy.next_faults = ["stall", "stall"]
    proxy.rate = 0.1
    cat_every_file_through_faults(m, seeded_bucket, proxy)
    assert proxy.injected["stall"] >= 2, dict(proxy.injected)


def test_a_store_that_stalls_fails_reads_lookups_and_listings_with_etimedout_in_bounded_time(
        mount, seeded_bucket, stalling_proxy):
    proxy = stalling_proxy
    timeout = 2
    m = mount(bucket=through(proxy, seeded_bucket), extra_args=["--timeout", str(timeout)])
    key = seeded_bucket.big_key
    (m / key).stat()  # its names are known: the reads below wait on the object itself
    top = key.split("/")[0]
    other = sorted({k.split("/")[0] for k in seeded_bucket.keys} - {top, "dir"})[0]
    # Not one byte of any body: a store that stalls before the bytes a read needs (after half a
    # body, a read of the bytes that came takes them: test_a_stall_after_half_a_body_serves_what_came).
    proxy.fail_all = "silent"
    started = time.monotonic()
    # Two readers of one block at pages far apart (so the kernel does not make one wait for the
    # other's page): the second waits on the first's fetch. A lookup and a listing beside them.
    readers = [subprocess.Popen(["dd", f"if={m / key}", "bs=4096", f"skip={page}", "count=1", "status=none"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for page in (0, 200)]
    lookup = subprocess.Popen(["stat", str(m / other / "no-such-name")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    listing = subprocess.Popen(["ls", str(m / top)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Every attempt stalls. The kernel may ask for a page once more after the readahead that
    # covered it failed, so a read can cost two calls' attempts; and some slack for scheduling.
    bound = 2 * (ATTEMPTS * timeout + BACKOFF) + 15
    outcomes = {}
    for name, proc in [("reader 1", readers[0]), ("reader 2", readers[1]), ("lookup", lookup), ("listing", listing)]:
        try:
            _, err = proc.communicate(timeout=max(1, started + bound + 30 - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"the {name} was still waiting {bound + 30:.0f} s after every request began to stall")
        outcomes[name] = (proc.returncode, err.decode(errors="replace"), time.monotonic() - started)
    for name, (code, err, elapsed) in outcomes.items():
        assert code != 0, f"the {name} succeeded though every request stalled"
        assert os.strerror(errno.ETIMEDOUT) in err, f"{name}: {err}"
        assert elapsed < bound, f"the {name} took {elapsed:.1f} s to fail (bound {bound:.1f} s)"
        # Each attempt waited out the timeout before giving up.
        assert elapsed >= (ATTEMPTS - 1) * timeout * 0.8, f"the {name} failed after {elapsed:.1f} s only"
    log = m.log_path.read_text(errors="replace").splitlines()
    assert any(" error " in line and key in line and "no byte received for 2 s" in line for line in log), \
        "the log does not name the object and the reason:\n" + "\n".join(log[-20:])
    assert any(" error " in line and other in line and "no byte received for 2 s" in line for line in log), "\n".join(log[-20:])
    proxy.fail_all = False
    with open(m / key, "rb") as f:
        assert f.read(2 * 1024 * 1024) == read_file(seeded_bucket.path(key))[:2 * 1024 * 1024], \
            "the same mount did not heal"
    assert sorted(os.listdir(m / top)), "the listing did not heal"
    assert proxy.injected["silent"] >= ATTEMPTS * 2


def test_a_stall_after_half_a_body_serves_what_came(mount, seeded_bucket, stalling_proxy):
    """A GET that stalls after half its body: a read of bytes that came is answered with them at
    once (a read takes its bytes as they arrive), and a read of the object's last bytes, which never
    come, fails with ETIMEDOUT once the retries give up."""
    proxy = stalling_proxy
    timeout = 2
    m = mount(bucket=through(proxy, seeded_bucket), extra_args=["--timeout", str(timeout)])
    key = seeded_bucket.big_key
    size = (m / key).stat().st_size
    proxy.fail_all = "stall"
    started = time.monotonic()
    first = subprocess.run(["dd", f"if={m / key}", "bs=4096", "count=1", "status=none"], capture_output=True,
                           timeout=60)
    assert first.returncode == 0, first.stderr.decode(errors="replace")
    assert first.stdout == read_file(seeded_bucket.path(key))[:4096]
    assert time.monotonic() - started < timeout, "the read waited for bytes it did not need"
    last = subprocess.run(["dd", f"if={m / key}", "bs=4096", f"skip={(size - 1) // 4096}", "status=none"],
                          capture_output=True, timeout=2 * (ATTEMPTS * timeout + BACKOFF) + 30)
    assert last.returncode != 0, "the end of the object was read though it never came"
    assert os.strerror(errno.ETIMEDOUT) in last.stderr.decode(errors="replace")
    assert proxy.injected["stall"] >= ATTEMPTS


@pytest.mark.parametrize("args, says", [
    (["--timeout", "0"], "--timeout takes a whole number of seconds"),
    (["--timeout", "3601"], "--timeout takes a whole number of seconds"),
    (["--timeout", "1.5"], "--timeout"),
    (["--timeout", "soon"], "--timeout"),
    (["--connect-timeout", "0"], "--connect-timeout takes a number of seconds"),
    (["--connect-timeout", "nan"], "--connect-timeout takes a number of seconds"),
], ids=["zero", "too-long", "fraction", "word", "connect-zero", "connect-nan"])
def test_a_bad_timeout_is_refused_with_one_clear_error(bklogfs_bin, tmp_path, args, says):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_bklogfs(bklogfs_bin, "mount", mnt, "--bucket", "b", "--endpoint", "http://127.0.0.1:9", *args, timeout=20)
    assert r.returncode != 0
    assert says in r.stderr, r.stderr
    assert "Error:" in r.stderr.splitlines()[0], r.stderr
    assert not os.listdir(mnt)
