#!/usr/bin/env python3
"""The stepcrew CDK app: ``python infra/app.py`` (offline) or, from ``infra/``, ``npx aws-cdk@2.1148 synth``.

Stage: ``-c stage=<name>`` or env ``STEPCREW_STAGE`` (default ``dev``); the stack is ``stepcrew-<stage>``. The cloud
assembly goes to ``infra/cdk.out`` (or the CDK CLI's ``CDK_OUTDIR``). cdk-nag's AwsSolutionsChecks runs at synth
and fails it on any unacknowledged finding.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stepcrew_infra.stack import build_app  # noqa: E402


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
