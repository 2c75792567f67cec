"""``remember``: a worker asks for a fact or preference to be kept in the tenant's long-term memory.

The tool itself writes nothing (no I/O, no table access): it validates the fact and answers that it is queued.
The run's end (:func:`stepcrew.domain.remember.record_run_memory`, the memory function) reads the ``remember``
calls of the run's conversations and writes their facts **after** the PII guard, deduplicated by subject, and only
when the run SUCCEEDED. So a retried tool call, a resumed run or a replayed turn can never write twice, and an
unscreened text never reaches the store. A run with ``memory: off`` does not offer the tool.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from stepcrew.memory.models import FACT_MAX_CHARS, SUBJECT_MAX_CHARS
from stepcrew.models import ToolContext
from stepcrew.tools.base import Tool, ToolArgs


class Remember(Tool):
    """``remember``: ``{fact, subject?, kind?}`` -> ``{"queued": true, "subject": str}``."""

    name = "remember"
    description = ("Keep a durable fact or preference of this user or organisation for later runs (e.g. 'fiscal "
                   "year starts in April'). Not figures of this dataset. Stored when the run succeeds.")

    class Args(ToolArgs):
        fact: str = Field(min_length=3, max_length=FACT_MAX_CHARS)
        subject: str | None = Field(default=None, min_length=1, max_length=SUBJECT_MAX_CHARS,
                                    description="what it is about; the same subject replaces the old fact")
        kind: Literal["fact", "preference"] = "fact"

    def run(self, args: Args, ctx: ToolContext) -> dict[str, Any]:
        from stepcrew.memory.dedup import subject_of

        return {"queued": True, "subject": args.subject or subject_of(args.fact),
                "note": "kept for this tenant when the run succeeds, after the PII guard"}
