"""The local runtime: the real ``statemachines/*.asl.json`` and ``functions/*/app.py`` under moto, in-process.

It renders the ASL with the same substitution mapping as the CDK stack (:func:`stepcrew.wiring.substitutions` /
:func:`stepcrew.wiring.render`), creates the state machines on moto's Step Functions (which parses and runs them
with its vendored ASL interpreter), creates the run table on moto's DynamoDB with
:func:`stepcrew.store.schema.create_table`, and routes Lambda Tasks to the real handlers through
:mod:`stepcrew.local.hook`. Nothing reaches AWS: every call goes to moto, with fake credentials.

Usage::

    with LocalRuntime(fast_waits=True) as rt:
        rt.store.create_run(run)
        arn = rt.start_run(run.run_id)
        rt.wait(arn)  # "SUCCEEDED"

Datasets: the runtime creates the emulated S3 bucket :data:`LOCAL_DATA_BUCKET` and loads into it every file of its
datasets folder (``datasets_dir``; default ``<state_dir>/../datasets``, i.e. ``$STEPCREW_HOME/datasets`` for the CLI),
where ``stepcrew datasets put`` and uploads to ``stepcrew dev`` store them, key = path under the folder
(``<tenant>/uploads/<name>``). So ``s3://stepcrew-local-datasets/<tenant>/uploads/<name>`` reads through the same S3
code as on AWS, from any later process.

Executions run in background threads; on exit (normal, an exception, or Ctrl-C in ``stepcrew run``), still-running
executions are stopped, the runtime waits (up to :data:`DRAIN_S`) for handlers in flight, and every run whose
execution was cut off is marked FAILED with code :data:`CUT_OFF_CODE`: an emulated execution cannot outlive its
process, so a kept run must never stay RUNNING forever. The table is durable as it is written
(:mod:`stepcrew.local.durable`): a process killed without any exit path loses at most the request in flight, and
its unfinished runs are found by the next runtime's :meth:`LocalRuntime.sweep_orphans`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepcrew import wiring
from stepcrew.local import hook

LOG = logging.getLogger(__name__)

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
DRAIN_S = 10.0  # longest wait on exit for handlers still running
#: RunError code of a run whose execution was still going when the runtime exited.
CUT_OFF_CODE = "LocalRuntimeExited"
ORPHAN_MESSAGE = ("the local process running it ended without finishing it (killed, or the machine stopped); found "
                  "when the local runtime started again")
CUT_OFF_MESSAGE = ("the local runtime exited before the run finished (interrupted, timed out or the process ended); "
                   "an emulated execution cannot resume in another process: start the run again")
_FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing"}
#: The emulated datasets bucket (a valid S3 bucket name) and its folder under ``$STEPCREW_HOME``.
LOCAL_DATA_BUCKET = "stepcrew-local-datasets"
#: The emulated notifications topic of the ``notify`` tool (FIFO, like the stack's; ``STEPCREW_NOTIFY_TOPIC_ARN``).
LOCAL_NOTIFY_TOPIC = "stepcrew-local-notifications.fifo"
DATASETS_FOLDER = "datasets"


def default_datasets_dir() -> Path:
    """``$STEPCREW_HOME/datasets`` (else ``~/.stepcrew/datasets``): the local datasets bucket's files."""
    from stepcrew.local.state import default_state_dir

    return default_state_dir().parent / DATASETS_FOLDER


def local_dataset_file(folder: Path, key: str) -> Path:
    """The file of ``key`` in the datasets folder ``folder``. Raises ValueError for a key that is empty, absolute,
    holds ``..``, a backslash or an empty segment (it could leave the folder)."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError("not a dataset key: it must be relative, without '..' or empty segments")
    return Path(folder).joinpath(*parts)


def store_local_dataset(folder: Path, key: str, source: Path) -> Path:
    """Copy ``source`` to ``key`` in ``folder`` atomically (a temporary file, then ``os.replace``): a reader never
    sees half a file. Returns the stored file. Raises ValueError for a bad key, OSError for I/O."""
    import shutil

    target = local_dataset_file(folder, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, Path(source).open("rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    raise RuntimeError('local hook not installed')\n")
    return buf.getvalue()


class LocalRuntime:
    """Context manager running stepcrew's state machines locally.

    - ``region``: the emulated AWS region.
    - ``fast_waits``: cap ASL Retry intervals and Wait states at :data:`stepcrew.local.hook.FAST_WAIT_S`; None
      reads ``STEPCREW_FAST_WAITS`` (``1`` on). Without it, waits last as long as on AWS.
    - ``state_dir``: folder of the kept table (:mod:`stepcrew.local.durable`, ``table.db``): every write is
      durable before the call returns, partitions are read lazily (start-up does not grow with kept runs), and
      other processes see the writes at once. None: nothing is kept. On exit, runs whose execution is still going
      are marked FAILED (:data:`CUT_OFF_CODE`).
    - ``table_name``: the emulated DynamoDB table (``STEPCREW_TABLE_NAME`` of the handlers).
    - ``extra_env``: more environment variables for the handlers (restored on exit).
    - ``datasets_dir``: the folder loaded into the bucket :data:`LOCAL_DATA_BUCKET` on enter (default
      ``state_dir.parent / "datasets"``; none without a ``state_dir``: the bucket starts empty).
    - ``read_only``: only the table (restored from ``state_dir``), no functions, state machines or hook, and
      nothing written to the folder (a missing folder is not created): for reading kept runs.
    - ``store_only``: only the table, kept: for writing kept runs without executing anything (a
      person's answer to a run handed off for review after its process ended).

    Errors: :class:`stepcrew.local.hook.MotoVersionError` if moto is not the pinned version; botocore's
    ClientError (``InvalidDefinition``) if an ASL file is rejected; ValueError for an unreadable state file;
    RuntimeError if another LocalRuntime is active in the process (moto's mock is process-wide: one at a time,
    and not inside another ``mock_aws``).
    """

    _active = False  # one LocalRuntime per process at a time

    def __init__(self, *, region: str = "us-east-1", fast_waits: bool | None = None, state_dir: Path | None = None,
                 table_name: str = "stepcrew-local-runs", extra_env: dict[str, str] | None = None,
                 read_only: bool = False, store_only: bool = False, datasets_dir: Path | None = None) -> None:
        self.region = region
        self.fast_waits = hook.fast_waits_from_env() if fast_waits is None else fast_waits
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.table_name = table_name
        self.extra_env = dict(extra_env or {})
        self.read_only = read_only
        self.store_only = store_only
        if datasets_dir is None and self.state_dir is not None:
            datasets_dir = self.state_dir.parent / DATASETS_FOLDER
        self.datasets_dir = Path(datasets_dir) if datasets_dir is not None else None
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._clients: dict[str, Any] = {}
        self._function_arns: dict[str, str] = {}
        self._state_machine_arns: dict[str, str] = {}
        self._registered: list[str] = []
        self._journal: Any = None  # stepcrew.local.durable.Journal, when there is a state_dir
        from stepcrew.local.liveness import Claims

        self._claims = Claims(self.state_dir) if self.state_dir is not None else None
        #: Runs this runtime found orphaned at start and marked FAILED (:meth:`sweep_orphans`).
        self.swept: list[str] = []
        self._store: Any = None
        self._hooked = False
        self._role_arn = ""

    # ------------------------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalRuntime:
        if LocalRuntime._active:
            raise RuntimeError("a LocalRuntime is already active in this process (moto's mock is process-wide)")
        self._bucket_created = False  # set once the emulated bucket exists: save_artifacts has nothing before it
        hook.check_moto_version()
        from moto import mock_aws

        LocalRuntime._active = True
        self._set_env()
        try:
            mock = mock_aws(config=MOTO_CONFIG)
            mock.start()
            self._mock = mock  # only once started: teardown must never call AWS without moto
            executes = not (self.read_only or self.store_only)
            if executes:
                hook.install(fast_waits=self.fast_waits)
                self._hooked = True
            self._create_table()
            if executes:
                self._create_datasets_bucket()
                self._create_notify_topic()
                self._create_functions()
                self._create_state_machines()
                self.swept = self.sweep_orphans()
        except BaseException:
            self._teardown(save=False)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._teardown(save=not self.read_only)

    def _set_env(self) -> None:
        env = {
            "STEPCREW_TABLE_NAME": self.table_name,
            "STEPCREW_STAGE": "local",
            "STEPCREW_EVENT_BUS": "default",  # moto's EventBridge default bus
            "STEPCREW_ARTIFACTS_BUCKET": LOCAL_DATA_BUCKET,  # run artifacts under <tenant>/runs/ (export_results)
            "STEPCREW_GUARD_BACKEND": "local",  # the offline guard (Presidio patterns + rules)
            "POWERTOOLS_SERVICE_NAME": "stepcrew",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "stepcrew",
            "POWERTOOLS_METRICS_DISABLED": "true",  # no EMF lines locally (there is no CloudWatch to read them)
            # the user's level when set (``POWERTOOLS_LOG_LEVEL=INFO stepcrew dev`` prints the structured logs),
            # else WARNING: the CLI's progress view is the local run's output
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL") or "WARNING",
            "AWS_DEFAULT_REGION": self.region,
            **self.extra_env,
        }
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            env.update(_FAKE_CREDENTIALS)
        for key, value in env.items():
            self._setenv(key, value)

    def _setenv(self, key: str, value: str) -> None:
        self._saved_env.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    def _teardown(self, save: bool) -> None:
        try:
            if self._mock is not None:
                try:
                    self._fail_cut_off_runs(self._stop_executions())
                    try:
                        self.save_artifacts()
                    except Exception as exc:  # noqa: BLE001 - the run's records are kept; only its files are lost
                        LOG.warning("run artifacts not saved to the datasets folder: %s", type(exc).__name__)
                finally:
                    if self._claims is not None:
                        self._claims.release_all()
        finally:
            if self._journal is not None:  # before the hook: it restores moto's call_action it patched first
                self._journal.uninstall()
                self._journal = None
            for name in self._registered:
                hook.unregister_handler(name)
            self._registered.clear()
            if self._hooked:
                hook.uninstall()
                self._hooked = False
            if self._mock is not None:
                self._mock.stop()
                self._mock = None
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved_env.clear()
            self._clients.clear()
            self._store = None
            LocalRuntime._active = False

    def _stop_executions(self) -> list[str]:
        """Stop executions still running (ours and any a test created), then let handlers in flight finish, so
        none of them calls AWS after moto is stopped. Returns the names (= run ids) of the stopped executions of
        the run state machine."""
        if self.read_only or self.store_only:
            return []
        sfn, run_machine, cut_off = self.sfn, self._state_machine_arns.get("run"), []
        for page in sfn.get_paginator("list_state_machines").paginate():
            for machine in page["stateMachines"]:
                pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine["stateMachineArn"],
                                                                      statusFilter="RUNNING")
                for execution in (e for p in pages for e in p["executions"]):
                    LOG.info("stopping execution %s", execution["executionArn"])
                    self._stop_execution(sfn, execution["executionArn"])
                    if machine["stateMachineArn"] == run_machine:
                        cut_off.append(execution["name"])
        self._drain()
        return cut_off

    @staticmethod
    def _stop_execution(sfn: Any, arn: str, wait_s: float = 5.0) -> None:
        """StopExecution, also of an execution started a moment ago: moto's interpreter builds an execution's
        environment in the execution's own thread, and stopping it before then raises AttributeError in moto (seen
        when ``stepcrew dev`` got SIGTERM just after ``POST /runs``); left running, it would call AWS after moto
        stops. Tried again every 20 ms for at most ``wait_s`` seconds."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                sfn.stop_execution(executionArn=arn)
                return
            except AttributeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @staticmethod
    def _drain() -> None:
        """Let handlers in flight finish (at most DRAIN_S seconds), so none calls AWS after an execution is stopped
        or moto is."""
        deadline = time.monotonic() + DRAIN_S
        while hook.active_invocations() and time.monotonic() < deadline:
            time.sleep(0.01)

    def sweep_orphans(self) -> list[str]:
        """Mark FAILED (:data:`CUT_OFF_CODE`, with their open sub-tasks) the saved runs that are not terminal, not
        waiting for a person's review (NEEDS_REVIEW is answered without an execution) and that no live process
        claims (:mod:`stepcrew.local.liveness`): their process ended without finishing them. Returns their ids."""
        if self._journal is None or self._claims is None:
            return []
        orphans = [run_id for run_id in self.open_run_ids() if not self._claims.owned_by_a_live_process(run_id)]
        if orphans:
            self._fail_cut_off_runs(orphans, ORPHAN_MESSAGE)
        return orphans

    def cut_off(self, run_id: str, message: str) -> None:
        """Stop the run's execution (if it is still running) and mark the run FAILED (:data:`CUT_OFF_CODE`,
        ``message``) with its open sub-tasks, as the runtime's exit would: the CLI's ``--timeout``."""
        run = self.store.get_run(run_id)
        if run.execution_arn:
            try:
                if self.sfn.describe_execution(executionArn=run.execution_arn)["status"] == "RUNNING":
                    self.sfn.stop_execution(executionArn=run.execution_arn)
            except Exception as exc:  # noqa: BLE001 - the record is what the user sees; mark it anyway
                LOG.warning("could not stop execution of run %s: %s", run_id, type(exc).__name__)
        self._drain()
        self._fail_cut_off_runs([run_id], message)

    def _fail_cut_off_runs(self, run_ids: list[str], message: str = CUT_OFF_MESSAGE) -> None:
        """Mark each still-active run of ``run_ids`` FAILED (:data:`CUT_OFF_CODE`, ``message``, ``finished_at``, event
        ``run_failed``) with its open sub-tasks: :func:`stepcrew.domain.finalize.fail_unfinished_run`. Conditional
        on a status with work in flight, so a run a handler finished meanwhile is kept and a NEEDS_REVIEW run stays
        waiting (a person's answer later is applied without an execution); an execution whose name is no run id is
        skipped. A store failure is logged by run id, never raised (the exit path must not hide the original error)."""
        from stepcrew.domain.finalize import fail_unfinished_run
        from stepcrew.store.base import StoreError

        for run_id in run_ids:
            try:
                marked = fail_unfinished_run(self.store, run_id, code=CUT_OFF_CODE, message=message)
            except StoreError as exc:  # never let the exit path hide the original error
                LOG.error("could not mark cut-off run %s FAILED: %s", run_id, exc)
                continue
            if marked:  # else finished meanwhile, or not a run
                LOG.warning("run %s was cut off by the runtime's exit: marked FAILED", run_id)

    # ------------------------------------------------------------------------------------------ resources

    def client(self, service: str) -> Any:
        """A cached low-level boto3 client of ``service`` on the emulated region (only inside the context)."""
        if self._mock is None:
            raise RuntimeError("LocalRuntime is not entered")
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service, region_name=self.region)
        return self._clients[service]

    @property
    def sfn(self) -> Any:
        """The boto3 ``stepfunctions`` client (cached)."""
        return self.client("stepfunctions")

    @property
    def store(self) -> Any:
        """A :class:`stepcrew.store.dynamodb.DynamoRunStore` on the emulated table."""
        if self._store is None:
            from stepcrew.store.dynamodb import DynamoRunStore

            self._store = DynamoRunStore(self.table_name, client=self.client("dynamodb"))
        return self._store

    def open_run_ids(self) -> list[str]:
        """Ids of the kept runs that are not terminal and not waiting for a person's review (NEEDS_REVIEW is
        answered without an execution), from the state database's status index (no scan of the table)."""
        if self._journal is None:
            return []
        from stepcrew.models import RunStatus

        open_statuses = [s.value for s in RunStatus if not s.terminal and s != RunStatus.NEEDS_REVIEW]
        items = self._journal.db.by_status(self.table_name, open_statuses)
        return sorted(i["run_id"]["S"] for i in items if i.get("SK") == {"S": "META"} and "run_id" in i)

    def _create_table(self) -> None:
        from stepcrew.store.schema import create_table

        ddb = self.client("dynamodb")
        if self.state_dir is not None:  # durable: every write reaches SQLite before the call returns
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.dynamodb.models import dynamodb_backends

            from stepcrew.local.durable import Journal, StateDB

            journal = Journal(StateDB(self.state_dir, writable=not self.read_only), self.table_name)
            journal.install()
            self._journal = journal
            create_table(ddb, self.table_name)
            journal.adopt(dynamodb_backends[DEFAULT_ACCOUNT_ID][self.region])
        else:
            create_table(ddb, self.table_name)

    def _create_datasets_bucket(self) -> None:
        """Create :data:`LOCAL_DATA_BUCKET` and load the datasets folder into it (key = path under the folder; hidden
        and partial files left out)."""
        s3 = self.client("s3")
        s3.create_bucket(Bucket=LOCAL_DATA_BUCKET)
        self._bucket_created = True
        folder = self.datasets_dir
        if folder is None or not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if not path.is_file() or any(part.startswith(".") for part in relative.parts):
                continue
            s3.upload_file(str(path), LOCAL_DATA_BUCKET, relative.as_posix())

    def save_artifacts(self) -> int:
        """Copy the run artifacts the tools wrote to the emulated bucket (``<tenant>/runs/<run>/<kind>/<name>``:
        exports, charts) into the datasets folder, so a later process (``stepcrew runs show``/``runs artifacts``:
        :class:`stepcrew.tools.artifacts.FolderArtifactStore`) reads them; the next runtime loads them back with the
        folder. Called when :meth:`wait` sees an execution end and at exit. Returns the number of files written
        (unchanged ones are skipped); 0 without a datasets folder or for a runtime that executes nothing."""
        if (self.datasets_dir is None or self.read_only or self.store_only or self._mock is None
                or not self._bucket_created):  # a start-up that failed before the bucket
            return 0
        from stepcrew.tools.artifacts import FolderArtifactStore, sha256

        s3, folder, written = self.client("s3"), FolderArtifactStore(self.datasets_dir), 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=LOCAL_DATA_BUCKET):
            for obj in page.get("Contents", []):
                parts = obj["Key"].split("/")
                if len(parts) != 5 or parts[1] != "runs":
                    continue
                body = s3.get_object(Bucket=LOCAL_DATA_BUCKET, Key=obj["Key"])["Body"].read()
                seen = folder.head(parts[0], obj["Key"])
                if seen is None or seen["sha256"] != sha256(body):
                    folder.put(obj["Key"], body, "")
                    written += 1
        return written

    def _create_notify_topic(self) -> None:
        """Create :data:`LOCAL_NOTIFY_TOPIC` on the emulated SNS (FIFO, no content-based deduplication: the ``notify``
        tool sends its own deduplication id) and give its ARN to the handlers (``STEPCREW_NOTIFY_TOPIC_ARN``)."""
        arn = self.client("sns").create_topic(Name=LOCAL_NOTIFY_TOPIC, Attributes={
            "FifoTopic": "true", "ContentBasedDeduplication": "false"})["TopicArn"]
        self._setenv("STEPCREW_NOTIFY_TOPIC_ARN", arn)

    def put_dataset(self, key: str, source: Path) -> str:
        """Store ``source`` as ``key`` of :data:`LOCAL_DATA_BUCKET`: in the emulated bucket and, when the runtime has
        a datasets folder, in it (so later processes see it). Returns the ``s3://`` URI. Raises ValueError for a bad
        key."""
        local_dataset_file(Path("."), key)  # validates the key
        if self.datasets_dir is not None:
            source = store_local_dataset(self.datasets_dir, key, source)
        self.client("s3").upload_file(str(source), LOCAL_DATA_BUCKET, key)
        return f"s3://{LOCAL_DATA_BUCKET}/{key}"

    def _create_functions(self) -> None:
        iam = self.client("iam")
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"Service": ["lambda.amazonaws.com",
                                                                                    "states.amazonaws.com"]}}]}
        self._role_arn = iam.create_role(RoleName="stepcrew-local", AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"]["Arn"]
        lam, code = self.client("lambda"), _dummy_zip()
        for name in wiring.STATE_MACHINE_FUNCTIONS:
            spec = wiring.FUNCTIONS[name]
            resp = lam.create_function(FunctionName=f"{hook.FUNCTION_PREFIX}{name}", Runtime="python3.12",
                                       Role=self._role_arn, Handler="app.handler", Code={"ZipFile": code},
                                       Timeout=spec.timeout_s, MemorySize=spec.memory_mb,
                                       Description=spec.description[:256])
            self._function_arns[name] = resp["FunctionArn"]

    def _create_state_machines(self) -> None:
        for name in ("agent", "run"):  # run's definition needs the agent state machine's ARN
            definition = wiring.render(name, wiring.substitutions(name, self.function_arn, self.state_machine_arn))
            resp = self.sfn.create_state_machine(name=f"{hook.FUNCTION_PREFIX}{name}", definition=definition,
                                                 roleArn=self._role_arn, type="STANDARD")
            self._state_machine_arns[name] = resp["stateMachineArn"]
        self._setenv("STEPCREW_RUN_STATE_MACHINE_ARN", self._state_machine_arns["run"])

    @property
    def role_arn(self) -> str:
        """The emulated IAM role of the local functions and state machines (usable for test state machines)."""
        return self._role_arn

    def function_arn(self, name: str) -> str:
        """ARN of the local function for ``name`` (a key of :data:`stepcrew.wiring.FUNCTIONS`). KeyError if the
        state machines do not use it."""
        return self._function_arns[name]

    def state_machine_arn(self, name: str) -> str:
        """ARN of the local state machine ``run`` or ``agent``. KeyError for another name (or read-only)."""
        return self._state_machine_arns[name]

    def register_handler(self, name: str, fn: Callable[[Any, Any], Any]) -> None:
        """Run ``fn(event, context)`` instead of ``functions/<name>/app.py`` for function ``name`` until exit
        (see :func:`stepcrew.local.hook.register_handler`)."""
        hook.register_handler(name, fn)
        self._registered.append(name)

    # ------------------------------------------------------------------------------------------ executions

    def start_run(self, run_id: str) -> str:
        """Start the run state machine for an existing run record: execution name = ``run_id``, input
        ``{"run_id": run_id}``. Returns the execution ARN. A second start of the same run raises botocore's
        ClientError (``ExecutionAlreadyExists``), as on AWS."""
        resp = self.sfn.start_execution(stateMachineArn=self.state_machine_arn("run"), name=run_id,
                                        input=json.dumps({"run_id": run_id}))
        if self._claims is not None:  # another process starting now can tell this run from an orphan
            self._claims.claim(run_id)
        return resp["executionArn"]

    def wait(self, execution_arn: str, timeout_s: float = 300, poll_s: float = 0.05) -> str:
        """Poll until the execution ends; return its status (SUCCEEDED, FAILED, TIMED_OUT or ABORTED). Raises
        TimeoutError if it is still running after ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.sfn.describe_execution(executionArn=execution_arn)["status"]
            if status in TERMINAL:
                self.save_artifacts()
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"execution {execution_arn} still {status} after {timeout_s} s")
            time.sleep(poll_s)

    def execution_history(self, execution_arn: str) -> list[dict]:
        """Every history event of the execution, oldest first (boto3 shapes: ``type``, ``id``, ``*Details``)."""
        pages = self.sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        return [event for page in pages for event in page["events"]]

    def has_live_execution(self, execution_arn: str) -> bool:
        """Whether this runtime still runs ``execution_arn`` (a run started by an ended process has none)."""
        try:
            return self.sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
        except Exception:  # unknown to this runtime's moto: the execution ended with its process
            return False

    def send_task_success(self, token: str, output: dict) -> None:
        """Resume a ``.waitForTaskToken`` task with ``output`` (JSON-serialisable) as its result."""
        self.sfn.send_task_success(taskToken=token, output=json.dumps(output))

    def send_task_failure(self, token: str, error: str, cause: str) -> None:
        """Fail a ``.waitForTaskToken`` task with ``error`` (what Catch/Retry match) and ``cause``."""
        self.sfn.send_task_failure(taskToken=token, error=error, cause=cause)

    def save(self) -> int:
        """Nothing to do: every write is already durable (:mod:`stepcrew.local.durable`). Returns the number of
        items kept in ``state_dir`` (0 without one). Kept for callers of the earlier save-on-exit design."""
        if self._journal is None:
            return 0
        return self._journal.db.count(self.table_name)

    @property
    def journal(self) -> Any:
        """The :class:`stepcrew.local.durable.Journal` of the kept table (None without a ``state_dir``)."""
        return self._journal
