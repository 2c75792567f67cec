"""Session-wide test switches.

- Real model calls are forbidden: ``stepcrew.llm.base.ALLOW_MODEL_REQUESTS = False`` (and the env var for any
  child process), so an adapter that tries the network fails with ModelRequestsForbiddenError.
- AWS: fake credentials and a region, so nothing can reach a real account; moto serves every AWS call.
- ``STEPCREW_FAST_WAITS=1``: the explicit test switch that shortens ASL Retry/Wait sleeps in the local runtime.
"""

import os

os.environ["STEPCREW_ALLOW_MODEL_REQUESTS"] = "0"
os.environ["STEPCREW_FAST_WAITS"] = "1"
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SECURITY_TOKEN"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)
for _key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "STEPCREW_PROVIDER", "STEPCREW_FALLBACK_CHAIN",
             "STEPCREW_TENANT_DAILY_USD", "STEPCREW_TENANT_MONTHLY_USD"):
    os.environ.pop(_key, None)

import stepcrew.llm.base as _llm_base  # noqa: E402

_llm_base.ALLOW_MODEL_REQUESTS = False


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def local_guard():
    """The offline guard backend (Presidio patterns + rules), built once per test process (~1.4 s import)."""
    from stepcrew.guards.local import LocalGuard

    return LocalGuard()


@pytest.fixture(autouse=True)
def _fresh_circuit_breakers():
    """Powertools keeps each circuit's failure streak in module globals: start every test with none."""
    from stepcrew.resilience.breaker import reset_local_counters

    reset_local_counters()
    yield
