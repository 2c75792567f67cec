"""cdk-nag is clean at synth, each suppression is on one resource with its own reason, cfn-lint finds no errors."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

pytestmark = pytest.mark.infra


def test_synth_with_aws_solutions_checks_reports_nothing_unacknowledged(synth):
    # The fixture's app.synth() ran the AwsSolutions plugin and did not raise; if the plugin wrote a report, no
    # plugin concluded "failure".
    report = synth.outdir / "validation-report.json"
    if report.exists():
        doc = json.loads(report.read_text())
        failed = [(p["pluginName"], v["ruleName"]) for p in doc.get("pluginReports", [])
                  if p.get("conclusion") == "failure" for v in p.get("violations", [])]
        assert failed == []


def test_aws_solutions_checks_do_fail_a_synth(tmp_path):
    # Given a stack with one queue lacking a DLQ and TLS enforcement, when synthesized with the same plugin wiring
    # as the app, then synth fails: the check in the fixture is live, not a no-op.
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "nag-control")
    sqs.Queue(stack, "Bare")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="AwsSolutions-SQS"):
        app.synth()


#: Acknowledgments aws-cdk-lib writes itself: W3010 on the stack once ``stack.availabilityZones`` is read (the isolated
#: VPC's subnets), F3002/F3003 on every ``ec2.FlowLog`` (its DestinationOptions casing).
CDK_OWN_ACKNOWLEDGMENTS = ("CloudFormation-Validate::W3010", "CloudFormation-Validate::F3002",
                           "CloudFormation-Validate::F3003")


def test_every_suppression_is_on_one_resource_with_its_own_reason(synth):
    # The cloud assembly's metadata lists, per construct path, its logical id (CloudFormation resources only)
    # and its acknowledged rules.
    metadata = json.loads((synth.outdir / f"{synth.stack.stack_name}.metadata.json").read_text())
    suppressions = []
    for path, entries in metadata.items():
        acknowledged = {k: v for e in entries if e["type"] == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
                        for k, v in e["data"].items()}
        for own in CDK_OWN_ACKNOWLEDGMENTS:  # aws-cdk-lib's, not cdk-nag's (the run_python VPC triggers them)
            acknowledged.pop(own, None)
        if not acknowledged:
            continue
        assert any(e["type"] == "aws:cdk:logicalId" for e in entries), f"suppression on a non-resource: {path}"
        for rule, reason in acknowledged.items():
            assert rule.startswith("AwsSolutions::AwsSolutions-"), rule
            assert len(reason) >= 20, (path, rule)
            suppressions.append((path, rule, reason))
    assert suppressions, "expected the documented suppressions (X-Ray '*', secrets rotation...)"
    reasons = [r for _, _, r in suppressions]
    assert len(set(reasons)) == len(reasons), "every suppression carries its own reason"
    rules = {rule.split("::", 1)[1].split("[")[0] for _, rule, _ in suppressions}
    assert rules <= {"AwsSolutions-IAM5", "AwsSolutions-SMG4", "AwsSolutions-SQS3", "AwsSolutions-COG8",
                     "AwsSolutions-APIG4"}, rules


def test_cfn_lint_reports_no_errors(synth):
    from cfnlint.api import lint

    matches = lint(json.dumps(synth.template), regions=["us-east-1"])
    errors = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path or []))})" for m in matches
              if m.rule.id.startswith("E")]
    assert errors == []
    # Warnings are allowed; CDK's redundant DependsOn (W3005) is the expected one.
    assert {m.rule.id for m in matches} <= {"W3005"}, sorted({m.rule.id for m in matches})
