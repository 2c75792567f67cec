"""The ``run_python`` sandbox: untrusted Python in a separate, limited process, the same runner locally and in Lambda.

:func:`run_code` starts ``python -I -S -X utf8 stepcrew/tools/_sandbox_child.py`` with :mod:`subprocess` (a new
program, never ``os.fork`` of the possibly multithreaded parent) and

- an **empty environment** (``env={}``; only ``LD_LIBRARY_PATH`` is passed on when the parent has one, so the Lambda
  runtime's interpreter finds its libraries): AWS credentials, which live in a Lambda's environment, never reach it;
  ``-I`` ignores every ``PYTHON*`` variable, the user site folder and the current folder, ``-S`` skips ``site`` (the
  child adds only the folders that hold numpy/pandas to ``sys.path``);
- ``close_fds``, a new session (its own process group: the wall-time kill takes the whole group), and as working
  folder a fresh scratch folder (:func:`tempfile.mkdtemp`) removed afterwards;
- resource limits it sets on itself before reading the request (:class:`Limits`: ``RLIMIT_AS`` memory,
  ``RLIMIT_CPU`` seconds, ``RLIMIT_FSIZE`` bytes per written file, ``RLIMIT_NOFILE``, ``RLIMIT_NPROC`` = 1 so it can
  start no process or thread, ``RLIMIT_CORE`` 0) and a wall-clock deadline in the parent (SIGKILL to the group);
- when this machine allows it (:func:`network_namespace`), a new **network namespace** (``unshare --net
  --map-current-user``): no interface but a loopback that is down, so no connection can leave even if the audit hook
  is bypassed. Seen here (Linux, util-linux 2.38): available; in Lambda it is not expected to be (no user
  namespaces in its microVM), which the deployed design covers with the VPC below;
- inside the child, before the code, a ``sys.addaudithook`` (see ``_sandbox_child``) refusing sockets, new
  processes (subprocess, os.system, os.exec*, os.fork, os.spawn*, os.posix_spawn, and ``_posixsubprocess.fork_exec``
  replaced), signals to other processes, ctypes symbol lookups and calls, cffi, links, and any file access outside
  the scratch folder but read-only opens of the Python library folders, the time-zone database and the dataset copy
  (so ``/proc``, ``~/.aws``, ``/etc/passwd`` are refused), and the ways to the hook's own frames and objects
  (``sys.settrace``/``setprofile``, ``gc.get_objects``/``get_referrers``/``get_referents``). A refusal ends the child
  at once with a :class:`SandboxForbidden` answer: the code cannot catch it, and gets no output back.

The dataset (the run's, never the model's choice) is copied into the scratch folder as ``data.<suffix>``, mode
0o444, and the code sees its absolute path as ``DATASET_PATH`` (a write open of it is refused); when the code uses
the name ``df`` and pandas is importable, ``df`` is the dataset loaded with pandas.

**What is a boundary and what is not.** The audit hook is not a security boundary against a determined attacker.
It is hardened against the known pure-Python ways round it (it never raises, so no traceback hands out its frames;
it uses only C functions and immutable data bound at its creation, so rebinding ``os.path.realpath``, ``os.fspath``
or ``builtins.isinstance`` changes nothing; the frame and gc introspection that reaches it is refused), but C code
acts below it: numpy's ``as_strided`` over a buffer reads and writes process memory (seen here: 64 bytes read past
a 1-byte array), and what the interpreter does not audit is not seen at all: ``os.stat``/``os.path.exists`` anywhere
(a file's existence and size leak), ``dir_fd=`` arguments (opening a folder outside scratch is refused for that
reason). What holds even then: the empty environment (no secret to read in this process),
the resource limits (enforced by the kernel; note that Linux does not apply ``RLIMIT_NPROC`` to root, so a root
parent - some containers - loses the fork limit and keeps only the hook and the process-group kill), the network
namespace where available, and, deployed, the function's role and network below. A bypass can still read what the
operating-system user may read: in Lambda that includes ``/proc/<pid>/environ`` of the runtime, i.e. the function's
own credentials - which is why the role grants nothing.

**Deployed design (built: infra/stepcrew_infra/network.py and functions.py, spec ``isolated_network``).**
``run_python`` is its own function (``tool_run_python``, 1024 MB, 45 s): a role whose only grants are writing its own
log group (``logs:CreateLogStream``/``logs:PutLogEvents`` on that group), X-Ray segments, and the ENI actions Lambda
needs to place it in a VPC (``ec2:CreateNetworkInterface``/``DescribeNetworkInterfaces``/``DescribeSubnets``/
``DeleteNetworkInterface``/``AssignPrivateIpAddresses``/``UnassignPrivateIpAddresses``, Resource ``*``); no table,
bucket, reader-role, secret or state-machine permission and no such name in its environment. It runs in a VPC with
isolated subnets only (no NAT, no internet gateway) and no VPC endpoints, with a security group without ingress or
egress rules; VPC flow logs go to CloudWatch. Stolen credentials then allow next to nothing and can reach nothing
from inside; printed to stdout they would still reach the conversation (the tool result), where they allow only the
ENI and Describe calls above. Two consequences: (1) its arguments come inline only (``arguments_by_reference`` is
off: reading them would need DynamoDB and an endpoint; the 16 KiB code cap stays within the agent's per-turn argument
cap); (2) its dataset cannot be read from S3 by the function itself: the stack sets ``STEPCREW_PYTHON_DATASET=off``,
and code that reads ``DATASET_PATH``/``df`` in a run with a dataset gets ``DatasetUnavailable``
(:mod:`stepcrew.tools.run_python`). Giving it the dataset later means, e.g., a short-lived presigned GET URL minted
under the tenant-reader role and an S3 gateway endpoint whose policy allows only ``s3:GetObject`` on the datasets
bucket. Lambda's own limits: 15 min timeout, ``/tmp`` 512 MB by default (the dataset copy and the scratch
writes live there: ephemeral storage must cover :data:`stepcrew.tools.datasets.MAX_DATASET_BYTES` plus
:attr:`Limits.max_files` x :attr:`Limits.file_bytes`).

Errors (:class:`PythonSandboxError` subclasses, each a :class:`~stepcrew.tools.errors.ToolFailure` whose ``type`` is
its class name): :class:`CodeTooLarge` (before anything runs), :class:`SandboxTimeout`, :class:`SandboxCpuLimit`,
:class:`SandboxMemoryLimit`, :class:`SandboxFileLimit`, :class:`SandboxForbidden`, :class:`SandboxCodeError` (last
traceback line only, no host paths), :class:`SandboxResultTooLarge`, :class:`SandboxFailed`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stepcrew.tools.errors import ToolFailure

logger = logging.getLogger(__name__)

#: Largest code, in UTF-8 bytes (= ``stepcrew.models.TOOL_ARGUMENTS_MAX_BYTES``, the agent's cap on one call's
#: arguments).
MAX_CODE_BYTES = 16 * 1024
#: Bytes of stdout returned (the first ones); the whole tool result is capped at 8 KiB (TOOL_OUTPUT_MAX_BYTES).
MAX_STDOUT_BYTES = 4 * 1024
#: Bytes of stderr returned (warnings; the first ones).
MAX_STDERR_BYTES = 1024
#: Bytes of the ``result`` value as JSON.
MAX_RESULT_BYTES = 3 * 1024
#: Bytes of the child's answer and stderr the parent reads at most.
MAX_ANSWER_BYTES = 512 * 1024
MAX_CHILD_STDERR_BYTES = 16 * 1024
DEFAULT_TIMEOUT_S = 10.0
#: Seconds the child's own alarm waits past the wall time (it ends itself if the parent is gone).
BACKSTOP_S = 5
CHILD_PROGRAM = Path(__file__).with_name("_sandbox_child.py")
#: What the child may read besides the Python library: the time-zone database (zoneinfo, pandas) and the CPU quota
#: files a CPU count is read from (pandas' ``read_csv`` reads ``cpu.max``). None of them holds a secret.
EXTRA_READ_ROOTS = ("/usr/share/zoneinfo", "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                    "/sys/fs/cgroup/cpu/cpu.cfs_period_us", "/sys/devices/system/cpu")
#: Packages whose folders go on the child's sys.path when installed (their dependencies live beside them).
ALLOWED_PACKAGES = ("numpy", "pandas")


# ---------------------------------------------------------------------------------------------------- errors
class PythonSandboxError(ToolFailure):
    """Base of the sandbox's typed failures; ``type`` is the class name, the message one line for the model."""

    type = "SandboxError"


class CodeTooLarge(PythonSandboxError):
    """The code is over :data:`MAX_CODE_BYTES` UTF-8 bytes; nothing ran."""

    type = "CodeTooLarge"


class SandboxTimeout(PythonSandboxError):
    """The code ran past its wall-clock time and its process group was killed."""

    type = "SandboxTimeout"


class SandboxCpuLimit(PythonSandboxError):
    """The code used its CPU seconds (RLIMIT_CPU) and was killed."""

    type = "SandboxCpuLimit"


class SandboxMemoryLimit(PythonSandboxError):
    """The code needed more memory than its address-space cap (MemoryError, or killed for memory)."""

    type = "SandboxMemoryLimit"


class SandboxFileLimit(PythonSandboxError):
    """A scratch write passed the per-file size cap, or too many files/descriptors."""

    type = "SandboxFileLimit"


class SandboxForbidden(PythonSandboxError):
    """The audit hook refused an operation (network, process, file outside scratch, ctypes...); the message names it."""

    type = "SandboxForbidden"


class SandboxCodeError(PythonSandboxError):
    """The code raised: ``Type: message (line N)``, the last traceback line only, no host paths."""

    type = "SandboxCodeError"


class SandboxResultTooLarge(PythonSandboxError):
    """``result`` is more than :data:`MAX_RESULT_BYTES` of JSON."""

    type = "SandboxResultTooLarge"


class SandboxFailed(PythonSandboxError):
    """The child did not start, crashed (a signal not from its limits) or gave no readable answer."""

    type = "SandboxFailed"


_ERRORS: dict[str, type[PythonSandboxError]] = {cls.type: cls for cls in (
    SandboxTimeout, SandboxCpuLimit, SandboxMemoryLimit, SandboxFileLimit, SandboxForbidden, SandboxCodeError,
    SandboxResultTooLarge)}


class Limits:
    """One call's limits. ``wall_s``: seconds from start to answer (parent, SIGKILL); ``cpu_s``: CPU seconds
    (RLIMIT_CPU); ``memory_mb``: address space in MiB (RLIMIT_AS; numpy + pandas imported and a small DataFrame take
    ~200-260 MiB of it here, so 512 MiB leaves room for work); ``file_bytes``: per written file (RLIMIT_FSIZE);
    ``max_files``: files/folders the code may create in scratch; ``nofile``: open descriptors (RLIMIT_NOFILE)."""

    __slots__ = ("cpu_s", "file_bytes", "max_files", "memory_mb", "nofile", "wall_s")

    def __init__(self, wall_s: float = DEFAULT_TIMEOUT_S, cpu_s: int | None = None, memory_mb: int = 512,
                 file_bytes: int = 8 * 1024 * 1024, max_files: int = 32, nofile: int = 64) -> None:
        self.wall_s = float(wall_s)
        self.cpu_s = int(cpu_s) if cpu_s is not None else max(1, int(self.wall_s + 0.999))
        self.memory_mb = int(memory_mb)
        self.file_bytes = int(file_bytes)
        self.max_files = int(max_files)
        self.nofile = int(nofile)

    def child_argument(self) -> str:
        return json.dumps({"memory_mb": self.memory_mb, "cpu_s": self.cpu_s, "file_bytes": self.file_bytes,
                           "max_files": self.max_files, "nofile": self.nofile,
                           "alarm_s": int(self.wall_s + 0.999) + BACKSTOP_S, "stdout_bytes": MAX_STDOUT_BYTES,
                           "stderr_bytes": MAX_STDERR_BYTES, "request_bytes": MAX_CODE_BYTES * 8 + 64 * 1024})


# ---------------------------------------------------------------------------------------------- environment
_netns: list[str] | None = None


def network_namespace() -> list[str]:
    """The command prefix that runs the child in a new network namespace (``unshare --net --map-current-user --``),
    or ``[]`` when unavailable here (no ``unshare``, user namespaces not allowed, env ``STEPCREW_PYTHON_NETNS=off``).
    Probed once per process (~5 ms)."""
    global _netns
    if os.environ.get("STEPCREW_PYTHON_NETNS", "auto").strip().lower() in ("off", "0", "false", "no"):
        return []
    if _netns is None:
        tool = shutil.which("unshare")
        prefix = [tool, "--net", "--map-current-user", "--"] if tool else []
        if prefix:
            try:
                ok = subprocess.run([*prefix, sys.executable, "-I", "-S", "-c", ""], env={}, timeout=10,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, check=False).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
            prefix = prefix if ok else []
        _netns = prefix
        logger.info("python sandbox network namespace", extra={"available": bool(prefix)})
    return list(_netns)


def _package_folders() -> list[str]:
    """Folders holding the allowed packages (found without importing them)."""
    import importlib.util

    folders = []
    for name in ALLOWED_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            folders.append(str(Path(spec.origin).resolve().parents[1]))
    return list(dict.fromkeys(folders))


def _child_env() -> dict[str, str]:
    """Nothing of the parent's environment but the loader's library path (not a secret; the Lambda runtime's
    interpreter may need it)."""
    return {"LD_LIBRARY_PATH": os.environ["LD_LIBRARY_PATH"]} if os.environ.get("LD_LIBRARY_PATH") else {}


def check_code(code: str) -> bytes:
    """``code`` as UTF-8; :class:`CodeTooLarge` when over :data:`MAX_CODE_BYTES`."""
    data = code.encode("utf-8", "surrogatepass")
    if len(data) > MAX_CODE_BYTES:
        raise CodeTooLarge(f"the code is {len(data)} bytes, over the {MAX_CODE_BYTES}-byte limit: send less code "
                           "(aggregate with query_dataset first, or split the work)")
    return data


def _remove(folder: str) -> None:
    def retry(func: Any, path: str, _exc: Any) -> None:  # a folder the code made unwritable
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            func(path)
        except OSError:
            pass

    shutil.rmtree(folder, onerror=retry)


# ---------------------------------------------------------------------------------------------------- running
def run_code(code: str, dataset: Path | None = None, limits: Limits | None = None) -> dict[str, Any]:
    """Run ``code`` in a sandboxed child. ``dataset``: a local file (already resolved and tenant-checked) copied in
    read-only. Returns ``{"stdout": str, "stdout_truncated": bool, "stderr": str, "result"?: JSON value}``
    (``result`` only when the code set it). Raises the typed errors of the module docstring."""
    check_code(code)
    limits = limits or Limits()
    scratch = os.path.realpath(tempfile.mkdtemp(prefix="stepcrew-py-"))
    try:
        copied = None
        if dataset is not None:
            suffix = "".join(Path(dataset).suffixes[-1:]).lower()
            copied = os.path.join(scratch, "data" + suffix)
            shutil.copyfile(dataset, copied)
            os.chmod(copied, 0o444)
        folders = _package_folders()
        request = {"code": code, "scratch": scratch, "dataset": copied, "sys_path": folders,
                   "read_roots": [*folders, *EXTRA_READ_ROOTS]}
        return _run_child(json.dumps(request).encode(), scratch, limits)
    finally:
        _remove(scratch)


def _run_child(request: bytes, scratch: str, limits: Limits) -> dict[str, Any]:
    import selectors

    argv = [*network_namespace(), sys.executable, "-I", "-S", "-X", "utf8", str(CHILD_PROGRAM),
            limits.child_argument()]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=_child_env(), cwd=scratch, close_fds=True, start_new_session=True)
    except OSError as exc:
        raise SandboxFailed(f"the sandbox process did not start ({type(exc).__name__})") from None
    out, err = bytearray(), bytearray()
    killed = False
    try:
        try:
            assert proc.stdin is not None
            proc.stdin.write(request)
        except OSError:  # it died before reading: judged by its exit below
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
        deadline = started + limits.wall_s
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            sel.register(proc.stderr, selectors.EVENT_READ)
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    killed = True
                    break
                for key, _ in sel.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    elif key.fileobj is proc.stdout:
                        if len(out) + len(chunk) > MAX_ANSWER_BYTES:
                            killed = True  # not a timeout: judged below by the size
                            sel.unregister(key.fileobj)
                            break
                        out += chunk
                    elif len(err) < MAX_CHILD_STDERR_BYTES:
                        err += chunk[: MAX_CHILD_STDERR_BYTES - len(err)]
                if len(out) > MAX_ANSWER_BYTES - 1:
                    break
        if killed:
            _kill_group(proc.pid)
        while True:  # its pipes may close before it ends (the code can close them): the deadline still holds
            pid, status, usage = os.wait4(proc.pid, 0 if killed else os.WNOHANG)
            if pid:
                break
            if time.monotonic() >= deadline:
                killed = True
                _kill_group(proc.pid)
            else:
                time.sleep(min(0.01, max(deadline - time.monotonic(), 0)))
        proc.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    finally:
        _kill_group(proc.pid)  # anything left in its group (nothing, with RLIMIT_NPROC)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    cpu = usage.ru_utime + usage.ru_stime
    logger.info("python sandbox finished", extra={"exit": proc.returncode, "cpu_s": round(cpu, 3),
                                                  "wall_s": round(time.monotonic() - started, 3),
                                                  "stderr_bytes": len(err)})
    if killed and len(out) > MAX_ANSWER_BYTES - 1:
        raise SandboxFailed(f"the sandbox process answered more than {MAX_ANSWER_BYTES} bytes")
    if killed:
        raise SandboxTimeout(f"the code ran longer than the {limits.wall_s:g} s wall-time limit and was stopped: "
                             "compute less, or avoid waiting (sleep, input)")
    return _answer(bytes(out), bytes(err), proc.returncode, cpu, limits)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _answer(out: bytes, err: bytes, code: int, cpu: float, limits: Limits) -> dict[str, Any]:
    line = out.split(b"\n", 1)[0]
    try:
        answer = json.loads(line) if line else None
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict):
            kind = _ERRORS.get(str(error.get("type")), SandboxFailed)
            message = str(error.get("message", ""))[:600] or kind.type
            if kind is SandboxMemoryLimit:
                message = (f"the code needed more than the {limits.memory_mb} MiB memory limit ({message}): use "
                           "smaller arrays or fewer rows")
            raise kind(message)
        ok = answer.get("ok")
        if isinstance(ok, dict):
            content: dict[str, Any] = {"stdout": str(answer.get("stdout", "")),
                                       "stdout_truncated": bool(answer.get("stdout_truncated"))}
            if answer.get("stderr"):
                content["stderr"] = str(answer["stderr"])
            if "result" in ok:
                size = len(json.dumps(ok["result"]))
                if size > MAX_RESULT_BYTES:
                    raise SandboxResultTooLarge(f"result is {size} bytes of JSON, over the {MAX_RESULT_BYTES}-byte "
                                                "limit: set result to a summary (a few numbers or rows)")
                content["result"] = ok["result"]
            return content
    # no answer: how the child ended
    if code == -signal.SIGXCPU or (code == -signal.SIGKILL and cpu >= limits.cpu_s - 0.05):
        raise SandboxCpuLimit(f"the code used its {limits.cpu_s} CPU seconds and was stopped: compute less "
                              "(vectorise, sample, aggregate first)")
    if code == -signal.SIGALRM:
        raise SandboxTimeout(f"the code ran longer than the {limits.wall_s:g} s wall-time limit and was stopped")
    if code == -signal.SIGKILL or b"MemoryError" in err or b"Cannot allocate memory" in err:
        raise SandboxMemoryLimit(f"the code needed more than the {limits.memory_mb} MiB memory limit: use smaller "
                                 "arrays or fewer rows")
    if code < 0:
        raise SandboxFailed(f"the Python process crashed ({_signal_name(-code)})")
    raise SandboxFailed(f"the Python process ended without an answer (exit {code})")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
