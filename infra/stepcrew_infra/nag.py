"""cdk-nag suppressions, one resource at a time.

cdk-nag 3.x runs as a CDK validation plugin (``Validations.of(app).add_plugins(AwsSolutionsChecks(app))``) and
fails the synth on any finding that is not acknowledged (ids ``AwsSolutions::<rule>``, the form its report asks
for). :func:`acknowledge` is the only way this app
acknowledges one: on a single CloudFormation resource (never a stack or a whole construct tree), with its own
reason. Findings with a detail (``AwsSolutions-IAM5[Resource::*]``) are acknowledged one detail at a time.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Validations
from constructs import IConstruct


def cfn_resource(construct: IConstruct) -> CfnResource:
    """``construct`` itself when it is a CloudFormation resource, else its default child (the L1 of an L2)."""
    if isinstance(construct, CfnResource):
        return construct
    child = construct.node.default_child
    if not isinstance(child, CfnResource):
        raise TypeError(f"{construct.node.path} has no single CloudFormation resource to acknowledge on")
    return child


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge cdk-nag ``rule`` (e.g. ``AwsSolutions-SQS3`` or ``AwsSolutions-IAM5[Resource::*]``) on the one
    CloudFormation resource of ``construct``, with ``reason`` (at least 20 characters: say why, not what)."""
    if len(reason) < 20:
        raise ValueError(f"give {rule} on {construct.node.path} a real reason, not {reason!r}")
    pack = rule.split("-", 1)[0]  # "AwsSolutions-IAM5[...]" -> "AwsSolutions": the plugin's well-known prefix
    Validations.of(cfn_resource(construct)).acknowledge(Acknowledgment(id=f"{pack}::{rule}", reason=reason))
