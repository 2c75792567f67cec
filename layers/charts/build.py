#!/usr/bin/env python3
"""Build the charts layer: ``layers/charts/requirements.txt`` -> ``layers/charts/python`` (gitignore it), no Docker.

Only the ``make_chart`` function gets this layer, *instead of* the deps layer (``stepcrew_infra.charts``), so no other
function ships matplotlib (the cold-start rule: no other handler imports it, tests/unit/test_handler_imports.py).
Steps, reusing ``layers/deps/build.py``: pip with the same platform arguments (:func:`build.pip_command`: binary
wheels for manylinux aarch64 and the stack's Python) plus ``--constraint`` = the deps layer's pins, so the shared
packages are the versions the other functions run; trim bytecode and ``tests``; check the size against Lambda's
250 MB for a function and its layers.

Usage: ``python layers/charts/build.py [--python-version 3.14] [--dry-run]``. Needs network access to the package
index; the stack's synth does not need this build (it uses ``layers/charts/placeholder`` and warns).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
TARGET = HERE / "python"
REQUIREMENTS = HERE / "requirements.txt"
DEPS_REQUIREMENTS = HERE.parent / "deps" / "requirements.txt"


def _load_deps_build() -> ModuleType:
    """``layers/deps/build.py`` as a module (under its own name: ``layers`` is no package)."""
    spec = importlib.util.spec_from_file_location("stepcrew_deps_build_charts", HERE.parent / "deps" / "build.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


deps = _load_deps_build()


def constraints_text(deps_requirements: Path = DEPS_REQUIREMENTS) -> str:
    """The deps layer's pinned lines as pip constraints (extras removed; comments and options dropped)."""
    out = []
    for raw in deps_requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(re.sub(r"\[[^\]]*\]", "", line))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Build the layer. Returns 0, or 1 when it is over the size limit; pip failing raises CalledProcessError."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default=None, help="default: the stack's Lambda runtime")
    parser.add_argument("--dry-run", action="store_true", help="print the pip command and stop")
    args = parser.parse_args(argv)
    version = args.python_version or deps.runtime_python_version()
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(constraints_text())
        command = [*deps.pip_command(version, TARGET, REQUIREMENTS), "--constraint", str(constraints)]
        print(" ".join(command))
        if args.dry_run:
            return 0
        if TARGET.exists():
            shutil.rmtree(TARGET)
        subprocess.run(command, check=True)
    deps.trim(TARGET)
    return deps.check_size(TARGET)


if __name__ == "__main__":
    sys.exit(main())
