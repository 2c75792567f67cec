# Ported from ../shared/bench/prompt-workload/fake_openai.py (written against stepcrew as of 2026-12-01). Same
# classification and scripted replies (workload.script, in stepcrew's Plan and review JSON shapes); changed: the
# recorder is an object (one per bench, recordings taken per run), the memory-extraction call is recognised and
# answered "no facts", and a forced tool choice (structured output through a tool) is answered as that tool's call.
"""A loopback OpenAI-compatible Chat Completions server on 127.0.0.1 that records every request body and answers
from the reference workload's script (:func:`workload.script`), in the reply shapes stepcrew's prompts ask for.

Usage: ``rec = Recorder().start()``; point ``OPENAI_BASE_URL`` at ``rec.base_url``; after a run,
``rec.take()`` returns (and clears) the records ``{"workload_role", "purpose", "body", "reply"}`` in arrival order;
``rec.stop()``. A request it cannot classify is answered HTTP 400 with the reason (the run then fails honestly).
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import workload as W

PLAN_REPLY = json.dumps({
    "subtasks": [
        {"id": "s1", "title": "Monthly sales trends", "instructions": W.SUB1, "role": "analyst",
         "tools": ["query_dataset", "calculator"], "depends_on": [], "expected_output": W.STEPS["analyze"]["expected"]},
        {"id": "s2", "title": "Recommendation", "instructions": W.SUB2, "role": "writer",
         "tools": ["query_dataset", "calculator"], "depends_on": [], "expected_output": W.STEPS["write"]["expected"]},
    ]})
REVIEW_REPLY = {
    W.REVIEW1: json.dumps({"accuracy": 0.6, "completeness": 0.6, "relevance": 0.6, "feedback": W.REVIEW1}),
    W.REVIEW2: json.dumps({"accuracy": 0.9, "completeness": 0.9, "relevance": 0.9, "feedback": W.REVIEW2}),
}
MEMORY_REPLY = json.dumps({"facts": []})
#: Strings stepcrew's planner produces that later prompts carry (count.py's "extended carried" accounting).
PLAN_CARRIED = [s["title"] for s in json.loads(PLAN_REPLY)["subtasks"]] + \
    [s["id"] for s in json.loads(PLAN_REPLY)["subtasks"]]


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def classify(body: dict) -> tuple[str, str]:
    """(workload role, stepcrew purpose) of a request, from its content only."""
    msgs = body["messages"]
    system = _text(msgs[0]["content"])
    role = W.role_of(system)
    first_user = next(_text(m["content"]) for m in msgs if m["role"] == "user")
    if role == "planner":
        return role, "plan"
    if role == "reviewer":
        return role, "review"
    if "durable facts" in first_user:  # the run-end memory extraction (stepcrew.memory)
        return role, "memory"
    if first_user.startswith("Goal:") and "Current report:" in first_user:
        return role, "improve"
    if first_user.startswith("Goal:") and "Sub-task results:" in first_user:
        return role, "synthesize"
    return role, "act"


def _forced_tool(body: dict) -> str | None:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        return choice.get("function", {}).get("name")
    return None


class Recorder:
    """The loopback server and what it recorded (thread-safe: the workers call it in parallel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._n = 0
        self._srv: ThreadingHTTPServer | None = None

    def answer(self, body: dict) -> dict:
        role, purpose = classify(body)
        text = "\n".join(_text(m.get("content")) for m in body["messages"])
        r = W.script(role, text)
        if purpose == "plan":
            r = ("text", PLAN_REPLY)
            schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
            if "facts" in schema.get("required", []):  # the plan reply also proposes memory: none, as MEMORY_REPLY
                r = ("text", json.dumps(json.loads(PLAN_REPLY) | json.loads(MEMORY_REPLY)))
        elif purpose == "review":
            r = ("text", REVIEW_REPLY[r[1]])
        elif purpose == "memory":
            r = ("text", MEMORY_REPLY)
        forced = _forced_tool(body)
        if forced and r[0] == "text":  # structured output through a forced tool: the JSON as its arguments
            r = ("tool", forced, json.loads(r[1]) if r[1].lstrip().startswith("{") else {"text": r[1]})
        with self._lock:
            self._n += 1
            n = self._n
            self._records.append({"workload_role": role, "purpose": purpose, "body": body, "reply": list(r)})
        if r[0] == "tool":
            msg = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{n}", "type": "function", "function": {"name": r[1], "arguments": json.dumps(r[2])}}]}
            finish = "tool_calls"
        else:
            msg = {"role": "assistant", "content": r[1]}
            finish = "stop"
        return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

    def take(self) -> list[dict]:
        with self._lock:
            out, self._records = self._records, []
        return out

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    out = json.dumps(recorder.answer(body)).encode()
                    code = 200
                except Exception as exc:  # noqa: BLE001
                    out = json.dumps({"error": {"message": f"fake server: {exc!r}",
                                                "type": "invalid_request_error"}}).encode()
                    code = 400
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    @property
    def base_url(self) -> str:
        assert self._srv is not None, "start() first"
        return f"http://127.0.0.1:{self._srv.server_address[1]}/v1"

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None
