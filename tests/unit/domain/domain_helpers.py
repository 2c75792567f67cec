"""Shared helpers of the role-function tests (a uniquely named module: ``conftest`` names clash across folders)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from stepcrew.models import Plan, SubTask

RUN_ID = "run1"
TEST_PROVIDER = "scripted-test"


def two_step_plan() -> Plan:
    """``compare`` (data_analyst: describe/query) -> ``write`` (writer: write_section)."""
    return Plan(subtasks=[
        SubTask(id="compare", title="Compare species", instructions="Mean body mass per species.",
                tools=["describe_dataset", "query_dataset"], role="data_analyst"),
        SubTask(id="write", title="Write it up", instructions="Write a section.", depends_on=["compare"],
                tools=["write_section"], role="writer"),
    ])


def plan_json(plan: Plan, fenced: bool = False) -> str:
    text = json.dumps(plan.model_dump(mode="json"))
    return f"Here is the plan:\n```json\n{text}\n```" if fenced else text


@dataclass
class FakeContext:
    """A minimal Lambda context for handler tests."""

    function_name: str = "stepcrew-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:stepcrew-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000001"


class FailOnce:
    """Wrap a store so that the first call of ``method`` (after ``skip`` successful ones) raises, as when a Lambda
    dies after some of its writes; every other call goes to the wrapped store."""

    def __init__(self, store, method: str, skip: int = 0):
        self._store, self._method, self._skip, self.failed = store, method, skip, False

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name != self._method or self.failed:
            return attr

        def maybe_fail(*args, **kwargs):
            if self._skip:
                self._skip -= 1
                return attr(*args, **kwargs)
            self.failed = True
            raise ConnectionError(f"injected failure of {name}")

        return maybe_fail
