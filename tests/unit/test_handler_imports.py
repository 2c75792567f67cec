"""What a handler's cold start loads: each ``functions/<name>/app.py`` imported in a fresh interpreter (settings
validated, clients and stores built, as a Lambda init does) must not load the local runtime's moto, a model
provider SDK it is not configured for (the environment here configures none: runs use the rule engine unless
their provider says otherwise, and an SDK is imported at the first call that needs it), DuckDB outside the
dataset tools, or the X-Ray SDK (function-level active tracing records each invocation without it).

Behaviour, not time: the time is bench/local_run.py's (``--imports-only``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stepcrew.wiring import FUNCTIONS, FUNCTIONS_DIR

#: The variables the handler tests give (tests/unit/domain/test_domain_handlers.py, tests/unit/api/test_handler.py).
ENV = {"STEPCREW_TABLE_NAME": "stepcrew-runs", "STEPCREW_STAGE": "test", "POWERTOOLS_SERVICE_NAME": "stepcrew-test",
       "POWERTOOLS_METRICS_NAMESPACE": "stepcrew-test", "STEPCREW_EVENT_BUS": "default",
       "STEPCREW_GUARD_BACKEND": "local", "STEPCREW_ARTIFACTS_BUCKET": "stepcrew-artifacts",
       "STEPCREW_NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:stepcrew-test-notifications.fifo",
       "STEPCREW_RUN_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:stepcrew-run",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
DATASET_TOOLS = {"tool_describe_dataset", "tool_query_dataset"}
NEVER = ("moto", "anthropic", "openai", "aws_xray_sdk")
#: matplotlib (and its Pillow, fontTools, kiwisolver) is loaded by no cold start, not even make_chart's: the chart
#: tool imports it at its first chart (stepcrew.tools.make_chart.render).
PLOTTING = ("matplotlib", "PIL", "fontTools", "kiwisolver", "contourpy")
CODE = ("import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('app', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert callable(module.handler)\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n")


def _top_level_modules(function: str, tmp_path) -> set[str]:
    # POWERTOOLS_TRACE_DISABLED is left unset on purpose: the X-Ray SDK must stay out even where tracing is on
    env = {k: v for k, v in os.environ.items() if k != "POWERTOOLS_TRACE_DISABLED"}
    env.update(ENV, STEPCREW_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", CODE, str(FUNCTIONS_DIR / function / "app.py")], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_dataset_tools_are_functions():
    assert DATASET_TOOLS <= set(FUNCTIONS)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_a_cold_start_loads_only_what_the_handler_needs(function, tmp_path):
    loaded = _top_level_modules(function, tmp_path)
    assert {"stepcrew", "aws_lambda_powertools", "pydantic"} <= loaded  # the probe saw the real import
    forbidden = set(NEVER) | set(PLOTTING) | (set() if function in DATASET_TOOLS else {"duckdb"})
    assert loaded & forbidden == set(), function



def test_the_chart_tool_loads_matplotlib_only_when_it_draws():
    """The make_chart function is a function, and its module imports matplotlib lazily (inside render)."""
    import ast

    from stepcrew.tools import make_chart

    assert FUNCTIONS["tool_make_chart"].tool == "make_chart"
    tree = ast.parse(open(make_chart.__file__).read())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name.split(".")[0] for n in top for a in n.names} | {
        (n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
    assert names.isdisjoint(PLOTTING)
