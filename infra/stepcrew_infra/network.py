"""The isolated network of the functions that run untrusted code (``isolated_network`` specs: ``tool_run_python``).

One VPC per stage, built only when some :data:`stepcrew.wiring.FUNCTIONS` entry has ``isolated_network``:

- subnets of type ``PRIVATE_ISOLATED`` only, in :data:`MAX_AZS` Availability Zones: no public subnet, hence no
  internet gateway and no NAT gateway (``nat_gateways=0``); no VPC endpoint (gateway or interface) is added, so
  nothing in it reaches S3, DynamoDB, STS or any other AWS API, nor the internet;
- one security group, :attr:`IsolatedNetwork.security_group`, with no ingress rule and no egress rule
  (``allow_all_outbound=False``; CloudFormation would add allow-all egress to a group without rules, so CDK writes a
  placeholder egress rule to 255.255.255.255/32 port 86, ICMP type 252: matches nothing);
- VPC flow logs (all traffic, rejected and accepted) to their own CloudWatch log group (cdk-nag AwsSolutions-VPC7),
  kept as long as the function logs (``log_retention``), for audit of any attempt to leave;
- ``restrict_default_security_group=False``: restricting the VPC's default group needs a custom-resource Lambda; no
  function uses the default group (the isolated functions name :attr:`security_group` only), and its rules allow
  nothing beyond the VPC, which has no route out.

The ENI permissions a function in a VPC needs (Lambda creates its Hyperplane network interfaces with the execution
role: ``ec2:CreateNetworkInterface``, ``DescribeNetworkInterfaces``, ``DescribeSubnets``, ``DeleteNetworkInterface``,
``AssignPrivateIpAddresses``, ``UnassignPrivateIpAddresses``; AWS Lambda Developer Guide, "Giving Lambda functions
access to resources in an Amazon VPC", the actions of the AWS managed policy AWSLambdaVPCAccessExecutionRole) are
:data:`ENI_ACTIONS`, granted inline by :class:`~stepcrew_infra.functions.StepcrewFunction` (no managed policy: it also
grants log-group creation on every log group).
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from stepcrew_infra.config import StageConfig

#: Availability Zones of the isolated subnets (Lambda places ENIs in each listed subnet: two for AZ resilience).
MAX_AZS = 2
#: What Lambda needs on the execution role of a function in a VPC (see the module docstring). The Describe actions
#: support no resource-level permissions; Lambda calls the others on ENIs it names itself, hence Resource ``*``.
ENI_ACTIONS = ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
               "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses")


class IsolatedNetwork(Construct):
    """``vpc`` (isolated subnets only), ``security_group`` (no ingress, no egress), ``flow_logs`` (their log group)
    and ``subnets`` (the selection an isolated function is placed in)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self, "Vpc", max_azs=MAX_AZS, nat_gateways=0, create_internet_gateway=False,
            restrict_default_security_group=False,
            subnet_configuration=[ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                                                          cidr_mask=24)])
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.security_group = ec2.SecurityGroup(
            self, "NoEgress", vpc=self.vpc, allow_all_outbound=False, allow_all_ipv6_outbound=False,
            description=f"stepcrew {config.stage} untrusted code: no ingress, no egress")
        self.flow_logs = logs.LogGroup(self, "FlowLogs", retention=config.log_retention,
                                       removal_policy=config.removal_policy)
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_logs),
                              traffic_type=ec2.FlowLogTrafficType.ALL)
