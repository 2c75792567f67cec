"""``run_python``: computation the SQL tool cannot express (statistics, a regression), in the Python sandbox.

``{code, timeout_s?}`` -> ``{"stdout": str, "stdout_truncated": bool, "stderr"?: str, "result"?: JSON value}``.
The code runs in a fresh, limited child process (:mod:`stepcrew.tools.python_sandbox`: no network, no credentials,
no file access beyond a scratch folder, CPU, memory, wall-time and output caps). The run's dataset, when it has one,
is a read-only file at ``DATASET_PATH`` (and the pandas DataFrame ``df`` when the code uses that name). The code
returns a value by setting ``result`` (JSON-serialisable; numpy/pandas values are converted) and/or printing.

Limits: code at most :data:`~stepcrew.tools.python_sandbox.MAX_CODE_BYTES` (16 KiB) of UTF-8 (else
``CodeTooLarge``, nothing runs); ``timeout_s`` 1-:data:`MAX_TIMEOUT_S` s of wall time (default 10; CPU seconds the
same); 512 MiB of address space; stdout's first 4 KiB; ``result`` at most 3 KiB of JSON. Errors (``ToolError.type``):
CodeTooLarge, SandboxTimeout, SandboxCpuLimit, SandboxMemoryLimit, SandboxFileLimit, SandboxForbidden,
SandboxCodeError, SandboxResultTooLarge, SandboxFailed, DatasetError (the run's dataset cannot be read),
DatasetUnavailable (the code needs the dataset, which this deployment does not give run_python).

Not cached (code may be nondeterministic) and arguments come inline only (``arguments_by_reference`` off: the
deployed function has no access to the run table, see the sandbox's deployed design).

The dataset per deployment (env :data:`DATASET_ENV`, read and validated when the tool is built: a bad value fails the
cold start with ValueError): ``on`` (default; local runs) resolves ``ctx.data_uri`` as above; ``off`` (set by the CDK
stack on the deployed function, which has no network and no S3 permission, so it cannot read the run's ``s3://``
dataset) never reads it: code that reads ``DATASET_PATH`` or ``df`` without assigning it while the run has a dataset
gets ``DatasetUnavailable`` before anything runs, and other code runs with ``DATASET_PATH = None``.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from pydantic import Field

from stepcrew.models import ToolContext
from stepcrew.tools.base import Tool, ToolArgs
from stepcrew.tools.errors import ToolFailure
from stepcrew.tools.python_sandbox import DEFAULT_TIMEOUT_S, MAX_CODE_BYTES, Limits, check_code, run_code

#: Largest ``timeout_s``: well inside a tool Lambda's timeout (the function's timeout is set in the one mapping).
MAX_TIMEOUT_S = 30.0
#: Environment variable choosing whether the tool gives code the run's dataset: ``on`` (default) or ``off``.
DATASET_ENV = "STEPCREW_PYTHON_DATASET"
DATASET_MODES = ("on", "off")
#: The names through which code reaches the dataset (the child's globals).
DATASET_NAMES = frozenset({"DATASET_PATH", "df"})


class DatasetUnavailable(ToolFailure):
    """The code reads ``DATASET_PATH`` or ``df`` but this deployment gives run_python no dataset (``off``)."""

    type = "DatasetUnavailable"


def dataset_mode(value: str | None = None) -> str:
    """``value`` (default: env :data:`DATASET_ENV`, unset = ``on``) lower-cased; ValueError unless ``on``/``off``."""
    raw = os.environ.get(DATASET_ENV, "on") if value is None else value
    mode = raw.strip().lower()
    if mode not in DATASET_MODES:
        raise ValueError(f"{DATASET_ENV}={raw!r}: expected one of {', '.join(DATASET_MODES)}")
    return mode


def dataset_names_read(code: str) -> set[str]:
    """The :data:`DATASET_NAMES` that ``code`` reads without ever binding them itself (assignment, argument, import,
    loop target...). Code that does not parse gives ``set()``: the sandbox reports its SyntaxError."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in DATASET_NAMES:
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
    return read - bound


class RunPython(Tool):
    """``run_python``: see the module docstring."""

    name = "run_python"
    description = ("Run Python 3 code in a sandbox (no network, no files but a scratch folder) for statistics or "
                   "models SQL cannot express. The run's dataset is a read-only file at DATASET_PATH; if you use the "
                   "name df it is a pandas DataFrame (when pandas is installed). Set `result = ...` (JSON-able) "
                   "and/or print; stdout is capped at 4 KiB. Modules: the standard library (statistics, math, csv, "
                   "json), numpy and pandas when installed. Where the dataset is not given to this tool the call "
                   "fails with DatasetUnavailable: then put the figures (from query_dataset) in the code.")

    class Args(ToolArgs):
        code: str = Field(min_length=1, description=f"Python source, at most {MAX_CODE_BYTES} bytes")
        timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, ge=1, le=MAX_TIMEOUT_S,
                                 description="wall-time limit in seconds")

    def __init__(self, memory_mb: int = 512, resolve: Any = None, dataset: str | None = None) -> None:
        """``memory_mb``: the child's address-space cap; ``resolve(uri, tenant) -> Path``: how the run's dataset URI
        becomes a local file (default :func:`stepcrew.tools.datasets.resolve_dataset`: ``file://`` or ``s3://``,
        tenant-checked); ``dataset``: ``on``/``off`` (default env :data:`DATASET_ENV`; ValueError otherwise)."""
        self.memory_mb = memory_mb
        self._resolve = resolve
        self.dataset = dataset_mode(dataset)

    def run(self, args: Args, ctx: ToolContext) -> dict[str, Any]:
        check_code(args.code)  # CodeTooLarge before the dataset is even read
        dataset: Path | None = None
        if ctx.data_uri and self.dataset == "off":
            needed = dataset_names_read(args.code)
            if needed:
                raise DatasetUnavailable(
                    f"the code reads {' and '.join(sorted(needed))}, but the run's dataset is not available to "
                    "run_python in this deployment (it has no network and no data access): get the figures with "
                    "query_dataset or describe_dataset first and put them in the code")
        elif ctx.data_uri:
            resolve = self._resolve
            if resolve is None:
                from stepcrew.tools.datasets import resolve_dataset as resolve
            dataset = resolve(ctx.data_uri, ctx.tenant)
        limits = Limits(wall_s=args.timeout_s, memory_mb=self.memory_mb)
        return run_code(args.code, dataset=dataset, limits=limits)
