"""Fidelity tests of the project's fake Buildkite REST API (Tests/fake_buildkite).

They check the fake against Buildkite's documented behaviour (docs: apis/rest-api, jobs, builds, rate-limits),
and against the real build JSON in ../shared/testdata/buildkite/build.json.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FAKE_BK_DIR, fake_buildkite_process, load_fake_buildkite_world
from conftest import testdata_dir as bk_testdata

W = load_fake_buildkite_world()
S = W.SPECIAL
ORG, TOOLS, WEB = S["org"], S["pipeline"], S["big_pipeline"]
TOOLS_BUILDS = f"/v2/organizations/{ORG}/pipelines/{TOOLS}/builds"
WEB_BUILDS = f"/v2/organizations/{ORG}/pipelines/{WEB}/builds"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def links(headers):
    out = {}
    for part in (headers.get("Link") or "").split(","):
        m = re.match(r'\s*<([^>]+)>;\s*rel="(\w+)"', part)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def check_types(obj, spec):
    for key, types in spec.items():
        assert key in obj, f"missing {key} in {sorted(obj)}"
        assert isinstance(obj[key], types), f"{key}: {obj[key]!r} is not {types}"


def job_of(fake, number, **match):
    ids = W.job_ids(fake.world, ORG, TOOLS, number, **match)
    assert ids, f"no job {match} in build {number}"
    return ids


def log_path(number, job, suffix=""):
    return f"{TOOLS_BUILDS}/{number}/jobs/{job}/log{suffix}"


# ---------------------------------------------------------------- shapes


def test_organizations_and_pipelines_shapes(fake_buildkite):
    orgs, h = fake_buildkite.get_json("/v2/organizations")
    assert [o["slug"] for o in orgs] == ["acme", "buildkite", "empty-org"]
    for o in orgs:
        check_types(o, {"id": str, "graphql_id": str, "url": str, "web_url": str, "name": str, "slug": str,
                        "pipelines_url": str, "created_at": str})
        assert UUID_RE.match(o["id"])
        assert o["url"] == f"{fake_buildkite.api}/organizations/{o['slug']}"
    one, _ = fake_buildkite.get_json(f"/v2/organizations/{ORG}")
    assert one == orgs[0]
    pipelines, _ = fake_buildkite.get_json(f"/v2/organizations/{ORG}/pipelines")
    assert [p["slug"] for p in pipelines] == [WEB, TOOLS]
    for p in pipelines:
        check_types(p, {"id": str, "url": str, "web_url": str, "name": str, "slug": str, "builds_url": str,
                        "repository": str, "default_branch": str, "created_at": str})
        assert p["builds_url"] == f"{fake_buildkite.api}/organizations/{ORG}/pipelines/{p['slug']}/builds"
    p, _ = fake_buildkite.get_json(f"/v2/organizations/{ORG}/pipelines/{TOOLS}")
    assert p == pipelines[1]
    empty, _ = fake_buildkite.get_json("/v2/organizations/empty-org/pipelines")
    assert empty == []
    assert fake_buildkite.request("GET", "/v2/organizations/nope")[0] == 404
    assert fake_buildkite.request("GET", f"/v2/organizations/{ORG}/pipelines/nope")[0] == 404


def test_real_build_round_trips(fake_buildkite):
    real = json.loads((bk_testdata() / "buildkite" / "build.json").read_text())[0]
    got, _ = fake_buildkite.get_json(
        f"/v2/organizations/{S['real_org']}/pipelines/{S['real_pipeline']}/builds/{S['real_number']}")
    assert list(got) == list(real), "same fields in the same order"
    url_keys = {"url", "web_url"}
    for k, v in real.items():
        if k in url_keys:
            continue
        if k == "pipeline":
            for pk, pv in v.items():
                if pk not in url_keys | {"builds_url"}:
                    assert got["pipeline"][pk] == pv, pk
            continue
        assert got[k] == v, k
    assert got["url"] == f"{fake_buildkite.api}/organizations/buildkite/pipelines/buildkite-cli/builds/584"
    assert got["pipeline"]["url"].startswith(fake_buildkite.base_url)
    listed, _ = fake_buildkite.get_json(f"/v2/organizations/{S['real_org']}/pipelines/{S['real_pipeline']}/builds")
    assert listed == [got]


def test_build_and_job_shapes(fake_buildkite):
    b, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{S['job_types']}")
    check_types(b, {"id": str, "number": int, "state": str, "url": str, "web_url": str, "message": str,
                    "commit": str, "branch": str, "created_at": str, "jobs": list, "pipeline": dict})
    assert b["finished_at"] and b["started_at"]
    types = [j["type"] for j in b["jobs"]]
    assert set(types) == {"script", "waiter", "manual", "trigger"}
    for j in b["jobs"]:
        check_types(j, {"id": str, "type": str})
        if j["type"] == "script":
            check_types(j, {"name": str, "state": str, "log_url": str, "raw_log_url": str, "web_url": str,
                            "created_at": str, "retried": bool})
            for k in ("step_key", "parallel_group_index", "parallel_group_total", "retried_in_job_id",
                      "retries_count", "started_at", "finished_at", "exit_status"):
                assert k in j, k
            assert j["log_url"] == f"{b['url']}/jobs/{j['id']}/log"
            assert j["raw_log_url"] == j["log_url"] + ".txt"
        else:
            assert "log_url" not in j and "raw_log_url" not in j
    parallel = [j for j in b["jobs"] if j.get("parallel_group_total")]
    assert [(j["parallel_group_index"], j["parallel_group_total"]) for j in parallel] == [(0, 3), (1, 3), (2, 3)]
    trig = next(j for j in b["jobs"] if j["type"] == "trigger")
    check_types(trig["triggered_build"], {"id": str, "number": int, "url": str, "web_url": str})
    target, _ = fake_buildkite.get_json(trig["triggered_build"]["url"])
    assert target["id"] == trig["triggered_build"]["id"]
    no_jobs, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{S['no_jobs']}")
    assert no_jobs["jobs"] == []
    slim, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{S['job_types']}?exclude_jobs=true&exclude_pipeline=true")
    assert "jobs" not in slim and "pipeline" not in slim
    assert fake_buildkite.request("GET", f"{TOOLS_BUILDS}/999")[0] == 404


# ---------------------------------------------------------------- pagination and filters


def test_builds_pagination_link_headers_and_per_page_cap(fake_buildkite):
    total = len(W.find_pipeline(fake_buildkite.world, ORG, WEB)["builds"])
    first, h = fake_buildkite.get_json(WEB_BUILDS)
    assert len(first) == 30, "default per_page is 30"
    l1 = links(h)
    assert set(l1) == {"next", "last"}, h.get("Link")
    capped, h = fake_buildkite.get_json(f"{WEB_BUILDS}?per_page=500&exclude_jobs=true")
    assert len(capped) == 100, "per_page is capped at 100"
    numbers, url, pages = [], f"{WEB_BUILDS}?per_page=100&exclude_jobs=true", 0
    while url:
        page, h = fake_buildkite.get_json(url)
        numbers += [b["number"] for b in page]
        rel = links(h)
        pages += 1
        if pages > 1:
            assert {"prev", "first"} <= set(rel)
        url = rel.get("next")
    assert pages == (total + 99) // 100
    assert set(rel) == {"prev", "first"}, "the last page has no next/last"
    assert len(numbers) == total == len(set(numbers))
    assert numbers == sorted(numbers, reverse=True), "newest first"
    assert int(re.search(r"[?&]page=(\d+)", l1["last"]).group(1)) == (total + 29) // 30


def test_listing_too_deep_asks_for_filters(fake_buildkite):
    fake_buildkite.control("settings", deep_listing_limit=100)
    status, _, body = fake_buildkite.request("GET", f"{WEB_BUILDS}?per_page=50&page=3")
    assert status == 400
    msg = json.loads(body)["message"]
    assert "this deep is not supported" in msg and "created_from" in msg
    assert fake_buildkite.request("GET", f"{WEB_BUILDS}?per_page=50&page=2")[0] == 200
    for narrowing in ("branch=main", "created_from=2024-01-01T00:00:00Z", "finished_from=2024-01-01T00:00:00Z"):
        assert fake_buildkite.request("GET", f"{WEB_BUILDS}?per_page=50&page=3&{narrowing}")[0] == 200, narrowing


def test_build_filters(fake_buildkite):
    world_builds = W.find_pipeline(fake_buildkite.world, ORG, WEB)["builds"]
    q = "per_page=100&exclude_jobs=true"
    main_builds, _ = fake_buildkite.get_json(f"{WEB_BUILDS}?{q}&branch=main")
    assert main_builds and all(b["branch"] == "main" for b in main_builds)
    feat, _ = fake_buildkite.get_json(f"{WEB_BUILDS}?{q}&branch=feature/*")
    assert feat and all(b["branch"].startswith("feature/") for b in feat)
    assert len(feat) == sum(1 for b in world_builds if b["branch"].startswith("feature/"))
    failed, _ = fake_buildkite.get_json(f"{WEB_BUILDS}?{q}&state=failed")
    assert failed and {b["state"] for b in failed} == {"failed"}
    both, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}?state[]=running&state[]=canceled")
    assert sorted(b["number"] for b in both) == [S["running"], S["no_jobs"]]
    finished, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}?state=finished")
    assert S["running"] not in [b["number"] for b in finished]
    b100 = next(b for b in world_builds if b["number"] == 100)
    b110 = next(b for b in world_builds if b["number"] == 110)
    window, _ = fake_buildkite.get_json(
        f"{WEB_BUILDS}?{q}&created_from={b100['created_at']}&created_to={b110['created_at']}")
    assert [b["number"] for b in window] == [n for n in range(109, 99, -1) if any(x["number"] == n for x in world_builds)]
    fin, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}?finished_from=2024-05-01T11:00:00Z")
    assert S["running"] not in [b["number"] for b in fin] and fin
    org_wide, h = fake_buildkite.get_json(f"/v2/organizations/{ORG}/builds?per_page=5&exclude_jobs=true")
    assert len(org_wide) == 5 and "next" in links(h)


def test_retried_jobs_hidden_unless_asked(fake_buildkite):
    n = S["retried"]
    stored = W.find_build(fake_buildkite.world, ORG, TOOLS, n)["jobs"]
    latest = [j["id"] for j in stored if not j["retried"]]
    default, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{n}")
    assert [j["id"] for j in default["jobs"]] == latest
    everything, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{n}?include_retried_jobs=true")
    assert [j["id"] for j in everything["jobs"]] == [j["id"] for j in stored]
    by_id = {j["id"]: j for j in everything["jobs"]}
    first = next(j for j in everything["jobs"] if j["step_key"] == "flaky" and j["retried"] and j["retries_count"] is None)
    chain = [first]
    while chain[-1]["retried_in_job_id"]:
        chain.append(by_id[chain[-1]["retried_in_job_id"]])
    assert len(chain) == 3 and not chain[-1]["retried"] and chain[-1]["id"] in latest
    assert [j["retries_count"] for j in chain] == [None, 1, 2]
    listed, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}?include_retried_jobs=true&branch=main")
    assert len(next(b for b in listed if b["number"] == n)["jobs"]) == len(stored)
    # the jobs endpoint includes retried jobs by default (documented), and can leave them out
    jobs, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{n}/jobs")
    assert [j["id"] for j in jobs["items"]] == [j["id"] for j in stored]
    jobs, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{n}/jobs?include_retried_jobs=false")
    assert [j["id"] for j in jobs["items"]] == latest
    # an old attempt is still reachable by UUID, with its own log
    old, _ = fake_buildkite.get_json(f"/v2/organizations/{ORG}/jobs/{first['id']}")
    assert old["retried"] is True
    status, _, body = fake_buildkite.request("GET", log_path(n, first["id"]), headers={"Accept": "text/plain"})
    assert status == 200 and body == W.log_bytes(fake_buildkite.world, first["id"])


def test_jobs_cursor_pagination(fake_buildkite):
    n = S["job_types"]
    want = [j["id"] for j in W.find_build(fake_buildkite.world, ORG, TOOLS, n)["jobs"]]
    got, url, pages = [], f"{TOOLS_BUILDS}/{n}/jobs?per_page=2", 0
    while url:
        page, _ = fake_buildkite.get_json(url)
        assert set(page) == {"items", "links"} and isinstance(page["items"], list)
        assert "self" in page["links"]
        got += [j["id"] for j in page["items"]]
        url = page["links"].get("next")
        pages += 1
    assert got == want and pages == (len(want) + 1) // 2
    assert fake_buildkite.request("GET", f"{TOOLS_BUILDS}/{n}/jobs?after=garbage!")[0] == 400
    failed, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{S['retried']}/jobs?state[]=failed")
    assert failed["items"] and {j["state"] for j in failed["items"]} == {"failed"}
    one = want[0]
    j1, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{n}/jobs/{one}")
    j2, _ = fake_buildkite.get_json(f"/v2/organizations/{ORG}/jobs/{one}")
    assert j1 == j2 and j1["id"] == one
    status, _, body = fake_buildkite.request("GET", f"/v2/organizations/{ORG}/jobs/00000000-0000-4000-8000-000000000000")
    assert status == 404 and json.loads(body) == {"message": "No job found"}


# ---------------------------------------------------------------- logs


def test_log_json_text_and_txt_suffix(fake_buildkite):
    n = S["job_types"]
    job = job_of(fake_buildkite, n, step_key="fetch")[0]
    want = W.log_bytes(fake_buildkite.world, job)
    assert want and Path(fake_buildkite.world["logs"][job]["path"]).parent == bk_testdata() / "buildkite" / "logs"
    doc, h = fake_buildkite.get_json(log_path(n, job))
    assert h["Content-Type"].startswith("application/json")
    check_types(doc, {"url": str, "content": str, "size": int, "header_times": list})
    assert doc["size"] == len(want) and doc["content"] == want.decode("utf-8", "replace")
    assert doc["url"] == f"{fake_buildkite.base_url}{log_path(n, job)}"
    for accept_path, headers in ((log_path(n, job), {"Accept": "text/plain"}), (log_path(n, job, ".txt"), {})):
        status, h, body = fake_buildkite.request("GET", accept_path, headers=headers)
        assert status == 200 and h["Content-Type"].startswith("text/plain") and body == want
    status, _, body = fake_buildkite.request("GET", f"/v2/organizations/{ORG}/jobs/{job}/log",
                                             headers={"Accept": "text/plain"})
    assert status == 200 and body == want
    gen = job_of(fake_buildkite, n, step_key="specs")[0]
    doc, _ = fake_buildkite.get_json(log_path(n, gen))
    assert doc["header_times"] and all(isinstance(t, int) for t in doc["header_times"])


def test_log_head_and_suffix_ranges(fake_buildkite):
    n = S["big_log"]
    job = job_of(fake_buildkite, n)[0]
    want = W.log_bytes(fake_buildkite.world, job)
    status, h, body = fake_buildkite.request("HEAD", log_path(n, job))
    assert status == 200 and body == b""
    assert int(h["Content-Length"]) == len(want) and h["Accept-Ranges"] == "bytes"
    text = {"Accept": "text/plain"}
    for tail in (1, 4096, len(want) - 1):
        status, h, body = fake_buildkite.request("GET", log_path(n, job), headers={**text, "Range": f"bytes=-{tail}"})
        assert status == 206 and body == want[-tail:]
        assert h["Content-Range"] == f"bytes {len(want) - tail}-{len(want) - 1}/{len(want)}"
        assert int(h["Content-Length"]) == tail
    status, h, body = fake_buildkite.request("GET", log_path(n, job), headers={**text, "Range": f"bytes=-{len(want) * 2}"})
    assert status == 206 and body == want
    for bad in ("bytes=0-99", "bytes=100-", "bytes=-0", "bytes=0-1,5-9", "bytes=-5,-3", "items=-5"):
        assert fake_buildkite.request("GET", log_path(n, job), headers={**text, "Range": bad})[0] == 400, bad
    assert fake_buildkite.request("GET", log_path(n, job), headers={"Range": "bytes=-10"})[0] == 400, \
        "a range needs Accept: text/plain"


def test_empty_deleted_and_non_script_logs(fake_buildkite):
    n = S["empty_deleted"]
    empty, deleted = job_of(fake_buildkite, n, step_key="quiet")[0], job_of(fake_buildkite, n, step_key="purged")[0]
    doc, _ = fake_buildkite.get_json(log_path(n, empty))
    assert doc["content"] == "" and doc["size"] == 0
    status, h, _ = fake_buildkite.request("HEAD", log_path(n, empty))
    assert status == 200 and h["Content-Length"] == "0"
    status, _, body = fake_buildkite.request("GET", log_path(n, empty), headers={"Accept": "text/plain"})
    assert status == 200 and body == b""
    assert fake_buildkite.request("GET", log_path(n, empty), headers={"Accept": "text/plain", "Range": "bytes=-10"})[0] == 416
    for method in ("GET", "HEAD"):
        assert fake_buildkite.request(method, log_path(n, deleted))[0] == 404
    status, _, body = fake_buildkite.request("GET", log_path(n, deleted), headers={"Accept": "text/plain"})
    assert status == 404 and "message" in json.loads(body)
    waiter = job_of(fake_buildkite, S["job_types"], type="waiter")[0]
    assert fake_buildkite.request("GET", log_path(S["job_types"], waiter))[0] == 404


def test_running_build_log_grows_until_finished(fake_buildkite):
    n = S["running"]
    build, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{n}")
    assert build["state"] == "running" and build["finished_at"] is None
    job = next(j for j in build["jobs"] if j["state"] == "running")
    assert job["finished_at"] is None
    text = {"Accept": "text/plain"}
    sizes = []
    for _ in range(3):
        head = int(fake_buildkite.request("HEAD", log_path(n, job["id"]))[1]["Content-Length"])
        status, _, body = fake_buildkite.request("GET", log_path(n, job["id"]), headers=text)
        assert status == 200 and len(body) > head, "each GET serves more than the HEAD before it saw"
        sizes.append(len(body))
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert body == W.log_bytes(fake_buildkite.world, job["id"], fetches=3)
    running_only, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}?state=running")
    assert [b["number"] for b in running_only] == [n]
    fake_buildkite.control("finish-build", org=ORG, pipeline=TOOLS, number=n)
    done, _ = fake_buildkite.get_json(f"{TOOLS_BUILDS}/{n}")
    assert done["state"] == "passed" and done["finished_at"]
    assert all(j["state"] == "passed" and j["finished_at"] for j in done["jobs"])
    final = [fake_buildkite.request("GET", log_path(n, job["id"]), headers=text)[2] for _ in range(2)]
    assert final[0] == final[1] and len(final[0]) > sizes[-1] and final[0].endswith(b"finished\r\n")


def test_deleted_build_disappears(fake_buildkite):
    n = S["job_types"]
    job = job_of(fake_buildkite, n, step_key="fetch")[0]
    fake_buildkite.control("delete-build", org=ORG, pipeline=TOOLS, number=n)
    assert fake_buildkite.request("GET", f"{TOOLS_BUILDS}/{n}")[0] == 404
    listed, _ = fake_buildkite.get_json(TOOLS_BUILDS)
    assert n not in [b["number"] for b in listed]
    assert fake_buildkite.request("GET", f"/v2/organizations/{ORG}/jobs/{job}")[0] == 404
    assert fake_buildkite.request("GET", f"/v2/organizations/{ORG}/jobs/{job}/log")[0] == 404


# ---------------------------------------------------------------- auth, scopes


def test_authentication_required(fake_buildkite):
    for token in ("", "bkua_not_a_real_token"):
        status, _, body = fake_buildkite.request("GET", "/v2/organizations", token=token)
        assert status == 401
        assert json.loads(body)["message"].startswith("Authentication required.")
    status, _, _ = fake_buildkite.request("GET", "/v2/organizations", headers={"Authorization": "Basic Zm9vOmJhcg=="},
                                          token="")
    assert status == 401


@pytest.mark.parametrize("token,path,scope", [
    ("bkua_fake_no_logs", "LOG", "read_build_logs"),
    ("bkua_fake_orgs_only", f"/v2/organizations/{ORG}/pipelines", "read_pipelines"),
    ("bkua_fake_no_builds", TOOLS_BUILDS, "read_builds"),
    ("bkua_fake_no_builds", f"/v2/organizations/{ORG}/jobs/JOB", "read_builds"),
])
def test_missing_scope_is_named(fake_buildkite, token, path, scope):
    n = S["job_types"]
    job = job_of(fake_buildkite, n, step_key="fetch")[0]
    path = log_path(n, job) if path == "LOG" else path.replace("JOB", job)
    status, _, body = fake_buildkite.request("GET", path, token=token)
    assert status == 403
    assert json.loads(body)["message"] == f"Your access token doesn't have the {scope} scope"


def test_token_sees_only_its_organizations(fake_buildkite):
    orgs, _ = fake_buildkite.get_json("/v2/organizations", token="bkua_fake_bob")
    assert [o["slug"] for o in orgs] == ["acme"]
    assert fake_buildkite.request("GET", "/v2/organizations/buildkite", token="bkua_fake_bob")[0] == 404


# ---------------------------------------------------------------- rate limits


def test_rate_limit_headers_429_and_recovery(fake_buildkite):
    fake_buildkite.control("rate-limit", org=1000, user=4, window_seconds=1.5)
    path = f"/v2/organizations/{ORG}"
    remaining = []
    for _ in range(4):
        status, h, _ = fake_buildkite.request("GET", path)
        assert status == 200
        for k in ("RateLimit-Remaining", "RateLimit-Limit", "RateLimit-Reset", "RateLimit-User-Remaining",
                  "RateLimit-User-Limit", "RateLimit-User-Reset"):
            assert h[k].isdigit(), k
        assert h["RateLimit-Limit"] == "1000" and h["RateLimit-User-Limit"] == "4"
        remaining.append(int(h["RateLimit-User-Remaining"]))
    assert remaining == [3, 2, 1, 0]
    # the same user's other token shares the per-user budget
    status, h, body = fake_buildkite.request("GET", path, token="bkua_fake_full_alice2")
    assert status == 429 and h["RateLimit-User-Remaining"] == "0"
    doc = json.loads(body)
    assert doc["scope"] == "rest_user" and doc["limit"] == 4 and "exceeded your API rate limit" in doc["message"]
    assert 1 <= int(h["RateLimit-User-Reset"]) <= 2
    # another user is not limited by alice's budget, but counts against the org's
    status, h, _ = fake_buildkite.request("GET", path, token="bkua_fake_bob")
    assert status == 200 and int(h["RateLimit-Remaining"]) == 1000 - 6
    time.sleep(int(h["RateLimit-User-Reset"]) + 0.1)
    status, h, _ = fake_buildkite.request("GET", path)
    assert status == 200 and h["RateLimit-User-Remaining"] == "3"


def test_org_rate_limit(fake_buildkite):
    fake_buildkite.control("rate-limit", org=3, user=100, window_seconds=30)
    path = f"/v2/organizations/{ORG}/pipelines"
    statuses = [fake_buildkite.request("GET", path, token=t)[0]
                for t in ("bkua_fake_full", "bkua_fake_bob", "bkua_fake_full", "bkua_fake_bob")]
    assert statuses == [200, 200, 200, 429]
    status, h, body = fake_buildkite.request("GET", path)
    assert status == 429 and json.loads(body)["scope"] == "rest" and h["RateLimit-Remaining"] == "0"
    assert h["RateLimit-Warning"] == "You have exceeded your API rate limit."
    # another org has its own budget
    assert fake_buildkite.request("GET", "/v2/organizations/buildkite/pipelines")[0] == 200
    fake_buildkite.control("rate-limit", reset=True)
    assert fake_buildkite.request("GET", path)[0] == 200


def test_default_budgets_in_world():
    world = W.build_world(1, bk_testdata(), big_builds=3)
    s = world["settings"]
    assert (s["org_rate_limit"], s["user_rate_limit"], s["rate_window_seconds"]) == (200, 50, 60)
    assert (s["per_page_default"], s["per_page_max"], s["deep_listing_limit"]) == (30, 100, 1000)


# ---------------------------------------------------------------- control endpoints


def test_fault_injection(fake_buildkite):
    fake_buildkite.control("fail-next", status=502, count=2, path="/builds$")
    got = [fake_buildkite.request("GET", TOOLS_BUILDS)[0] for _ in range(3)]
    assert got == [502, 502, 200]
    assert fake_buildkite.request("GET", f"/v2/organizations/{ORG}")[0] == 200, "path pattern respected"
    fake_buildkite.control("fail-next", status=429, count=1)
    status, h, _ = fake_buildkite.request("GET", f"/v2/organizations/{ORG}")
    assert status == 429 and h["RateLimit-Remaining"] == "0" and h["RateLimit-Reset"] == "1"
    fake_buildkite.control("fail-next", status=500, count=1, method="HEAD")
    job = job_of(fake_buildkite, S["job_types"], step_key="fetch")[0]
    assert fake_buildkite.request("GET", log_path(S["job_types"], job))[0] == 200
    assert fake_buildkite.request("HEAD", log_path(S["job_types"], job))[0] == 500


def test_request_counters(fake_buildkite):
    fake_buildkite.control("reset-counters")
    for _ in range(3):
        fake_buildkite.request("GET", TOOLS_BUILDS)
    fake_buildkite.request("GET", TOOLS_BUILDS, token="")
    job = job_of(fake_buildkite, S["job_types"], step_key="fetch")[0]
    fake_buildkite.request("GET", log_path(S["job_types"], job), headers={"Accept": "text/plain", "Range": "bytes=-5"})
    c = fake_buildkite.counters()
    assert c["endpoints"]["GET /v2/organizations/{org}/pipelines/{pipeline}/builds"] == 4
    assert c["endpoints"]["GET /v2/organizations/{org}/pipelines/{pipeline}/builds/{number}/jobs/{job}/log"] == 1
    assert c["statuses"] == {"200": 3, "401": 1, "206": 1}
    assert c["total"] == 5
    assert c["log_requests"][0]["range"] == "bytes=-5" and c["log_requests"][0]["status"] == 206
    fake_buildkite.control("reset-counters")
    assert fake_buildkite.counters()["total"] == 0


def test_world_cli_and_server_exit_on_stdin_close(tmp_path):
    out = tmp_path / "w.json"
    r = subprocess.run([sys.executable, str(FAKE_BK_DIR / "world.py"), str(out), "--big-builds", "5"],
                       capture_output=True, text=True, timeout=60,
                       env={**__import__("os").environ, "BKLOGFS_TESTDATA": str(bk_testdata())})
    assert r.returncode == 0, r.stderr
    world = json.loads(out.read_text())
    assert len(W.find_pipeline(world, ORG, WEB)["builds"]) == 5
    assert world == W.build_world(1, bk_testdata(), big_builds=5), "deterministic"
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, str(FAKE_BK_DIR / "server.py"), "--world", str(out), "--port", "0",
                             "--port-file", str(port_file), "--exit-on-stdin-close"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert port_file.read_text().strip().isdigit()
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_custom_world_via_process_helper(tmp_path):
    with fake_buildkite_process(tmp_path, big_builds=3, server_args=["--user-rate-limit", "2"]) as fake:
        builds, h = fake.get_json(WEB_BUILDS)
        assert [b["number"] for b in builds] == [3, 2, 1]
        assert h["RateLimit-User-Limit"] == "2"


# ---------------------------------------------------------------- the generated organization


def test_generated_organization_is_computed_per_request(tmp_path):
    """Org "scale" of a million builds: pages newest first, created_from/created_to as ranges of numbers, the
    same answer twice, a build and its jobs by number, budgets that --no-rate-limit makes unspendable."""
    with fake_buildkite_process(tmp_path, big_builds=3, generated_builds=1_000_000, generated_pipelines=10,
                                generated_jobs=10, server_args=["--no-rate-limit"]) as fake:
        spec = W.find_org(fake.world, "scale")["generated"]
        pipelines, _ = fake.get_json("/v2/organizations/scale/pipelines")
        assert [p["slug"] for p in pipelines] == [W.generated_pipeline_slug(i) for i in range(10)]
        assert "generated" not in pipelines[0] and "spec" not in pipelines[0]
        path = "/v2/organizations/scale/pipelines/pipeline-0003/builds"
        first, h = fake.get_json(f"{path}?per_page=100")
        assert [b["number"] for b in first] == list(range(100_000, 99_900, -1))
        assert all(len(b["jobs"]) == 10 and all(UUID_RE.match(j["id"]) for j in b["jobs"]) for b in first)
        assert links(h)["last"].endswith("page=1000") and int(h["RateLimit-User-Remaining"]) > 10**8
        again, _ = fake.get_json(f"{path}?per_page=100")
        assert again == first, "deterministic"
        start = W.generated_created(spec, 2, 500)
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        window, h = fake.get_json(f"{path}?created_from={iso(start)}&created_to={iso(start + 3 * spec['interval'])}")
        assert [b["number"] for b in window] == [502, 501, 500] and "next" not in links(h)
        deep, h = fake.get_json(f"{path}?created_to={iso(start)}&per_page=100&page=3")
        assert [b["number"] for b in deep][:2] == [299, 298]
        one, _ = fake.get_json(f"{path}/777")
        assert one["number"] == 777 and len(one["jobs"]) == 10
        jobs, _ = fake.get_json(f"{path}/777/jobs?per_page=4")
        assert [j["id"] for j in jobs["items"]] == [j["id"] for j in one["jobs"][:4]]
        assert fake.request("GET", f"{path}/100001")[0] == 404
        assert fake.request("GET", f"{path}/1/jobs/{one['jobs'][0]['id']}/log.txt")[0] == 404
        status, _, body = fake.request("GET", f"{path}/777/jobs/{one['jobs'][0]['id']}/log.txt")
        assert status == 200 and b"build 777" in body
        newest, _ = fake.get_json("/v2/organizations/scale/builds?per_page=3")
        assert [(b["pipeline"]["slug"], b["number"]) for b in newest] == [
            ("pipeline-0010", 100_000), ("pipeline-0009", 100_000), ("pipeline-0008", 100_000)]


def test_generated_build_with_many_jobs(tmp_path):
    with fake_buildkite_process(tmp_path, big_builds=3, generated_builds=20, generated_pipelines=2,
                                generated_jobs=3, generated_many_jobs=450) as fake:
        path = "/v2/organizations/scale/pipelines/pipeline-0001/builds"
        builds, _ = fake.get_json(f"{path}?per_page=100")
        assert [len(b["jobs"]) for b in builds] == [3] * 9 + [450]
        listed, _ = fake.get_json(f"{path}?exclude_jobs=true")
        assert all("jobs" not in b for b in listed)
        ids, url = [], f"{path}/1/jobs?per_page=100"
        while url:
            page, _ = fake.get_json(url)
            ids += [j["id"] for j in page["items"]]
            url = page["links"].get("next", "").replace(fake.base_url, "") or None
        assert ids == [j["id"] for j in builds[-1]["jobs"]]
