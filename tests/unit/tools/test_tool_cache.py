"""The tool-result cache (stepcrew.tools.cache): a deterministic tool's repeated call (same tool, arguments and
dataset version) is served from the tenant's cache entries; nothing else is."""

from __future__ import annotations

from typing import Any, ClassVar

from stepcrew.models import ToolCall, ToolContext, ToolInvocation
from stepcrew.store.memory import MemoryRunStore
from stepcrew.tools.base import Tool, ToolArgs, ToolFailure, invoke_event
from stepcrew.tools.cache import ToolResultCache, file_version


class Counting(Tool):
    name = "counting"
    description = "doubles x"
    cache_ttl_s: ClassVar[int | None] = 3600
    version = "v1"

    class Args(ToolArgs):
        x: int

    def __init__(self) -> None:
        self.runs = 0

    def result_version(self, ctx: ToolContext, arguments: dict) -> str | None:
        return self.version

    def run(self, args: Any, ctx: ToolContext) -> Any:
        self.runs += 1
        if args.x < 0:
            raise ToolFailure("negative")
        return {"value": args.x * 2}


def event(x: int, tenant: str | None = "acme", call_id: str = "c1") -> dict:
    return ToolInvocation(context=ToolContext(run_id="r1", subtask_id="s1", tenant=tenant),
                          call=ToolCall(call_id=call_id, name="counting", arguments={"x": x})).model_dump(mode="json")


def test_a_repeated_call_is_served_from_the_cache_under_its_own_call_id():
    tool, cache = Counting(), ToolResultCache(MemoryRunStore())
    first = invoke_event(tool, event(21), cache=cache)
    second = invoke_event(tool, event(21, call_id="c2"), cache=cache)
    assert tool.runs == 1
    assert first["content"] == second["content"] == {"value": 42}
    assert not first["cached"] and second["cached"] and second["call_id"] == "c2"


def test_other_arguments_a_new_dataset_version_or_another_tenant_run_the_tool():
    tool, cache = Counting(), ToolResultCache(MemoryRunStore())
    invoke_event(tool, event(1), cache=cache)
    invoke_event(tool, event(2), cache=cache)            # other arguments
    tool.version = "v2"
    invoke_event(tool, event(1), cache=cache)            # the dataset changed
    assert not invoke_event(tool, event(1, tenant="globex"), cache=cache)["cached"]  # never another tenant's entry
    assert tool.runs == 4
    assert invoke_event(tool, event(1), cache=cache)["cached"]  # v2 of acme is cached now


def test_failures_untenanted_calls_and_tools_without_a_ttl_are_never_cached():
    tool, cache = Counting(), ToolResultCache(MemoryRunStore())
    for _ in range(2):
        assert invoke_event(tool, event(-1), cache=cache)["ok"] is False
    assert tool.runs == 2
    for _ in range(2):
        invoke_event(tool, event(5, tenant=None), cache=cache)
    assert tool.runs == 4
    tool.version = None  # the tool says this call depends on something it cannot version
    for _ in range(2):
        invoke_event(tool, event(6), cache=cache)
    assert tool.runs == 6

    class NoTtl(Counting):
        cache_ttl_s = None

    plain = NoTtl()
    for _ in range(2):
        invoke_event(plain, event(7), cache=cache)
    assert plain.runs == 2


def test_the_dataset_version_is_the_content_hash(tmp_path):
    import hashlib
    import os

    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n")
    v1 = file_version(path)
    assert v1 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    path.write_text("a,b\n1,3\n")
    os.utime(path, ns=(1, 2))  # a new mtime (and content): a new version
    assert file_version(path) == hashlib.sha256(b"a,b\n1,3\n").hexdigest() != v1


def test_the_dataset_tools_version_on_the_runs_dataset(tmp_path):
    from stepcrew.tools.dataset import QueryDataset

    path = tmp_path / "d.csv"
    path.write_text("a\n1\n")
    ctx = ToolContext(run_id="r1", subtask_id="s1", tenant="acme", data_uri=f"file://{path}")
    sql = {"sql": "SELECT count(*) FROM data"}
    assert QueryDataset().result_version(ctx, sql) == f"d.csv:{file_version(path)}"
    assert QueryDataset().result_version(ctx.model_copy(update={"data_uri": None}), sql) is None
    for volatile in ("SELECT random() FROM data", "SELECT * FROM data USING SAMPLE 10", "SELECT now()"):
        assert QueryDataset().result_version(ctx, {"sql": volatile}) is None, volatile
