"""Review of the resilience ladder (issue 8) through the real run.asl.json: $$.State.RetryCount counts the retries
of every Retrier of a state, while the ladder reads it as the transient Retrier's own count."""

from __future__ import annotations

import itertools

import pytest
from stepcrew.crew import load_crew
from stepcrew.engines.testing import ScriptedModel, label, reply
from stepcrew.llm import registry
from stepcrew.llm.base import ModelUnavailableError
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import RunRequest, RunStatus
from stepcrew.service import create_run, run_result, start_run

from test_resilience_ladder import one_calc_script, review_json, wait_end, release

pytestmark = pytest.mark.integration
_SEQ = itertools.count(1)


@pytest.fixture(scope="module")
def rt():
    with LocalRuntime(fast_waits=True) as runtime:
        yield runtime


def test_review_reply_errors_do_not_spend_the_transient_retries(rt):
    provider, tenant = f"rc-review-{next(_SEQ)}", f"rc-t-{next(_SEQ)}"
    script = one_calc_script()
    # two unparseable reviews (ReviewReplyError Retrier: MaxAttempts 2), then two 503s, then a valid review:
    # the transient Retrier (MaxAttempts 3) can reach it with one retry to spare
    script["review"] = [reply("no scores here"), reply("still no scores"), ModelUnavailableError("503"),
                        ModelUnavailableError("503"), reply(review_json(0.95))]
    model = ScriptedModel(by_purpose=script)
    registry.register(provider, lambda tier: model)
    try:
        req = RunRequest(goal="Compute 6 times 7", provider=provider, tenant=tenant)
        run_id = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt).run_id
        status = wait_end(rt, run_id)
        result = run_result(rt.store, run_id)
        if status == RunStatus.NEEDS_REVIEW:
            release(rt, run_id, tenant)
        asked = [label(r).purpose for r in model.requests].count("review")
        assert result.degradation_level == "full", (status, result.degradation_level, f"review asked {asked}x")
        assert model.remaining()["purpose:review"] == 0
    finally:
        registry.unregister(provider)
