#!/usr/bin/env python3
"""Build the guard layer: ``layers/guard/requirements.txt`` -> ``layers/guard/python`` (gitignored), no Docker.

The guard function alone gets this layer *instead of* the deps layer (``stepcrew_infra.guard``): Lambda allows a
function and all its layers 250 MB unzipped (262,144,000 bytes; Lambda quotas page), and measured for the Lambda
platform (manylinux aarch64, CPython 3.14) the deps layer is ~122 MB (duckdb ~63 MB, botocore ~22 MB) while
presidio-analyzer + phonenumbers + tldextract install ~264 MB (spaCy ~126 MB, numpy ~48 MB, phonenumbers ~22 MB,
thinc ~16 MB): even alone, over the limit. So this layer holds the guard function's own imports only (the shared
packages of ``layers/deps/requirements.txt`` it needs, at the same pins, plus the guard packages), and
:func:`strip_debug` removes the DWARF debug sections that spaCy, thinc, blis, srsly... ship in their extension
modules (spaCy ~126 -> ~22 MB; the whole layer ~290 -> ~159 MB). Only files that hold ``.debug_info`` are touched:
rewriting an already-stripped library (numpy's) with llvm-strip broke its ELF load alignment in a trial here.

Steps, reusing ``layers/deps/build.py``: pip with the same platform arguments (:func:`build.pip_command`) plus
``--constraint`` = the deps layer's pins (extras dropped, pip refuses them in constraints); trim bytecode and
``tests``; strip debug sections; check the size. pip's RECORD hashes of stripped files no longer match (only
``pip uninstall``/verification read them; Lambda never does).

Stripping needs a strip that reads aarch64 ELF: ``llvm-strip`` (any host), ``aarch64-linux-gnu-strip``, or the
system ``strip`` on an aarch64 host. Without one the layer stays unstripped and fails the size check.

Usage: ``python layers/guard/build.py [--python-version 3.14] [--dry-run]``. Needs network access to the package
index; the stack's synth does not need this build (it uses ``layers/guard/placeholder`` and warns).
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
TARGET = HERE / "python"
REQUIREMENTS = HERE / "requirements.txt"
DEPS_REQUIREMENTS = HERE.parent / "deps" / "requirements.txt"
#: Packages of the deps layer this layer leaves out, and why (tests/infra/test_guard.py checks every other deps
#: package is listed here or in requirements.txt, and that the guard function imports none of these).
LEFT_OUT: dict[str, str] = {
    "duckdb": "~63 MB; the guard checks a dataset file's first bytes (stepcrew.tools.datasets), it loads no table",
    "anthropic": "the guard calls no model",
    "openai": "the guard calls no model",
    "tenacity": "not imported by the guard function",
}


def _load_deps_build() -> ModuleType:
    """``layers/deps/build.py`` as a module (under its own name: ``layers`` is no package)."""
    spec = importlib.util.spec_from_file_location("stepcrew_deps_build", HERE.parent / "deps" / "build.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


deps = _load_deps_build()


def requirement_name(line: str) -> str | None:
    """The normalized project name of a requirements line (``PyYAML==6.0.3`` -> ``pyyaml``), None for a comment,
    a blank line or an option."""
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return re.sub(r"[-_.]+", "-", match.group(0)).lower() if match else None


def constraints_text(deps_requirements: Path = DEPS_REQUIREMENTS) -> str:
    """The deps layer's requirement lines as pip constraints: extras removed (``aws-lambda-powertools[tracer]==3.37.0``
    -> ``aws-lambda-powertools==3.37.0``), comments and options dropped."""
    out = []
    for raw in deps_requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if requirement_name(line):
            out.append(re.sub(r"\[[^\]]*\]", "", line))
    return "\n".join(out) + "\n"


def pip_command(python_version: str, constraints: Path, target: Path = TARGET,
                requirements: Path = REQUIREMENTS, python: str = sys.executable) -> list[str]:
    """The deps layer's pip command line (Lambda platform, binary wheels only) for this layer, with ``constraints``."""
    return [*deps.pip_command(python_version, target=target, requirements=requirements, python=python),
            "--constraint", str(constraints)]


# --------------------------------------------------------------------------------------------- stripping
def has_debug_info(path: Path) -> bool:
    """True when ``path`` is a 64-bit ELF file with a ``.debug_info`` section (read from its section headers)."""
    try:
        with path.open("rb") as f:
            ident = f.read(16)
            if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] != 2:
                return False
            order = "<" if ident[5] == 1 else ">"
            header = f.read(48)
            if len(header) < 48:
                return False
            shoff = struct.unpack_from(order + "Q", header, 24)[0]
            shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", header, 42)
            if not shoff or not shnum or shstrndx >= shnum:
                return False
            f.seek(shoff)
            table = f.read(shentsize * shnum)

            def section(i: int) -> tuple[int, int, int]:  # (name offset, file offset, size)
                name, _, _, _, offset, size = struct.unpack_from(order + "IIQQQQ", table, i * shentsize)
                return name, offset, size

            _, names_at, names_size = section(shstrndx)
            f.seek(names_at)
            names = f.read(names_size)
            return any(names[n:names.find(b"\0", n)] == b".debug_info" for n, _, _ in map(section, range(shnum)))
    except (OSError, struct.error):
        return False


def strip_command() -> list[str] | None:
    """A strip that reads aarch64 ELF files, with ``--strip-debug``; None when there is none here."""
    names = ["llvm-strip", *(f"llvm-strip-{v}" for v in range(22, 12, -1)), "aarch64-linux-gnu-strip"]
    if platform.machine().lower() in ("aarch64", "arm64"):
        names.append("strip")
    for name in names:
        tool = shutil.which(name)
        if tool:
            return [tool, "--strip-debug"]
    return None


def shared_objects(target: Path) -> list[Path]:
    """Extension modules and bundled libraries under ``target`` (``*.so``, ``*.so.N``)."""
    return sorted(p for p in target.rglob("*") if p.is_file() and (p.suffix == ".so" or ".so." in p.name))


def strip_debug(target: Path) -> tuple[int, int]:
    """Remove debug sections from the shared objects under ``target`` that have them. Returns (files stripped,
    bytes saved); (0, 0) when no suitable strip is installed (a message says so)."""
    files = [p for p in shared_objects(target) if has_debug_info(p)]
    command = strip_command()
    if not files:
        return 0, 0
    if command is None:
        print(f"no strip for aarch64 ELF found (install llvm: llvm-strip); {len(files)} files keep their debug "
              "sections", file=sys.stderr)
        return 0, 0
    before = sum(p.stat().st_size for p in files)
    for i in range(0, len(files), 50):
        subprocess.run([*command, *map(str, files[i:i + 50])], check=True)
    return len(files), before - sum(p.stat().st_size for p in files)


def main(argv: list[str] | None = None) -> int:
    """Build the layer (see the module docstring). Returns 0, or 1 when the built folder is over the size limit;
    pip or strip failing raises CalledProcessError."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default=None, help="default: the stack's Lambda runtime")
    parser.add_argument("--dry-run", action="store_true", help="print the pip command and stop")
    args = parser.parse_args(argv)
    version = args.python_version or deps.runtime_python_version()
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(constraints_text())
        command = pip_command(version, constraints, target=TARGET)
        print(" ".join(command))
        if args.dry_run:
            return 0
        if TARGET.exists():
            shutil.rmtree(TARGET)
        subprocess.run(command, check=True)
    deps.trim(TARGET)
    stripped, saved = strip_debug(TARGET)
    print(f"stripped debug sections from {stripped} files: {saved / 1e6:.1f} MB saved")
    return deps.check_size(TARGET)


if __name__ == "__main__":
    sys.exit(main())
