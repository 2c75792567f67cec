#!/usr/bin/env python3
"""Build the deps layer: ``layers/deps/requirements.txt`` -> ``layers/deps/python`` (gitignored), no Docker.

pip downloads binary wheels for the Lambda platform instead of building anything::

    pip install --platform manylinux2014_aarch64 --only-binary=:all: --implementation cp \
        --python-version <runtime> -t layers/deps/python -r layers/deps/requirements.txt

``<runtime>`` is the functions' runtime (``stepcrew_infra.constants.RUNTIME_PYTHON_VERSION``, e.g. 3.14) and the
platform matches their ARM64 architecture. The folder is replaced, then trimmed (bytecode caches and test folders
go; ``*.dist-info`` stays, importlib.metadata needs it) and its size checked against Lambda's limit: a function
and all its layers unzipped must stay within 250 MB (262,144,000 bytes; Lambda quotas page).

Usage: ``python layers/deps/build.py [--python-version 3.14] [--dry-run]``. Needs network access to the package
index; the stack's synth does not need this build (it uses ``layers/deps/placeholder`` and warns).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "python"
REQUIREMENTS = HERE / "requirements.txt"
#: pip matches explicit --platform tags exactly: manylinux2014 (2_17) for most wheels, 2_28 for duckdb (its only
#: aarch64 tag). Lambda's Amazon Linux 2023 has glibc 2.34, so both run there.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
#: Lambda: deployment package + layers, unzipped, at most 250 MB
#: (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
MAX_UNZIPPED_BYTES = 262_144_000
#: Room left for the shared package layer and the biggest function's own code.
HEADROOM_BYTES = 20 * 1024 * 1024


def runtime_python_version() -> str:
    """The functions' Python version, from the infra constants (``infra/stepcrew_infra/constants.py``)."""
    sys.path.insert(0, str(HERE.parents[1] / "infra"))
    from stepcrew_infra.constants import RUNTIME_PYTHON_VERSION  # noqa: PLC0415 (needs aws-cdk-lib)

    return RUNTIME_PYTHON_VERSION


def pip_command(python_version: str, target: Path = TARGET, requirements: Path = REQUIREMENTS,
                python: str = sys.executable) -> list[str]:
    """The pip command line that fills ``target`` with wheels for Lambda ``python_version`` on ARM64."""
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    return [python, "-m", "pip", "install", *platforms, "--only-binary=:all:", "--implementation", "cp",
            "--python-version", python_version, "--target", str(target), "--requirement", str(requirements),
            "--no-compile", "--disable-pip-version-check", "--quiet"]


def trim(target: Path) -> None:
    """Delete what Lambda never imports: ``__pycache__`` folders and packages' ``tests`` folders."""
    for pattern in ("**/__pycache__", "**/tests"):
        for path in sorted(target.glob(pattern), reverse=True):
            if path.is_dir() and ".dist-info" not in str(path):
                shutil.rmtree(path, ignore_errors=True)


def folder_size(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """Build the layer (see the module docstring). Returns 0, or 1 when the built folder is over the size limit;
    pip failing raises CalledProcessError."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default=None, help="default: the stack's Lambda runtime")
    parser.add_argument("--dry-run", action="store_true", help="print the pip command and stop")
    args = parser.parse_args(argv)
    version = args.python_version or runtime_python_version()
    command = pip_command(version)
    print(" ".join(command))
    if args.dry_run:
        return 0
    if TARGET.exists():
        shutil.rmtree(TARGET)
    subprocess.run(command, check=True)
    trim(TARGET)
    return check_size(TARGET)


def check_size(target: Path) -> int:
    """Print the built folder's unzipped size; 0 when it leaves :data:`HEADROOM_BYTES` under Lambda's 250 MB
    (:data:`MAX_UNZIPPED_BYTES`), else 1 with the reason on stderr."""
    size = folder_size(target)
    print(f"{target}: {size / 1e6:.1f} MB unzipped")
    if size > MAX_UNZIPPED_BYTES - HEADROOM_BYTES:
        print(f"too big: Lambda allows {MAX_UNZIPPED_BYTES:,} bytes unzipped for a function and its layers",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
