"""The one mapping (stepcrew.wiring) covers the ASL files and the functions/ folders (no synth needed)."""

from __future__ import annotations

import json
import re

import pytest
from stepcrew import wiring

from stepcrew_infra import constants as C

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("name", sorted(wiring.STATE_MACHINES))
def test_every_asl_placeholder_is_mapped(name):
    text = wiring.STATE_MACHINES[name].read_text()
    json.loads(text)
    used = set(re.findall(r"\$\{([^}]*)\}", text))
    assert used, f"{name}.asl.json has no placeholders at all?"
    assert used <= wiring.SUBSTITUTIONS.keys(), sorted(used - wiring.SUBSTITUTIONS.keys())


def test_every_mapped_target_exists():
    for key, target in wiring.SUBSTITUTIONS.items():
        pool = wiring.FUNCTIONS if target.kind == "function" else wiring.STATE_MACHINES
        assert target.name in pool, key


def test_every_mapped_key_is_used_by_some_asl():
    used = set().union(*(wiring.placeholders(n) for n in wiring.STATE_MACHINES))
    assert set(wiring.SUBSTITUTIONS) == used, sorted(set(wiring.SUBSTITUTIONS) - used)


@pytest.mark.parametrize("name", sorted(wiring.FUNCTIONS))
def test_every_function_has_its_handler_folder(name):
    assert (wiring.FUNCTIONS[name].folder / "app.py").is_file(), f"functions/{name}/app.py is missing"


def test_functions_split_into_roles_tools_and_api_exactly_once():
    groups = [set(C.ROLE_FUNCTIONS), set(C.TOOL_FUNCTIONS), {C.API_FUNCTION}]
    assert sum(len(g) for g in groups) == len(wiring.FUNCTIONS)
    assert set().union(*groups) == set(wiring.FUNCTIONS)
    assert C.ASYNC_FUNCTIONS <= set(wiring.FUNCTIONS)


def test_provider_secret_env_vars_are_the_ones_the_functions_read():
    from stepcrew.llm.secrets import KEY_ENV

    assert C.PROVIDER_SECRETS == {p: secret_var for p, (_, secret_var) in KEY_ENV.items()}



def test_infra_holds_no_second_mapping():
    """The stack takes ``definition_substitutions`` from :func:`stepcrew.wiring.substitutions` only: no infra
    module maps a substitution key itself (``"GuardFunctionArn": ...``, ``${GuardFunctionArn}``), finds the ASL
    files by its own path, or builds a definition another way."""
    sources = {p.name: p.read_text() for p in (C.INFRA_DIR / "stepcrew_infra").glob("*.py")}
    sources["app.py"] = (C.INFRA_DIR / "app.py").read_text()
    for file, text in sources.items():
        for key in wiring.SUBSTITUTIONS:
            assert not re.search(rf"""["']{key}["']\s*:|\$\{{{key}\}}|\b{key}\s*=""", text), \
                f"infra/{file} maps substitution key {key} itself: use stepcrew.wiring"
        assert not re.search(r"""["'](statemachines|[a-z]+\.asl\.json)["']""", text), f"infra/{file} finds ASL files"
        assert "DefinitionBody.from_file" not in text and "from_chainable" not in text, file
    orchestration = sources["orchestration.py"]
    assert "wiring.substitutions(" in orchestration and "wiring.STATE_MACHINES[name].read_text()" in orchestration
    assert orchestration.count("definition_substitutions=") == 1


def test_api_gateway_routes_are_the_routes_the_api_handler_serves():
    """infra/constants.API_ROUTES (what API Gateway routes to the api function) must equal the handler's own
    routes, as generated into docs/openapi.json: a route served by the code but not by API Gateway would 404 on
    AWS, and the reverse would reach the handler's own 404."""
    openapi = json.loads((wiring.REPO_ROOT / "docs" / "openapi.json").read_text())
    served = {(method.upper(), re.sub(r"\{[^}]+\}", "{}", path)) for path, ops in openapi["paths"].items()
              for method in ops}
    routed = {(method, re.sub(r"\{[^}]+\}", "{}", path)) for method, path, _ in C.API_ROUTES}
    assert routed == served
