"""Synthesize the stack ONCE per test session (cdk-nag on), then share the template (and, for the tests that need it,
the ``memory_index=s3vectors`` stage once more: :func:`s3vectors_synth`).

Every module here sets ``pytestmark = pytest.mark.infra`` (``pytest -m "not infra"`` skips them).

Synth takes ~10-15 s (jsii starts a Node process; FACTS.md "CDK offline"), so every template test reads the
:func:`synth` fixture. The synth uses no AWS account: the stack is environment-agnostic, the outdir is a temp dir,
and the environment is empty (no ``CDK_DEFAULT_ACCOUNT``/``STEPCREW_STAGE`` leaking in from the shell).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"
if str(INFRA_DIR) not in sys.path:
    sys.path.insert(0, str(INFRA_DIR))


@dataclass
class Synth:
    """The synthesized stage: ``app``, ``stack`` (the StepcrewStack), ``template`` (CloudFormation as a dict),
    ``assertions`` (aws_cdk.assertions.Template of the same synth), ``outdir`` (the cloud assembly folder)."""

    app: Any
    stack: Any
    template: dict[str, Any]
    assertions: Any
    outdir: Path

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        """Logical id -> resource, for every resource of ``cfn_type``."""
        return {k: r for k, r in self.resources.items() if r["Type"] == cfn_type}

    def logical_id(self, construct: Any) -> str:
        """The logical id of a construct's CloudFormation resource (L2: its default child)."""
        from stepcrew_infra.nag import cfn_resource

        stack = self.stack
        return stack.resolve(stack.get_logical_id(cfn_resource(construct)))


def synthesize(tmp_path_factory: pytest.TempPathFactory, context: dict[str, Any] | None = None,
               name: str = "cdk.out") -> Synth:
    """Build the ``dev`` stage with ``context`` and cdk-nag's AwsSolutionsChecks, and synthesize it."""
    from aws_cdk.assertions import Template
    from stepcrew_infra.functions import DepsLayerNotBuiltWarning
    from stepcrew_infra.stack import build_app

    outdir = tmp_path_factory.mktemp(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DepsLayerNotBuiltWarning)
        app, stack = build_app(context=context, outdir=outdir, env={}, nag=True)
    try:
        assembly = app.synth()
    except Exception as exc:  # jsii wraps the validation failure; its text is the cdk-nag report
        pytest.fail(f"synth ({context or 'defaults'}) with cdk-nag AwsSolutionsChecks failed:\n{exc}", pytrace=False)
    template = assembly.get_stack_by_name(stack.stack_name).template
    template = json.loads(json.dumps(template))  # plain dicts/lists (jsii may hand back mapping proxies)
    return Synth(app=app, stack=stack, template=template, assertions=Template.from_json(template), outdir=outdir)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Build the ``dev`` stage (every context default) with cdk-nag's AwsSolutionsChecks and synthesize it once."""
    return synthesize(tmp_path_factory)


@pytest.fixture(scope="session")
def s3vectors_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The ``dev`` stage with ``memory_index=s3vectors`` (the S3 Vectors bucket and indexes), cdk-nag on."""
    return synthesize(tmp_path_factory, {"memory_index": "s3vectors"}, name="cdk.out.s3vectors")
