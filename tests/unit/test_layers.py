"""No import in the stepcrew package runs from a lower layer back up (read from the source with ast, lazy imports
inside functions included).

Layers, lowest first: shapes (models, events, text, wiring, settings, data) -> llm (the Model port and adapters)
-> engines (the engine port, the LLM engine, the rule engine) -> tools, store -> crew -> domain, service, notify
-> local, api, cli, evals (an eval runs the local runtime). A module may import its own layer or a lower one.
A package that spans layers (``memory``) names its modules' layers one by one (``memory.store``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stepcrew

PACKAGE = Path(stepcrew.__file__).parent
LAYERS: dict[str, int] = {
    "models": 0, "events": 0, "text": 0, "wiring": 0, "settings": 0, "data": 0, "__init__": 0, "logsafe": 0,
    "llm": 1, "guards": 1, "embeddings": 1,
    "engines": 2,
    "tools": 3, "store": 3,
    "crew": 4,
    "domain": 5, "service": 5, "notify": 5, "resilience": 5,
    "evals": 7,
    "local": 7, "api": 7, "cli": 7, "progress_waits": 7,
    # memory (issue 9) spans layers, module by module: its shapes and pure rules sit with the ports (the engines
    # read them), its store adapters beside the store, its wiring beside the ladder's (it reuses its embeddings).
    "memory": 1, "memory.models": 0, "memory.dedup": 1, "memory.extract": 1, "memory.window": 1,
    "memory.store": 3, "memory.index": 3, "memory.s3vectors": 3, "memory.service": 3,
    "memory.wiring": 5, "memory.writer": 5,
}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "stepcrew":
        return None
    if len(parts) > 2 and f"{parts[1]}.{parts[2]}" in LAYERS:
        return LAYERS[f"{parts[1]}.{parts[2]}"]
    return LAYERS.get(parts[1] if len(parts) > 1 else "__init__")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_bundle" in path.parts:
            continue
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        out.append((".".join(rel.parts).removesuffix(".__init__"), path))
    return out


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_every_top_level_part_of_the_package_has_a_layer():
    tops = {name.split(".")[1] for name, _ in _modules() if "." in name}
    assert tops <= set(LAYERS), f"give these a layer: {sorted(tops - set(LAYERS))}"


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_imports_point_down_or_sideways(module, path):
    own = _layer(module)
    assert own is not None
    upward = [name for name in _imports(path) if (_layer(name) or 0) > own]
    assert not upward, f"{module} (layer {own}) imports from a higher layer: {upward}"


def test_the_model_port_carries_no_domain_shape():
    from stepcrew.llm.base import ModelRequest

    assert set(ModelRequest.model_fields) == {"messages", "tools", "settings", "response_format"}
    from stepcrew.llm.base import ResponseFormat  # a name and a JSON Schema: no domain type

    assert set(ResponseFormat.model_fields) == {"name", "description", "json_schema", "strict"}
