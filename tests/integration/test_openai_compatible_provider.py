"""`stepcrew run --provider openai` end to end against an OpenAI-compatible server, as a user of Ollama, vLLM or
llama.cpp's server would run it (OPENAI_BASE_URL).

The server is a scripted fake on 127.0.0.1 started by the test (no real LLM is reached): it answers the Chat
Completions API by role, with a tool call first and an answer once it has seen the tool's result. The CLI runs in a
child process where model requests are allowed for this loopback server only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stepcrew.llm.pricing import cost_usd
from stepcrew.llm.spotlight import unfence

pytestmark = pytest.mark.integration
MODEL = "gpt-4o-mini"  # a priced model id, so the run's cost comes from the price table

PLAN = {"subtasks": [
    {"id": "left", "title": "Left sum", "instructions": "Compute 19 + 23.", "depends_on": [], "tools": ["calculator"],
     "role": "data_analyst", "expected_output": "a number"},
    {"id": "right", "title": "Right product", "instructions": "Compute 6 * 7.", "depends_on": [],
     "tools": ["calculator"], "role": "data_analyst", "expected_output": "a number"}]}


class FakeOpenAI(BaseHTTPRequestHandler):
    seen: list[dict] = []
    lock = threading.Lock()

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.lock:
            self.seen.append(body)
        message, finish = self.answer(body["messages"])
        reply = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
                 "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @staticmethod
    def answer(messages: list[dict]) -> tuple[dict, str]:
        system = messages[0]["content"]
        if system.startswith("You are the Planner"):
            return {"content": json.dumps(PLAN)}, "stop"
        if system.startswith("You are the Reviewer"):
            return {"content": json.dumps({"accuracy": 0.9, "completeness": 0.9, "relevance": 0.9,
                                           "feedback": "clear"})}, "stop"
        if system.startswith("You are the Report synthesizer"):
            return {"content": "# Report\n\n19 + 23 = 42 and 6 * 7 = 42."}, "stop"
        tool_messages = [m for m in messages if m["role"] == "tool"]
        if not tool_messages:
            expression = "19 + 23" if "19 + 23" in json.dumps(messages) else "6 * 7"
            call = {"id": "call_1", "type": "function",
                    "function": {"name": "calculator", "arguments": json.dumps({"expression": expression})}}
            return {"content": None, "tool_calls": [call]}, "tool_calls"
        value = json.loads(unfence(tool_messages[-1]["content"])[0])  # the result, fenced as data
        return {"content": f"The result is {value}."}, "stop"


@pytest.fixture
def fake_server():
    FakeOpenAI.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_run_with_an_openai_compatible_server(fake_server, tmp_path):
    # the fixture serves on 127.0.0.1: the only server the child (allowed model requests) can reach
    env = {**os.environ, "STEPCREW_HOME": str(tmp_path), "OPENAI_BASE_URL": fake_server, "OPENAI_API_KEY": "test",
           "OPENAI_MODEL": MODEL, "STEPCREW_ALLOW_MODEL_REQUESTS": "1"}
    env.pop("STEPCREW_FAST_WAITS", None)
    proc = subprocess.run([sys.executable, "-m", "stepcrew.cli", "run", "Compute 19 + 23 and 6 * 7", "--provider",
                           "openai", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "SUCCEEDED"
    assert result["engine"] == f"openai:{MODEL}"
    assert [s["id"] for s in result["plan"]["subtasks"]] == ["left", "right"]
    assert all(s["tool_calls"] == 1 for s in result["subtasks"])
    assert result["final_output"].startswith("# Report")
    # usage: 1 plan + 2 x 2 agent turns + 1 synthesis + 1 review + 1 memory proposal (after the run succeeded: the
    # facts its goal states, issue 9) = 8 responses of 100 in / 20 out
    calls = len(FakeOpenAI.seen)
    assert calls == 8
    assert sum("Run goal:" in m["content"] for body in FakeOpenAI.seen for m in body["messages"]
               if m["role"] == "user" and isinstance(m["content"], str)) == 1
    # the planner was asked for the facts too (issue 11); this server's plan reply has no "facts" list, so the
    # run's end asked once more rather than take the silence as "none"
    assert sum('"facts"' in m["content"] for body in FakeOpenAI.seen for m in body["messages"]
               if m["role"] == "user" and isinstance(m["content"], str)) == 1
    assert result["usage"]["input_tokens"] == 100 * calls and result["usage"]["output_tokens"] == 20 * calls
    assert result["usage"]["cost_usd"] == pytest.approx(cost_usd(MODEL, 100 * calls, 20 * calls), rel=1e-6)
    assert result["usage"]["cost_usd"] > 0
    # the calculator Lambda's results went back to the model as tool messages, through the adapter
    tool_contents = sorted(m["content"] for body in FakeOpenAI.seen for m in body["messages"] if m["role"] == "tool")
    assert len(tool_contents) == 2 and all("42" in c for c in tool_contents)
    assert all(unfence(c)[1].startswith("tool calculator call ") for c in tool_contents)  # spotlighted
    assert all(body["model"] == MODEL for body in FakeOpenAI.seen)
    assert any(body.get("tools") for body in FakeOpenAI.seen)  # the tool schemas were offered
