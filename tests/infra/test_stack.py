"""Template assertions on the synthesized ``stepcrew-dev`` stack (one synth per session, see conftest)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from iam_helpers import as_list
from stepcrew import wiring
from stepcrew.store import schema

from stepcrew_infra import constants as C
from stepcrew_infra.network import ENI_ACTIONS
from stepcrew_infra.schedules import ScheduleFile

pytestmark = pytest.mark.infra


# --------------------------------------------------------------------------------------------- helpers
def refs(node: Any) -> set[str]:
    """Every logical id named by a Ref or Fn::GetAtt anywhere in ``node`` (pseudo parameters left out)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if "Ref" in node and not str(node["Ref"]).startswith("AWS::"):
            found.add(node["Ref"])
        if "Fn::GetAtt" in node:
            found.add(node["Fn::GetAtt"][0])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def function_id(synth, name: str) -> str:
    return synth.logical_id(synth.stack.functions[name].function)


def role_statements(synth, role_id: str) -> list[dict[str, Any]]:
    """Every statement of every inline policy attached to ``role_id`` (Policies property and AWS::IAM::Policy)."""
    role = synth.resources[role_id]
    assert not role["Properties"].get("ManagedPolicyArns"), f"{role_id} has managed policies"
    statements = [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def function_statements(synth, name: str) -> list[dict[str, Any]]:
    fn = synth.resources[function_id(synth, name)]
    return role_statements(synth, fn["Properties"]["Role"]["Fn::GetAtt"][0])


def services(statements: list[dict[str, Any]]) -> set[str]:
    return {action.split(":")[0] for s in statements for action in as_list(s["Action"])}


# --------------------------------------------------------------------------------------------- counts
def test_resource_counts(synth):
    # Given the synthesized stack, when counting resources, then there is exactly one Lambda per wiring entry
    # (no hidden custom-resource functions), two state machines, one table, one dashboard, one topic.
    counts = {t: len(synth.of_type(t)) for t in (
        "AWS::Lambda::Function", "AWS::StepFunctions::StateMachine", "AWS::DynamoDB::Table",
        "AWS::CloudWatch::Dashboard", "AWS::SNS::Topic", "AWS::Scheduler::Schedule", "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Authorizer", "AWS::SecretsManager::Secret")}
    schedules = ScheduleFile.load(C.SCHEDULES_FILE).schedules
    assert counts == {
        "AWS::Lambda::Function": len(wiring.FUNCTIONS), "AWS::StepFunctions::StateMachine": 2,
        "AWS::DynamoDB::Table": 1, "AWS::CloudWatch::Dashboard": 1,
        "AWS::SNS::Topic": 2,  # the alarms topic and the notify tool's notifications topic
        "AWS::Scheduler::Schedule": len(schedules), "AWS::ApiGatewayV2::Api": 1,
        "AWS::ApiGatewayV2::Authorizer": 1, "AWS::SecretsManager::Secret": len(C.PROVIDER_SECRETS)}
    assert len(schedules) >= 1, "ship at least one example schedule"
    synth.assertions.resource_count_is("AWS::Lambda::Function", len(wiring.FUNCTIONS))
    synth.assertions.has_resource_properties("AWS::DynamoDB::Table", {
        "BillingMode": "PAY_PER_REQUEST", "TimeToLiveSpecification": {"Enabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})


def test_every_function_is_built_from_its_folder_with_the_shared_settings(synth):
    for name, spec in wiring.FUNCTIONS.items():
        props = synth.resources[function_id(synth, name)]["Properties"]
        assert props["FunctionName"] == f"stepcrew-dev-{name}"
        assert props["Runtime"] == C.RUNTIME.name == "python3.14"
        assert props["Architectures"] == ["arm64"]
        assert props["Handler"] == "app.handler"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["MemorySize"] == spec.memory_mb and props["Timeout"] == spec.timeout_s
        assert len(props["Layers"]) == 2
        assert "LogGroup" in props["LoggingConfig"]
        env = props["Environment"]["Variables"]
        assert env["STEPCREW_STAGE"] == "dev"
        assert env["POWERTOOLS_SERVICE_NAME"] == f"stepcrew-{name}"
        assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == C.METRICS_NAMESPACE == "stepcrew"
        # table users, and the dataset tools for their result cache (CACHE#<tenant> items only, see the IAM test)
        assert ("STEPCREW_TABLE_NAME" in env) == (spec.touches_table or spec.caches_results
                                                  or spec.reads_arguments or spec.writes_artifacts
                                                  or spec.publishes_notifications), name
        assert ("STEPCREW_NOTIFY_TOPIC_ARN" in env) == spec.publishes_notifications, name
        # operations tools: the run-artifacts bucket (its own, never the datasets bucket)
        assert ("STEPCREW_ARTIFACTS_BUCKET" in env) == (spec.writes_artifacts or spec.writes_charts), name
        if spec.writes_artifacts or spec.writes_charts:
            assert env["STEPCREW_ARTIFACTS_BUCKET"] == {"Ref": synth.logical_id(synth.stack.data.artifacts)}
        # the data tools read it; the api checks dataset URIs against it (it reads no dataset)
        assert ("STEPCREW_DATA_BUCKET" in env) == (spec.reads_data or name == C.API_FUNCTION), name
        for provider, var in C.PROVIDER_SECRETS.items():
            # model callers read the keys; the api names them only to check a run's fallback chain is configured
            assert (var in env) == (spec.calls_models or name == C.API_FUNCTION), (name, var)
            if var in env:  # the secret's ARN (a SecretId), never a value
                assert env[var] == {"Ref": synth.logical_id(synth.stack.data.secrets[provider])}
        assert not any(k.endswith("_API_KEY") for k in env), f"{name} has an API key in its environment"


# --------------------------------------------------------------------------------------------- data
def test_run_table_follows_the_store_schema(synth):
    (table,) = synth.of_type("AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": schema.PK, "KeyType": "HASH"},
                                  {"AttributeName": schema.SK, "KeyType": "RANGE"}]
    (gsi,) = props["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == schema.GSI1_NAME
    assert gsi["KeySchema"] == [{"AttributeName": schema.GSI1_PK, "KeyType": "HASH"},
                                {"AttributeName": schema.GSI1_SK, "KeyType": "RANGE"}]
    assert gsi["Projection"] == {"ProjectionType": "ALL"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Delete"  # dev stage; prod RETAIN is covered in test_config.py


def test_buckets_are_encrypted_private_tls_only_and_logged(synth):
    buckets = synth.of_type("AWS::S3::Bucket")
    datasets_id = synth.logical_id(synth.stack.data.datasets)
    for bucket_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}
        assert "AccessControl" not in props
    assert buckets[datasets_id]["Properties"]["LoggingConfiguration"]["DestinationBucketName"]
    policies = [p["Properties"] for p in synth.of_type("AWS::S3::BucketPolicy").values()]
    for bucket_id in buckets:
        denies = [s for p in policies if p["Bucket"] == {"Ref": bucket_id}
                  for s in p["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies), bucket_id


# --------------------------------------------------------------------------------------------- least privilege
def test_each_function_role_holds_only_the_services_its_spec_touches(synth):
    for name, spec in wiring.FUNCTIONS.items():
        expected = {"logs", "xray"}
        expected |= {"dynamodb"} if (spec.touches_table or spec.caches_results or spec.reads_arguments
                                     or spec.writes_artifacts or spec.publishes_notifications) else set()
        expected |= {"sns"} if spec.publishes_notifications else set()  # Publish on the notifications topic only
        expected |= {"s3"} if spec.writes_artifacts or spec.writes_charts else set()  # exports/charts: artifacts bucket
        expected |= {"sts"} if spec.reads_data else set()  # datasets only through the per-tenant reader role
        expected |= {"s3"} if name == C.API_FUNCTION else set()  # signs dataset upload URLs (PutObject)
        expected |= {"secretsmanager", "bedrock"} if spec.calls_models else set()
        expected |= {"bedrock"} if spec.embeds else set()  # the Titan embeddings model only (test_memory.py)
        expected |= {"states"} if spec.starts_runs or spec.sweeps_runs else set()  # sweeper: DescribeExecution only
        expected |= {"events"} if spec.emits_events else set()
        expected |= {"sqs"} if name in C.ASYNC_FUNCTIONS else set()  # its own dead-letter queue
        expected |= {"lambda"} if spec.invokes else set()  # the functions it calls (the api -> memory)
        expected |= {"ec2"} if spec.isolated_network else set()  # its ENIs in the isolated VPC (run_python)
        # no "s3vectors": the default memory_index is exact (tests/infra/test_memory.py covers s3vectors)
        assert services(function_statements(synth, name)) == expected, name


def test_only_the_approval_function_publishes_events_and_only_to_the_default_bus(synth):
    for name, spec in wiring.FUNCTIONS.items():
        statements = [st for st in function_statements(synth, name) if "events:PutEvents" in json.dumps(st)]
        assert bool(statements) == spec.emits_events == (name == "approval"), name
        for st in statements:
            assert "event-bus/default" in json.dumps(st["Resource"]), st


def test_each_function_policy_names_only_its_own_resources(synth):
    stack = synth.stack
    table = synth.logical_id(stack.data.table)
    datasets = synth.logical_id(stack.data.datasets)
    reader = synth.logical_id(stack.data.dataset_reader.role)
    secrets = {synth.logical_id(s) for s in stack.data.secrets.values()}
    run_sm = synth.logical_id(stack.orchestration.state_machines["run"])
    for name, spec in wiring.FUNCTIONS.items():
        own_logs = synth.logical_id(stack.functions[name].log_group)
        allowed = {own_logs}
        allowed |= {table} if (spec.touches_table or spec.caches_results or spec.reads_arguments
                               or spec.writes_artifacts or spec.publishes_notifications) else set()
        allowed |= {synth.logical_id(stack.notifications.topic)} if spec.publishes_notifications else set()
        allowed |= {synth.logical_id(stack.data.artifacts)} if spec.writes_artifacts or spec.writes_charts else set()
        allowed |= {reader} if spec.reads_data else set()
        allowed |= {datasets} if name == C.API_FUNCTION else set()
        allowed |= secrets if spec.calls_models else set()
        allowed |= {run_sm} if spec.starts_runs else set()
        allowed |= {synth.logical_id(stack.queues[f"{name}-dlq"])} if name in C.ASYNC_FUNCTIONS else set()
        allowed |= {function_id(synth, target) for target in spec.invokes}
        statements = function_statements(synth, name)
        assert refs(statements) == allowed, name
        for statement in statements:
            assert statement["Effect"] == "Allow"
            if as_list(statement["Resource"]) == ["*"]:
                if spec.isolated_network and services([statement]) == {"ec2"}:  # Lambda places its ENIs with it
                    assert sorted(as_list(statement["Action"])) == sorted(ENI_ACTIONS), name
                    continue
                assert services([statement]) == {"xray"}, f"{name}: only X-Ray may use Resource '*'"


def test_tools_that_never_read_the_table_or_data_get_no_such_permission(synth):
    calculator = function_statements(synth, "tool_calculator")
    assert services(calculator) == {"logs", "xray"}
    assert "dynamodb" not in json.dumps(calculator) and "s3:" not in json.dumps(calculator)
    for name in C.TOOL_FUNCTIONS:
        statements = function_statements(synth, name)
        # only the result cache's CACHE#* items (test_dataset_tools_may_touch_only_their_result_cache_items), or
        # RUN#* items read-only for arguments by reference (test_argument_readers_may_only_read_run_items)
        spec = wiring.FUNCTIONS[name]
        assert ("dynamodb" in services(statements)) == (spec.caches_results or spec.reads_arguments
                                                        or spec.writes_artifacts or spec.publishes_notifications), name
        # data readers go through the per-tenant reader role; operations tools write the artifacts bucket only
        assert ("s3" in services(statements)) == (spec.writes_artifacts or spec.writes_charts), name
        assert ("sts" in services(statements)) == wiring.FUNCTIONS[name].reads_data, name


def test_only_model_callers_read_the_provider_secrets(synth):
    secrets = {synth.logical_id(s) for s in synth.stack.data.secrets.values()}
    readers = {name for name in wiring.FUNCTIONS if refs(function_statements(synth, name)) & secrets}
    assert readers == {name for name, spec in wiring.FUNCTIONS.items() if spec.calls_models}
    for name in readers:
        bedrock = [s for s in function_statements(synth, name) if services([s]) == {"bedrock"}]
        (statement,) = bedrock
        text = json.dumps(statement["Resource"])
        assert "foundation-model/*" in text and "inference-profile/*" in text
        assert not any(r == "*" for r in as_list(statement["Resource"]))


def test_api_may_start_and_resume_only_the_run_state_machine(synth):
    run_sm = synth.logical_id(synth.stack.orchestration.state_machines["run"])
    states = [s for s in function_statements(synth, C.API_FUNCTION) if services([s]) == {"states"}]
    actions = {a for s in states for a in as_list(s["Action"])}
    assert actions == {"states:StartExecution", "states:SendTaskSuccess", "states:SendTaskFailure"}
    assert all(s["Resource"] == {"Ref": run_sm} for s in states)
    env = synth.resources[function_id(synth, C.API_FUNCTION)]["Properties"]["Environment"]["Variables"]
    assert env["STEPCREW_RUN_STATE_MACHINE_ARN"] == {"Ref": run_sm}
    # s3:// datasets are checked against the stage's bucket and the caller's tenant prefix (and again in the tools)
    assert env["STEPCREW_DATA_BUCKET"] == {"Ref": synth.logical_id(synth.stack.data.datasets)}
    # every setting the api function requires at init is in its environment (else: SettingsError on cold start)
    from stepcrew.api.settings import ApiSettings

    required = {f.alias or n for n, f in ApiSettings.model_fields.items() if f.is_required()}
    assert required and required <= set(env), sorted(required - set(env))
    # the idempotency records live in the run table, which the api's role may read and write item by item
    table = synth.logical_id(synth.stack.data.table)
    writes = {a for st in function_statements(synth, C.API_FUNCTION) if {"Fn::GetAtt": [table, "Arn"]} in
              as_list(st["Resource"]) for a in as_list(st["Action"])}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= writes


# --------------------------------------------------------------------------------------------- state machines
def _machine(synth, name: str) -> dict[str, Any]:
    return synth.resources[synth.logical_id(synth.stack.orchestration.state_machines[name])]["Properties"]


def _expected_target(synth, key: str) -> dict[str, Any]:
    target = wiring.SUBSTITUTIONS[key]
    if target.kind == "function":
        return {"Fn::GetAtt": [function_id(synth, target.name), "Arn"]}
    return {"Ref": synth.logical_id(synth.stack.orchestration.state_machines[target.name])}


@pytest.mark.parametrize("name", ["agent", "run"])
def test_state_machine_is_the_inlined_asl_with_every_placeholder_substituted(synth, name):
    props = _machine(synth, name)
    definition = props["DefinitionString"]
    assert isinstance(definition, str), "the ASL must be inlined (from_string), not an S3 asset"
    assert json.loads(definition) == json.loads(wiring.STATE_MACHINES[name].read_text())
    subs = props["DefinitionSubstitutions"]
    assert set(subs) == wiring.placeholders(name)
    for key, value in subs.items():
        assert value == _expected_target(synth, key), key
    rendered = wiring.render(name, {key: f"<{json.dumps(value)}>" for key, value in subs.items()})
    assert "${" not in rendered
    assert props["StateMachineType"] == "STANDARD"
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_every_mapped_function_arn_is_in_some_state_machine(synth):
    substituted = {json.dumps(v, sort_keys=True) for name in ("agent", "run")
                   for v in _machine(synth, name)["DefinitionSubstitutions"].values()}
    for fn in wiring.STATE_MACHINE_FUNCTIONS:
        ref = {"Fn::GetAtt": [function_id(synth, fn), "Arn"]}
        assert json.dumps(ref, sort_keys=True) in substituted, fn


@pytest.mark.parametrize("name", ["agent", "run"])
def test_state_machine_role_invokes_exactly_the_functions_its_asl_uses(synth, name):
    props = _machine(synth, name)
    statements = role_statements(synth, props["RoleArn"]["Fn::GetAtt"][0])
    invoke = [s for s in statements if "lambda:InvokeFunction" in as_list(s["Action"])]
    used = {wiring.SUBSTITUTIONS[k].name for k in wiring.placeholders(name)
            if wiring.SUBSTITUTIONS[k].kind == "function"}
    resources = [r for s in invoke for r in as_list(s["Resource"])]
    assert sorted(json.dumps(r, sort_keys=True) for r in resources) == sorted(
        json.dumps({"Fn::GetAtt": [function_id(synth, f), "Arn"]}, sort_keys=True) for f in used)


def test_run_role_may_follow_agent_loops_with_sync2(synth):
    agent = synth.logical_id(synth.stack.orchestration.state_machines["agent"])
    statements = role_statements(synth, _machine(synth, "run")["RoleArn"]["Fn::GetAtt"][0])
    by_action = {a: s for s in statements for a in as_list(s["Action"])}
    assert by_action["states:StartExecution"]["Resource"] == {"Ref": agent}
    assert "execution:stepcrew-dev-agent:*" in json.dumps(by_action["states:DescribeExecution"]["Resource"])
    assert "states:StopExecution" in by_action
    for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
        assert C.SYNC_EVENTS_RULE in json.dumps(by_action[action]["Resource"]), action


def test_failed_runs_go_to_the_run_failures_queue(synth):
    (rule,) = [r for r in synth.of_type("AWS::Events::Rule").values() if "EventPattern" in r["Properties"]]
    pattern = rule["Properties"]["EventPattern"]  # the other rule is the sweeper's schedule (test_sweeper.py)
    assert pattern["source"] == ["aws.states"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    run_sm = synth.logical_id(synth.stack.orchestration.state_machines["run"])
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": run_sm}]
    queue = synth.logical_id(synth.stack.orchestration.run_failures)
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}


# --------------------------------------------------------------------------------------------- API
def test_api_routes_and_jwt_authorizer(synth):
    (authorizer_id, authorizer), = synth.of_type("AWS::ApiGatewayV2::Authorizer").items()
    assert authorizer["Properties"]["AuthorizerType"] == "JWT"
    jwt = authorizer["Properties"]["JwtConfiguration"]
    pool = synth.logical_id(synth.stack.api.user_pool)
    assert jwt["Issuer"] == {"Fn::GetAtt": [pool, "ProviderURL"]}  # no issuer in context: the stack's pool
    assert refs(jwt["Audience"]) and refs(jwt["Audience"]) <= set(synth.of_type("AWS::Cognito::UserPoolClient"))
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()}
    assert set(routes) == {f"{m} {p}" for m, p, _ in C.API_ROUTES} == {
        "POST /runs", "GET /runs", "GET /runs/{id}", "GET /runs/{id}/events", "POST /runs/{id}/approval",
        "POST /runs/{id}/review", "POST /datasets",
        "GET /memory", "POST /memory", "DELETE /memory", "DELETE /memory/{id}",
        "GET /health"}
    for key, route in routes.items():
        if key == "GET /health":
            assert route.get("AuthorizationType", "NONE") == "NONE" and "AuthorizerId" not in route
        else:
            assert route["AuthorizationType"] == "JWT", key
            assert route["AuthorizerId"] == {"Ref": authorizer_id}, key
    api_fn = function_id(synth, C.API_FUNCTION)
    (integration,) = synth.of_type("AWS::ApiGatewayV2::Integration").values()
    assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    assert refs(integration["Properties"]["IntegrationUri"]) == {api_fn}


def test_api_stage_throttles_and_writes_access_logs(synth):
    (stage,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default" and props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"] == {"ThrottlingBurstLimit": C.API_THROTTLE_BURST,
                                             "ThrottlingRateLimit": C.API_THROTTLE_RATE_RPS}
    logs = synth.logical_id(synth.stack.api.access_logs)
    assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": [logs, "Arn"]}
    assert "$context.requestId" in props["AccessLogSettings"]["Format"]


def test_user_pool_requires_mfa_and_a_strong_password(synth):
    (pool,) = synth.of_type("AWS::Cognito::UserPool").values()
    props = pool["Properties"]
    assert props["MfaConfiguration"] == "ON"
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    policy = props["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12 and all(policy[k] for k in (
        "RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"))


# --------------------------------------------------------------------------------------------- schedules, DLQs
def test_schedules_start_the_run_state_machine_with_retries_and_a_dlq(synth):
    run_sm = synth.logical_id(synth.stack.orchestration.state_machines["run"])
    dlq = synth.logical_id(synth.stack.schedules.dlq)
    for schedule in synth.of_type("AWS::Scheduler::Schedule").values():
        target = schedule["Properties"]["Target"]
        assert target["Arn"] == {"Ref": run_sm}
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dlq, "Arn"]}
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": C.SCHEDULE_MAX_RETRY_ATTEMPTS,
                                         "MaximumEventAgeInSeconds": C.SCHEDULE_MAX_EVENT_AGE_S}
        text = "".join(p if isinstance(p, str) else "BUCKET" for p in target["Input"]["Fn::Join"][1])
        body = json.loads(text)
        assert body["source"] == "schedule" and body["request"]["goal"]
        role = target["RoleArn"]["Fn::GetAtt"][0]
        actions = {a for s in role_statements(synth, role) for a in as_list(s["Action"])}
        assert actions == {"states:StartExecution", "sqs:SendMessage"}


def test_a_scheduled_execution_is_named_with_a_valid_run_id(synth):
    """CreateScheduledRun (run.asl.json) takes the run id from ``$$.Execution.Name``. Each schedule uses the
    templated Step Functions target (Arn = the state machine, Input = the execution input), which calls
    StartExecution without a name, so Step Functions names the execution with a UUID (36 characters) - a valid
    RunId (<= 39). The universal target (``aws-sdk:sfn:startExecution``) would let a ``Name`` in, not checked here."""
    from pydantic import TypeAdapter
    from stepcrew.events import CreateScheduledRun
    from stepcrew.models import RunId

    create = json.loads(wiring.STATE_MACHINES["run"].read_text())["States"]["CreateScheduledRun"]
    assert create["Parameters"]["Payload"]["run_id.$"] == "$$.Execution.Name"
    generated = str(uuid.uuid4())  # what Step Functions names an execution started without a name
    assert TypeAdapter(RunId).validate_python(generated) == generated
    run_sm = synth.logical_id(synth.stack.orchestration.state_machines["run"])
    schedules = synth.of_type("AWS::Scheduler::Schedule")
    assert schedules
    for schedule in schedules.values():
        target = schedule["Properties"]["Target"]
        assert target["Arn"] == {"Ref": run_sm}, "not the templated target: the execution name may not be a RunId"
        text = "".join(p if isinstance(p, str) else "stepcrew-dev-datasets" for p in target["Input"]["Fn::Join"][1])
        body = json.loads(text)
        assert set(body) == {"request", "source"}  # no run_id: RouteInput sends it to CreateScheduledRun
        payload = CreateScheduledRun.model_validate({"request": body["request"], "run_id": generated})
        assert payload.run_id == generated


def test_every_dlq_is_encrypted_tls_only_and_alarmed(synth):
    queues = synth.of_type("AWS::SQS::Queue")
    assert set(synth.stack.queues) == {"run-failures", "schedule-dlq"} | {f"{n}-dlq" for n in C.ASYNC_FUNCTIONS}
    assert len(queues) == len(synth.stack.queues)
    alarms = list(synth.of_type("AWS::CloudWatch::Alarm").values())
    queue_policies = [p["Properties"] for p in synth.of_type("AWS::SQS::QueuePolicy").values()]
    for queue_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 86400
        assert any({"Ref": queue_id} in p["Queues"] and any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in p["PolicyDocument"]["Statement"]) for p in queue_policies), queue_id
        depth = [a["Properties"] for a in alarms if a["Properties"].get("MetricName")
                 == "ApproximateNumberOfMessagesVisible" and refs(a["Properties"]["Dimensions"]) == {queue_id}]
        assert len(depth) == 1, queue_id
        assert depth[0]["Threshold"] == 0 and depth[0]["ComparisonOperator"] == "GreaterThanThreshold"
        name = next(n for n, q in synth.stack.queues.items() if synth.logical_id(q) == queue_id)
        assert C.redrive_command(name) in depth[0]["AlarmDescription"]


# --------------------------------------------------------------------------------------------- monitoring
def test_alarms_notify_the_encrypted_topic(synth):
    topic_id = synth.logical_id(synth.stack.monitoring.topic)
    topic = synth.resources[topic_id]
    assert topic["Properties"]["KmsMasterKeyId"]
    alarms = synth.of_type("AWS::CloudWatch::Alarm").values()
    # 2 run alarms (failure rate, p95 duration) + one per DLQ + one error-rate alarm per function
    assert len(alarms) == 2 + len(synth.stack.queues) + len(wiring.FUNCTIONS)
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    descriptions = " ".join(a["Properties"]["AlarmDescription"] for a in alarms)
    assert "runs failed" in descriptions and "p95 run duration" in descriptions
    for name in wiring.FUNCTIONS:
        assert f"Function {name}:" in descriptions, name


def test_dashboard_shows_runs_tokens_cost_tool_errors_dlqs_and_throttles(synth):
    (dashboard,) = synth.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionTime", "p95", "p50",
                   *C.CUSTOM_METRICS, "ApproximateNumberOfMessagesVisible", "Throttles"):
        assert needle in body, needle


def test_the_run_state_machine_outlasts_its_longest_waits_for_a_person(synth):
    from stepcrew.models import HANDOFF_TIMEOUT_MAX_S

    (machine,) = [m for m in synth.of_type("AWS::StepFunctions::StateMachine").values()
                  if "HandOff" in json.dumps(m["Properties"].get("DefinitionString", ""))]
    definition = json.loads(machine["Properties"]["DefinitionString"]) if isinstance(
        machine["Properties"]["DefinitionString"], str) else None
    approval = 86_400  # WaitForApproval's TimeoutSeconds in run.asl.json
    if definition is not None:
        approval = definition["States"]["WaitForApproval"]["TimeoutSeconds"]
    assert C.RUN_TIMEOUT.to_seconds() > approval + HANDOFF_TIMEOUT_MAX_S


def test_costly_routes_have_their_own_lower_throttles(synth):
    (stage,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["RouteSettings"]
    assert set(settings) == set(C.API_ROUTE_THROTTLES) and "POST /runs" in settings
    default = stage["Properties"]["DefaultRouteSettings"]
    for key, (rate, burst) in C.API_ROUTE_THROTTLES.items():
        assert settings[key] == {"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}
        assert rate <= default["ThrottlingRateLimit"] and burst <= default["ThrottlingBurstLimit"]
    routes = {r["Properties"]["RouteKey"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()}
    assert set(settings) <= routes


def test_dataset_tools_may_touch_only_their_result_cache_items(synth):
    table = synth.logical_id(synth.stack.data.table)
    for name, spec in wiring.FUNCTIONS.items():
        if not spec.caches_results or spec.touches_table:
            continue
        dynamo = [s for s in function_statements(synth, name) if services([s]) == {"dynamodb"}]
        assert len(dynamo) == 1, name
        (st,) = dynamo
        assert sorted(as_list(st["Action"])) == ["dynamodb:GetItem", "dynamodb:PutItem"], name
        assert as_list(st["Resource"]) == [{"Fn::GetAtt": [table, "Arn"]}], name  # no index, no other table
        assert st["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [
            f"{schema.CACHE_PK_PREFIX}*"]}}, name
    cachers = {n for n, s in wiring.FUNCTIONS.items() if s.caches_results}
    assert cachers == {"tool_describe_dataset", "tool_query_dataset"}  # the calculator is cheaper than a read


def test_argument_readers_may_only_read_run_items(synth):
    """A tool whose calls come by reference (stepcrew.tools.argrefs) reads RUN#* items, nothing else: no write, no
    index, no CACHE#/BREAKER partition; the tools that take no reference hold no such statement."""
    from stepcrew.tools.registry import TOOLS

    table = synth.logical_id(synth.stack.data.table)
    readers = set()
    for name, spec in wiring.FUNCTIONS.items():
        statements = [s for s in function_statements(synth, name) if s.get("Sid") == "RunArguments"]
        if spec.tool:  # the wiring flag and the tool's own switch agree
            assert spec.reads_arguments == TOOLS[spec.tool].arguments_by_reference, name
        if not spec.reads_arguments or spec.touches_table:
            assert not statements, name
            continue
        readers.add(name)
        (st,) = statements
        assert sorted(as_list(st["Action"])) == ["dynamodb:GetItem", "dynamodb:Query"], name
        assert as_list(st["Resource"]) == [{"Fn::GetAtt": [table, "Arn"]}], name
        assert st["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["RUN#*"]}}, name
    assert readers == {"tool_write_section"}


def test_operations_tools_write_only_exports_and_their_receipts(synth):
    artifacts = synth.logical_id(synth.stack.data.artifacts)
    table = synth.logical_id(synth.stack.data.table)
    writers = [name for name, spec in wiring.FUNCTIONS.items() if spec.writes_artifacts]
    assert writers == ["tool_export_results"]
    statements = function_statements(synth, "tool_export_results")
    (s3,) = [st for st in statements if services([st]) == {"s3"}]
    assert sorted(as_list(s3["Action"])) == ["s3:GetObject", "s3:PutObject"]
    assert s3["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [artifacts, "Arn"]}, "/*/runs/*/exports/*"]]}
    (ddb,) = [st for st in statements if services([st]) == {"dynamodb"}]
    assert sorted(as_list(ddb["Action"])) == ["dynamodb:GetItem", "dynamodb:PutItem"]
    assert ddb["Resource"] == {"Fn::GetAtt": [table, "Arn"]}
    assert ddb["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["RECEIPT#*"]}}
    for name in wiring.FUNCTIONS:  # no other role names the artifacts bucket (make_chart: test_make_chart_stack.py)
        if name not in ("tool_export_results", "tool_make_chart"):
            assert artifacts not in json.dumps(function_statements(synth, name)), name
