"""Routes of the HTTP API, happy paths: Given a tenant's token, when it calls a route, then it gets the documented
answer and the store/Step Functions see exactly the expected effect."""

from __future__ import annotations

import pytest
from api_helpers import TENANT, http_event, start

from stepcrew.models import ProgressEvent, RunStatus


def test_post_runs_records_the_run_for_the_token_tenant_and_starts_one_execution(api):
    status, headers, data = api.call(http_event("POST", "/runs", body={"goal": "Sum 2 and 3", "inputs": {"a": "2"}}))

    assert status == 202
    run_id = data["run_id"]
    assert data["status"] == "QUEUED"
    assert data["links"] == {"self": f"/runs/{run_id}", "events": f"/runs/{run_id}/events",
                             "approval": f"/runs/{run_id}/approval", "review": f"/runs/{run_id}/review"}
    assert headers["location"] == f"/runs/{run_id}"
    assert "idempotent-replayed" not in headers
    assert api.starter.started == [run_id]
    run = api.store.get_run(run_id)
    assert run.tenant == TENANT  # from the claims, not the body
    assert run.goal == "Sum 2 and 3" and run.inputs == {"a": "2"} and run.crew.name == "default"
    assert run.provider == "rule"
    assert run.execution_arn.endswith(f":{run_id}")


def test_post_runs_uses_the_sub_claim_when_there_is_no_tenant_claim(api):
    run_id = start(api, claims={"sub": "user-42", "token_use": "access"})
    assert api.store.get_run(run_id).tenant == "user-42"


def test_post_runs_accepts_an_s3_dataset_and_review_settings(api):
    run_id = start(api, {"goal": "Describe it", "data": "s3://bucket/acme/penguins.csv", "review": {"threshold": 0.5}})
    run = api.store.get_run(run_id)
    assert run.data == "s3://bucket/acme/penguins.csv" and run.review_config.threshold == 0.5


def test_get_run_returns_the_result_view(api):
    run_id = start(api)
    status, _, data = api.call(http_event("GET", f"/runs/{run_id}"))
    assert status == 200
    assert data["run_id"] == run_id and data["status"] == "QUEUED"
    assert set(data) == {"run_id", "status", "engine", "plan", "subtasks", "review", "final_output", "usage", "error",
                         "decline", "degradation_level", "budget_exhausted", "handoff_reason", "memory"}


def test_list_runs_pages_newest_first_and_only_the_callers(api):
    ids = [start(api, {"goal": f"goal {i}"}) for i in range(3)]
    start(api, tenant="other-tenant")

    status, _, page1 = api.call(http_event("GET", "/runs", query={"limit": "2"}))
    assert status == 200
    assert [r["run_id"] for r in page1["runs"]] == [ids[2], ids[1]]
    assert page1["next_cursor"]
    _, _, page2 = api.call(http_event("GET", "/runs", query={"limit": "2", "cursor": page1["next_cursor"]}))
    assert [r["run_id"] for r in page2["runs"]] == [ids[0]]
    assert page2["next_cursor"] is None
    assert page1["runs"][0]["goal"] == "goal 2" and page1["runs"][0]["links"]["self"] == f"/runs/{ids[2]}"


def test_list_runs_clips_long_goals(api):
    start(api, {"goal": "g" * 5000})
    _, _, data = api.call(http_event("GET", "/runs"))
    assert len(data["runs"][0]["goal"]) == 200 and data["runs"][0]["goal"].endswith("…")


def test_events_are_listed_oldest_first_and_after_a_cursor(api):
    run_id = start(api)
    api.store.add_event(ProgressEvent(run_id=run_id, kind="run_started"))
    status, _, data = api.call(http_event("GET", f"/runs/{run_id}/events"))
    assert status == 200
    assert [e["kind"] for e in data["events"]] == ["run_queued", "run_started"]
    assert data["next_after"] == data["events"][-1]["cursor"]

    _, _, later = api.call(http_event("GET", f"/runs/{run_id}/events", query={"after": data["events"][0]["cursor"]}))
    assert [e["kind"] for e in later["events"]] == ["run_started"]
    _, _, none = api.call(http_event("GET", f"/runs/{run_id}/events", query={"after": data["next_after"]}))
    assert none["events"] == [] and none["next_after"] == data["next_after"]


def _waiting(api, token="task-token-1") -> str:
    run_id = start(api, {"goal": "Needs a human", "require_approval": True})
    api.store.update_run(run_id, {"status": RunStatus.WAITING_APPROVAL, "approval_token": token})
    return run_id


def test_approval_sends_task_success_with_the_stored_token_and_resumes_the_run(api):
    run_id = _waiting(api)
    status, _, data = api.call(http_event("POST", f"/runs/{run_id}/approval",
                                          body={"approved": True, "comment": "looks fine"}))
    assert status == 200
    assert data == {"run_id": run_id, "approved": True, "status": "RUNNING",
                    "links": {"self": f"/runs/{run_id}", "events": f"/runs/{run_id}/events",
                              "approval": f"/runs/{run_id}/approval", "review": f"/runs/{run_id}/review"}}
    assert api.tasks.answers == [("success", "task-token-1", {"approved": True, "comment": "looks fine"})]
    run = api.store.get_run(run_id)
    assert run.status == RunStatus.RUNNING and run.approval_token is None


def test_rejection_sends_task_failure_with_the_comment_as_cause(api):
    run_id = _waiting(api)
    status, _, data = api.call(http_event("POST", f"/runs/{run_id}/approval",
                                          body={"approved": False, "comment": "wrong dataset"}))
    assert status == 200 and data["approved"] is False
    assert api.tasks.answers == [("failure", "task-token-1", "ApprovalRejected",
                                  "rejected by the approver: wrong dataset")]


def test_a_second_approval_is_a_conflict_and_sends_nothing(api):
    run_id = _waiting(api)
    assert api.call(http_event("POST", f"/runs/{run_id}/approval", body={"approved": True}))[0] == 200
    status, _, data = api.call(http_event("POST", f"/runs/{run_id}/approval", body={"approved": False}))
    assert status == 409 and data["error"]["code"] == "run_not_waiting"
    assert len(api.tasks.answers) == 1


def test_a_closed_task_token_is_a_conflict_and_the_run_keeps_waiting(api):
    from botocore.exceptions import ClientError

    run_id = _waiting(api)
    api.tasks.fail = ClientError({"Error": {"Code": "TaskTimedOut", "Message": "Task Timed Out"}}, "SendTaskSuccess")
    status, _, data = api.call(http_event("POST", f"/runs/{run_id}/approval", body={"approved": True}))
    assert status == 409 and data["error"]["code"] == "approval_closed"
    run = api.store.get_run(run_id)
    assert run.status == RunStatus.WAITING_APPROVAL and run.approval_token == "task-token-1"


def test_a_step_functions_outage_on_approval_is_503_and_can_be_retried(api):
    run_id = _waiting(api)
    api.tasks.fail = ConnectionError("boom")
    status, _, data = api.call(http_event("POST", f"/runs/{run_id}/approval", body={"approved": True}))
    assert status == 503 and data["error"]["code"] == "service_unavailable"
    assert "boom" not in data["error"]["message"]
    api.tasks.fail = None
    assert api.call(http_event("POST", f"/runs/{run_id}/approval", body={"approved": True}))[0] == 200


def test_health_needs_no_token(api):
    status, _, data = api.call(http_event("GET", "/health", tenant=None))
    assert status == 200
    assert data == {"status": "ok", "stage": "test", "version": "0.1.0"}


def test_a_named_stage_prefix_is_routed(api):
    event = http_event("GET", "/prod/health", tenant=None)
    event["requestContext"]["stage"] = "prod"
    assert api.call(event)[0] == 200


def test_base64_bodies_are_decoded(api):
    status, _, data = api.call(http_event("POST", "/runs", body={"goal": "Sum 2 and 3"}, base64_body=True))
    assert status == 202 and api.starter.started == [data["run_id"]]


def test_an_unexpected_failure_is_500_without_internals(api, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("secret internal detail /var/task/stepcrew/store.py")

    monkeypatch.setattr(api.store, "list_runs", broken)
    status, _, data = api.call(http_event("GET", "/runs"))
    assert status == 500
    assert data == {"error": {"code": "internal_error", "message": "internal error"}}


def test_a_store_failure_is_503(api, monkeypatch):
    from stepcrew.store.base import StoreError

    def throttled(*args, **kwargs):
        raise StoreError("DynamoDB query on table 'x' failed: ProvisionedThroughputExceededException")

    monkeypatch.setattr(api.store, "get_run", throttled)
    status, _, data = api.call(http_event("GET", f"/runs/{'0' * 32}"))
    assert status == 503 and data["error"]["code"] == "service_unavailable"
    assert "DynamoDB" not in data["error"]["message"]


def _handed_off(api, token="review-token-1") -> str:
    from datetime import timedelta

    from stepcrew.models import utcnow

    run_id = start(api, {"goal": "A report that failed review"})
    api.store.put_report(run_id, "# Draft\n42")
    api.store.update_run(run_id, {"status": RunStatus.NEEDS_REVIEW, "approval_token": token,
                                  "review_deadline": utcnow() + timedelta(hours=1)})
    return run_id


def test_review_accept_records_the_decision_keeps_a_corrected_report_and_resumes(api):
    run_id = _handed_off(api)
    status, _, data = api.call(http_event("POST", f"/runs/{run_id}/review",
                                          body={"accept": True, "comment": "checked", "report": "# Fixed\n42"}))
    assert status == 200 and data["accept"] is True and data["status"] == "RUNNING"
    assert api.tasks.answers == [("success", "review-token-1", {"accept": True})]
    run = api.store.get_run(run_id)
    assert run.review_decision.accept and run.review_decision.comment == "checked" and run.approval_token is None
    assert api.store.get_report(run_id) == "# Fixed\n42"


def test_review_reject_sends_review_rejected_with_the_comment(api):
    run_id = _handed_off(api)
    status, _, _ = api.call(http_event("POST", f"/runs/{run_id}/review", body={"accept": False, "comment": "wrong"}))
    assert status == 200
    assert api.tasks.answers == [("failure", "review-token-1", "ReviewRejected", "rejected by the reviewer: wrong")]
    assert api.store.get_report(run_id) == "# Draft\n42"


def test_review_of_a_run_that_is_not_waiting_for_review_is_409_and_changes_nothing(api):
    run_id = _waiting(api)  # WAITING_APPROVAL, not NEEDS_REVIEW
    status, _, data = api.call(http_event("POST", f"/runs/{run_id}/review", body={"accept": True}))
    assert status == 409 and data["error"]["code"] == "run_not_waiting"
    assert api.tasks.answers == [] and api.store.get_run(run_id).status == RunStatus.WAITING_APPROVAL


def test_review_of_another_tenants_run_is_404(api):
    run_id = _handed_off(api)
    status, _, data = api.call(http_event("POST", f"/runs/{run_id}/review", body={"accept": True}, tenant="other"))
    assert status == 404 and api.tasks.answers == []
    assert api.store.get_run(run_id).status == RunStatus.NEEDS_REVIEW


@pytest.mark.parametrize("body", [{"accept": "yes"}, {}, {"accept": True, "report": ""}, {"accept": True, "x": 1}])
def test_a_malformed_review_answer_is_400(api, body):
    run_id = _handed_off(api)
    status, _, data = api.call(http_event("POST", f"/runs/{run_id}/review", body=body))
    assert status == 400 and api.tasks.answers == []


def test_post_runs_takes_memory_and_a_user_of_the_callers_tenant_only(api):
    status, _, data = api.call(http_event("POST", "/runs", body={"goal": "Sum 2 and 3", "memory": "off",
                                                                 "user": f"{TENANT}:ann"}))
    assert status == 202, data
    run = api.store.get_run(data["run_id"])
    assert run.memory == "off" and run.user == "ann"
    started = list(api.starter.started)
    status, _, data = api.call(http_event("POST", "/runs", body={"goal": "Sum 2 and 3", "user": "other-tenant:ann"}))
    assert status == 400 and data["error"]["code"] == "user_outside_tenant"
    status, _, data = api.call(http_event("POST", "/runs", body={"goal": "Sum 2 and 3", "memory": "maybe"}))
    assert status == 400
    assert api.starter.started == started  # nothing started for the refused requests
