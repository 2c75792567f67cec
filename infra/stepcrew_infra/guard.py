"""What the screening functions (:data:`constants.SCREENING_FUNCTIONS`: the guard function and every spec with
``screens=True``, i.e. the memory function) get beyond every function: the guard's dependencies layer and, with the
``bedrock`` backend, an Amazon Bedrock guardrail, a published version of it and permission to apply exactly that
guardrail. One guardrail and one layer per stage, shared by those functions (:attr:`Guard.extras`).

- Layer: ``layers/guard/python`` (built by ``layers/guard/build.py``: the deps the guard function imports plus
  Presidio/spaCy/phonenumbers/tldextract, debug sections stripped, ~159 MB measured) replaces the deps layer for the
  screening functions only; with the shared layer that stays far below Lambda's 250 MB for a function and its
  layers, which deps + guard packages together would not (see the build script). The guard layer leaves out the
  model SDKs (``anthropic``, ``openai``; build script ``LEFT_OUT``): a screening function that calls models (the memory
  function's extraction) can only reach Bedrock (boto3 is in the Lambda runtime) until that layer carries them too.
  Not built: an empty placeholder and a :class:`GuardLayerNotBuiltWarning`, as for the deps layer.
- Environment: ``STEPCREW_GUARD_BACKEND`` = the stage's ``guard_backend``; with ``bedrock`` also
  ``STEPCREW_GUARDRAIL_ID`` (the guardrail's id) and ``STEPCREW_GUARDRAIL_VERSION`` (the published version number).
- IAM, ``bedrock`` only: ``bedrock:ApplyGuardrail`` on the guardrail's ARN (the resource ApplyGuardrail is
  authorized on, Bedrock user guide "Using resource-based policies for guardrails"), nothing else.

The guardrail (``AWS::Bedrock::Guardrail``, classic tier, AWS-managed encryption) is built from the same constants
:class:`stepcrew.guards.bedrock.BedrockGuard` parses with, so the two cannot drift:

- content policy: ``PROMPT_ATTACK`` only, input strength ``HIGH``, output strength ``NONE`` (prompt attacks are
  assessed on inputs only; the guard sends ``source=INPUT``);
- sensitive information: :data:`~stepcrew.guards.bedrock.GUARDRAIL_PII_TYPES` and the ``API_KEY`` regex
  (:data:`~stepcrew.guards.bedrock.API_KEY_REGEX`), all ``ANONYMIZE`` (a finding, not a refusal: the guard decides);
- topics: the stage's ``guard_denied_topics`` (``BLOCK``); none configured -> no topic policy (and no topic charge).

A ``AWS::Bedrock::GuardrailVersion`` snapshots the guardrail; its description carries a hash of the configuration,
and a version's description can only be set at creation (CloudFormation replaces it), so a configuration change
publishes a new version and the function's ``STEPCREW_GUARDRAIL_VERSION`` follows.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aws_cdk import aws_bedrock as bedrock
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from stepcrew.guards import bedrock as guard_bedrock

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.functions import DEPS_EXCLUDES, DepsLayerNotBuiltWarning, FunctionExtras, dependency_layer


class GuardLayerNotBuiltWarning(DepsLayerNotBuiltWarning):
    """``layers/guard/python`` is missing: the guard function gets an empty placeholder layer (fine for synth and
    tests, not for a deploy; run ``python layers/guard/build.py`` first)."""


def guardrail_properties(config: StageConfig) -> dict[str, Any]:
    """The ``AWS::Bedrock::Guardrail`` configuration of ``config``'s stage, as CfnGuardrail keyword arguments."""
    props: dict[str, Any] = {
        "name": config.resource_name("guard"),
        "description": f"stepcrew {config.stage}: input screening of runs (prompt attacks, personal data, secrets)",
        "blocked_input_messaging": C.GUARDRAIL_BLOCKED_INPUT,
        "blocked_outputs_messaging": C.GUARDRAIL_BLOCKED_OUTPUT,
        "content_policy_config": bedrock.CfnGuardrail.ContentPolicyConfigProperty(filters_config=[
            bedrock.CfnGuardrail.ContentFilterConfigProperty(type="PROMPT_ATTACK", input_strength="HIGH",
                                                             output_strength="NONE")]),
        "sensitive_information_policy_config": bedrock.CfnGuardrail.SensitiveInformationPolicyConfigProperty(
            pii_entities_config=[bedrock.CfnGuardrail.PiiEntityConfigProperty(type=t, action="ANONYMIZE")
                                 for t in guard_bedrock.GUARDRAIL_PII_TYPES],
            regexes_config=[bedrock.CfnGuardrail.RegexConfigProperty(
                name=guard_bedrock.API_KEY_REGEX_NAME, pattern=guard_bedrock.API_KEY_REGEX, action="ANONYMIZE",
                description="Provider API keys (sk-...)")]),
    }
    if config.guard_denied_topics:
        props["topic_policy_config"] = bedrock.CfnGuardrail.TopicPolicyConfigProperty(topics_config=[
            bedrock.CfnGuardrail.TopicConfigProperty(name=t.name, definition=t.definition, type="DENY",
                                                     examples=list(t.examples) or None)
            for t in config.guard_denied_topics])
    return props


def _fingerprint(config: StageConfig) -> str:
    """A short hash of everything the guardrail is configured from (changes -> a new version)."""
    doc = {"pii": guard_bedrock.GUARDRAIL_PII_TYPES, "regex": [guard_bedrock.API_KEY_REGEX_NAME,
                                                               guard_bedrock.API_KEY_REGEX],
           "prompt_attack": ["HIGH", "NONE"], "messages": [C.GUARDRAIL_BLOCKED_INPUT, C.GUARDRAIL_BLOCKED_OUTPUT],
           "topics": [[t.name, t.definition, list(t.examples)] for t in config.guard_denied_topics]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def build_guard_layer(scope: Construct) -> lambda_.ILayerVersion:
    """The guard layer (``layers/guard/python``), or a placeholder with a :class:`GuardLayerNotBuiltWarning`."""
    return dependency_layer(scope, "GuardLayer", built=C.GUARD_LAYER_BUILT, placeholder=C.GUARD_LAYER_PLACEHOLDER,
                            description="stepcrew guard function dependencies (layers/guard/requirements.txt)",
                            warning=GuardLayerNotBuiltWarning, exclude=[*DEPS_EXCLUDES, ".gitignore"])


class Guard(Construct):
    """The guard layer (``layer``) and, for ``guard_backend=bedrock``, the guardrail (``guardrail``) and its published
    version (``version``), both None for ``local``. ``extras``: what every screening function gets (its layers: the
    shared package layer ``shared_layer`` and the guard layer; its environment; its IAM statements)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig,
                 shared_layer: lambda_.ILayerVersion) -> None:
        super().__init__(scope, construct_id)
        self.guardrail: bedrock.CfnGuardrail | None = None
        self.version: bedrock.CfnGuardrailVersion | None = None
        environment = {C.GUARD_BACKEND_ENV: config.guard_backend}
        statements: list[iam.PolicyStatement] = []
        if config.guard_backend == "bedrock":
            self.guardrail = bedrock.CfnGuardrail(self, "Guardrail", **guardrail_properties(config))
            self.version = bedrock.CfnGuardrailVersion(
                self, "GuardrailVersion", guardrail_identifier=self.guardrail.attr_guardrail_id,
                description=f"stepcrew {config.stage} guard, configuration {_fingerprint(config)}")
            environment[C.GUARDRAIL_ID_ENV] = self.guardrail.attr_guardrail_id
            environment[C.GUARDRAIL_VERSION_ENV] = self.version.attr_version
            statements.append(iam.PolicyStatement(sid="ApplyGuardrail", actions=["bedrock:ApplyGuardrail"],
                                                  resources=[self.guardrail.attr_guardrail_arn]))
        self.layer = build_guard_layer(self)
        self.extras = FunctionExtras(layers=[shared_layer, self.layer], environment=environment,
                                     statements=statements)
