"""The run_python sandbox (stepcrew.tools.python_sandbox) against hostile code: every escape is refused or killed with
its typed error, and legitimate computation returns the right figures (computed here independently)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from stepcrew.data import DEMO_DATASET
from stepcrew.tools import python_sandbox
from stepcrew.tools.python_sandbox import (
    MAX_CODE_BYTES,
    MAX_RESULT_BYTES,
    MAX_STDOUT_BYTES,
    CodeTooLarge,
    Limits,
    SandboxCodeError,
    SandboxCpuLimit,
    SandboxFileLimit,
    SandboxForbidden,
    SandboxMemoryLimit,
    SandboxResultTooLarge,
    SandboxTimeout,
    run_code,
)

#: Small limits keep every case well under 2 s: 1.5 s of wall time, 1 CPU second, 256 MiB.
FAST = Limits(wall_s=1.5, cpu_s=1, memory_mb=256)


def _run(code: str, dataset: Path | None = None, limits: Limits = FAST) -> dict:
    return run_code(code, dataset=dataset, limits=limits)


def _refused(code: str, *fragments: str, dataset: Path | None = None) -> str:
    with pytest.raises(SandboxForbidden) as info:
        _run(code, dataset)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    return message


# ---------------------------------------------------------------------------------------------- network
def test_socket_connect_to_loopback_is_refused():
    _refused("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\ns.connect(('127.0.0.1', 9))",
             "socket.")


def test_dns_lookup_is_refused():
    _refused("import socket\nsocket.getaddrinfo('example.com', 443)", "socket.getaddrinfo", "example.com")


def test_connection_to_a_dns_name_is_refused():
    _refused("import socket\nsocket.create_connection(('example.com', 80), timeout=1)", "socket.")


def test_urlopen_is_refused():
    _refused("import urllib.request\nurllib.request.urlopen('http://example.com/', timeout=1)", "socket.")


# ---------------------------------------------------------------------------------------------- secrets and files
@pytest.mark.parametrize("path", ["/proc/self/environ", "/proc/1/environ", "/etc/passwd", "/proc/self/maps"])
def test_reading_system_files_is_refused(path):
    _refused(f"print(open({path!r}).read())", f"reading {path}")


def test_reading_aws_credentials_is_refused(tmp_path, monkeypatch):
    # Given a fake ~/.aws/credentials in the parent's HOME
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    credentials = home / ".aws" / "credentials"
    credentials.write_text("[default]\naws_secret_access_key = fake-secret-from-file\n")
    monkeypatch.setenv("HOME", str(home))
    # When the code reads it by its absolute path / Then refused
    _refused(f"print(open({str(credentials)!r}).read())", "reading", "credentials")
    # and the child does not even know the parent's HOME
    assert _run("import os\nresult = os.environ.get('HOME')") == {"stdout": "", "stdout_truncated": False,
                                                                  "result": None}


def test_the_environment_holds_no_secret(monkeypatch):
    # Given secrets in the parent's environment
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-123")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "fake-token-456")
    # When the code dumps its environment
    env = _run("import os\nresult = dict(os.environ)")["result"]
    # Then nothing of the parent's is there: only the single-thread settings the child sets itself
    assert set(env) <= {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"}
    assert not any("fake-" in value for value in env.values())


def test_the_child_is_started_with_an_empty_environment(monkeypatch, tmp_path):
    # Given secrets in the parent's environment, and a stand-in child program that answers with the environment it
    # was started with (the real child also empties os.environ itself: this checks the parent's side alone)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-123")
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    program = tmp_path / "child.py"
    program.write_text("import json, os, sys\nsys.stdin.read()\n"
                       "print(json.dumps({'ok': {'result': dict(os.environ)}, 'stdout': ''}))\n")
    monkeypatch.setattr(python_sandbox, "CHILD_PROGRAM", program)
    # When / Then: nothing but what the interpreter adds itself (its UTF-8 locale coercion)
    env = _run("pass")["result"]
    assert set(env) <= {"LC_CTYPE"}


def test_a_caught_refusal_still_fails_the_call():
    _refused("try:\n    open('/etc/passwd').read()\nexcept Exception:\n    pass\nresult = 'got away'", "/etc/passwd")


@pytest.mark.parametrize("rebind", [
    "import posixpath\nposixpath.abspath = lambda p: SCRATCH + '/x'",  # what os.path.realpath ends in
    "import os\nos.fspath = lambda p: SCRATCH + '/x'",  # what os.fsdecode calls
    "import builtins\nbuiltins.isinstance = lambda *a: False",
])
def test_rebinding_what_a_hook_could_use_changes_nothing(rebind):
    _refused(f"{rebind}\nresult = open(b'/etc/passwd').read()", "reading /etc/passwd")


@pytest.mark.parametrize("code", [
    "import sys\nsys.settrace(lambda *a: None)",
    "import sys\nsys.setprofile(lambda *a: None)",
    "import gc\ngc.get_objects()",
    "import gc\ngc.get_referrers(open)",
])
def test_the_ways_to_the_hooks_frames_and_objects_are_refused(code):
    _refused(code)


def test_listing_folders_outside_scratch_is_refused():
    _refused("import os\nprint(os.listdir('/etc'))", "os.listdir", "/etc")


# ---------------------------------------------------------------------------------------------- processes
def test_fork_bomb_is_refused():
    _refused("import os\nwhile True:\n    os.fork()", "os.fork")


def test_multiprocessing_is_refused():
    _refused("import multiprocessing\np = multiprocessing.Process(target=print)\np.start()\np.join()", "os.fork")


def test_multiprocessing_spawn_is_refused():
    # spawn starts its process through _posixsubprocess.fork_exec, which raises no audit event itself
    _refused("import multiprocessing as mp\np = mp.get_context('spawn').Process(target=print)\np.start()\np.join()",
             "new process")


@pytest.mark.parametrize("code", [
    "import subprocess\nsubprocess.run(['sh', '-c', 'echo escaped > /tmp/stepcrew-escaped'])",
    "import os\nos.system('echo escaped')",
    "import os\nos.execv('/bin/sh', ['sh', '-c', 'true'])",
    "import os\nos.posix_spawn('/bin/sh', ['sh', '-c', 'true'], {})",
    "import os, signal\nos.kill(1, signal.SIGTERM)",
])
def test_commands_and_signals_are_refused(code):
    _refused(code)


# ---------------------------------------------------------------------------------------------- resources
def test_huge_allocation_is_a_memory_limit():
    with pytest.raises(SandboxMemoryLimit) as info:
        _run("x = bytearray(10**10)")
    assert "256 MiB" in str(info.value)


def test_a_huge_mapping_is_a_memory_limit():
    with pytest.raises(SandboxMemoryLimit):
        _run("import mmap\nm = mmap.mmap(-1, 2 * 1024 ** 3)")


def test_infinite_loop_is_a_cpu_limit():
    with pytest.raises(SandboxCpuLimit) as info:  # a long wall time: on a loaded machine CPU seconds come slower
        _run("while True:\n    pass", limits=Limits(wall_s=30, cpu_s=1, memory_mb=256))
    assert "1 CPU seconds" in str(info.value)


def test_sleeping_is_a_wall_time_limit():
    with pytest.raises(SandboxTimeout) as info:
        _run("import time\ntime.sleep(1000)")
    assert "1.5 s" in str(info.value)


def test_closing_its_pipes_and_cancelling_its_alarm_does_not_outlive_the_wall_time():
    with pytest.raises(SandboxTimeout):
        _run("import os, signal, time\nsignal.alarm(0)\nfor fd in range(3, 10):\n    try:\n        os.close(fd)\n"
             "    except OSError:\n        pass\nos.close(1)\nos.close(2)\ntime.sleep(1000)")


def test_a_scratch_file_past_the_size_cap_is_a_file_limit():
    limits = Limits(wall_s=1.5, cpu_s=1, memory_mb=256, file_bytes=1024 * 1024)
    with pytest.raises(SandboxFileLimit):
        _run("with open('big.bin', 'wb') as f:\n    f.write(b'x' * (2 * 1024 * 1024))", limits=limits)


def test_too_many_scratch_files_are_refused():
    limits = Limits(wall_s=1.5, cpu_s=1, memory_mb=256, max_files=5)
    with pytest.raises(SandboxForbidden) as info:
        _run("for i in range(10):\n    open(f'f{i}.txt', 'w').close()", limits=limits)
    assert "more than 5 files" in str(info.value)


# ---------------------------------------------------------------------------------------------- the scratch folder
@pytest.mark.parametrize("target", ["/tmp/stepcrew-sandbox-escape.txt", "../escape.txt", "../../escape.txt"])
def test_writing_outside_scratch_is_refused(target):
    message = _refused(f"open({target!r}, 'w').write('escaped')", "writing")
    assert "escaped" not in message
    assert not Path("/tmp/stepcrew-sandbox-escape.txt").exists()


def test_writing_outside_scratch_by_absolute_path_is_refused(tmp_path):
    target = tmp_path / "escape.txt"
    _refused(f"open({str(target)!r}, 'w').write('escaped')", "writing")
    assert not target.exists()


def test_a_symlink_out_of_scratch_is_refused():
    _refused("import os\nos.symlink('/etc/passwd', 'p')\nprint(open('p').read())", "os.symlink")


def test_a_library_folder_cannot_be_opened_for_dir_fd_writes():
    # os.open(..., dir_fd=) is not in the audit event: a folder's fd outside scratch would be a way out
    import json

    target = Path(json.__file__).parent / "stepcrew-escaped.txt"
    try:
        _refused("import json, os\nfd = os.open(os.path.dirname(json.__file__), os.O_RDONLY)\n"
                 "os.close(os.open('stepcrew-escaped.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd))", "opening the folder")
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


def test_an_fd_is_judged_by_its_file():
    _refused("import os\nfd = os.open(DATASET_PATH, os.O_RDONLY)\nos.fchmod(fd, 0o666)", "os.chmod", "data.csv",
             dataset=DEMO_DATASET)


def test_writing_inside_scratch_works_and_the_folder_is_removed_afterwards():
    out = _run("import os\nos.mkdir('sub')\nwith open('sub/notes.txt', 'w') as f:\n    f.write('a,b\\n1,2\\n')\n"
               "result = {'text': open('sub/notes.txt').read(), 'scratch': SCRATCH, 'cwd': os.getcwd()}")
    assert out["result"]["text"] == "a,b\n1,2\n"
    assert out["result"]["cwd"] == out["result"]["scratch"]
    assert not os.path.exists(out["result"]["scratch"])


# ---------------------------------------------------------------------------------------------- ctypes
@pytest.mark.parametrize(("code", "fragment"), [
    ("import ctypes\nctypes.CDLL(None).getpid()", "ctypes.dlsym"),
    ("import ctypes\nctypes.CDLL('libc.so.6')", "ctypes.dlopen"),
    ("import ctypes\nctypes.string_at(id(1), 8)", "ctypes."),
])
def test_ctypes_is_refused(code, fragment):
    _refused(code, fragment)


# ---------------------------------------------------------------------------------------------- the dataset
def test_the_dataset_is_readable_and_read_only():
    header = DEMO_DATASET.read_text().splitlines()[0]
    out = _run("result = open(DATASET_PATH).readline().strip()", dataset=DEMO_DATASET)
    assert out["result"] == header
    _refused("open(DATASET_PATH, 'a').write('x')", "writing", dataset=DEMO_DATASET)
    _refused("import os\nos.chmod(DATASET_PATH, 0o666)", "os.chmod", dataset=DEMO_DATASET)


# ---------------------------------------------------------------------------------------------- legit computation
def test_statistics_mean_and_stdev_are_right():
    values = [3.5, 1.25, 9.0, 4.75, 6.5, 2.0]
    mean = sum(values) / len(values)
    stdev = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    out = _run(f"import statistics\nv = {values!r}\nresult = [statistics.mean(v), statistics.stdev(v)]\n"
               "print('n =', len(v))")
    assert out["result"] == pytest.approx([mean, stdev])
    assert out["stdout"] == f"n = {len(values)}\n"


def _least_squares(rows: list[dict[str, str]], x: str, y: str) -> tuple[float, float]:
    pairs = [(float(r[x]), float(r[y])) for r in rows if r[x] not in ("", "NA") and r[y] not in ("", "NA")]
    n = len(pairs)
    mx, my = sum(p[0] for p in pairs) / n, sum(p[1] for p in pairs) / n
    slope = sum((a - mx) * (b - my) for a, b in pairs) / sum((a - mx) ** 2 for a, _ in pairs)
    return slope, my - slope * mx


REGRESSION = """
import csv
with open(DATASET_PATH, newline='') as f:
    pairs = [(float(r['flipper_length_mm']), float(r['body_mass_g'])) for r in csv.DictReader(f)
             if r['flipper_length_mm'] not in ('', 'NA') and r['body_mass_g'] not in ('', 'NA')]
n = len(pairs)
sx = sum(p[0] for p in pairs); sy = sum(p[1] for p in pairs)
sxx = sum(p[0] * p[0] for p in pairs); sxy = sum(p[0] * p[1] for p in pairs)
slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
result = {'slope': slope, 'intercept': (sy - slope * sx) / n}
"""


def test_least_squares_regression_in_plain_python_is_right(penguin_rows):
    slope, intercept = _least_squares(penguin_rows, "flipper_length_mm", "body_mass_g")
    out = _run(REGRESSION, dataset=DEMO_DATASET)
    assert out["result"] == {"slope": pytest.approx(slope), "intercept": pytest.approx(intercept)}


def test_least_squares_regression_with_numpy_is_right(penguin_rows):
    pytest.importorskip("numpy")
    slope, intercept = _least_squares(penguin_rows, "flipper_length_mm", "body_mass_g")
    code = ("import numpy as np\nimport csv\nrows = list(csv.DictReader(open(DATASET_PATH)))\n"
            "ok = [r for r in rows if r['flipper_length_mm'] not in ('', 'NA') and r['body_mass_g'] not in ('', 'NA')]\n"
            "x = np.array([float(r['flipper_length_mm']) for r in ok]); y = np.array([float(r['body_mass_g']) for r in ok])\n"
            "result = np.polyfit(x, y, 1)")  # an ndarray: converted to a list
    out = _run(code, dataset=DEMO_DATASET, limits=Limits(wall_s=5, cpu_s=3, memory_mb=512))
    assert out["result"] == [pytest.approx(slope), pytest.approx(intercept)]


# ---------------------------------------------------------------------------------------------- errors and caps
def test_code_over_the_byte_cap_is_refused_before_anything_runs():
    with pytest.raises(CodeTooLarge):
        run_code("x" * (MAX_CODE_BYTES + 1))
    with pytest.raises(CodeTooLarge):  # characters are not bytes: 8,193 two-byte characters
        run_code("#" + "é" * (MAX_CODE_BYTES // 2))


def test_an_exception_is_its_last_line_and_user_line_without_host_paths():
    with pytest.raises(SandboxCodeError) as info:
        _run("x = 1\nopen(SCRATCH + '/missing.txt')")
    message = str(info.value)
    assert message == "FileNotFoundError: [Errno 2] No such file or directory: 'missing.txt' (line 2)"
    with pytest.raises(SandboxCodeError) as info:
        _run("import json\n\njson.loads('{')")
    assert str(info.value).startswith("JSONDecodeError: Expecting property name")
    assert str(info.value).endswith("(line 3)")
    assert "/" not in str(info.value)


def test_a_syntax_error_names_its_line():
    with pytest.raises(SandboxCodeError) as info:
        _run("x = 1\ndef (:\n")
    assert str(info.value) == "SyntaxError: invalid syntax (line 2)"


def test_stdout_is_capped_and_says_so():
    out = _run("print('x' * 10000)")
    assert out["stdout"] == "x" * MAX_STDOUT_BYTES
    assert out["stdout_truncated"] is True


def test_a_result_that_is_not_json_is_a_code_error():
    with pytest.raises(SandboxCodeError) as info:
        _run("result = object()")
    assert "not JSON-serialisable" in str(info.value)


def test_a_result_over_its_cap_is_refused():
    with pytest.raises(SandboxResultTooLarge) as info:
        _run(f"result = 'x' * {MAX_RESULT_BYTES + 10}")
    assert str(MAX_RESULT_BYTES) in str(info.value)


def test_no_result_means_no_result_key_and_nan_becomes_null():
    assert _run("print('hi')") == {"stdout": "hi\n", "stdout_truncated": False}
    assert _run("result = [float('nan'), 1.5]")["result"] == [None, 1.5]
