"""Fixtures of the integration tests (moto + the local runtime). Mark test modules with
``pytestmark = pytest.mark.integration``."""

from __future__ import annotations

import pytest

from stepcrew.local.runtime import LocalRuntime


@pytest.fixture
def local_rt():
    """A fresh :class:`LocalRuntime` with fast waits (real ASL and functions created; nothing kept on disk)."""
    with LocalRuntime(fast_waits=True) as rt:
        yield rt

