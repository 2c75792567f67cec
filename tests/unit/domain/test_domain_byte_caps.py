"""Limits that fail soft and count bytes (issue 12, part 5): tool-call arguments, worker answers, reports."""

from __future__ import annotations

import pytest

from stepcrew.domain.agent import (
    MESSAGE_TEXT_MAX_BYTES,
    TOO_LARGE_KEY,
    arguments_bytes,
    bound_arguments,
    split_calls,
)
from stepcrew.domain.synthesizer import cap_report
from stepcrew.models import (
    FINAL_OUTPUT_MAX_BYTES,
    TOOL_ARGUMENTS_MAX_BYTES,
    TOOL_ARGUMENTS_TURN_MAX_BYTES,
    Message,
    ToolCall,
)
from stepcrew.text import clip_bytes


def call(i: int, text: str) -> ToolCall:
    return ToolCall(call_id=f"c{i}", name="write_section", arguments={"heading": "h", "summary": text})


def test_clip_bytes_cuts_on_a_character_boundary_and_counts_the_marker():
    text = "数据" * 10  # 3 bytes per character
    clipped = clip_bytes(text, 10, "…")  # the marker is 3 bytes: 7 left, so two whole characters
    assert clipped == "数据…" and len(clipped.encode()) <= 10
    assert clip_bytes("abc", 3) == "abc"


def test_an_oversized_call_is_stored_small_and_answered_with_invalid_arguments():
    big = call(1, "x" * (TOOL_ARGUMENTS_MAX_BYTES + 1))
    message = bound_arguments(Message(role="assistant", tool_calls=[big, call(2, "short")]))
    stored = message.tool_calls[0]
    assert stored.arguments == {TOO_LARGE_KEY: arguments_bytes(big)} and arguments_bytes(big) > TOOL_ARGUMENTS_MAX_BYTES
    run, refused = split_calls(message.tool_calls, ["write_section"])
    assert [c.call_id for c in run] == ["c2"]
    (error,) = refused
    assert error.error.type == "InvalidArguments" and str(TOOL_ARGUMENTS_MAX_BYTES) in error.error.message


def test_multibyte_arguments_are_counted_in_bytes_not_characters():
    chars = TOOL_ARGUMENTS_MAX_BYTES // 3 + 10  # under the cap in characters, over it in UTF-8 bytes
    message = bound_arguments(Message(role="assistant", tool_calls=[call(1, "数" * chars)]))
    assert TOO_LARGE_KEY in message.tool_calls[0].arguments


def test_the_calls_of_one_turn_share_a_byte_budget():
    each = TOOL_ARGUMENTS_MAX_BYTES - 100
    calls = [call(i, "y" * each) for i in range(8)]
    run, refused = split_calls(calls, ["write_section"])
    sizes = [arguments_bytes(c) for c in calls]
    fits = 0
    while fits < len(sizes) and sum(sizes[:fits + 1]) <= TOOL_ARGUMENTS_TURN_MAX_BYTES:
        fits += 1
    assert len(run) == fits and 0 < fits < 8
    assert all(r.error.type == "LimitExceeded" for r in refused) and len(refused) == 8 - fits


def test_a_long_assistant_text_is_stored_cut_to_its_item():
    message = bound_arguments(Message(role="assistant", content="報告" * 100_000))  # 600,000 bytes
    assert len(message.content.encode()) <= MESSAGE_TEXT_MAX_BYTES and message.content.endswith("[... truncated]")


@pytest.mark.parametrize("text", ["報" * 199_000, "a" * 250_000])
def test_a_report_is_capped_in_bytes_and_characters(text):
    report = cap_report(text)
    assert len(report.encode()) <= FINAL_OUTPUT_MAX_BYTES and len(report) <= 200_000
    assert report.endswith("[... report truncated at the size limit]")
