"""The benchmark's data set: Buildkite job logs in the private archive's layout, generated once into
a cache directory and reused while its spec is unchanged.

Layout, as Buildkite writes a private archive and as scripts/make-sample-archive does:

    ROOT/{org}/{pipeline}/{build}/{job}.log        every part a UUID drawn from a seeded RNG

with one organization and one pipeline per part of the data set:

    big      8 logs of 160 MiB, one build          workloads 1, 2, 3, 7
    huge     1 log of 1 GiB                         workloads 4, 8
    medium   2,000 logs of 50 KiB in 100 builds    workload 5
    small    20,000 logs of 1-4 KiB in 200 builds   workload 6

Each log opens like the agent's (scripts/make-sample-archive's preamble: `~~~` sections, git
progress lines rewritten with `\\r` and erase-line codes), then carries lines drawn from a pool of
generated ones (compiler, test runner, docker and npm output, stack traces, hex digests, ANSI
colours), each behind the agent's `ESC _ bk;t=<ms> BEL` timestamp marker and ending in CRLF. A few
pool lines contain MATCH_WORD, the literal the grep workloads count. The same spec always gives the
same bytes, names and mtimes; the pool's digests and numbers make the logs compress about as
well as real ones (not trivially).

Standard library only. ensure() returns a Dataset whose manifest also holds, for every log, the
number of lines grep -c MATCH_WORD counts, so a workload's answer can be checked.
"""

import dataclasses
import hashlib
import json
import os
import random
import runpy
import shutil
import time
import types
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
KiB = 1 << 10
FORMAT_VERSION = 1
MATCH_WORD = "FAILED"
EPOCH_MS = 1717000000000


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    big_count: int = 8
    big_size: int = 160 * MiB
    huge_size: int = 1024 * MiB
    medium_count: int = 2000
    medium_builds: int = 100
    medium_size: int = 50 * KiB
    small_count: int = 20000
    small_builds: int = 200
    small_min: int = 1 * KiB
    small_max: int = 4 * KiB
    seed: int = 20250101

    def digest(self):
        body = json.dumps({"format": FORMAT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:12]


FULL = Spec("full")
SMOKE = Spec("smoke", big_size=2 * MiB, huge_size=8 * MiB, medium_count=20, medium_builds=4, small_count=200,
             small_builds=10)


@dataclasses.dataclass
class Dataset:
    root: Path
    spec: Spec
    manifest: dict

    def path(self, rel):
        return self.root / rel

    @property
    def big(self):
        return self.manifest["big"]

    @property
    def huge(self):
        return self.manifest["huge"]

    @property
    def medium_dir(self):
        return self.manifest["medium_dir"]

    @property
    def small_dir(self):
        return self.manifest["small_dir"]

    def matches(self, rel):
        return self.manifest["matches"][rel]

    def matches_under(self, rel_dir):
        prefix = rel_dir.rstrip("/") + "/"
        return sum(n for k, n in self.manifest["matches"].items() if k.startswith(prefix))

    def files_under(self, rel_dir):
        prefix = rel_dir.rstrip("/") + "/"
        return [k for k in self.manifest["matches"] if k.startswith(prefix)]

    def size(self, rel):
        return self.manifest["sizes"][rel]


def _sample_generator():
    """scripts/make-sample-archive's definitions (its log writer and preamble), as a namespace."""
    return types.SimpleNamespace(**runpy.run_path(str(REPO_ROOT / "scripts" / "make-sample-archive")))


ESC = "\x1b"
R = ESC + "[0m"
GREY, RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN, BOLD = (ESC + c for c in
                                                      ("[90m", "[31m", "[32m", "[33m", "[34m", "[35m", "[36m", "[1m"))
WORDS = ("index shard batch commit cache worker queue retry upload fetch resolve compile link bundle "
         "checkout billing search ingest api web client server session token render parse encode decode "
         "schema migrate report metrics trace span buffer socket stream chunk merge rebase deploy").split()
MODULES = ("core", "api", "billing", "search", "ingest", "web", "auth", "jobs", "reports", "storage")


def _hex(rng, n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


def _line_pool(rng, size=8192):
    """Lines without their timestamp marker or CRLF. About 1 in 400 contains MATCH_WORD once."""

    def word():
        return rng.choice(WORDS)

    def mod():
        return rng.choice(MODULES)

    makers = [
        lambda: f"{GREY}{rng.randint(10, 23)}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d} DEBUG{R} [{word()}-{rng.randint(0, 15)}] {word()} {rng.randint(1, 10**6)} {word()}s in {rng.randint(1, 9999)}ms",
        lambda: f"com.acme.{mod()}.{word().title()}{word().title()}Test > {word()}{word().title()}{rng.randint(0, 99)}() {GREEN}PASSED{R}",
        lambda: f"    at com.acme.{mod()}.{word().title()}.{word()}{word().title()}({word().title()}.java:{rng.randint(10, 2000)})",
        lambda: f"   {GREEN}{BOLD}Compiling{R} {word()}-{word()} v{rng.randint(0, 3)}.{rng.randint(0, 40)}.{rng.randint(0, 20)}",
        lambda: f"#{rng.randint(1, 40)} sha256:{_hex(rng, 64)} {rng.randint(1, 900)}.{rng.randint(0, 9)}MB / {rng.randint(1, 900)}.{rng.randint(0, 9)}MB {rng.randint(0, 30)}.{rng.randint(0, 9)}s",
        lambda: f"{MAGENTA}npm{R} {CYAN}http{R} fetch GET 200 https://registry.npmjs.org/@{word()}/{word()}-{word()}/-/{word()}-{rng.randint(1, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}.tgz {rng.randint(3, 900)}ms (cache miss)",
        lambda: f"{BLUE}[{mod()}]{R} {word()}: {rng.randint(0, 100)}% ({rng.randint(1, 50000)}/{rng.randint(50000, 90000)}) {_hex(rng, 12)}",
        lambda: f"spec/{mod()}/{word()}_{word()}_spec.rb:{rng.randint(1, 800)}: {word()} {word()} {word()} ({rng.randint(1, 999)}.{rng.randint(10, 99)}ms)",
        lambda: f"tests/test_{word()}.py::test_{word()}_{word()}[{_hex(rng, 6)}] {GREEN}PASSED{R} [{rng.randint(0, 100):3d}%]",
        lambda: f"{YELLOW}warning{R}{BOLD}: unused variable: `{word()}_{word()}`{R}  --> src/{mod()}/{word()}.rs:{rng.randint(1, 900)}:{rng.randint(1, 80)}",
        lambda: f"{GREY}{EPOCH_MS // 1000 + rng.randint(0, 10**7)} INFO{R} uploaded artifact {mod()}/{word()}-{_hex(rng, 8)}.tar.gz ({rng.randint(1, 10**8)} bytes, sha1 {_hex(rng, 40)})",
        lambda: f"  {rng.randint(1, 9999):>5} | {word()}({word()}, {rng.randint(0, 4096)}) -> {word()}::{word().title()}<{word().title()}>",
        lambda: f"Step {rng.randint(1, 30)}/{rng.randint(30, 40)} : RUN {word()} --{word()}={_hex(rng, 10)} && {word()} {word()}",
        lambda: f"{GREY}[{rng.randint(0, 9999):04d}]{R} GET /api/v{rng.randint(1, 3)}/{word()}s/{rng.randint(1, 10**6)}/{word()} {rng.choice([200, 200, 200, 201, 204, 304, 404, 500])} {rng.randint(1, 900)}ms",
    ]
    failures = [
        lambda: f"com.acme.{mod()}.{word().title()}Test > {word()}{word().title()}() {RED}{MATCH_WORD}{R}",
        lambda: f"{RED}{MATCH_WORD} tests/test_{word()}.py::test_{word()} - AssertionError: assert {rng.randint(0, 9)} == {rng.randint(10, 99)}{R}",
        lambda: f"rspec ./spec/{mod()}/{word()}_spec.rb:{rng.randint(1, 800)} {GREY}# {MATCH_WORD} {word()} {word()}{R}",
    ]
    pool = []
    for i in range(size):
        make = rng.choice(failures) if i % 400 == 7 else rng.choice(makers)
        line = make()
        assert line.count(MATCH_WORD) <= 1 and "\n" not in line
        pool.append(line)
    return pool


class _Generator:
    def __init__(self, spec):
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.sample = _sample_generator()
        self.pool = _line_pool(random.Random(spec.seed + 1))
        self.pool_bytes = [(f"\x07{line}\r\n").encode("utf-8") for line in self.pool]
        self.pool_matches = [MATCH_WORD in line for line in self.pool]

    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def log(self, size, start_ms, slug):
        """One job log of exactly `size` bytes (cut at a byte boundary for the last line), and the
        number of its lines that contain MATCH_WORD."""
        rng = random.Random(self.rng.getrandbits(64))
        w = self.sample.LogWriter(rng, start_ms)
        self.sample.preamble(w, slug, "%040x" % rng.getrandbits(160), f"ci-agent-{rng.randint(1, 12)}")
        w.command(f"./ci/run-{slug}.sh")
        w.line(f"+++ :test_tube: {slug}")
        head = w.bytes()
        parts = [head]
        total = len(head)
        t = w.t
        pool_bytes, n_pool = self.pool_bytes, len(self.pool_bytes)
        randbelow = rng.getrandbits
        while total < size:
            picks = [randbelow(13) % n_pool for _ in range(2048)]
            chunk = []
            for p in picks:
                t += (p & 7) + 1
                chunk.append(b"\x1b_bk;t=%d" % t)
                chunk.append(pool_bytes[p])
            data = b"".join(chunk)
            parts.append(data)
            total += len(data)
        data = b"".join(parts)[:size]
        matches = sum(1 for line in data.split(b"\n") if MATCH_WORD.encode() in line)
        return data, matches, t


def _write(root, rel, data, mtime_ms):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))


def generate(root, spec, log=print):
    """Writes the data set under root (which must not exist) and returns its manifest."""
    g = _Generator(spec)
    root = Path(root)
    root.mkdir(parents=True)
    org = g.uuid()
    manifest = {"spec": dataclasses.asdict(spec), "digest": spec.digest(), "org": org, "match_word": MATCH_WORD,
                "big": [], "huge": None, "medium_dir": None, "small_dir": None, "matches": {}, "sizes": {}}
    t = EPOCH_MS
    started = time.monotonic()

    def add(rel, data, matches, end_ms):
        _write(root, rel, data, end_ms)
        manifest["matches"][rel] = matches
        manifest["sizes"][rel] = len(data)

    # big: one build of the `big` pipeline with 8 long jobs
    pipeline, build = g.uuid(), g.uuid()
    for i in range(spec.big_count):
        rel = f"{org}/{pipeline}/{build}/{g.uuid()}.log"
        data, matches, end = g.log(spec.big_size, t + i * 1000, "stress-test")
        add(rel, data, matches, end)
        manifest["big"].append(rel)
        log(f"dataset: big log {i + 1}/{spec.big_count} ({spec.big_size // MiB} MiB)")

    # huge: one 1 GiB log
    pipeline, build = g.uuid(), g.uuid()
    rel = f"{org}/{pipeline}/{build}/{g.uuid()}.log"
    data, matches, end = g.log(spec.huge_size, t, "soak-test")
    add(rel, data, matches, end)
    manifest["huge"] = rel
    del data
    log(f"dataset: huge log ({spec.huge_size // MiB} MiB)")

    # medium: builds of equal-sized logs
    def builds_of(count, nbuilds, size_of, slug, key):
        pipeline = g.uuid()
        manifest[key] = f"{org}/{pipeline}"
        nonlocal t
        per_build = count // nbuilds
        extra = count % nbuilds
        for b in range(nbuilds):
            build = g.uuid()
            t += g.rng.randint(600_000, 7_200_000)
            for j in range(per_build + (1 if b < extra else 0)):
                rel = f"{org}/{pipeline}/{build}/{g.uuid()}.log"
                data, matches, end = g.log(size_of(), t + j * 1000, slug)
                add(rel, data, matches, end)

    builds_of(spec.medium_count, spec.medium_builds, lambda: spec.medium_size, "web-app", "medium_dir")
    log(f"dataset: {spec.medium_count} medium logs")
    builds_of(spec.small_count, spec.small_builds, lambda: g.rng.randint(spec.small_min, spec.small_max),
              "lint", "small_dir")
    log(f"dataset: {spec.small_count} small logs")
    manifest["total_bytes"] = sum(manifest["sizes"].values())
    manifest["generated_in_s"] = round(time.monotonic() - started, 1)
    return manifest


def ensure(cache_root, spec, log=print):
    """The data set for spec under cache_root, generated if missing or made from another spec."""
    cache_root = Path(cache_root)
    root = cache_root / f"data-{spec.name}-{spec.digest()}"
    manifest_path = cache_root / f"data-{spec.name}-{spec.digest()}.json"
    if manifest_path.exists() and root.is_dir():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("digest") == spec.digest():
            return Dataset(root, spec, manifest)
    cache_root.mkdir(parents=True, exist_ok=True)
    for stale in cache_root.glob(f"data-{spec.name}-*"):
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    log(f"dataset: generating the {spec.name} data set under {root} (once; reused while its spec is unchanged)")
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    manifest = generate(tmp, spec, log=log)
    tmp.rename(root)
    manifest_path.write_text(json.dumps(manifest))
    log(f"dataset: {len(manifest['sizes'])} logs, {manifest['total_bytes'] / MiB:.0f} MiB, "
        f"in {manifest['generated_in_s']} s")
    return Dataset(root, spec, manifest)
