"""The deployed ``run_python`` function (untrusted code): isolated subnets only, a security group without egress, a
role with nothing but its logs, X-Ray and the ENI actions, no dataset (stepcrew_infra.network, functions.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from iam_helpers import as_list
from stepcrew import wiring

pytestmark = pytest.mark.infra

NAME = "tool_run_python"
#: Resource types that would give the VPC a way out (or in).
WAYS_OUT = ("AWS::EC2::InternetGateway", "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::NatGateway",
            "AWS::EC2::EgressOnlyInternetGateway", "AWS::EC2::VPCEndpoint", "AWS::EC2::TransitGatewayAttachment",
            "AWS::EC2::VPCPeeringConnection", "AWS::EC2::VPNGateway", "AWS::EC2::EIP", "AWS::EC2::Route")


def _function(synth) -> dict:
    return synth.resources[synth.logical_id(synth.stack.functions[NAME].function)]["Properties"]


def _statements(synth) -> list[dict]:
    role_id = _function(synth)["Role"]["Fn::GetAtt"][0]
    role = synth.resources[role_id]["Properties"]
    assert not role.get("ManagedPolicyArns"), "no managed policy (AWSLambdaVPCAccessExecutionRole is not used)"
    assert not role.get("Policies")
    return [st for p in synth.of_type("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
            for st in p["Properties"]["PolicyDocument"]["Statement"]]


def test_the_spec_touches_nothing():
    spec = wiring.FUNCTIONS[NAME]
    assert spec.tool == "run_python" and spec.isolated_network
    assert not (spec.touches_table or spec.reads_data or spec.calls_models or spec.starts_runs or spec.emits_events
                or spec.caches_results or spec.reads_arguments or spec.screens or spec.sweeps_runs or spec.embeds
                or spec.vector_index or spec.invokes)
    assert spec.memory_mb >= 1024 and spec.timeout_s >= 45
    assert "1024 MB" in spec.description and "45 s" in spec.description
    assert [n for n, s in wiring.FUNCTIONS.items() if s.isolated_network] == [NAME]


def test_it_runs_in_isolated_subnets_only(synth):
    vpc_config = _function(synth)["VpcConfig"]
    subnet_ids = [ref["Ref"] for ref in vpc_config["SubnetIds"]]
    assert len(subnet_ids) >= 2  # two Availability Zones
    subnets = synth.of_type("AWS::EC2::Subnet")
    for subnet_id in subnet_ids:
        props = subnets[subnet_id]["Properties"]
        tags = {t["Key"]: t["Value"] for t in props["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated" and props["MapPublicIpOnLaunch"] is False
    # the only subnets of the template are these, and nothing routes anywhere: no gateway, NAT, endpoint or route
    assert set(subnets) == set(subnet_ids)
    assert {t: synth.of_type(t) for t in WAYS_OUT} == {t: {} for t in WAYS_OUT}
    (vpc_id,) = synth.of_type("AWS::EC2::VPC")
    assert {props["Properties"]["VpcId"]["Ref"] for props in subnets.values()} == {vpc_id}


def test_its_security_group_allows_no_traffic(synth):
    (group_ref,) = _function(synth)["VpcConfig"]["SecurityGroupIds"]
    group_id = group_ref["Fn::GetAtt"][0]
    group = synth.of_type("AWS::EC2::SecurityGroup")[group_id]["Properties"]
    assert not group.get("SecurityGroupIngress")
    egress = group["SecurityGroupEgress"]
    # CDK's placeholder for "no rule" (a group with none would get CloudFormation's allow-all): ICMP 252-86 to a
    # broadcast /32, which matches no packet
    assert egress == [{"CidrIp": "255.255.255.255/32", "Description": "Disallow all traffic", "FromPort": 252,
                       "IpProtocol": "icmp", "ToPort": 86}]
    text = json.dumps(group)
    assert "0.0.0.0/0" not in text and "::/0" not in text and "CidrIpv6" not in text
    for kind in ("AWS::EC2::SecurityGroupEgress", "AWS::EC2::SecurityGroupIngress"):
        assert not [r for r in synth.of_type(kind).values() if group_id in json.dumps(r)], kind


def test_its_vpc_has_flow_logs_to_cloudwatch(synth):
    (vpc_id,) = synth.of_type("AWS::EC2::VPC")
    (flow,) = synth.of_type("AWS::EC2::FlowLog").values()
    props = flow["Properties"]
    assert props["ResourceId"] == {"Ref": vpc_id} and props["ResourceType"] == "VPC"
    assert props["LogDestinationType"] == "cloud-watch-logs" and props["TrafficType"] == "ALL"
    assert props["LogGroupName"]["Ref"] in synth.of_type("AWS::Logs::LogGroup")


def test_its_role_grants_no_data_table_secret_or_state_machine_action(synth):
    statements = _statements(synth)
    actions = {a.lower() for st in statements for a in as_list(st["Action"])}
    for st in statements:
        assert st["Effect"] == "Allow" and "Condition" not in st
    services = {a.split(":")[0] for a in actions}
    assert services == {"logs", "xray", "ec2"}
    forbidden = ("dynamodb", "s3", "s3vectors", "secretsmanager", "states", "sts", "kms", "bedrock", "lambda", "iam",
                 "sqs", "events", "ssm")
    assert not [a for a in actions if a.split(":")[0] in forbidden]
    # logs: its own log group only; ec2: exactly the ENI actions (no Run/Modify/Authorize/Attach/Create* else)
    own_logs = synth.logical_id(synth.stack.functions[NAME].log_group)
    (logs_statement,) = [st for st in statements if any(a.startswith("logs:") for a in as_list(st["Action"]))]
    assert logs_statement["Resource"] == {"Fn::GetAtt": [own_logs, "Arn"]}
    assert sorted(a for a in actions if a.startswith("ec2:")) == sorted(a.lower() for a in (
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"))
    # the function's environment names no table, bucket, reader role or secret, and turns the dataset off
    env = _function(synth)["Environment"]["Variables"]
    assert env["STEPCREW_PYTHON_DATASET"] == "off"
    assert not [k for k in env if "TABLE" in k or "BUCKET" in k or "ROLE" in k or "SECRET" in k]
    props = _function(synth)
    assert props["MemorySize"] >= 1024 and props["Timeout"] >= 45


def test_no_other_function_is_in_a_vpc(synth):
    in_vpc = {name for name, fn in synth.stack.functions.items()
              if "VpcConfig" in synth.resources[synth.logical_id(fn.function)]["Properties"]}
    assert in_vpc == {NAME}


@pytest.mark.parametrize("flag", [{"touches_table": True}, {"reads_data": True}, {"calls_models": True},
                                  {"caches_results": True}, {"reads_arguments": True}, {"invokes": ("memory",)}])
def test_an_isolated_spec_that_touches_anything_is_refused_at_synth(flag):
    from stepcrew_infra.functions import StepcrewFunction

    spec = wiring.FunctionSpec("tool_x", "Tool: x", tool="x", isolated_network=True, **flag)
    with pytest.raises(ValueError, match="isolated_network runs untrusted code and may touch nothing"):
        StepcrewFunction._isolated_network(spec, SimpleNamespace(isolated_network=object()))


def test_an_isolated_spec_without_the_network_is_refused():
    from stepcrew_infra.functions import StepcrewFunction

    spec = wiring.FunctionSpec("tool_x", "Tool: x", tool="x", isolated_network=True)
    with pytest.raises(RuntimeError, match="needs FunctionResources.isolated_network"):
        StepcrewFunction._isolated_network(spec, SimpleNamespace(isolated_network=None))
