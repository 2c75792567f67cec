"""The deploy workflow: pinned actions, OIDC only, the pinned CDK CLI, the tests -> synth -> lint -> deploy order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.infra

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "deploy.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_every_action_is_pinned_by_full_sha_with_its_version():
    uses = [line.strip() for line in WORKFLOW.read_text().splitlines() if re.match(r"\s*-?\s*uses:", line)]
    assert uses
    for line in uses:
        assert re.fullmatch(r"-?\s*uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line


def test_deploy_uses_oidc_and_never_long_lived_keys(workflow):
    text = WORKFLOW.read_text()
    assert "aws-access-key-id" not in text and "aws-secret-access-key" not in text
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"]["id-token"] == "write"
    creds = next(s for s in deploy["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert creds["with"]["role-to-assume"] == "${{ secrets.AWS_DEPLOY_ROLE_ARN }}"
    assert workflow["permissions"] == {"contents": "read"}


def test_order_is_tests_synth_lint_deploy_with_the_pinned_cli(workflow):
    jobs = workflow["jobs"]
    assert jobs["synth"]["needs"] == "test" and jobs["deploy"]["needs"] == "synth"
    runs = [s.get("run", "") for s in jobs["synth"]["steps"]]
    synth = next(i for i, r in enumerate(runs) if " synth" in r)
    lint = next(i for i, r in enumerate(runs) if r.startswith("cfn-lint"))
    assert synth < lint
    assert workflow["env"]["CDK_CLI"] == "aws-cdk@2.1148"
    assert workflow["env"]["CDK_DISABLE_VERSION_CHECK"] == "1"
    assert "deploy --app cdk.out" in jobs["deploy"]["steps"][-1]["run"]
