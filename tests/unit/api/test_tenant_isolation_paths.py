"""Tenant isolation, one test per path of the HTTP API: tenant A (``acme``) cannot read, list or probe the existence
of tenant B's (``globex``) runs, events, reports, reviews or datasets.

"Cannot probe" is checked strictly: for every route, B's object is answered with the SAME status, headers and body as
an object that does not exist at all (the same run id asked of an empty table, the same file name under a missing
key), B's run is left exactly as it was (table items compared before and after), nothing is sent to Step Functions,
and the route reads nothing of B's run beyond the ownership check (a spy on the store).

Tests that document a leak are ``xfail(strict=True, raises=Leak)``: they fail because of the leak only (a setup
problem is a plain AssertionError and fails the test); none of the API paths needed one.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from api_helpers import Api, http_event, start
from stepcrew.api.app import ApiConfig, S3Uploads
from stepcrew.models import Plan, ProgressEvent, Review, RunError, RunStatus, SubTask, utcnow
from stepcrew.store import schema as s

CALLER = "acme"      # tenant A
OWNER = "globex"     # tenant B
SECRET = "globex-secret-goal 7f3a"
REPORT = "# globex report\nrevenue 4242 (globex-only figure)"
BUCKET = "stepcrew-data"


class Leak(AssertionError):
    """Raised by the isolation checks: B's object was told apart from a missing one, or B's data came back."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Leak(message)


# ============================================================================================== fixtures
@pytest.fixture
def pair(aws) -> tuple[Api, Api]:
    """(api, empty): the API on a table that will hold B's runs, and the same API on an empty table, so that the
    very same run id can be asked of both (B's run vs a run that does not exist)."""
    ddb, name = aws
    s.create_table(ddb, f"{name}-empty")
    return Api.build(aws), Api.build((ddb, f"{name}-empty"))


def owner_runs(api: Api) -> dict[str, str]:
    """B's runs in every state a route treats differently: state -> run id."""
    runs = {state: start(api, {"goal": f"{SECRET} ({state})", "require_approval": True}, tenant=OWNER)
            for state in ("queued", "waiting_approval", "needs_review", "review_expired", "succeeded", "failed")}
    st = api.store
    st.update_run(runs["waiting_approval"], {"status": RunStatus.WAITING_APPROVAL, "approval_token": "their-token"})
    for state, deadline in (("needs_review", timedelta(hours=1)), ("review_expired", -timedelta(hours=1))):
        st.put_report(runs[state], REPORT)
        st.update_run(runs[state], {"status": RunStatus.NEEDS_REVIEW, "approval_token": f"their-{state}-token",
                                    "review_deadline": utcnow() + deadline})
    done = runs["succeeded"]
    st.put_plan(done, Plan(subtasks=[SubTask(id="t1", title="globex sub-task", instructions="globex only")]))
    st.put_report(done, REPORT)
    st.put_review(done, Review(round=1, passed=True, overall=0.9, feedback="globex feedback"))
    st.add_event(ProgressEvent(run_id=done, kind="run_succeeded", data={"input_tokens": 4242}))
    st.update_run(done, {"status": RunStatus.SUCCEEDED, "finished_at": utcnow()})
    st.update_run(runs["failed"], {"status": RunStatus.FAILED,
                                   "error": RunError(code="ReviewRejected", message="globex reviewer: wrong")})
    return runs


def answer(api: Api, method: str, path: str, query: dict | None, body: Any, tenant: str = CALLER) -> tuple:
    status, headers, data = api.call(http_event(method, path, body=body, query=query, tenant=tenant))
    return status, headers, data


class StoreSpy:
    """Records every store method a request calls (name and arguments)."""

    READS = ("get_run", "list_runs", "get_plan", "list_subtasks", "get_subtask", "list_events", "get_report",
             "list_reviews", "get_messages", "update_run", "put_report", "put_review", "add_event", "put_plan",
             "update_subtask", "append_messages", "add_usage", "create_run")

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple] = []
        for name in self.READS:
            original = getattr(store, name)

            def spy(*args, _name=name, _original=original, **kwargs):
                self.calls.append((_name, *args, *kwargs.values()))
                return _original(*args, **kwargs)

            monkeypatch.setattr(store, name, spy)


# ============================================================================================== run routes
#: Every route that names a run, with the query/body variants that reach different code (valid, invalid, each
#: decision): (method, path template, query, body).
RUN_PATHS = {
    "GET /runs/{id}": ("GET", "/runs/{id}", None, None),
    "GET /runs/{id}/events": ("GET", "/runs/{id}/events", None, None),
    "GET /runs/{id}/events?after": ("GET", "/runs/{id}/events", {"after": "2000-01-01T00:00:00"}, None),
    "GET /runs/{id}/events?limit=1": ("GET", "/runs/{id}/events", {"limit": "1"}, None),
    "GET /runs/{id}/events?limit=0 (400)": ("GET", "/runs/{id}/events", {"limit": "0"}, None),
    "POST /runs/{id}/approval approve": ("POST", "/runs/{id}/approval", None, {"approved": True}),
    "POST /runs/{id}/approval reject": ("POST", "/runs/{id}/approval", None, {"approved": False, "comment": "no"}),
    "POST /runs/{id}/approval bad body (400)": ("POST", "/runs/{id}/approval", None, {"approved": "yes"}),
    "POST /runs/{id}/review accept": ("POST", "/runs/{id}/review", None, {"accept": True}),
    "POST /runs/{id}/review accept + report": ("POST", "/runs/{id}/review", None,
                                               {"accept": True, "report": "# acme's correction"}),
    "POST /runs/{id}/review reject": ("POST", "/runs/{id}/review", None, {"accept": False, "comment": "bad"}),
    "POST /runs/{id}/review bad body (400)": ("POST", "/runs/{id}/review", None, {"accept": True, "x": 1}),
    "PUT /runs/{id} (405)": ("PUT", "/runs/{id}", None, {"goal": "overwrite"}),
    "DELETE /runs/{id}/events (405)": ("DELETE", "/runs/{id}/events", None, None),
}


@pytest.mark.parametrize("route", list(RUN_PATHS))
def test_another_tenants_run_is_answered_exactly_like_a_missing_run(pair, route):
    api, empty = pair
    method, template, query, body = RUN_PATHS[route]
    runs = owner_runs(api)
    before = api.table_items()
    for state, run_id in runs.items():
        path = template.format(id=run_id)
        theirs = answer(api, method, path, query, body)
        missing = answer(empty, method, path, query, body)
        # Then: status, headers and body are those of a run that does not exist
        check(theirs == missing, f"{route} on B's {state} run: {theirs} != missing {missing}")
        check(theirs[0] in (400, 404, 405), f"{route} on B's {state} run answered {theirs[0]}")
        # the id the caller sent may be echoed ("run '<id>' not found"): it is a random hex id that can hold "4242"
        text = json.dumps(theirs[2]).replace(run_id, "<id>")
        check(SECRET not in text and "globex" not in text and "4242" not in text, f"{route}: B's data in {text}")
    # and nothing of B's changed, nothing was resumed or started
    check(api.table_items() == before, f"{route} changed B's items")
    check(api.tasks.answers == [], f"{route} answered B's task token: {api.tasks.answers}")
    check(len(api.starter.started) == len(runs), f"{route} started an execution")


@pytest.mark.parametrize("route", [r for r in RUN_PATHS if "(4" not in r])
def test_a_route_reads_nothing_of_another_tenants_run_but_the_ownership_check(pair, route, monkeypatch):
    # the store's list_events / get_report / list_reviews / list_subtasks / get_messages take no tenant: only the
    # API's ownership check (get_run with the caller's tenant) keeps them from serving B's run
    api, _ = pair
    method, template, query, body = RUN_PATHS[route]
    runs = owner_runs(api)
    spy = StoreSpy(api.store, monkeypatch)
    for run_id in runs.values():
        spy.calls.clear()
        answer(api, method, template.format(id=run_id), query, body)
        check(spy.calls == [("get_run", run_id, CALLER)], f"{route}: store calls for B's run {spy.calls}")


def test_the_caller_still_gets_its_own_run_on_every_route(pair):
    # (the control: the same routes do answer the owner, so the 404s above are the tenant check, not a broken route)
    api, _ = pair
    runs = owner_runs(api)
    status, _, result = answer(api, "GET", f"/runs/{runs['succeeded']}", None, None, tenant=OWNER)
    assert status == 200 and result["final_output"] == REPORT
    status, _, events = answer(api, "GET", f"/runs/{runs['succeeded']}/events", None, None, tenant=OWNER)
    assert status == 200 and [e["kind"] for e in events["events"]] == ["run_queued", "run_succeeded"]
    assert answer(api, "POST", f"/runs/{runs['waiting_approval']}/approval", None, {"approved": True},
                  tenant=OWNER)[0] == 200
    assert answer(api, "POST", f"/runs/{runs['needs_review']}/review", None, {"accept": True}, tenant=OWNER)[0] == 200
    # and a run of the caller in the wrong state is a 409, which B's runs never get (above: 404)
    assert answer(api, "POST", f"/runs/{runs['queued']}/approval", None, {"approved": True}, tenant=OWNER)[0] == 409


def test_an_expired_hand_off_of_another_tenant_is_not_failed_by_the_callers_answer(pair):
    # answer_review fails an expired NEEDS_REVIEW run (ReviewTimedOut) when its owner answers; A's answer must not
    api, _ = pair
    run_id = owner_runs(api)["review_expired"]
    assert answer(api, "POST", f"/runs/{run_id}/review", None, {"accept": True})[0] == 404
    run = api.store.get_run(run_id)
    assert run.status == RunStatus.NEEDS_REVIEW and run.error is None


# ============================================================================================== GET /runs
def _page_all(api: Api, tenant: str, limit: int) -> tuple[list[str], list[dict]]:
    ids, bodies, cursor = [], [], None
    while True:
        query = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        status, _, page = answer(api, "GET", "/runs", query, None, tenant=tenant)
        assert status == 200, page
        bodies.append(page)
        ids += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids, bodies


@pytest.mark.parametrize("limit", [1, 2, 100])
def test_listing_never_shows_another_tenants_runs_on_any_page(pair, limit):
    api, _ = pair
    mine = []
    for i in range(3):  # interleaved with B's, so pages cross B's items in the index order
        mine.append(start(api, {"goal": f"acme goal {i}"}))
        start(api, {"goal": f"{SECRET} {i}"}, tenant=OWNER)
    ids, bodies = _page_all(api, CALLER, limit)
    check(ids == mine[::-1], f"acme's listing: {ids}, expected {mine[::-1]}")
    check(SECRET not in json.dumps(bodies), "B's goal in acme's listing")


def test_a_caller_without_runs_gets_exactly_what_an_empty_table_gives(pair):
    api, empty = pair
    owner_runs(api)
    for query in (None, {"limit": "1"}, {"limit": "100"}):
        check(answer(api, "GET", "/runs", query, None) == answer(empty, "GET", "/runs", query, None),
              f"GET /runs {query}: differs from an empty table")


def test_a_cursor_of_another_tenant_is_refused_like_a_garbage_cursor(pair):
    api, empty = pair
    for i in range(3):
        start(api, {"goal": f"{SECRET} {i}"}, tenant=OWNER)
        start(api, {"goal": f"acme {i}"})
    _, _, theirs = answer(api, "GET", "/runs", {"limit": "1"}, None, tenant=OWNER)
    _, _, mine = answer(api, "GET", "/runs", {"limit": "1"}, None)
    garbage = answer(api, "GET", "/runs", {"cursor": "not-a-cursor"}, None)
    assert garbage[0] == 400 and garbage[2]["error"]["code"] == "invalid_cursor"
    # B's cursor used by A, A's cursor used by B, and B's cursor on a table where B's run is gone: all alike
    check(answer(api, "GET", "/runs", {"cursor": theirs["next_cursor"]}, None) == garbage, "B's cursor for A")
    check(answer(api, "GET", "/runs", {"cursor": mine["next_cursor"]}, None, tenant=OWNER)[:3:2] == garbage[:3:2],
          "A's cursor for B")
    check(answer(empty, "GET", "/runs", {"cursor": theirs["next_cursor"]}, None) == garbage, "B's cursor, empty")


def test_a_forged_cursor_naming_another_tenants_run_still_lists_only_the_callers_runs(pair):
    # the cursor is base64 JSON of the last item's keys; A rewrites its own cursor to point at B's run item but keeps
    # its own index partition (the only field the store checks): the page must still hold A's runs only, or be a 400
    api, _ = pair
    mine = [start(api, {"goal": f"acme {i}"}) for i in range(3)]
    theirs = [start(api, {"goal": f"{SECRET} {i}"}, tenant=OWNER) for i in range(3)]
    _, _, first = answer(api, "GET", "/runs", {"limit": "1"}, None)
    key = json.loads(base64.urlsafe_b64decode(first["next_cursor"]))
    b_item = api.ddb.get_item(TableName=api.table, Key={"PK": {"S": s.run_pk(theirs[1])}, "SK": {"S": s.META_SK}})
    forged = dict(key, PK=b_item["Item"]["PK"], SK=b_item["Item"]["SK"], GSI1SK=b_item["Item"]["GSI1SK"])
    cursor = base64.urlsafe_b64encode(json.dumps(forged, sort_keys=True).encode()).decode()
    status, _, page = answer(api, "GET", "/runs", {"cursor": cursor}, None)
    check(status in (200, 400), f"a forged cursor answered {status}: {page}")
    if status == 200:
        check({r["run_id"] for r in page["runs"]} <= set(mine), f"B's runs in A's page: {page['runs']}")
        check(SECRET not in json.dumps(page), "B's goal in A's page")


# ============================================================================================== POST /runs data
@pytest.fixture
def s3_objects(moto_dynamodb):
    """The stage's datasets bucket (moto, the module's mock) holding B's payroll.csv and A's own sales.csv."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=f"{OWNER}/payroll.csv", Body=b"name,salary\nglobex-ceo,4242\n")
    s3.put_object(Bucket=BUCKET, Key=f"{OWNER}/uploads/payroll.csv", Body=b"name,salary\nglobex-ceo,4242\n")
    s3.put_object(Bucket=BUCKET, Key=f"{CALLER}/sales.csv", Body=b"region,revenue\nnorth,1\n")
    yield s3
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)


@pytest.mark.parametrize("data_bucket", [BUCKET, None], ids=["stage bucket set", "no stage bucket"])
@pytest.mark.parametrize(("existing", "missing"), [
    (f"s3://{BUCKET}/{OWNER}/payroll.csv", f"s3://{BUCKET}/{OWNER}/nothing-here/payroll.csv"),
    (f"s3://{BUCKET}/{OWNER}/uploads/payroll.csv", f"s3://{BUCKET}/{OWNER}/uploads/old/payroll.csv"),
    (f"s3://{BUCKET}/{OWNER}/payroll.csv", f"s3://{BUCKET}/{OWNER}0/payroll.csv"),
])
def test_post_runs_with_another_tenants_dataset_is_answered_alike_whether_the_key_exists(aws, s3_objects, data_bucket,
                                                                                         existing, missing):
    api = Api.build(aws, ApiConfig(stage="test", data_bucket=data_bucket))
    before = api.table_items()
    answers = [answer(api, "POST", "/runs", None, {"goal": "Sum the salaries", "data": uri}) for uri in
               (existing, missing)]
    check(answers[0] == answers[1], f"existing vs missing key: {answers[0]} != {answers[1]}")
    status, _, data = answers[0]
    assert (status, data["error"]["code"]) == (400, "dataset_not_found")
    assert data["error"]["message"] == "dataset payroll.csv not found or not readable"
    check(api.table_items() == before and api.starter.started == [], "a refused dataset wrote or started something")


def test_a_dataset_key_that_climbs_out_of_the_callers_prefix_never_reads_another_tenants_object(aws, s3_objects,
                                                                                                 tmp_path,
                                                                                                 monkeypatch):
    # "acme/../globex/payroll.csv" starts with "acme/": the API accepts it (the key is a literal S3 key, not a path),
    # and the data tools then read the literal key as acme: B's existing object and a missing one answer alike
    from stepcrew.tools import datasets
    from stepcrew.tools.errors import DatasetError

    monkeypatch.setattr(datasets, "CACHE_DIR", tmp_path / "cache")
    datasets.reset_caches()
    api = Api.build(aws, ApiConfig(stage="test", data_bucket=BUCKET))
    try:
        for climb in ("acme/../globex/payroll.csv", "acme/..%2Fglobex/payroll.csv", "acme/%2E%2E/globex/payroll.csv",
                      "acme/./../globex/payroll.csv"):
            uri, missing = f"s3://{BUCKET}/{climb}", f"s3://{BUCKET}/{climb.replace('globex', 'nobody')}"
            assert answer(api, "POST", "/runs", None, {"goal": "Sum", "data": uri})[0] == 202
            errors = []
            for target in (uri, missing):
                with pytest.raises(DatasetError) as caught:
                    datasets.resolve_dataset(target, CALLER)
                errors.append(str(caught.value).replace(target, "<uri>"))
            check(errors[0] == errors[1] == "cannot read dataset <uri>: not found or not readable",
                  f"{climb}: {errors}")
        assert not list((tmp_path / "cache").glob("*.csv"))  # nothing of B's was downloaded
    finally:
        datasets.reset_caches()


# ============================================================================================== POST /datasets
@pytest.fixture
def uploads_api(aws) -> Api:
    api = Api.build(aws, ApiConfig(stage="test", data_bucket=BUCKET))
    api.app.uploads = S3Uploads(BUCKET, region="us-east-1")
    return api


@pytest.mark.parametrize("tenant", ["acme", "globex", "ann@example.com", "a.b-c_d", "x" * 128])
def test_an_upload_key_is_always_under_the_callers_own_prefix(uploads_api, tenant):
    from urllib.parse import unquote, urlsplit

    # whatever else the request names - a tenant in the query, in a header, a name that looks like a path - the key
    # is <token's tenant>/uploads/<name>
    event = http_event("POST", "/datasets", body={"name": "sales.csv", "size_bytes": 10}, tenant=tenant,
                       query={"tenant": OWNER}, headers={"x-tenant": OWNER, "x-amz-meta-tenant": OWNER})
    status, _, data = uploads_api.call(event)
    assert status == 201, data
    check(data["uri"] == f"s3://{BUCKET}/{tenant}/uploads/sales.csv", f"upload URI {data['uri']}")
    check(unquote(urlsplit(data["upload_url"]).path) == f"/{tenant}/uploads/sales.csv", data["upload_url"])
    for name in (f"../../{OWNER}/uploads/sales.csv", f"{OWNER}/sales.csv", "..", "%2e%2e%2fsales.csv"):
        status, _, refused = uploads_api.call(http_event("POST", "/datasets", body={"name": name, "size_bytes": 10},
                                                         tenant=tenant))
        check(status == 400 and "upload_url" not in refused, f"name {name!r}: {status} {refused}")


def test_the_sub_claim_cannot_name_another_tenant_when_the_tenant_claim_is_set(uploads_api):
    event = http_event("POST", "/datasets", body={"name": "sales.csv", "size_bytes": 10},
                       claims={"sub": OWNER, "custom:tenant": CALLER})
    status, _, data = uploads_api.call(event)
    assert status == 201 and data["uri"] == f"s3://{BUCKET}/{CALLER}/uploads/sales.csv"


# ============================================================================================== idempotency keys
def test_another_tenants_idempotency_key_tells_nothing_about_its_use(api):
    # B used key k1 with one body; A sending k1 with ANOTHER body must start its own run (a 422 "key reused with a
    # different body" would tell A that B used k1)
    status, _, theirs = api.call(http_event("POST", "/runs", body={"goal": SECRET}, tenant=OWNER,
                                            headers={"Idempotency-Key": "k1"}))
    assert status == 202
    status, headers, mine = api.call(http_event("POST", "/runs", body={"goal": "acme goal"},
                                                headers={"Idempotency-Key": "k1"}))
    check(status == 202 and mine["run_id"] != theirs["run_id"], f"A's k1 answered {status} {mine}")
    check("idempotent-replayed" not in headers, "A's first use of k1 was answered as a replay")
    status, _, again = api.call(http_event("POST", "/runs", body={"goal": SECRET}, headers={"Idempotency-Key": "k1"}))
    check(status == 422 and again["error"]["code"] == "idempotency_key_reused", "A's own key reuse is A's only")
