"""The program the ``run_python`` sandbox child runs (:mod:`stepcrew.tools.python_sandbox` starts it).

Started as ``python -I -S -X utf8 <this file> <limits JSON>`` in an empty environment, in a new session, with the
scratch folder as its working directory. Standard library only, and it imports nothing of ``stepcrew`` (the child
has no ``site`` and no ``PYTHONPATH``: it adds the folders the parent lists to ``sys.path`` itself).

In order, before any user code:

1. resource limits from ``argv[1]``, soft and hard (an unprivileged process cannot raise a hard limit again):
   ``RLIMIT_CORE`` 0, ``RLIMIT_AS`` (memory), ``RLIMIT_CPU`` (seconds; SIGXCPU at the soft limit, SIGKILL one
   second later), ``RLIMIT_FSIZE`` (bytes per written file: a write past it fails with EFBIG; Python ignores
   SIGXFSZ), ``RLIMIT_NOFILE``, ``RLIMIT_NPROC`` 1 (no new process or thread of this user: a fork fails with
   EAGAIN; the kernel does not apply this limit to root), and an ``alarm`` backstop in case the parent dies;
2. the environment emptied (the parent passes none) but for single-thread settings of numeric libraries;
3. fd 1 pointed at stderr (what C code prints cannot corrupt the answer, which goes to a private copy of fd 1);
4. the request read whole from stdin (JSON: code, scratch folder, dataset file, read-only folders, sys.path);
5. ``_posixsubprocess.fork_exec`` replaced by a refusal (``multiprocessing``'s spawn calls it without an audit
   event), then the audit hook (:func:`_make_hook`) installed: from then on it sees every audited operation.

Then the code runs with globals ``DATASET_PATH`` (absolute path of the read-only copy of the dataset, or None),
``SCRATCH`` (the scratch folder) and, when the code uses the name ``df`` and pandas is importable, ``df`` (the
dataset as a DataFrame). The answer (one JSON line): ``{"ok": {result?}, stdout, stdout_truncated, stderr}`` or
``{"error": {"type", "message"}, ...}``. A refusal by the hook ends the process at once with a ``SandboxForbidden``
answer (fail closed: the code cannot catch it, and nothing it printed is returned).
"""

from __future__ import annotations

import builtins
import json
import math
import os
import resource
import signal
import sys

_ANSWER_MAX = 256 * 1024
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
#: Audited events refused whatever their arguments: new processes, signals to other processes, sockets (prefix).
_REFUSED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "os.kill", "os.killpg", "os.link", "os.symlink", "pty.spawn", "os.startfile", "sys.remote_exec",
    # the ways to the hook's own frames and objects
    "sys.settrace", "sys.setprofile", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
})
_REFUSED_PREFIXES = ("socket.", "_socket.", "ssl.", "webbrowser.")
#: Events whose first argument(s) are paths that must stay inside the scratch folder.
_SCRATCH_PATH_EVENTS = {
    "os.mkdir": 1, "os.rmdir": 1, "os.remove": 1, "os.rename": 2, "os.truncate": 1, "os.chmod": 1, "os.chown": 1,
    "os.utime": 1, "os.setxattr": 1, "os.removexattr": 1, "os.chflags": 1, "os.lchflags": 1, "os.lchmod": 1,
    "os.lchown": 1, "os.mkfifo": 1, "os.mknod": 1, "shutil.chown": 1,
}
#: Events reading a folder or metadata: allowed inside scratch and the read-only folders.
_READ_PATH_EVENTS = frozenset({"os.listdir", "os.scandir", "os.listxattr", "os.getxattr", "glob.glob", "os.chdir"})
#: Modules the code may not import (C-level loaders the hook cannot follow).
_REFUSED_IMPORTS = frozenset({"_cffi_backend", "cffi", "_xxsubinterpreters", "_testcapi", "_testinternalcapi"})


def _set_limits(limits: dict) -> None:
    def cap(which: int, soft: int, hard: int | None = None) -> None:
        resource.setrlimit(which, (soft, soft if hard is None else hard))

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_AS, int(limits["memory_mb"]) * 1024 * 1024)
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + int(limits["cpu_s"])
    cap(resource.RLIMIT_CPU, cpu, cpu + 1)
    cap(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
    cap(resource.RLIMIT_NOFILE, int(limits["nofile"]))
    cap(resource.RLIMIT_NPROC, 1)
    signal.alarm(int(limits["alarm_s"]))


def _make_hook(scratch: str, dataset: str | None, read_roots: tuple[str, ...], max_files: int, answer_fd: int):
    """``(hook, deny)``: the audit hook, and ``deny(what)``, which ends the process at once with a SandboxForbidden
    answer on ``answer_fd``. ``scratch``: read-write; ``read_roots``: read-only (stdlib, site-packages, time zones);
    ``dataset``: read-only; everything else refused. Paths are resolved (symlinks and ``..``, from the current
    folder; an fd through ``/proc/self/fd``) before they are checked, so ``../x`` and links are judged by where they
    lead.

    Hardening against code that goes after the hook itself: a refusal never raises (no traceback can hand the code
    the hook's frames: the process ends instead); everything the hook uses is bound here, as closure variables, at
    creation - C functions of ``posix`` and built-ins, immutable tuples/frozensets - so rebinding a module attribute
    (``os.path.realpath = ...``, ``builtins.isinstance = ...``) or a global of this module changes nothing; and the
    ways to a frame or object of the hook are refused (``sys.settrace``/``setprofile``, ``gc.get_objects``/
    ``get_referrers``/``get_referents``). Not closed: C code that reads or writes memory (numpy's ``as_strided``
    over a buffer), which is why the process limits, the empty environment and the network are the boundary."""
    import posix

    lstat, readlink, getcwd = posix.lstat, posix.readlink, posix.getcwd
    write, exit_now = posix.write, os._exit
    is_int, is_str, is_bytes, type_of, reversed_, repr_ = int, str, bytes, isinstance, reversed, repr
    os_error, type_error, fspath = OSError, TypeError, posix.fspath
    s_ifmt, s_iflnk, s_ifdir = 0o170000, 0o120000, 0o040000
    write_flags = _WRITE_FLAGS
    refused_events, refused_prefixes, refused_imports = _REFUSED_EVENTS, _REFUSED_PREFIXES, _REFUSED_IMPORTS
    scratch_events = tuple(_SCRATCH_PATH_EVENTS.items())
    read_events = _READ_PATH_EVENTS
    scratch_prefix = scratch.rstrip("/") + "/"
    readable = tuple(r.rstrip("/") for r in (scratch, *read_roots))
    readable_prefixes = tuple(r + "/" for r in readable)
    shown_roots = tuple(sorted(read_roots, key=len, reverse=True))
    # JSON-safe without the json module (which the code could rebind): printable ASCII, no quote or backslash
    safe = str.maketrans({'"': "'", "\\": "/", "\n": " ", "\r": " ", "\t": " "})
    created = [0]

    def deny(what: str) -> None:
        text = what.replace(scratch_prefix, "").replace(scratch, ".")
        for root in shown_roots:
            text = text.replace(root, "<lib>")
        text = text[:200].translate(safe).encode("ascii", "replace")
        data = (b'{"error": {"type": "SandboxForbidden", "message": "' + text + b'"}, "stdout": "", '
                b'"stdout_truncated": false, "stderr": ""}\n')
        while data:
            data = data[write(answer_fd, data):]
        exit_now(0)

    def realpath(path: str) -> str | None:
        """Like ``os.path.realpath`` (non-strict), from C functions only; None past 40 links."""
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        pending = list(reversed_(path.split("/")))
        parts: list[str] = []
        links = 0
        while pending:
            part = pending.pop()
            if part == "" or part == ".":
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            candidate = "/" + "/".join(parts + [part])
            try:
                mode = lstat(candidate).st_mode
            except os_error:
                parts.append(part)
                continue
            if mode & s_ifmt == s_iflnk:
                links += 1
                if links > 40:
                    return None
                target = readlink(candidate)
                if target.startswith("/"):
                    parts = []
                pending.extend(reversed_(target.split("/")))
                continue
            parts.append(part)
        return "/" + "/".join(parts)

    def resolve(path) -> str | None:
        if type_of(path, is_int):
            try:
                return readlink("/proc/self/fd/" + repr_(path))
            except os_error:
                return None
        try:
            p = fspath(path)
        except type_error:
            return None
        if type_of(p, is_bytes):  # bytes.decode, not os.fsdecode: the code could rebind os.fspath, which it calls
            p = p.decode("utf-8", "surrogateescape")
        return realpath(p) if type_of(p, is_str) else None

    def given(path, p: str | None) -> str:
        """How a path is named in a refusal: as the code gave it (an fd: by its file)."""
        if type_of(path, is_str):
            return path[:120]
        if type_of(path, is_bytes):
            return path[:120].decode("utf-8", "replace")
        return (p or repr_(path))[:120]

    def in_scratch(p: str) -> bool:
        return p == scratch or p.startswith(scratch_prefix)

    def readable_path(p: str) -> bool:
        return p in readable or p.startswith(readable_prefixes) or p == dataset

    def is_dir(p: str) -> bool:
        try:
            return lstat(p).st_mode & s_ifmt == s_ifdir
        except os_error:
            return False

    def exists(p: str) -> bool:
        try:
            lstat(p)
        except os_error:
            return False
        return True

    def describe(event: str, args: tuple) -> str:
        return event + "(" + ", ".join(repr_(a)[:60] for a in args[:2]) + ")"

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            if type_of(path, is_int):
                return  # an fd this process already holds
            p = resolve(path)
            if p is None:
                deny("open of " + repr_(path)[:100])
            writing = (type_of(flags, is_int) and flags & write_flags) or (
                type_of(mode, is_str) and ("w" in mode or "a" in mode or "x" in mode or "+" in mode))
            if writing:
                if not in_scratch(p) or p == dataset:
                    deny("writing " + given(path, p) + " (only the scratch folder is writable; the dataset is read-only)")
                if not exists(p):
                    created[0] += 1
                    if created[0] > max_files:
                        deny("creating more than " + repr_(max_files) + " files in the scratch folder")
            elif not readable_path(p):
                deny("reading " + given(path, p) + " (outside the scratch folder, the dataset and the Python library)")
            elif not in_scratch(p) and is_dir(p):
                # a folder's fd outside scratch would let dir_fd= calls (not in the audit event) write relative to it
                deny("opening the folder " + given(path, p))
            return
        if event in refused_events or event.startswith(refused_prefixes):
            deny(describe(event, args))
        if event.startswith("ctypes."):
            if event == "ctypes.dlopen" and args and args[0] is None:
                return  # `import ctypes` opens the running program; every symbol lookup and call is refused
            deny(describe(event, args))
        if event == "import":
            name = repr_(args[0])[1:-1] if args else ""
            if name.split(".")[0] in refused_imports or name == "_posixsubprocess":
                deny("import " + name)
            return
        for name, count in scratch_events:
            if event == name:
                for path in args[:count]:
                    p = resolve(path)  # an fd (os.fchmod, os.ftruncate...) is judged by its file
                    if p is None or not in_scratch(p) or p == dataset or p == scratch:
                        deny(event + " on " + given(path, p) + " (only inside the scratch folder, not "
                             "on the dataset)")
                    if event == "os.mkdir":
                        created[0] += 1
                        if created[0] > max_files:
                            deny("creating more than " + repr_(max_files) + " files in the scratch folder")
                return
        if event in read_events:
            path = args[0] if args else None
            if path is None or path == "" or type_of(path, is_int):
                return
            p = resolve(path)
            if p is None or not readable_path(p):
                deny(event + " of " + given(path, p) + " (outside the scratch folder and the Python "
                     "library)")

    return hook, deny


class _Capped:
    """A text stream keeping the first ``limit`` bytes (UTF-8) written to it."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.limit - self.size
        data = text.encode("utf-8", "replace")
        if len(data) > room:
            self.truncated = True
            data = data[:max(room, 0)]
            text = data.decode("utf-8", "ignore")
        if data:
            self.parts.append(text)
            self.size += len(data)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def value(self) -> str:
        return "".join(self.parts)


def _names(code) -> set[str]:
    """Every name a code object (and the code objects nested in it) uses."""
    names = set(code.co_names) | set(code.co_varnames)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names


def _load_df(path: str):
    import pandas as pd

    lower = path.lower()
    if lower.endswith(".csv"):
        return pd.read_csv(path, na_values=["", "NA", "N/A", "NULL"])
    if lower.endswith(".parquet"):
        return pd.read_parquet(path)
    if lower.endswith(".jsonl"):
        return pd.read_json(path, lines=True)
    return pd.read_json(path)


def _plain(value, depth: int = 0):
    """``value`` as JSON-safe data: numpy/pandas values through ``tolist``/``to_dict``, NaN/inf -> None."""
    if depth > 50:
        raise TypeError("result is nested too deeply")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, depth + 1) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return _plain(value.to_dict(orient="list"), depth + 1)
    if hasattr(value, "tolist"):
        return _plain(value.tolist(), depth + 1)
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict(), depth + 1)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"result of type {type(value).__name__} is not JSON-serialisable")


def _clean(text: str, scratch: str, roots: tuple[str, ...]) -> str:
    """A message without host paths: the scratch folder as ``.``, library folders as ``<lib>``."""
    text = text.replace(scratch + "/", "").replace(scratch, ".")
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(root, "<lib>")
    return text


def _code_error(exc: BaseException, scratch: str, roots: tuple[str, ...]) -> dict:
    """The last traceback line only (``Type: message``), with the line of the user's code it came from."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<code>":
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename == "<code>":
        line = exc.lineno
        message = f"{type(exc).__name__}: {exc.msg}"
    else:
        text = str(exc).strip().splitlines()
        message = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    message = _clean(message, scratch, roots)[:500]
    if line is not None:
        message += f" (line {line})"
    kind = "SandboxCodeError"
    if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == 12):  # ENOMEM (mmap past RLIMIT_AS)
        kind = "SandboxMemoryLimit"
    elif isinstance(exc, OSError) and exc.errno in (27, 24):  # EFBIG (RLIMIT_FSIZE), EMFILE (RLIMIT_NOFILE)
        kind = "SandboxFileLimit"
    return {"type": kind, "message": message}


def _refused_fork_exec(answer_fd: int):
    """A stand-in for ``_posixsubprocess.fork_exec`` that ends the process with a SandboxForbidden answer."""
    write, exit_now = os.write, os._exit
    data = (b'{"error": {"type": "SandboxForbidden", "message": "_posixsubprocess.fork_exec (a new process)"}, '
            b'"stdout": "", "stdout_truncated": false, "stderr": ""}\n')

    def fork_exec(*args, **kwargs):
        write(answer_fd, data)
        exit_now(0)

    return fork_exec


def main(argv: list[str]) -> None:
    limits = json.loads(argv[1])
    _set_limits(limits)
    os.environ.clear()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[name] = "1"
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    raw = sys.stdin.buffer.read(int(limits["request_bytes"]))
    request = json.loads(raw)
    scratch = os.path.realpath(request["scratch"])
    os.chdir(scratch)
    dataset = os.path.realpath(request["dataset"]) if request.get("dataset") else None
    sys.path[:] = [p for p in sys.path if p] + [p for p in request.get("sys_path", []) if p not in sys.path]
    roots = tuple(dict.fromkeys(os.path.realpath(p) for p in list(sys.path) + list(request.get("read_roots", []))
                                if p and os.path.isabs(p)))
    stdout, stderr = _Capped(int(limits["stdout_bytes"])), _Capped(int(limits["stderr_bytes"]))
    hook, deny = _make_hook(scratch, dataset, roots, int(limits["max_files"]), answer_fd)
    try:
        import _posixsubprocess

        _posixsubprocess.fork_exec = _refused_fork_exec(answer_fd)  # its own closure: nothing of the hook's
    except ImportError:
        pass
    sys.dont_write_bytecode = True  # importlib's __pycache__ writes would be refusals
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the request was read; the code reads nothing from stdin
    sys.addaudithook(hook)
    del hook, deny
    sys.stdout, sys.stderr = stdout, stderr
    answer: dict
    try:
        code = compile(request["code"], "<code>", "exec")
        scope = {"__name__": "__main__", "__builtins__": builtins, "DATASET_PATH": dataset, "SCRATCH": scratch}
        if "df" in _names(code) and dataset is not None:
            try:
                scope["df"] = _load_df(dataset)
            except ImportError:
                pass  # no pandas here: the code reads DATASET_PATH itself
        exec(code, scope)  # noqa: S102 - the sandbox's whole purpose
        ok: dict = {}
        if "result" in scope:
            ok["result"] = _plain(scope["result"])
        answer = {"ok": ok}
    except SystemExit as exc:
        if exc.code in (None, 0):
            answer = {"ok": {}}
        else:
            answer = {"error": {"type": "SandboxCodeError", "message": f"SystemExit: {exc.code!r}"[:200]}}
    except BaseException as exc:  # noqa: BLE001 - every failure of the code is reported
        answer = {"error": _code_error(exc, scratch, roots)}
    answer["stdout"] = stdout.value()
    answer["stdout_truncated"] = stdout.truncated
    answer["stderr"] = stderr.value()
    try:
        data = json.dumps(answer, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        data = json.dumps({"error": {"type": "SandboxCodeError", "message": f"result: {exc}"[:300]}}).encode()
    if len(data) > _ANSWER_MAX:
        data = json.dumps({"error": {"type": "SandboxResultTooLarge",
                                     "message": f"the answer is {len(data)} bytes of JSON"}}).encode()
    view = memoryview(data + b"\n")
    while view:
        view = view[os.write(answer_fd, view):]
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
