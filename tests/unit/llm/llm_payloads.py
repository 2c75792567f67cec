"""Recorded-looking provider payloads (shapes as the public API references document them)."""

from __future__ import annotations

import json
from typing import Any


def anthropic_text(text: str = "There are 42 rows.", *, input_tokens: int = 1200, output_tokens: int = 300,
                   stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


def anthropic_tool_use(sql: str = "select count(*) from t") -> dict[str, Any]:
    return {"id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "I'll count the rows."},
                        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "sql_query",
                         "input": {"sql": sql}}],
            "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 400, "output_tokens": 60}}


def anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def openai_text(text: str = "There are 42 rows.", *, finish_reason: str = "stop", prompt_tokens: int = 1000,
                completion_tokens: int = 200) -> dict[str, Any]:
    return {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                                 "annotations": []},
                         "logprobs": None, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def openai_tool_calls(*calls: tuple[str, str, str], finish_reason: str = "tool_calls") -> dict[str, Any]:
    """``calls``: (id, name, raw JSON arguments string)."""
    return {"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "logprobs": None, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": None,
                                     "tool_calls": [{"id": cid, "type": "function",
                                                     "function": {"name": name, "arguments": args}}
                                                    for cid, name, args in calls]}}],
            "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99}}


def openai_sql_call(sql: str = "select count(*) from t") -> dict[str, Any]:
    return openai_tool_calls(("call_abc123", "sql_query", json.dumps({"sql": sql})))


def openai_error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def bedrock_text(text: str = "There are 42 rows.") -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 2000, "outputTokens": 500, "totalTokens": 2500}, "metrics": {"latencyMs": 812}}


def bedrock_tool_use(sql: str = "select count(*) from t") -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": [
                {"text": "Counting."},
                {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "sql_query",
                             "input": {"sql": sql}}}]}},
            "stopReason": "tool_use", "usage": {"inputTokens": 300, "outputTokens": 40, "totalTokens": 340},
            "metrics": {"latencyMs": 400}}
