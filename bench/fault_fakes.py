"""The loopback OpenAI-compatible fakes of ``bench/faults.py``: scripted Chat Completions answers by role, with faults.

Same approach as ``tests/integration/test_openai_compatible_provider.py`` (a ``ThreadingHTTPServer`` on 127.0.0.1
answering by the system prompt's role), extended to the default crew and its four tools:

- Planner: a plan of four sub-tasks for the goal: ``profile`` (data_analyst, describe_dataset), ``figures``
  (data_analyst, query_dataset with the goal's SQL), ``spread`` (data_analyst, calculator: highest - lowest figure,
  after ``figures``), ``section`` (writer, write_section, after both).
- Workers: a tool call first; once a tool result came back (a ``tool`` message, fenced by spotlighting:
  :func:`stepcrew.llm.spotlight.unfence`), the answer built from it. A failed result (``ToolFailed`` from a crashed
  tool Lambda) is retried once with the same arguments (two identical calls stay under the agent's loop limit of
  three), then answered as "not available".
- Synthesizer: a Markdown report of the sub-task outputs; reviewer: scores 0.9 (the default threshold is 0.8).

Every answer reports usage of 100 input and 20 output tokens. Faults (seeded RNG, ``fault_rate`` of the requests):
HTTP 429, 500 or 503 with an OpenAI-style error body, or ``reset``: a stall of ``stall_s`` then a TCP reset (the
bench's stand-in for a timeout). Requests are counted per run by the goal's marker ``(bench ref fxNNNN)``.
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from stepcrew.data import DEMO_DATASET
from stepcrew.llm.spotlight import unfence

DATA = DEMO_DATASET.parent
FAULT_KINDS = ("429", "500", "503", "reset")
MARKER = re.compile(r"\(bench ref (fx\d{4})\)")
_SUBTASK = re.compile(r"^Your sub-task \(([a-z0-9][a-z0-9_-]{0,39})\):", re.MULTILINE)
_OUTPUT = re.compile(r'<<<DATA source="output of sub-task ([a-z0-9_-]+)"[^\n]*>>>\n(.*?)\n<<<END DATA>>>', re.DOTALL)
_FIGURE = re.compile(r"=\s*(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class GoalSpec:
    key: str
    goal: str
    file: str
    title: str
    sql: str

    @property
    def path(self) -> Path:
        return DATA / self.file


#: Goals of the analyst eval suite (answerable by the rule engine too, for ``--all-down``) and the SQL the fake's
#: analyst runs for each.
GOALS = [
    GoalSpec("penguins-mass", "Compare the average body mass of Adelie, Chinstrap and Gentoo penguins. Which species "
             "is the heaviest on average?", "penguins.csv", "Mean body mass by species",
             "SELECT species, ROUND(AVG(body_mass_g), 2) AS mean_body_mass_g FROM data GROUP BY species "
             "ORDER BY mean_body_mass_g DESC"),
    GoalSpec("cars-mpg", "How does mean fuel economy (miles per gallon) differ between cars from the USA, Europe and "
             "Japan, and which origin is the most fuel-efficient?", "cars.csv", "Mean mpg by origin",
             "SELECT Origin, ROUND(AVG(Miles_per_Gallon), 2) AS mean_mpg FROM data GROUP BY Origin "
             "ORDER BY mean_mpg DESC"),
    GoalSpec("weather-wind", "Break down the mean wind speed by weather type (drizzle, fog, rain, snow, sun). Which "
             "type of weather is the windiest on average?", "seattle-weather.csv", "Mean wind by weather type",
             "SELECT weather, ROUND(AVG(wind), 2) AS mean_wind FROM data GROUP BY weather ORDER BY mean_wind DESC"),
    GoalSpec("penguins-flipper", "For each island (Biscoe, Dream, Torgersen), what is the average flipper length of "
             "the penguins observed there?", "penguins.csv", "Mean flipper length by island",
             "SELECT island, ROUND(AVG(flipper_length_mm), 2) AS mean_flipper_length_mm FROM data GROUP BY island "
             "ORDER BY mean_flipper_length_mm DESC"),
    GoalSpec("stocks-top3", "Rank the companies by their average stock price over all dates in the data and name the "
             "top 3.", "stocks.csv", "Top 3 companies by mean price",
             "SELECT symbol, ROUND(AVG(price), 2) AS mean_price FROM data GROUP BY symbol ORDER BY mean_price DESC "
             "LIMIT 3"),
    GoalSpec("weather-sun", "What percentage of the days in the Seattle data were recorded as sun?",
             "seattle-weather.csv", "Share of sunny days",
             "SELECT 'sun' AS weather, ROUND(100.0 * AVG(CASE WHEN weather = 'sun' THEN 1 ELSE 0 END), 2) AS pct_days "
             "FROM data"),
]


def marker_of(text: str) -> str | None:
    m = MARKER.search(text)
    return m.group(1) if m else None


def refused_base_url() -> str:
    """A loopback base URL nobody listens on (a port bound, then released): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# ------------------------------------------------------------------------------------------------ scripted answers
def _spec_for(text: str) -> GoalSpec:
    for spec in GOALS:
        if spec.goal in text:
            return spec
    raise ValueError("no known goal in the prompt")


def plan_for(spec: GoalSpec) -> dict:
    return {"rationale": "Profile, query, compute the spread, write the section.", "subtasks": [
        {"id": "profile", "title": "Profile the dataset", "instructions": "Describe the dataset's columns and rows "
         "with describe_dataset.", "depends_on": [], "tools": ["describe_dataset"], "role": "data_analyst",
         "expected_output": "rows and columns"},
        {"id": "figures", "title": spec.title, "instructions": f"Query the table data to answer: {spec.goal}",
         "depends_on": [], "tools": ["query_dataset"], "role": "data_analyst",
         "expected_output": "the figure of each group"},
        {"id": "spread", "title": "Spread of the figures", "instructions": "Compute the highest figure minus the "
         "lowest with the calculator.", "depends_on": ["figures"], "tools": ["calculator"], "role": "data_analyst",
         "expected_output": "a number"},
        {"id": "section", "title": "Report section", "instructions": "Write the report section with the figures "
         "and the spread.", "depends_on": ["figures", "spread"], "tools": ["write_section"], "role": "writer",
         "expected_output": "Markdown"},
    ]}


def _outputs(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _OUTPUT.finditer(text)}


def _tool_call(subtask: str, spec: GoalSpec, prompt: str) -> tuple[str, dict]:
    deps = _outputs(prompt)
    if subtask == "profile":
        return "describe_dataset", {}
    if subtask == "figures":
        return "query_dataset", {"sql": spec.sql}
    if subtask == "spread":
        values = [float(v) for v in _FIGURE.findall(deps.get("figures", ""))]
        expression = f"{max(values)} - {min(values)}" if values else "0"
        return "calculator", {"expression": expression}
    if subtask == "section":
        summary = " ".join(deps.get(k, "") for k in ("figures", "spread")).strip() or "No figures were available."
        return "write_section", {"heading": spec.title, "summary": summary[:3000],
                                 "bullets": [deps[k][:500] for k in ("figures", "spread") if deps.get(k)]}
    raise ValueError(f"unknown sub-task {subtask!r}")


def _final(subtask: str, content: object) -> str:
    body = content.get("content", content) if isinstance(content, dict) and "truncated" in content else content
    if subtask == "profile":
        cols = [c.get("name") for c in body.get("columns", [])] if isinstance(body, dict) else []
        return f"The dataset has {body.get('rows')} rows and {len(cols)} columns: {', '.join(map(str, cols))}."
    if subtask == "figures":
        rows = body.get("rows", []) if isinstance(body, dict) else []
        pairs = "; ".join(f"{row[0]}={row[1]}" if len(row) > 1 else f"value={row[0]}" for row in rows)
        return f"Figures: {pairs}." if pairs else "The query returned no rows."
    if subtask == "spread":
        return f"The spread between the highest and the lowest figure is {body.get('value')}."
    if subtask == "section":
        return str(body.get("markdown") or "(no section)")
    raise ValueError(f"unknown sub-task {subtask!r}")


def answer(body: dict) -> tuple[dict, str, str]:
    """``(assistant message, finish_reason, purpose)`` for one Chat Completions request of the default crew."""
    messages = body["messages"]
    system = messages[0]["content"] or ""
    user = next((m["content"] for m in messages if m["role"] == "user"), "") or ""
    spec = _spec_for(user)
    if system.startswith("You are the Planner"):
        return {"content": json.dumps(plan_for(spec))}, "stop", "plan"
    if system.startswith("You are the Reviewer"):
        review = {"accuracy": 0.9, "completeness": 0.9, "relevance": 0.9, "feedback": "The figures match the tools."}
        return {"content": json.dumps(review)}, "stop", "review"
    if system.startswith("You are the Report synthesizer"):
        outs = _outputs(user)
        purpose = "improve" if "\n\nCurrent report:\n" in user else "synthesize"
        sections = "\n\n".join(f"## {k}\n\n{v}" for k, v in outs.items())
        report = (f"# {spec.title}\n\n## Summary\n\n{outs.get('figures', '')} {outs.get('spread', '')}\n\n{sections}"
                  "\n\n## Method\n\nSub-tasks profile, figures, spread and section; tools describe_dataset, "
                  "query_dataset, calculator and write_section.")
        return {"content": report}, "stop", purpose
    m = _SUBTASK.search(user)
    if not m:
        raise ValueError("a worker prompt without its sub-task")
    subtask = m.group(1)
    calls = [x for x in messages if x["role"] == "assistant" and x.get("tool_calls")]
    if calls:
        last_tool = next(x for x in reversed(messages) if x["role"] == "tool")
        result = json.loads(unfence(last_tool["content"])[0])
        if isinstance(result, dict) and "error" in result and len(result) == 1:
            if len(calls) < 2:  # retry the failed call once, with the same arguments
                calls = []
            else:
                kind = result["error"].get("type", "error")
                return {"content": f"Not available: the tool failed twice ({kind})."}, "stop", "act"
        else:
            return {"content": _final(subtask, result)}, "stop", "act"
    name, arguments = _tool_call(subtask, spec, user)
    call = {"id": f"call_{uuid.uuid4().hex[:16]}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {"content": None, "tool_calls": [call]}, "tool_calls", "act"


# ------------------------------------------------------------------------------------------------ the server
class FakeProvider:
    """One loopback OpenAI-compatible server with seeded faults and per-run counters."""

    def __init__(self, name: str, *, fault_rate: float, seed: int, stall_s: float = 0.2,
                 kinds: tuple[str, ...] | None = None) -> None:
        self.name, self.fault_rate, self.stall_s = name, fault_rate, stall_s
        self.kinds = kinds or FAULT_KINDS
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests = 0
        self.ok = 0
        self.fake_errors = 0
        self.faults: Counter = Counter()
        self.per_run: defaultdict[str, Counter] = defaultdict(Counter)
        self.server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                provider.handle(self)

            def finish(self) -> None:
                try:
                    super().finish()
                except OSError:
                    pass  # the socket was reset on purpose

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name=f"fake-{self.name}", daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _draw(self) -> str | None:
        with self._lock:
            self.requests += 1
            if self._rng.random() < self.fault_rate:
                return self._rng.choice(self.kinds)
            return None

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers["content-length"]))
        tag = marker_of(raw.decode("utf-8", "replace")) or "-"
        fault = self._draw()
        if fault is not None:
            with self._lock:
                self.faults[fault] += 1
                self.per_run[tag]["fault"] += 1
            if fault == "reset":
                time.sleep(self.stall_s)
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                h.close_connection = True
                h.connection.close()
                return
            status = int(fault)
            kind = {"429": "rate_limit_exceeded", "500": "server_error", "503": "overloaded"}[fault]
            self._send(h, status, {"error": {"message": f"bench fault {fault}", "type": kind, "code": kind}})
            return
        body = json.loads(raw)
        try:
            message, finish, purpose = answer(body)
        except Exception as exc:  # noqa: BLE001 - a bug of the fake: a 400 fails the run loudly
            with self._lock:
                self.fake_errors += 1
            self._send(h, 400, {"error": {"message": f"fake cannot answer: {type(exc).__name__}: {exc}",
                                          "type": "invalid_request_error"}})
            return
        reply = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
                 "model": body["model"],
                 "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
                 "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
        with self._lock:
            self.ok += 1
            self.per_run[tag]["ok"] += 1
            self.per_run[tag][f"ok:{purpose}"] += 1
        self._send(h, 200, reply)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
