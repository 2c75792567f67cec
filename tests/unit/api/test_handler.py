"""functions/api/app.py: settings validated at import, then events/ answered through the deployed wiring
(DynamoRunStore + Powertools' DynamoDB idempotency layer on one table, Step Functions), all on moto."""

from __future__ import annotations

import importlib.util
import json

import boto3
import pytest
from api_helpers import FakeContext
from moto import mock_aws

from stepcrew.settings import SettingsError
from stepcrew.store.schema import create_table
from stepcrew.wiring import FUNCTIONS_DIR, REPO_ROOT

TABLE = "stepcrew-handler-runs"
ENV = {"STEPCREW_TABLE_NAME": TABLE, "STEPCREW_STAGE": "test", "POWERTOOLS_SERVICE_NAME": "stepcrew-api",
       "STEPCREW_RUN_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:stepcrew-run"}


def _import():
    spec = importlib.util.spec_from_file_location("handler_api_under_test", FUNCTIONS_DIR / "api" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("missing", ["STEPCREW_TABLE_NAME", "STEPCREW_RUN_STATE_MACHINE_ARN"])
def test_missing_settings_fail_at_import(monkeypatch, missing):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(missing)
    with pytest.raises(SettingsError, match=missing):
        _import()


@pytest.mark.parametrize("name,value", [("STEPCREW_RUN_STATE_MACHINE_ARN", "not-an-arn"),
                                        ("STEPCREW_DATA_SCHEMES", "http"),
                                        ("STEPCREW_DEFAULT_PROVIDER", "nope")])
def test_invalid_settings_fail_at_import(monkeypatch, name, value):
    for key, val in {**ENV, name: value}.items():
        monkeypatch.setenv(key, val)
    with pytest.raises(SettingsError):
        _import()


def test_the_handler_starts_a_run_on_step_functions_and_dedupes_it(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name="us-east-1"), TABLE)
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        machine = sfn.create_state_machine(name="stepcrew-run", roleArn=role, definition=json.dumps(
            {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}))["stateMachineArn"]
        assert machine == ENV["STEPCREW_RUN_STATE_MACHINE_ARN"]
        module = _import()
        event = json.loads((REPO_ROOT / "events" / "api_post_runs.json").read_text())

        first = module.handler(event, FakeContext())
        second = module.handler(event, FakeContext())
        health = module.handler(json.loads((REPO_ROOT / "events" / "api_get_health.json").read_text()), FakeContext())

        assert first["statusCode"] == second["statusCode"] == 202
        run_id = json.loads(first["body"])["run_id"]
        assert json.loads(second["body"])["run_id"] == run_id
        executions = sfn.list_executions(stateMachineArn=machine)["executions"]
        assert [e["name"] for e in executions] == [run_id]
        described = sfn.describe_execution(executionArn=executions[0]["executionArn"])
        assert json.loads(described["input"]) == {"run_id": run_id}
        assert health["statusCode"] == 200 and json.loads(health["body"])["stage"] == "test"
