"""The catalog at scale (issue 13), small enough for CI: scripts/bench --catalog-scale-smoke's driver
(bench/catalog_scale.py --smoke) syncs a generated organization of 5,000 builds and 50,000 jobs from the fake
Buildkite API into a new catalog with the binary under test, and lists it from the catalog. The catalog's bytes
per job must stay under issue 13's bound (300); times are measured, not asserted."""

import importlib.util
import json
import subprocess
import sys

from conftest import REPO_ROOT, require, require_fuse

BENCH = REPO_ROOT / "bench"
BOUND = 300


def test_catalog_scale_smoke(bklogfs_bin, tmp_path):
    require_fuse()
    require(importlib.util.find_spec("flask") is not None, "Flask is not installed (pip install flask)")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(BENCH / "catalog_scale.py"), "--catalog-scale-smoke", "--out", str(out),
                        "--bklogfs-bin", bklogfs_bin, "--cache-root", str(tmp_path / "cache")],
                       capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    assert r.returncode == 0, f"bench/catalog_scale.py --smoke exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    row = json.loads((out / "results.json").read_text())["result"]
    assert "error" not in row, row
    assert (row["builds_stored"], row["jobs_stored"]) == (5_000, 50_000), row
    assert 0 < row["bytes_per_job"] <= BOUND, f"{row['bytes_per_job']} bytes a job: {row['parts']}"
    # About 100 builds a request (pages of builds, newest first, with their jobs), and no more.
    assert row["api_requests"] <= 5_000 / 100 + 2 * row["pipelines"] + 5, row["api_requests_by_endpoint"]
    ls = row["ls"]
    assert ls["organization"]["entries"] == row["pipelines"] and ls["pipeline"]["entries"] == 100, ls
    # The names come from the catalog: the organization and the pipeline cost no request.
    assert ls["organization"]["ls_requests"] == 0 and ls["pipeline"]["ls_requests"] == 0, ls
    # A build: its ten logs and build.json (and aliases).
    assert ls["newest build"]["entries"] >= 11 and ls["first build"]["entries"] >= 11, ls
    table = (out / "results.md").read_text()
    assert "| builds | jobs | `bklogfs sync` |" in table and "| 5,000 | 50,000 |" in table, table
