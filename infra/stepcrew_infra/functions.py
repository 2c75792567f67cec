"""One Lambda function per :data:`stepcrew.wiring.FUNCTIONS` entry, with its own role holding only what the
entry says it touches, and the two layers every function shares.

A function's role gets:

- always: write to its own log group; X-Ray segments (``Tracing.ACTIVE``; X-Ray has no resource-level
  permissions, hence ``Resource: *``);
- ``touches_table``: item reads/writes and queries on the run table and its GSI (no scans, no table admin);
- ``reads_data``: no S3 permission of its own: ``sts:AssumeRole`` + ``sts:TagSession`` on the dataset reader role
  (:class:`stepcrew_infra.data.DatasetReader`), which reads ``<bucket>/${aws:PrincipalTag/tenant}/*`` only; the code
  assumes it per run tenant (:class:`stepcrew.tools.datasets.TenantReaders`), so IAM holds the tenant boundary even
  if a prefix check in code were wrong;
- ``embeds`` (and not ``calls_models``): ``bedrock:InvokeModel`` on the Titan embeddings model of the Region only;
- ``calls_models``: ``secretsmanager:GetSecretValue`` on the provider key secrets and Bedrock
  ``InvokeModel``/``InvokeModelWithResponseStream`` (``converse``/``converse_stream`` are authorized by these) on
  foundation models and this account's inference profiles;
- its :class:`FunctionExtras` (several concerns may each add some; :meth:`FunctionResources.add_extras` merges them):
  the screening functions (:data:`constants.SCREENING_FUNCTIONS`: the guard and every ``screens`` spec) get the guard
  layer instead of the deps layer, ``STEPCREW_GUARD_BACKEND`` and, with ``guard_backend=bedrock``, the guardrail's id
  and version and ``bedrock:ApplyGuardrail`` on it (:mod:`stepcrew_infra.guard`); the ``vector_index`` functions get
  ``STEPCREW_MEMORY_INDEX`` and, with ``memory_index=s3vectors``, the vector bucket and S3 Vectors actions on its two
  indexes only (:mod:`stepcrew_infra.memory`);
- ``invokes``: ``lambda:InvokeFunction`` on each named function (its unqualified ARN) and
  ``STEPCREW_<NAME>_FUNCTION`` = its name (:func:`wire_invocations`, once every function exists);
- ``caches_results`` (the dataset tools): ``GetItem``/``PutItem`` on the run table for partition keys ``CACHE#*``
  only (condition ``dynamodb:LeadingKeys``): the tool-result cache, nothing else of the table;
- ``reads_arguments`` (``write_section``: arguments by reference, :mod:`stepcrew.tools.argrefs`): ``GetItem`` and
  ``Query`` on the run table (no index) for partition keys ``RUN#*`` only: read-only, no cache, breaker or other
  partition; which run and tenant is checked in code (the run's tenant from the state, ``get_run(run_id, tenant)``);
- ``writes_artifacts`` (``export_results``): ``GetItem``/``PutItem`` on the run table for partition keys
  ``RECEIPT#*`` only (its exactly-once receipts) and ``s3:PutObject``/``s3:GetObject`` on the artifacts bucket's
  ``*/runs/*/exports/*`` keys only (never the datasets bucket); ``STEPCREW_TABLE_NAME`` and
  ``STEPCREW_ARTIFACTS_BUCKET``;
- ``writes_charts`` (``make_chart``): ``s3:PutObject`` only, on the artifacts bucket's ``*/runs/*/charts/*`` keys
  (:data:`CHART_KEYS`; no read, list or delete, no table); ``STEPCREW_ARTIFACTS_BUCKET``;
- ``publishes_notifications`` (``notify``): ``sns:Publish`` on the notifications topic only
  (:class:`stepcrew_infra.notifications.Notifications`; FIFO, AWS managed key: no KMS statement) and the
  ``RECEIPT#*`` ``GetItem``/``PutItem`` of ``writes_artifacts``; ``STEPCREW_TABLE_NAME`` and
  ``STEPCREW_NOTIFY_TOPIC_ARN``;
- ``isolated_network`` (``run_python``: untrusted code): no other flag may be set (ValueError at synth); the function
  runs in :class:`stepcrew_infra.network.IsolatedNetwork` (isolated subnets, a security group without egress), its
  role gets the ENI actions Lambda needs in a VPC (:data:`stepcrew_infra.network.ENI_ACTIONS`, Resource ``*``) and
  it gets ``STEPCREW_PYTHON_DATASET=off`` (it cannot read the run's S3 dataset: stepcrew.tools.run_python);
- nothing else: a tool that never reads the table has no DynamoDB statement at all.

Environment of every function: ``STEPCREW_STAGE``, ``POWERTOOLS_SERVICE_NAME`` (``stepcrew-<name>``),
``POWERTOOLS_LOG_LEVEL``, ``POWERTOOLS_METRICS_NAMESPACE``; plus ``STEPCREW_TABLE_NAME`` (table users, cache and
argument readers),
``STEPCREW_DATA_BUCKET`` and ``STEPCREW_DATA_READER_ROLE_ARN`` (dataset readers),
``STEPCREW_ANTHROPIC_SECRET``/``STEPCREW_OPENAI_SECRET`` (the secrets' ARNs, a valid SecretId; never values; model
callers, and the api, which checks a run's fallback chain is configured without any permission to read them);
``STEPCREW_FALLBACK_CHAIN`` and ``STEPCREW_TENANT_DAILY_USD``/``_MONTHLY_USD`` (context ``fallback_chain``,
``tenant_daily_usd``, ``tenant_monthly_usd``) on table users; ``STEPCREW_EMBEDDINGS``/``_MODEL``/``_DIM``
(:data:`constants.EMBEDDINGS_ENVIRONMENT`: Titan V2 on Bedrock) on model callers and embedders (``embeds``: the memory
function, which may invoke the Titan model only), the only roles allowed to invoke a Bedrock model (a
``vector_index`` read/write function that is neither is refused at synth: it would embed without permission).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from stepcrew.store import schema
from stepcrew.tools.datasets import READER_ROLE_ENV
from stepcrew.tools.run_python import DATASET_ENV as PYTHON_DATASET_ENV
from stepcrew.wiring import FUNCTIONS, FunctionSpec

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.data import DatasetReader
from stepcrew_infra.nag import acknowledge
from stepcrew_infra.network import ENI_ACTIONS, IsolatedNetwork

#: Item-level DynamoDB actions a table user may call (the store adapter's get/put/update/delete/query, batch and
#: transactional writes are authorized per item action). No Scan, no table or index management.
TABLE_ACTIONS = (
    "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
    "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
)
#: Everything of ``layers/deps`` but the built ``python/`` folder stays out of the deps layer asset.
DEPS_EXCLUDES = ["**/__pycache__", "build.py", "requirements.txt", "placeholder", "README.md"]
BEDROCK_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")


def pascal(name: str) -> str:
    """A construct id for a function name: ``tool_query_dataset`` -> ``ToolQueryDataset``."""
    return "".join(part.title() for part in name.split("_"))


class DepsLayerNotBuiltWarning(UserWarning):
    """``layers/deps/python`` is missing: the stack uses an empty placeholder layer (fine for synth and tests,
    not for a deploy; run ``python layers/deps/build.py`` first)."""


@dataclass
class FunctionExtras:
    """What one function gets beyond its spec (:attr:`FunctionResources.extras`): ``layers`` replacing the shared
    list (None keeps it), more ``environment`` variables, more IAM ``statements`` on its role (each role gets its own
    copy of a statement, so one FunctionExtras may serve several functions)."""

    layers: list[lambda_.ILayerVersion] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    statements: list[iam.PolicyStatement] = field(default_factory=list)

    def merged(self, other: FunctionExtras) -> FunctionExtras:
        """Both extras together. Raises ValueError when both replace the layers differently or set one variable to
        different values (two concerns disagreeing on a function is a stack bug, not a choice)."""
        if self.layers is not None and other.layers is not None and list(self.layers) != list(other.layers):
            raise ValueError("two FunctionExtras replace the same function's layers differently")
        clash = sorted(k for k in self.environment.keys() & other.environment.keys()
                       if self.environment[k] != other.environment[k])
        if clash:
            raise ValueError(f"two FunctionExtras set {', '.join(clash)} differently")
        return FunctionExtras(layers=self.layers if self.layers is not None else other.layers,
                              environment={**self.environment, **other.environment},
                              statements=[*self.statements, *other.statements])


@dataclass
class FunctionResources:
    """What functions may be given: the stage settings, the layers and the resources their roles may name.
    ``dataset_reader``: the role dataset reads assume per tenant (default: the one built beside ``datasets``,
    :meth:`DatasetReader.of`)."""

    config: StageConfig
    layers: list[lambda_.ILayerVersion]
    table: dynamodb.ITable
    datasets: s3.IBucket
    secrets: dict[str, secretsmanager.ISecret]
    functions: dict[str, StepcrewFunction] = field(default_factory=dict)
    dataset_reader: DatasetReader | None = None
    #: Per function name: its :class:`FunctionExtras` (the guard layer, backend and guardrail permission; the memory
    #: index's environment and permissions). Add with :meth:`add_extras`, before the function is built.
    extras: dict[str, FunctionExtras] = field(default_factory=dict)
    #: The VPC of the ``isolated_network`` functions (built by the stack only when a spec has the flag).
    isolated_network: IsolatedNetwork | None = None
    #: The run-artifacts bucket of the ``writes_artifacts`` functions (exports).
    artifacts: s3.IBucket | None = None
    #: The notifications topic of the ``publishes_notifications`` functions (``notify``).
    notifications: sns.ITopic | None = None

    def __post_init__(self) -> None:
        if self.dataset_reader is None:
            self.dataset_reader = DatasetReader.of(self.datasets)

    def add_extras(self, name: str, extras: FunctionExtras) -> None:
        """Give function ``name`` ``extras`` too (merged with what it has: :meth:`FunctionExtras.merged`)."""
        if name not in FUNCTIONS:
            raise KeyError(f"no function {name!r} in stepcrew.wiring.FUNCTIONS")
        if name in self.functions:
            raise RuntimeError(f"function {name!r} is built already: add its extras before")
        self.extras[name] = self.extras[name].merged(extras) if name in self.extras else extras


def build_layers(scope: Construct) -> list[lambda_.ILayerVersion]:
    """The shared package layer (``layers/stepcrew``: ``python/stepcrew/``) and the deps layer
    (``layers/deps/python``, or a placeholder with a :class:`DepsLayerNotBuiltWarning` when not built)."""
    shared = lambda_.LayerVersion(
        scope, "SharedLayer", code=lambda_.Code.from_asset(str(C.SHARED_LAYER_DIR), exclude=C.ASSET_EXCLUDES),
        compatible_runtimes=[C.RUNTIME], compatible_architectures=[C.ARCHITECTURE],
        description="stepcrew domain package (layers/stepcrew/python/stepcrew)")
    deps = dependency_layer(scope, "DepsLayer", built=C.DEPS_LAYER_BUILT, placeholder=C.DEPS_LAYER_PLACEHOLDER,
                            description="stepcrew third-party dependencies (layers/deps/requirements.txt)",
                            warning=DepsLayerNotBuiltWarning)
    return [shared, deps]


def dependency_layer(scope: Construct, construct_id: str, *, built: Path, placeholder: Path, description: str,
                     warning: type[DepsLayerNotBuiltWarning], exclude: list[str] = DEPS_EXCLUDES
                     ) -> lambda_.ILayerVersion:
    """A layer of third-party packages: the folder holding ``built`` (``layers/<name>/python``, made by that folder's
    ``build.py``), or, when it was not built, the empty ``placeholder`` with ``warning`` (fine for synth and tests,
    not for a deploy). ``exclude``: asset patterns left out of the folder (the build script, its inputs)."""
    folder = built.parent
    layer_dir = folder
    if not built.is_dir():
        name = folder.relative_to(C.REPO_ROOT).as_posix()
        warnings.warn(f"{built} is missing: using the empty placeholder layer {placeholder}. Fine for synth and "
                      f"tests; run `python {name}/build.py` before `cdk deploy`.", warning, stacklevel=3)
        layer_dir = placeholder
        description = f"PLACEHOLDER: {name} was not built at synth time"
    return lambda_.LayerVersion(
        scope, construct_id, code=lambda_.Code.from_asset(str(layer_dir), exclude=exclude),
        compatible_runtimes=[C.RUNTIME], compatible_architectures=[C.ARCHITECTURE], description=description)


#: The keys of run artifacts (stepcrew.tools.artifacts.artifact_key): ``<tenant>/runs/<run_id>/exports/<name>``.
ARTIFACT_KEYS = "*/runs/*/exports/*"
#: The keys of charts (stepcrew.tools.make_chart): ``<tenant>/runs/<run_id>/charts/<name>.png``.
CHART_KEYS = "*/runs/*/charts/*"


class StepcrewFunction(Construct):
    """A function of :data:`stepcrew.wiring.FUNCTIONS`: log group, least-privilege role, Lambda function.

    ``environment`` adds variables (e.g. the api's state machine ARN); ``dead_letter_queue`` is set for
    functions invoked asynchronously (:data:`constants.ASYNC_FUNCTIONS`).
    """

    def __init__(self, scope: Construct, construct_id: str, *, spec: FunctionSpec, resources: FunctionResources,
                 environment: dict[str, str] | None = None, dead_letter_queue: sqs.IQueue | None = None) -> None:
        super().__init__(scope, construct_id)
        config = resources.config
        self.spec = spec
        network = self._isolated_network(spec, resources)
        self.log_group = logs.LogGroup(self, "Logs", retention=config.log_retention,
                                       removal_policy=config.removal_policy)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"stepcrew {config.stage} {spec.name}: only what this function touches")
        env = {
            "STEPCREW_STAGE": config.stage,
            "POWERTOOLS_SERVICE_NAME": f"{C.APP_NAME}-{spec.name}",
            "POWERTOOLS_LOG_LEVEL": config.log_level,
            "POWERTOOLS_METRICS_NAMESPACE": C.METRICS_NAMESPACE,
        }
        if (spec.touches_table or spec.caches_results or spec.reads_arguments or spec.writes_artifacts
                or spec.publishes_notifications):
            env["STEPCREW_TABLE_NAME"] = resources.table.table_name
        if spec.publishes_notifications:  # the notify tool: the one topic it publishes to
            env["STEPCREW_NOTIFY_TOPIC_ARN"] = resources.notifications.topic_arn
        if spec.writes_artifacts or spec.writes_charts:  # run artifacts: their own bucket, under the tenant prefix
            env["STEPCREW_ARTIFACTS_BUCKET"] = resources.artifacts.bucket_name
        if spec.reads_data:
            env["STEPCREW_DATA_BUCKET"] = resources.datasets.bucket_name
            env[READER_ROLE_ENV] = resources.dataset_reader.role_arn
        if spec.emits_events:
            env["STEPCREW_EVENT_BUS"] = "default"
        if spec.calls_models or spec.name == C.API_FUNCTION:
            # model callers read the keys; the api only checks that a run's fallback chain is configured (the ARNs
            # name the secrets; it holds no permission to read them)
            for provider, secret in sorted(resources.secrets.items()):
                env[C.PROVIDER_SECRETS[provider]] = secret.secret_arn
        if spec.touches_table:  # fallback chain and tenant budgets: checked at the api, applied at each call
            env.update(config.resilience_environment)
        if spec.vector_index in ("read", "write") and not (spec.calls_models or spec.embeds):
            raise ValueError(f"{spec.name}: vector_index={spec.vector_index!r} embeds texts, which needs the Bedrock "
                             "permission of a model caller (calls_models=True) or of an embedder (embeds=True)")
        if spec.calls_models or spec.embeds:  # deployed embeddings: Titan V2 (semantic cache, memory recall, writes)
            env.update(C.EMBEDDINGS_ENVIRONMENT)
        if network is not None:  # no S3, no network: the tool must not try to read the run's dataset
            env[PYTHON_DATASET_ENV] = "off"
        if spec.vector_index:  # the exact index's numpy: one BLAS thread (a Lambda of <= 1,769 MB has < 2 vCPUs;
            env["OPENBLAS_NUM_THREADS"] = "1"  # bench/memory.py: threaded BLAS was 5-7x slower on a busy CPU)
        extras = resources.extras.get(spec.name, FunctionExtras())
        env.update(extras.environment)
        env.update(environment or {})

        self.function = lambda_.Function(
            self, "Function",
            function_name=config.resource_name(spec.name),
            description=spec.description[:256],
            code=lambda_.Code.from_asset(str(spec.folder), exclude=C.ASSET_EXCLUDES),
            handler=C.HANDLER, runtime=C.RUNTIME, architecture=C.ARCHITECTURE,
            memory_size=spec.memory_mb, timeout=Duration.seconds(spec.timeout_s),
            layers=extras.layers or resources.layers, role=self.role, environment=env, log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=config.reserved_concurrency.get(spec.name),
            dead_letter_queue=dead_letter_queue,
            **({} if network is None else {"vpc": network.vpc, "vpc_subnets": network.subnets,
                                            "security_groups": [network.security_group],
                                            "allow_public_subnet": False}),
        )
        self._grant(resources)
        for statement in extras.statements:
            self.role.add_to_policy(statement.copy())
        resources.functions[spec.name] = self

    @staticmethod
    def _isolated_network(spec: FunctionSpec, resources: FunctionResources) -> IsolatedNetwork | None:
        """The network of an ``isolated_network`` spec (None for the others). ValueError when such a spec also
        touches anything (table, data, models, secrets, events, runs, memory, other functions) or reads its arguments
        by reference; RuntimeError when the stack built no network."""
        if not spec.isolated_network:
            return None
        touching = [name for name in ("touches_table", "reads_data", "calls_models", "starts_runs", "emits_events",
                                      "caches_results", "reads_arguments", "screens", "sweeps_runs", "embeds",
                                      "writes_artifacts", "writes_charts", "publishes_notifications")
                    if getattr(spec, name)] + (["vector_index"] if spec.vector_index else []) + (
                   ["invokes"] if spec.invokes else [])
        if touching:
            raise ValueError(f"{spec.name}: isolated_network runs untrusted code and may touch nothing, but has "
                             f"{', '.join(touching)}")
        if resources.isolated_network is None:
            raise RuntimeError(f"{spec.name}: isolated_network needs FunctionResources.isolated_network (the stack "
                               "builds it when a spec has the flag)")
        return resources.isolated_network

    # ---------------------------------------------------------------------------------------- permissions
    def _grant(self, resources: FunctionResources) -> None:
        spec, stack = self.spec, Stack.of(self)
        self.role.add_to_policy(iam.PolicyStatement(
            sid="OwnLogGroup", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.log_group.log_group_arn]))
        if spec.isolated_network:  # Lambda creates the function's ENIs in the isolated subnets with this role
            self.role.add_to_policy(iam.PolicyStatement(sid="VpcNetworkInterfaces", actions=list(ENI_ACTIONS),
                                                        resources=["*"]))
        if spec.touches_table:
            self.role.add_to_policy(iam.PolicyStatement(
                sid="RunTable", actions=list(TABLE_ACTIONS),
                resources=[resources.table.table_arn, f"{resources.table.table_arn}/index/{schema.GSI1_NAME}"]))
        if spec.caches_results and not spec.touches_table:  # the tool-result cache: CACHE#<tenant> items only
            self.role.add_to_policy(iam.PolicyStatement(
                sid="ToolResultCache", actions=["dynamodb:GetItem", "dynamodb:PutItem"],
                resources=[resources.table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{schema.CACHE_PK_PREFIX}*"]}}))
        if spec.reads_arguments and not spec.touches_table:  # arguments by reference: read-only, RUN#<id> items only
            self.role.add_to_policy(iam.PolicyStatement(
                sid="RunArguments", actions=["dynamodb:GetItem", "dynamodb:Query"],
                resources=[resources.table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [schema.run_pk("*")]}}))
        if (spec.writes_artifacts or spec.publishes_notifications) and not spec.touches_table:  # receipts only
            self.role.add_to_policy(iam.PolicyStatement(
                sid="OperationReceipts", actions=["dynamodb:GetItem", "dynamodb:PutItem"],
                resources=[resources.table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["RECEIPT#*"]}}))
        if spec.writes_artifacts:  # exports of any tenant's run, under <tenant>/runs/<run>/exports/ only
            self.role.add_to_policy(iam.PolicyStatement(
                sid="RunArtifacts", actions=["s3:PutObject", "s3:GetObject"],
                resources=[resources.artifacts.arn_for_objects(ARTIFACT_KEYS)]))
        if spec.writes_charts:  # charts of any tenant's run, under <tenant>/runs/<run>/charts/ only: write, never read
            self.role.add_to_policy(iam.PolicyStatement(
                sid="RunCharts", actions=["s3:PutObject"],
                resources=[resources.artifacts.arn_for_objects(CHART_KEYS)]))
        if spec.publishes_notifications:  # the notify tool: Publish on the notifications topic, nothing else of SNS
            self.role.add_to_policy(iam.PolicyStatement(
                sid="PublishNotifications", actions=["sns:Publish"], resources=[resources.notifications.topic_arn]))
        if spec.reads_data:  # datasets only as the run's tenant: through the reader role, never directly
            reader = resources.dataset_reader
            reader.allow(self.role)
            self.role.add_to_policy(iam.PolicyStatement(
                sid="AssumeDatasetReader", actions=["sts:AssumeRole", "sts:TagSession"], resources=[reader.role_arn]))
        if spec.emits_events:  # stepcrew.run.needs_review on the account's default bus
            self.role.add_to_policy(iam.PolicyStatement(
                sid="PublishEvents", actions=["events:PutEvents"],
                resources=[stack.format_arn(service="events", resource="event-bus", resource_name="default")]))
        if spec.calls_models:
            secrets = [resources.secrets[p] for p in sorted(resources.secrets)]
            self.role.add_to_policy(iam.PolicyStatement(
                sid="ProviderKeys", actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[s.secret_arn for s in secrets]))
            self.role.add_to_policy(iam.PolicyStatement(
                sid="Bedrock", actions=list(BEDROCK_ACTIONS), resources=[
                    # Cross-Region inference profiles route a request to the model in another Region of their
                    # geography, so the foundation-model ARN is allowed in every Region.
                    stack.format_arn(service="bedrock", region="*", account="", resource="foundation-model",
                                     resource_name="*"),
                    stack.format_arn(service="bedrock", resource="inference-profile", resource_name="*"),
                ]))
        if spec.embeds and not spec.calls_models:  # the embeddings model only (Titan V2 in this Region)
            self.role.add_to_policy(iam.PolicyStatement(
                sid="Embeddings", actions=["bedrock:InvokeModel"], resources=[
                    stack.format_arn(service="bedrock", account="", resource="foundation-model",
                                     resource_name=C.EMBEDDINGS_MODEL)]))
        self._acknowledge(resources)

    @staticmethod
    def _bucket_id(resources: FunctionResources) -> str:
        """The artifacts bucket's logical id as cdk-nag names it in a finding (``<Id.Arn>``)."""
        return Stack.of(resources.artifacts).get_logical_id(resources.artifacts.node.default_child)

    def _acknowledge(self, resources: FunctionResources) -> None:
        policy = self.role.node.find_child("DefaultPolicy")
        name = self.spec.name
        if self.spec.isolated_network:
            acknowledge(policy, "AwsSolutions-IAM5[Resource::*]",
                        f"{name}: X-Ray (Tracing.ACTIVE) and the ENI actions Lambda needs to place the function in "
                        "its isolated VPC (ec2:Describe* support no resource-level permissions; Lambda names the "
                        "network interfaces itself) require Resource '*'; the ENIs can only sit in subnets without "
                        "any route out, and the role grants no data, table or secret access.")
        else:
            acknowledge(policy, "AwsSolutions-IAM5[Resource::*]",
                        f"{name}: xray:PutTraceSegments/PutTelemetryRecords (Tracing.ACTIVE) support no resource-level "
                        "permissions, so X-Ray requires Resource '*'; it is the only '*' statement of this role.")
        if self.spec.writes_artifacts:
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::<{self._bucket_id(resources)}.Arn>/{ARTIFACT_KEYS}]",
                        f"{name}: writes the exports of any tenant's run (the tenant and run come from the state "
                        "machine, never from the model), and only under <tenant>/runs/<run>/exports/ of the artifacts "
                        "bucket: never a dataset, and it cannot list or delete.")
        if self.spec.writes_charts:
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::<{self._bucket_id(resources)}.Arn>/{CHART_KEYS}]",
                        f"{name}: writes the charts of any tenant's run (the tenant and run come from the state "
                        "machine, never from the model), and only under <tenant>/runs/<run>/charts/ of the artifacts "
                        "bucket: PutObject only; it cannot read, list or delete.")
        if self.spec.calls_models:
            acknowledge(policy, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/*]",
                        f"{name}: the Bedrock model is chosen per run (provider/model settings), and cross-Region "
                        "inference profiles invoke the model in other Regions; limited to InvokeModel actions.")
            acknowledge(policy, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:<AWS::Region>:"
                                "<AWS::AccountId>:inference-profile/*]",
                        f"{name}: inference profiles of this account and Region only; which one is used is a run "
                        "setting, and only InvokeModel/InvokeModelWithResponseStream are allowed.")


class FunctionGroup(Construct):
    """A group of :class:`StepcrewFunction` built from :data:`stepcrew.wiring.FUNCTIONS`, one per name in
    ``NAMES`` (set by subclasses: one construct per concern). ``functions``: function name -> StepcrewFunction."""

    NAMES: tuple[str, ...] = ()

    def __init__(self, scope: Construct, construct_id: str, *, resources: FunctionResources,
                 dead_letter_queues: dict[str, sqs.IQueue]) -> None:
        super().__init__(scope, construct_id)
        self.functions = {
            name: StepcrewFunction(self, pascal(name), spec=FUNCTIONS[name], resources=resources,
                                   dead_letter_queue=dead_letter_queues.get(name))
            for name in self.NAMES
        }


def wire_invocations(functions: dict[str, StepcrewFunction]) -> None:
    """For every function whose spec ``invokes`` others (the api -> memory): ``lambda:InvokeFunction`` on each
    callee's unqualified ARN (a statement per callee, nothing else) and ``STEPCREW_<CALLEE>_FUNCTION`` = the callee's
    function name (:func:`constants.invoke_env`). Call once every function is built. Raises KeyError naming a callee
    that was not built."""
    for name, caller in sorted(functions.items()):
        for target in caller.spec.invokes:
            if target not in functions:
                raise KeyError(f"{name} invokes {target!r}, which no construct built")
            callee = functions[target].function
            caller.role.add_to_policy(iam.PolicyStatement(
                sid=f"Invoke{pascal(target)}", actions=["lambda:InvokeFunction"], resources=[callee.function_arn]))
            caller.function.add_environment(C.invoke_env(target), callee.function_name)
