"""The local runtime honours POWERTOOLS_LOG_LEVEL (issue 12, part 6): `POWERTOOLS_LOG_LEVEL=INFO stepcrew dev` prints
the structured logs; unset, the handlers log warnings only (the CLI's progress view is the output)."""

from __future__ import annotations

import pytest
from stepcrew.local.runtime import LocalRuntime

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("given,expected", [("INFO", "INFO"), (None, "WARNING")])
def test_the_local_runtime_honours_the_users_log_level(monkeypatch, given, expected):
    import os

    if given is None:
        monkeypatch.delenv("POWERTOOLS_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", given)
    with LocalRuntime(store_only=True):
        assert os.environ["POWERTOOLS_LOG_LEVEL"] == expected
    assert os.environ.get("POWERTOOLS_LOG_LEVEL") == given  # restored on exit
