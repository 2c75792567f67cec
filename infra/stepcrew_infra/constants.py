"""Every fixed number and name of the stepcrew stack, with its unit and the source of its limit.

Stage-dependent values (removal policy, log level, reserved concurrency, JWT issuer) live in
:mod:`stepcrew_infra.config`; this module holds what does not change between stages.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from stepcrew import wiring
from stepcrew.embeddings.bedrock import TITAN_V2, TITAN_V2_DIMS
from stepcrew.models import HANDOFF_TIMEOUT_MAX_S
from stepcrew.llm.secrets import KEY_ENV

# --------------------------------------------------------------------------------------------- paths
INFRA_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = INFRA_DIR.parent
#: The synthesized cloud assembly (gitignored). ``CDK_OUTDIR`` (set by the CDK CLI) wins over it.
DEFAULT_OUTDIR = INFRA_DIR / "cdk.out"
#: Scheduled runs (validated by :class:`stepcrew_infra.schedules.ScheduleFile`).
SCHEDULES_FILE = INFRA_DIR / "schedules.yaml"
#: The shared package layer: ``layers/stepcrew/python/stepcrew/`` is importable as ``stepcrew`` on Lambda.
SHARED_LAYER_DIR = REPO_ROOT / "layers" / "stepcrew"
#: The third-party dependencies layer, built by ``layers/deps/build.py`` into ``layers/deps/python``.
DEPS_LAYER_DIR = REPO_ROOT / "layers" / "deps"
DEPS_LAYER_BUILT = DEPS_LAYER_DIR / "python"
#: Stand-in for the deps layer when it has not been built (synth only; deploy workflows build it first).
DEPS_LAYER_PLACEHOLDER = DEPS_LAYER_DIR / "placeholder"
#: Left out of every code asset (bytecode, build metadata, local caches).
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/*.egg-info", "**/.pytest_cache", "**/tests"]

# --------------------------------------------------------------------------------------------- names
APP_NAME = "stepcrew"
DEFAULT_STAGE = "dev"
#: Stages whose stateful resources (table, buckets, log groups, key) are retained on stack deletion.
PROD_STAGES = frozenset({"prod"})
#: A stage name: lowercase, starts with a letter, at most 16 characters, so that every derived name stays below
#: its service's limit (64 characters for Lambda function names, API_CreateFunction; 80 for state machine names,
#: API_CreateStateMachine; 64 for schedule names, API_CreateSchedule).
STAGE_PATTERN = r"^[a-z][a-z0-9-]{0,15}$"

API_FUNCTION = "api"
TOOL_FUNCTIONS = tuple(wiring.TOOL_FUNCTIONS.values())
#: Role functions: every function that is neither a tool nor the HTTP API handler.
ROLE_FUNCTIONS = tuple(name for name in wiring.FUNCTIONS if name not in TOOL_FUNCTIONS and name != API_FUNCTION)
#: Functions invoked asynchronously (InvocationType Event): the sweeper (an EventBridge schedule,
#: stepcrew_infra.sweeper). Step Functions' ``lambda:invoke`` and ``lambda:invoke.waitForTaskToken`` Tasks in
#: ``statemachines/*.asl.json`` call RequestResponse, and API Gateway calls the api function synchronously. A name
#: added here gets an SQS dead-letter queue and a depth alarm.
ASYNC_FUNCTIONS: frozenset[str] = frozenset({"sweeper"})

# --------------------------------------------------------------------------------------------- Lambda
#: The latest Python runtime aws-cdk-lib 2.275 offers (cdk-nag AwsSolutions-L1 wants the latest).
RUNTIME = lambda_.Runtime.PYTHON_3_14
#: "3.14": what ``pip install --python-version`` needs to fetch wheels for :data:`RUNTIME`.
RUNTIME_PYTHON_VERSION = RUNTIME.name.removeprefix("python")
ARCHITECTURE = lambda_.Architecture.ARM_64
#: The pip platform tags matching :data:`ARCHITECTURE` (Lambda's Amazon Linux 2023 has glibc 2.34 >= 2.28).
PIP_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
HANDLER = "app.handler"

# --------------------------------------------------------------------------------------------- guard
#: The function that screens runs (:mod:`stepcrew.guards`).
GUARD_FUNCTION = "guard"
#: Every function that builds the PII/injection guard in-process: the guard function and each spec with
#: ``screens=True`` (the memory function screens what it remembers). Only these get the guard layer (instead of the
#: deps layer), ``STEPCREW_GUARD_BACKEND`` and, with the ``bedrock`` backend, ``bedrock:ApplyGuardrail`` on the
#: stack's guardrail (:mod:`stepcrew_infra.guard`).
SCREENING_FUNCTIONS = tuple(name for name, spec in wiring.FUNCTIONS.items() if name == GUARD_FUNCTION or spec.screens)
#: ``guard_backend`` context values; the guard function reads its choice from env ``STEPCREW_GUARD_BACKEND``.
GUARD_BACKENDS = ("local", "bedrock")
GUARD_BACKEND_ENV = "STEPCREW_GUARD_BACKEND"
GUARDRAIL_ID_ENV = "STEPCREW_GUARDRAIL_ID"
GUARDRAIL_VERSION_ENV = "STEPCREW_GUARDRAIL_VERSION"
#: The guard function's dependencies layer (the slim deps it imports + Presidio/spaCy/phonenumbers/tldextract),
#: built by ``layers/guard/build.py`` into ``layers/guard/python``; it replaces the deps layer for that function.
GUARD_LAYER_DIR = REPO_ROOT / "layers" / "guard"
GUARD_LAYER_BUILT = GUARD_LAYER_DIR / "python"
GUARD_LAYER_PLACEHOLDER = GUARD_LAYER_DIR / "placeholder"
#: What the guardrail returns instead of a blocked text (1-500 characters, CreateGuardrail). stepcrew reads the
#: assessments, not these, but the resource requires both.
GUARDRAIL_BLOCKED_INPUT = ("stepcrew's guard stopped this input: it holds personal data or secrets, a prompt attack "
                           "or a denied topic.")
GUARDRAIL_BLOCKED_OUTPUT = "stepcrew's guard stopped this output: it holds personal data, secrets or a denied topic."

# --------------------------------------------------------------------------------------------- memory, embeddings
#: ``memory_index`` context values (:mod:`stepcrew_infra.memory`): ``exact`` (default; brute force over the run
#: table, no extra resource) or ``s3vectors`` (an S3 Vectors bucket with one index per memory kind).
MEMORY_INDEXES = ("exact", "s3vectors")
#: What :func:`stepcrew.memory.index.build_index` reads.
MEMORY_INDEX_ENV = "STEPCREW_MEMORY_INDEX"
MEMORY_VECTOR_BUCKET_ENV = "STEPCREW_MEMORY_VECTOR_BUCKET"
#: S3 Vectors actions per :attr:`stepcrew.wiring.FunctionSpec.vector_index` (on the two index ARNs only). ``read``:
#: QueryVectors, plus GetVectors, which QueryVectors needs for a metadata filter or ``returnMetadata`` (botocore
#: service model, QueryVectors "Permissions"; the adapter always sends both); ``write``: also PutVectors and
#: DeleteVectors (upserts, evictions); ``delete``: DeleteVectors only (the api forgets items).
VECTOR_INDEX_ACTIONS: dict[str, tuple[str, ...]] = {
    "read": ("s3vectors:QueryVectors", "s3vectors:GetVectors"),
    "write": ("s3vectors:QueryVectors", "s3vectors:GetVectors", "s3vectors:PutVectors", "s3vectors:DeleteVectors"),
    "delete": ("s3vectors:DeleteVectors",),
}
#: Deployed embeddings (:func:`stepcrew.embeddings.build_embeddings`): Amazon Titan Text Embeddings V2 on Bedrock.
#: The offline default (``local``, wordllama) is not in the deps layer, so a deployed function must not fall back to
#: it. Set on every model caller (``calls_models``: the semantic cache of the resilience ladder, the planner's recall,
#: the memory function's writes); their role already holds ``bedrock:InvokeModel`` on ``foundation-model/*``, which
#: covers the Titan model. :data:`EMBEDDINGS_DIM` is also the S3 Vectors indexes' dimension (fixed at creation: a
#: change needs new indexes); 256 is the factory's default, the smallest Titan V2 size (256, 512 or 1024).
EMBEDDINGS_BACKEND = "bedrock"
EMBEDDINGS_MODEL = TITAN_V2
EMBEDDINGS_DIM = 256
if EMBEDDINGS_DIM not in TITAN_V2_DIMS:  # pragma: no cover - a constant
    raise ValueError(f"EMBEDDINGS_DIM must be one of {TITAN_V2_DIMS}")
EMBEDDINGS_ENVIRONMENT: dict[str, str] = {"STEPCREW_EMBEDDINGS": EMBEDDINGS_BACKEND,
                                          "STEPCREW_EMBEDDINGS_MODEL": EMBEDDINGS_MODEL,
                                          "STEPCREW_EMBEDDINGS_DIM": str(EMBEDDINGS_DIM)}


def invoke_env(function: str) -> str:
    """The variable holding the name of a function another one invokes (:attr:`FunctionSpec.invokes`):
    ``memory`` -> ``STEPCREW_MEMORY_FUNCTION``."""
    return f"STEPCREW_{function.upper()}_FUNCTION"


# --------------------------------------------------------------------------------------------- observability
#: CloudWatch namespace of the custom metrics the functions emit with Powertools (EMF).
METRICS_NAMESPACE = "stepcrew"
#: Custom metrics (namespace :data:`METRICS_NAMESPACE`, Powertools' default dimension ``service``):
#: token counts (count), cost (USD), run outcomes (count), tool errors (count).
CUSTOM_METRICS = ("InputTokens", "OutputTokens", "CostUSD", "RunsSucceeded", "RunsFailed", "ToolErrors")
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
#: S3 server access logs of the datasets bucket are deleted after this (lifecycle expiration, days).
ACCESS_LOG_EXPIRATION = Duration.days(365)
PROD_LOG_RETENTION = logs.RetentionDays.ONE_YEAR

# --------------------------------------------------------------------------------------------- orchestration
#: Upper bounds on one execution. Standard workflows may run up to one year (Step Functions quotas page); a run
#: waits at most 24 h for approval (``TimeoutSeconds`` 86400 in run.asl.json) and at most
#: ``stepcrew.models.HANDOFF_TIMEOUT_MAX_S`` (30 days) for a person's review, so that plus 2 days covers the work.
RUN_TIMEOUT = Duration.seconds(86_400 + HANDOFF_TIMEOUT_MAX_S + 2 * 86_400)
#: One agent loop (a sub-task): up to 50 model turns (``Budget.max_turns_per_subtask`` le=50) of <= 300 s each.
AGENT_TIMEOUT = Duration.hours(5)
#: The managed rule ``.sync:2`` (``states:startExecution.sync:2``) uses to follow child executions
#: (https://docs.aws.amazon.com/step-functions/latest/dg/stepfunctions-iam.html).
SYNC_EVENTS_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
#: Execution statuses that mean a run ended without the run state machine recording it itself.
FAILED_EXECUTION_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")

# --------------------------------------------------------------------------------------------- API
#: Default stage throttle for every route: steady requests per second and burst (API Gateway account default is
#: 10,000 rps / 5,000 burst per Region; stepcrew's own, far lower cap protects the model budget).
API_THROTTLE_RATE_RPS = 20
API_THROTTLE_BURST = 40
#: Per-route throttles (requests per second, burst) below the stage default: starting a run or answering a waiting
#: one is costly (a state machine execution, model calls), so those routes get less than reads; so is handing out
#: an upload URL (each lets a client store up to stepcrew.tools.datasets.MAX_DATASET_BYTES), and so are memory writes.
API_ROUTE_THROTTLES: dict[str, tuple[int, int]] = {
    "POST /runs": (5, 10),
    "POST /runs/{id}/approval": (5, 10),
    "POST /runs/{id}/review": (5, 10),
    "POST /datasets": (5, 10),
    # a memory write invokes the memory function (the PII guard, an embedding); an erase deletes a tenant's items
    "POST /memory": (5, 10),
    "DELETE /memory": (2, 5),
    "GET /health": (10, 20),
}
#: (method, path, authorized) of every route; all go to the api function.
API_ROUTES: tuple[tuple[str, str, bool], ...] = (
    ("POST", "/runs", True),
    ("GET", "/runs", True),
    ("GET", "/runs/{id}", True),
    ("GET", "/runs/{id}/events", True),
    ("POST", "/runs/{id}/approval", True),
    ("POST", "/runs/{id}/review", True),
    ("POST", "/datasets", True),
    ("GET", "/memory", True),
    ("POST", "/memory", True),
    ("DELETE", "/memory", True),
    ("DELETE", "/memory/{id}", True),
    ("GET", "/health", False),
)

# --------------------------------------------------------------------------------------------- queues
#: Messages stay 14 days in every DLQ (SQS maximum retention, 1,209,600 s).
DLQ_RETENTION = Duration.days(14)
#: Scheduler retry policy: attempts 0-185 and event age 60-86,400 s are the service's bounds
#: (https://docs.aws.amazon.com/scheduler/latest/APIReference/API_RetryPolicy.html).
SCHEDULE_MAX_RETRY_ATTEMPTS = 3
SCHEDULE_MAX_EVENT_AGE_S = 3600
#: How each DLQ's messages are replayed once the cause is fixed (also in each depth alarm's description).
#: ``start-message-move-task`` moves messages back to the SQS queue they came from; these DLQs are fed by
#: EventBridge Scheduler and an EventBridge rule instead, so each has its own replay:
#: - ``schedule-dlq``: the message body is the schedule's execution input; start it again, then delete the message;
#: - ``run-failures``: the body is the Step Functions status-change event; ``stepcrew runs redrive <detail.name>``
#:   (the execution's name is the run id) reopens the run record under a conditional write and redrives the
#:   execution from its failed state (Standard workflows, within 14 days), or says why it cannot (its failure was
#:   recorded by the workflow: start the run again);
#: - an async function's DLQ (``<name>-dlq``): the body is the original event; invoke the function with it again.
REDRIVE_COMMANDS: dict[str, str] = {
    "schedule-dlq": "aws sqs receive-message --queue-url <dlq-url> --max-number-of-messages 10; then per message: "
                    "aws stepfunctions start-execution --state-machine-arn <RunStateMachineArn> --input '<Body>' "
                    "&& aws sqs delete-message --queue-url <dlq-url> --receipt-handle <ReceiptHandle>",
    "run-failures": "aws sqs receive-message --queue-url <RunFailuresQueueUrl> --max-number-of-messages 10; then per "
                    "message: stepcrew runs redrive <Body.detail.name> --aws --tenant <the run's tenant> "
                    "&& aws sqs delete-message --queue-url <RunFailuresQueueUrl> --receipt-handle <ReceiptHandle>",
    "function": "aws sqs receive-message --queue-url <dlq-url>; then per message: aws lambda invoke --function-name "
                "<function> --invocation-type Event --payload '<Body>' --cli-binary-format raw-in-base64-out out.json "
                "&& aws sqs delete-message --queue-url <dlq-url> --receipt-handle <ReceiptHandle>",
}
#: Generic SQS-to-SQS redrive (for a DLQ behind an SQS source queue): back to where the messages came from.
REDRIVE_COMMAND = ("aws sqs start-message-move-task --source-arn <dlq-arn> --max-number-of-messages-per-second 10")


def redrive_command(queue_name: str) -> str:
    """The replay command of the DLQ named ``queue_name`` (see :data:`REDRIVE_COMMANDS`)."""
    return REDRIVE_COMMANDS.get(queue_name, REDRIVE_COMMANDS["function"] if queue_name.endswith("-dlq")
                                else REDRIVE_COMMAND)


# --------------------------------------------------------------------------------------------- alarms
ALARM_PERIOD = Duration.minutes(5)
#: Percent of run executions FAILED/TIMED_OUT/ABORTED among those started, per :data:`ALARM_PERIOD`.
RUN_FAILURE_RATE_PERCENT = 10
#: p95 of a run's ExecutionTime (milliseconds, Step Functions' unit) that raises the duration alarm: 30 min.
RUN_P95_DURATION_MS = 30 * 60 * 1000
#: Percent of a function's invocations that errored, per :data:`ALARM_PERIOD`.
FUNCTION_ERROR_RATE_PERCENT = 5

# --------------------------------------------------------------------------------------------- secrets
#: Providers whose API keys live in Secrets Manager: provider -> env var holding the secret's name, taken from
#: :data:`stepcrew.llm.secrets.KEY_ENV` (what the functions read), so the two cannot drift.
PROVIDER_SECRETS: dict[str, str] = {provider: secret_var for provider, (_, secret_var) in KEY_ENV.items()}
