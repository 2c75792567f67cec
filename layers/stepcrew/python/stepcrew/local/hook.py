"""The in-process Lambda hook for moto's Step Functions interpreter, and the fixes to moto 5.2.5 it needs.

:func:`install` patches moto (pinned: ``moto==5.2.5``; any other version raises :class:`MotoVersionError`):

- ``LambdaSimpleBackend.invoke`` becomes a dispatcher: function name or ARN -> Python handler, called in-process
  as ``handler(event, context)``. A raised exception comes back as the Lambda runtime's unhandled-error payload
  ``{"errorType": <class name>, "errorMessage": str(e)}`` with ``x-amz-function-error: Unhandled``, so ASL
  ``Retry``/``Catch`` match on the class name as on AWS. Handlers: :func:`register_handler` overrides, else
  ``functions/<name>/app.py:handler`` (name without the ``stepcrew-local-`` prefix), loaded lazily by path
  once per process as module ``stepcrew_fn_<name>``.
- ``states:startExecution`` (plain, ``.sync``, ``.sync:2``): request/response normalisation through botocore's
  operation shapes (moto ships ``pass`` stubs), so a parent gets ``ExecutionArn`` / the child's ``Output``; an
  execution started without a name gets a uuid name (moto names it ``None``); a given name is checked as AWS
  does (1-80 characters, no whitespace, brackets, wildcards or ``"#%\\^|~`$&,;:/``: moto's interpreter backend
  skips moto's own check), so an over-long child name fails locally too; ``SendTaskFailure`` keeps its
  ``cause`` (moto drops it); a Map iteration or Parallel branch failing with a ``States.*`` error (e.g. a failed
  child execution's ``States.TaskFailed``) fails the Map/Parallel with that error (moto: ``States.Runtime``).
- The context object gets ``$$.Execution.RedriveCount`` (moto leaves it out, so a path to it fails the state with
  ``States.Runtime``): always 0, as AWS gives an execution never redriven; there is no redrive locally.
- The interpreter's boto3 clients are cached per (region, service) instead of built for every Task.
- Fast waits (``fast_waits=True`` or env ``STEPCREW_FAST_WAITS=1``): ASL Retry intervals and Wait states sleep
  at most :data:`FAST_WAIT_S` seconds; without the switch they sleep as on AWS. The ``.sync`` poll interval is
  :data:`SYNC_POLL_S` (moto: 0.5 s).

:func:`uninstall` undoes every patch. Both are idempotent. ``tests/integration/test_local_hook_contract.py``
guards this module against moto changes.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import threading
import time
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepcrew import wiring
from stepcrew.local.priority import PriorityRLock

LOG = logging.getLogger(__name__)

PINNED_MOTO = "5.2.5"
#: Prefix of the moto Lambda function names created by the local runtime (``stepcrew-local-<name>``).
FUNCTION_PREFIX = "stepcrew-local-"
#: Longest sleep of a Retry interval or Wait state when fast waits are on, in seconds.
FAST_WAIT_S = 0.01
#: Poll interval of ``.sync`` / ``.sync:2`` tasks waiting for their child execution, in seconds.
SYNC_POLL_S = 0.02

Handler = Callable[[Any, Any], Any]

_MISSING = object()
_lock = threading.RLock()
_handlers: dict[str, Handler] = {}  # overrides (register_handler)
_modules: dict[str, Handler] = {}  # handlers loaded from functions/<name>/app.py
_modules_env: tuple = ()  # the STEPCREW_*/POWERTOOLS_* environment they were loaded under
_active = 0  # invocations running now
_clients: dict[tuple[str, str, bool], Any] = {}
_patches: list[tuple[object, str, object]] = []  # (owner, attribute, previous value or _MISSING)
_fast_waits = False
_real_sleep = time.sleep  # the sleep behind Retry intervals; tests may monkeypatch it to observe calls


class MotoVersionError(RuntimeError):
    """The installed moto is not the version this hook was written and tested against."""


# ---------------------------------------------------------------------------------------------------- handlers


def register_handler(name: str, fn: Handler) -> None:
    """Route invocations of function ``name`` (a function name, ``stepcrew-local-<name>`` or ``<name>``) to
    ``fn(event: dict, context: LambdaContext) -> JSON-serialisable``. Replaces any previous handler."""
    with _lock:
        _handlers[name] = fn


def unregister_handler(name: str) -> None:
    """Remove an override registered with :func:`register_handler` (no error if absent)."""
    with _lock:
        _handlers.pop(name, None)


def function_name_of(name_or_arn: str) -> str:
    """``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` or a plain name -> ``<name>``."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn.split(":")[6]
    return name_or_arn.split(":")[0]


def _load_module_handler(short: str) -> Handler | None:
    path = wiring.FUNCTIONS_DIR / short / "app.py"
    if not path.is_file():
        return None
    module_name = f"stepcrew_fn_{short}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def _env_fingerprint() -> tuple:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("STEPCREW_", "POWERTOOLS_"))))


def resolve_handler(name: str) -> Handler | None:
    """The handler for a function name: an override for the full or short name, else the lazily loaded
    ``functions/<short>/app.py:handler``, else None. Handler modules read their settings at import, so when
    the ``STEPCREW_*``/``POWERTOOLS_*`` environment has changed since they were loaded (another
    :class:`~stepcrew.local.runtime.LocalRuntime`), they are loaded again: a cold start."""
    global _modules_env
    short = name.removeprefix(FUNCTION_PREFIX)
    with _lock:
        for key in (name, short):
            if key in _handlers:
                return _handlers[key]
        env = _env_fingerprint()
        if env != _modules_env:
            _modules.clear()
            _modules_env = env
        if short not in _modules:
            fn = _load_module_handler(short)
            if fn is None:
                return None
            _modules[short] = fn
        return _modules[short]


@dataclass
class LambdaContext:
    """The fields of the Lambda context object that handlers and Powertools use. Times in ms."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 128
    timeout_s: int = 60
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_context: Any = None
    identity: Any = None
    _deadline: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout (never negative)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _count_active(delta: int) -> None:
    global _active
    with _lock:
        _active += delta


def active_invocations() -> int:
    """Handler invocations running right now (all threads)."""
    return _active


def _error_payload(error_type: str, message: str, response_headers: dict) -> bytes:
    response_headers["x-amz-function-error"] = "Unhandled"
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _dispatch_invoke(self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
                     response_headers: Any) -> bytes:
    """Replacement of ``LambdaSimpleBackend.invoke``: run the handler in-process."""
    from moto.awslambda.exceptions import UnknownFunctionException

    name = function_name_of(function_name)
    handler = resolve_handler(name)
    arn = f"arn:aws:lambda:{self.region_name}:{self.account_id}:function:{name}"
    if handler is None:
        raise UnknownFunctionException(arn)
    spec = wiring.FUNCTIONS.get(name.removeprefix(FUNCTION_PREFIX))
    memory_mb, timeout_s = (spec.memory_mb, spec.timeout_s) if spec else (128, 60)
    context = LambdaContext(function_name=name, invoked_function_arn=arn, memory_limit_in_mb=memory_mb,
                            timeout_s=timeout_s)
    event = json.loads(body) if body else {}
    _count_active(+1)
    try:
        result = handler(event, context)
    except SystemExit as exc:  # the Python runtime's answer when a handler exits the process (a crash, os-level)
        LOG.info("function %s request %s exited", name, context.aws_request_id)
        return _error_payload("Runtime.ExitError", f"RequestId: {context.aws_request_id} Error: Runtime exited "
                              f"with error: exit status {exc.code}", response_headers)
    except Exception as exc:  # noqa: BLE001 - every handler error becomes the Lambda error payload
        LOG.info("function %s request %s failed: %s", name, context.aws_request_id, type(exc).__name__)
        return _error_payload(type(exc).__name__, str(exc), response_headers)
    finally:
        _count_active(-1)
        _drop_unflushed_metrics()
    try:
        return json.dumps(result).encode()
    except (TypeError, ValueError) as exc:
        return _error_payload("Runtime.MarshalError", f"Unable to marshal response: {exc}", response_headers)


def _drop_unflushed_metrics() -> None:
    """On Lambda each invocation's metrics are flushed (EMF) at its end. Under POWERTOOLS_METRICS_DISABLED (set by the
    local runtime) Powertools skips that flush and never clears its metric store, which every ``Metrics`` of the
    process shares: clear it after each invocation, so a long-lived local process (``stepcrew dev``) does not grow."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():
        from aws_lambda_powertools import Metrics

        Metrics().clear_metrics()


# ---------------------------------------------------------------------------------------------- moto fixes


@functools.cache
def _operation_model(service: str, action: str) -> Any:
    """botocore's operation model of ``action`` (any casing) in ``service``, cached: asked twice per Task of a
    Step Functions service integration. RuntimeError for an unknown operation."""
    import botocore.session
    from moto.stepfunctions.parser.utils import camel_to_snake_case

    model = botocore.session.get_session().get_service_model(service)
    names = {camel_to_snake_case(op): op for op in model.operation_names}
    op = names.get(camel_to_snake_case(action))
    if op is None:
        raise RuntimeError(f"no operation {action!r} in service {service!r}")
    return model.operation_model(op)


def _make_sfn_normalise_parameters(original: Callable) -> Callable:
    def _normalise_parameters(self: Any, parameters: dict, boto_service_name: str | None = None,
                              service_action_name: str | None = None) -> None:
        original(self, parameters, boto_service_name, service_action_name)
        op = _operation_model(self._get_boto_service_name(boto_service_name),
                              self._get_boto_service_action(service_action_name))
        self._to_boto_request(parameters, op.input_shape)

    return _normalise_parameters


def _sfn_normalise_response(self: Any, response: Any, boto_service_name: str | None = None,
                            service_action_name: str | None = None) -> None:
    op = _operation_model(self._get_boto_service_name(boto_service_name),
                          self._get_boto_service_action(service_action_name))
    self._from_boto_response(response, op.output_shape)
    if isinstance(response, dict):
        for key, value in response.items():
            response[key] = _epoch_ms(value)


def _epoch_ms(value: Any) -> Any:
    """Timestamps in service-integration results are epoch milliseconds (JSON numbers), as Step Functions
    shows them; moto leaves datetime objects, which its own describe_execution cannot serialise."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _epoch_ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_epoch_ms(v) for v in value]
    return value


def _make_start_execution(original: Callable) -> Callable:
    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, execution_input: Any = None,
                        trace_header: Any = None) -> Any:
        if name:
            self._validate_name(name)  # InvalidName / ValidationException (length > 80), as StartExecution
        return original(self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header)

    return start_execution


def _send_task_failure_response(self: Any) -> Any:
    """``StepFunctionResponse.send_task_failure`` that passes ``cause`` on (moto drops it)."""
    from moto.core.responses import EmptyResult

    self.stepfunction_backend.send_task_failure(self._get_param("taskToken"), error=self._get_param("error"),
                                                cause=self._get_param("cause"))
    return EmptyResult()


def _make_error_name(custom_error_name: type) -> Callable:
    """moto wraps the error of a failed Map iteration or Parallel branch in ``CustomErrorName``, which refuses
    ``States.*`` names: a ``States.TaskFailed`` inside a Map became ``States.Runtime``. Keep built-in names."""
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    def error_name(error_name: str | None) -> Any:
        if error_name and error_name.startswith("States."):
            try:
                return StatesErrorName.from_name(error_name)
            except ValueError:
                pass
        return custom_error_name(error_name=error_name)

    return error_name


def _make_evaluation_environment(original: Callable) -> Callable:
    """``ExecutionWorker._get_evaluation_environment`` whose context object has ``Execution.RedriveCount`` (0):
    AWS's context object carries it (0 until the execution is redriven); moto 5.2.5 builds it without."""
    def _get_evaluation_environment(self: Any) -> Any:
        env = original(self)
        env.states.context_object.context_object_data["Execution"].setdefault("RedriveCount", 0)
        return env

    return _get_evaluation_environment


#: Parsed state machine definitions kept per process (the run, agent and test machines: a handful).
PARSED_DEFINITIONS_MAX = 32


def _make_cached_parse(original: Callable) -> Callable:
    """``AmazonStateLanguageParser.parse`` that parses each definition once per process (and, through the disk
    cache of :func:`_disk_cached`, once per machine until moto or the text changes): moto 5.2.5 parses a
    definition at ``CreateStateMachine`` (validation, static analysis) and again at every execution start (125-190
    ms for run.asl.json on a quiet machine here; 6 parses per demo run). Sharing the parsed program between
    executions is what moto already does between the iterations of one Map (they evaluate the same ItemProcessor
    program in parallel threads): evaluation state lives in each execution's ``Environment``, not in the program.
    Keyed on the definition text, so an updated definition is parsed anew; a definition that does not parse raises
    each time (exceptions are not cached)."""
    global _parsed, _parsed_original
    if _parsed is None or _parsed_original is not original:  # kept across install/uninstall (local runtimes)
        _parsed = functools.lru_cache(maxsize=PARSED_DEFINITIONS_MAX)(_disk_cached(original))
        _parsed_original = original
    cached = _parsed

    def parse(definition: str) -> Any:
        return cached(definition)

    return staticmethod(parse)


_parsed: Any = None
_parsed_original: Any = None

#: Parsed programs kept across processes: ``$STEPCREW_HOME/cache/asl`` (else ``~/.stepcrew/cache/asl``), one pickle
#: per definition, named by the SHA-256 of the definition text, moto's version and Python's. moto's ANTLR parser
#: takes 240-580 ms per definition here (1.2 s of a 2.8 s ``LocalRuntime()`` start-up, cProfile); loading the
#: pickled program takes ~2 ms. Only the program (what executions evaluate) is kept: a program loaded from disk
#: comes with no parse tree (``(program, None)``; moto's execution worker and CreateStateMachine's validation use
#: the program or nothing). A file that does not load (truncated, another version) is parsed anew and rewritten;
#: a definition that does not parse raises each time. The folder is the user's own (pickle runs code on load:
#: never point STEPCREW_HOME at a folder others can write).
ASL_CACHE_ENV = "STEPCREW_ASL_CACHE"  # "off": no disk cache (the per-process cache stays)


def _asl_cache_dir() -> Path:
    home = os.environ.get("STEPCREW_HOME")
    return (Path(home) if home else Path.home() / ".stepcrew") / "cache" / "asl"


def _disk_cached(original: Callable) -> Callable:
    import hashlib
    import pickle
    import sys
    import tempfile

    tag = f"{importlib.metadata.version('moto')}|{sys.version_info[:3]}|{pickle.HIGHEST_PROTOCOL}"

    def parse(definition: str) -> Any:
        if os.environ.get(ASL_CACHE_ENV) == "off":
            return original(definition)
        path = _asl_cache_dir() / (hashlib.sha256(f"{tag}\n{definition}".encode()).hexdigest() + ".pickle")
        try:
            return pickle.loads(path.read_bytes()), None
        except Exception:  # noqa: BLE001 - missing, truncated, or from another version: parse it
            pass
        program, tree = original(definition)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
                tmp.write(pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(tmp.name, path)  # atomic: a reader sees the old file or the whole new one
        except Exception:  # noqa: BLE001 - a cache that cannot be written is only slower
            with contextlib.suppress(OSError, NameError):
                os.unlink(tmp.name)
        return program, tree

    return parse


def _make_cached_client_for(original: Callable) -> Callable:
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        from moto.core.models import botocore_stubber

        # moto's boto_client_for ignores state_credentials: the client depends on region and service only.
        key = (region, service, bool(botocore_stubber.enabled))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = original(region=region, service=service, state_credentials=state_credentials)
            return client

    return boto_client_for


def shorten(seconds: float) -> float:
    """The sleep actually taken for an ASL Retry interval or Wait of ``seconds`` (fast waits cap it)."""
    return min(seconds, FAST_WAIT_S) if _fast_waits else seconds


def _retry_sleep(seconds: float) -> None:
    _real_sleep(shorten(seconds))


def _make_wait_interval(original: Callable) -> Callable:
    def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
        if not _fast_waits:
            return original(self, env=env, wait_seconds=wait_seconds)
        if wait_seconds > 0:
            env.program_state_event.wait(shorten(wait_seconds))
        return None

    return _wait_interval


_CLIENT_MODULES = [
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sns",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_events",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
]


def check_moto_version() -> str:
    """Return the installed moto version; raise MotoVersionError unless it is :data:`PINNED_MOTO`."""
    found = importlib.metadata.version("moto")
    if found != PINNED_MOTO:
        raise MotoVersionError(
            f"stepcrew's local runtime patches moto internals and is tested with moto=={PINNED_MOTO} only, "
            f"found moto=={found}: pin it (pip install 'moto[dynamodb,stepfunctions,s3,sqs,events,awslambda]"
            f"=={PINNED_MOTO}')")
    return found


def _patch(owner: object, attr: str, value: object) -> None:
    previous = owner.__dict__.get(attr, _MISSING) if isinstance(owner, type) else getattr(owner, attr, _MISSING)
    _patches.append((owner, attr, previous))
    setattr(owner, attr, value)


def is_installed() -> bool:
    """Whether :func:`install` is in effect."""
    return bool(_patches)


def set_fast_waits(on: bool) -> None:
    """Turn fast waits on or off (takes effect for the next sleep)."""
    global _fast_waits
    _fast_waits = bool(on)


def fast_waits_from_env() -> bool:
    """``STEPCREW_FAST_WAITS`` is ``1``/``true``/``yes``."""
    return os.environ.get("STEPCREW_FAST_WAITS", "").strip().lower() in ("1", "true", "yes", "on")


_dynamodb_lock = PriorityRLock()  # the dev server's requests go before the executions' (local/priority.py)


def _make_account_backend(original: Callable) -> Callable:
    """moto takes its one process-wide ``backend_lock`` at every backend lookup of every request, only to find the
    account's backend already made; with eight executions in threads, an API request's lookups waited behind them
    (bench/dev_api.py: most of a 1-2 s ``GET /runs/{id}``). Made once under the lock, it is found without it
    (double-checked: dict membership is atomic; creation still happens under moto's lock)."""

    def create_account_specific_backend(self: Any, account_id: str) -> None:
        if account_id in self.keys():
            return
        original(self, account_id)

    return create_account_specific_backend


def _serialised(call_action):
    def call_action_serialised(self):
        with _dynamodb_lock:
            return call_action(self)

    return call_action_serialised


def _preload_batch_utils() -> None:
    """moto's ASL interpreter imports ``moto.batch.utils`` (for its Batch integration, which stepcrew never uses);
    importing it through the ``moto.batch`` package pulls in moto's EC2 models, ~2.5 s of every cold start here.
    Loading the two small modules it needs from their files, without the package ``__init__``, gives the same
    objects; ``moto.batch`` itself still imports normally if anything asks for it later."""
    import sys

    import moto

    folder = os.path.join(os.path.dirname(moto.__file__), "batch")
    for name in ("exceptions", "utils"):
        full = f"moto.batch.{name}"
        if full not in sys.modules:
            spec = importlib.util.spec_from_file_location(full, os.path.join(folder, f"{name}.py"))
            module = importlib.util.module_from_spec(spec)
            module.__package__ = "moto.batch"
            sys.modules[full] = module
            spec.loader.exec_module(module)


def install(fast_waits: bool | None = None) -> None:
    """Apply every patch (idempotent: a second call only updates ``fast_waits``). ``fast_waits`` None: read
    ``STEPCREW_FAST_WAITS``. Raises MotoVersionError if moto is not the pinned version."""
    check_moto_version()
    _preload_batch_utils()
    set_fast_waits(fast_waits_from_env() if fast_waits is None else fast_waits)
    with _lock:
        if _patches:
            return
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.core.base_backend import BackendDict
        from moto.dynamodb.responses import DynamoHandler
        from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
        from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_callback,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
            StateTaskServiceSfn,
        )
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
        from moto.stepfunctions.parser.asl.utils import boto_client
        from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend
        from moto.stepfunctions.responses import StepFunctionResponse

        _patch(LambdaSimpleBackend, "invoke", _dispatch_invoke)
        _patch(BackendDict, "_create_account_specific_backend",
               _make_account_backend(BackendDict._create_account_specific_backend))
        # moto's DynamoDB backend is not thread-safe: parallel sub-tasks' atomic ADDs and conditional puts lose
        # updates without this (tests/unit/store saw it 3 runs in 3). One request at a time, as DynamoDB makes
        # each request atomic.
        _patch(DynamoHandler, "call_action", _serialised(DynamoHandler.call_action))
        _patch(StateTaskServiceSfn, "_normalise_parameters",
               _make_sfn_normalise_parameters(StateTaskServiceSfn._normalise_parameters))
        _patch(StateTaskServiceSfn, "_normalise_response", _sfn_normalise_response)
        _patch(StepFunctionsParserBackend, "start_execution",
               _make_start_execution(StepFunctionsParserBackend.start_execution))
        _patch(StepFunctionResponse, "send_task_failure", _send_task_failure_response)
        _patch(ExecutionWorker, "_get_evaluation_environment",
               _make_evaluation_environment(ExecutionWorker._get_evaluation_environment))
        _patch(AmazonStateLanguageParser, "parse", _make_cached_parse(AmazonStateLanguageParser.parse))
        for module in (iteration_worker, branches_decl):
            _patch(module, "CustomErrorName", _make_error_name(CustomErrorName))
        cached = _make_cached_client_for(boto_client.boto_client_for)
        for module_name in _CLIENT_MODULES:
            _patch(importlib.import_module(module_name), "boto_client_for", cached)
        _patch(retrier_decl, "time", types.SimpleNamespace(sleep=_retry_sleep))
        _patch(WaitFunction, "_wait_interval", _make_wait_interval(WaitFunction._wait_interval))
        _patch(state_task_service_callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK", SYNC_POLL_S)
        # moto's interpreter logs every caught Task failure at ERROR with the whole payload: the execution
        # history already records it, and our logs carry ids only.
        parser_log = logging.getLogger("moto.stepfunctions.parser")
        _patch(parser_log, "level", parser_log.level)
        parser_log.setLevel(logging.CRITICAL)
    LOG.debug("local hook installed (fast waits %s)", _fast_waits)


def uninstall() -> None:
    """Undo every patch and drop the cached clients (idempotent). Handlers loaded from ``functions/`` stay
    loaded; overrides from :func:`register_handler` are kept: remove them with :func:`unregister_handler`."""
    with _lock:
        while _patches:
            owner, attr, previous = _patches.pop()
            if previous is _MISSING:
                delattr(owner, attr)
            elif isinstance(owner, logging.Logger):
                owner.setLevel(previous)
            else:
                setattr(owner, attr, previous)
        _clients.clear()
    set_fast_waits(False)
