"""The embeddings port: one contract shared by the three adapters, then each adapter's own behaviour, the helpers
(cosine, top_k, same_key_terms), the factory and the semantic-cache bench's arithmetic. No network: Bedrock runs
through a real bedrock-runtime client wrapped in a botocore Stubber; wordllama loads its bundled weights."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from stepcrew.embeddings import (
    DEFAULT_SEMANTIC_THRESHOLD,
    MAX_TEXT_CHARS,
    Embeddings,
    EmbeddingsRequestError,
    EmbeddingsUnavailableError,
    build_embeddings,
    cosine,
    key_terms,
    same_key_terms,
    top_k,
)
from stepcrew.embeddings.bedrock import TITAN_V2, BedrockEmbeddings
from stepcrew.embeddings.testing import HashingEmbeddings
from stepcrew.embeddings.wordllama import WordLlamaEmbeddings
from stepcrew.llm.base import ModelRequestsForbiddenError
from stepcrew.llm.testing import override_allow_model_requests

REPO = Path(__file__).resolve().parents[3]
PACKAGE_SRC = REPO / "layers" / "stepcrew" / "python"


def norm(vec: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vec))


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


class JsonBody:
    """Matches a request body that parses to ``expected`` (key order free): for Stubber ``expected_params``."""

    def __init__(self, expected: dict):
        self.expected = expected

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (str, bytes)) and json.loads(other) == self.expected

    def __repr__(self) -> str:
        return f"JsonBody({self.expected!r})"


def titan_vector(text: str, dim: int) -> list[float]:
    """What the stubbed Titan returns for ``text``: a deterministic unit vector rounded to 6 decimals, as JSON floats
    come back (so its norm is 1 only to ~1e-6: the adapter must re-normalise)."""
    return [round(x, 6) for x in HashingEmbeddings(dim).embed([text])[0]]


def titan_response(vector: list[float]) -> dict:
    data = json.dumps({"embedding": vector, "inputTextTokenCount": 7}).encode()
    return {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}


@dataclass
class Case:
    """An adapter plus ``expect(texts)``, which queues the backend responses an ``embed(texts)`` call will need."""

    emb: Embeddings
    expect: Callable[[list[str]], None] = field(default=lambda texts: None)


@pytest.fixture(scope="module")
def wordllama_emb() -> WordLlamaEmbeddings:
    return WordLlamaEmbeddings()


@pytest.fixture
def bedrock_case():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        emb = BedrockEmbeddings(dim=256, client=client)

        def expect(texts: list[str]) -> None:
            for text in texts:
                sent = text[:MAX_TEXT_CHARS]
                stubber.add_response("invoke_model", titan_response(titan_vector(sent, 256)), expected_params={
                    "modelId": TITAN_V2, "contentType": "application/json", "accept": "application/json",
                    "body": JsonBody({"inputText": sent, "dimensions": 256, "normalize": True})})

        yield Case(emb, expect), stubber
        stubber.assert_no_pending_responses()


@pytest.fixture(params=["hashing", "wordllama", "bedrock"])
def case(request, wordllama_emb) -> Case:
    if request.param == "hashing":
        return Case(HashingEmbeddings())
    if request.param == "wordllama":
        return Case(wordllama_emb)
    return request.getfixturevalue("bedrock_case")[0]


TEXTS = ["What is the average body mass of penguins by species?", "Total revenue by region", "x"]


# ------------------------------------------------------------------------------------------ shared contract

def test_shape_one_vector_of_dim_floats_per_text(case):
    case.expect(TEXTS)
    vectors = case.emb.embed(TEXTS)
    assert len(vectors) == len(TEXTS)
    assert all(len(v) == case.emb.dim for v in vectors)
    assert all(type(x) is float for v in vectors for x in v)
    json.dumps(vectors)  # plain floats: serialisable as they are
    assert str(case.emb.dim) in case.emb.name


def test_vectors_are_unit_norm(case):
    case.expect(TEXTS)
    for vec in case.emb.embed(TEXTS):
        assert norm(vec) == pytest.approx(1.0, abs=1e-9)


def test_deterministic_and_independent_of_batch_position(case):
    texts = ["Average salary by department", "Top 5 cars by horsepower"]
    case.expect(texts)
    first = case.emb.embed(texts)
    case.expect(texts[::-1])
    second = case.emb.embed(texts[::-1])
    case.expect(texts[1:])
    alone = case.emb.embed(texts[1:])
    assert first == second[::-1]
    assert dot(first[1], alone[0]) == pytest.approx(1.0, abs=1e-6)  # padding in a batch changes nothing


def test_identical_texts_have_cosine_one(case):
    texts = ["Median flipper length of Gentoo penguins", "Median flipper length of Gentoo penguins"]
    case.expect(texts)
    a, b = case.emb.embed(texts)
    assert cosine(a, b) == pytest.approx(1.0, abs=1e-9)


def test_empty_input_gives_empty_output_without_backend_call(case):
    assert case.emb.embed([]) == []  # the Bedrock stubber has nothing queued: a call would fail


@pytest.mark.parametrize("bad", ["a bare string", [1], ["ok", None], (b"bytes",), {"a": 1}])
def test_wrong_types_raise_type_error(case, bad):
    with pytest.raises(TypeError):
        case.emb.embed(bad)


@pytest.mark.parametrize("blank", [[""], ["ok", "   \n\t"]])
def test_blank_text_raises_value_error(case, blank):
    with pytest.raises(ValueError, match=r"texts\[\d\]"):
        case.emb.embed(blank)


def test_long_text_is_truncated_to_max_chars(case):
    head = ("penguins on Biscoe island weigh " * 400)[:MAX_TEXT_CHARS]
    long_text = head + " and this tail about quarterly revenue in the West region must be ignored"
    case.expect([long_text, head])  # Bedrock: the stub checks the sent inputText is the first 8,000 characters
    v_long, v_head = case.emb.embed([long_text, head])
    assert dot(v_long, v_head) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------- wordllama

def test_wordllama_scores_a_paraphrase_above_an_unrelated_goal(wordllama_emb):
    goal, paraphrase, unrelated = wordllama_emb.embed([
        "What is the average body mass of penguins by species?",
        "Compute the mean body mass for each penguin species.",
        "Total quarterly revenue of the West region stores"])
    assert cosine(goal, paraphrase) > cosine(goal, unrelated)


def test_wordllama_dims_and_truncated_model():
    with pytest.raises(ValueError, match="bundled"):
        WordLlamaEmbeddings(dim=512)  # not in the wheel: would be a download
    small = WordLlamaEmbeddings(dim=64)
    (vec,) = small.embed(["Average salary by department"])
    assert len(vec) == 64 and small.name == "wordllama:l2_supercat:64"
    assert norm(vec) == pytest.approx(1.0, abs=1e-9)


def test_wordllama_loads_once_under_concurrent_first_calls(monkeypatch):
    import wordllama

    original = wordllama.WordLlama.load
    calls = []

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(wordllama.WordLlama, "load", counting)
    emb = WordLlamaEmbeddings()
    barrier = threading.Barrier(6)
    results, errors = [], []

    def worker():
        barrier.wait()
        try:
            results.append(emb.embed(["Count penguins per island"])[0])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(calls) == 1
    assert calls[0]["disable_download"] is True
    assert Path(calls[0]["cache_dir"]) == Path(wordllama.__file__).resolve().parent
    assert all(r == results[0] for r in results) and len(results) == 6


_NETWORK_PROBE = r"""
import json, logging, socket, sys, warnings
attempts = []
def blocked(name):
    def fn(*args, **kwargs):
        attempts.append(name)
        raise OSError("network blocked by test: " + name)
    return fn
socket.socket.connect = blocked("connect")
socket.socket.connect_ex = blocked("connect_ex")
socket.create_connection = blocked("create_connection")
socket.getaddrinfo = blocked("getaddrinfo")
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from stepcrew.embeddings.wordllama import WordLlamaEmbeddings
    emb = WordLlamaEmbeddings()
    vec = emb.embed(["Average body mass by species"])[0]
root = logging.getLogger()
print(json.dumps({"attempts": attempts, "dim": len(vec), "warnings": [str(w.message) for w in caught],
                  "root_handlers": len(root.handlers), "root_level": root.level,
                  "already_imported": "wordllama" in sys.modules, "load_s": emb.load_seconds}))
"""


def test_wordllama_imports_and_loads_with_no_network_attempt():
    """A fresh interpreter (so the import is covered too) with every socket entry point blocked and recorded."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_SRC)}
    out = subprocess.run([sys.executable, "-c", _NETWORK_PROBE], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["dim"] == 256
    assert not [w for w in report["warnings"] if "Hugging Face" in w]
    # wordllama runs logging.basicConfig(level=INFO) on import; the adapter undoes it (default: no handler, WARNING)
    assert (report["root_handlers"], report["root_level"]) == (0, logging.WARNING)


def test_network_probe_does_catch_wordllamas_default_download(monkeypatch, tmp_path):
    """Control for the test above: plain ``WordLlama.load()`` with an empty cache does try the network, and the
    blocked sockets see it."""
    import wordllama

    attempts = []

    def blocked(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("network blocked by test")

    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(wordllama.WordLlama, "DEFAULT_CACHE_DIR", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FileNotFoundError):
            wordllama.WordLlama.load()
    assert attempts


# ------------------------------------------------------------------------------------------------ bedrock

def test_bedrock_request_body_and_model_id(bedrock_case):
    case, stubber = bedrock_case
    emb = BedrockEmbeddings(model="amazon.titan-embed-text-v2:0", dim=256, client=case.emb._client)
    vector = [0.0] * 256
    vector[3] = 2.0  # not normalised: the adapter must normalise
    stubber.add_response("invoke_model", titan_response(vector), expected_params={
        "modelId": "amazon.titan-embed-text-v2:0", "contentType": "application/json", "accept": "application/json",
        "body": JsonBody({"inputText": "Average mpg by origin", "dimensions": 256, "normalize": True})})
    (out,) = emb.embed(["Average mpg by origin"])
    assert out[3] == 1.0 and sum(abs(x) for x in out) == 1.0
    assert emb.name == "bedrock:amazon.titan-embed-text-v2:0:256"


@pytest.mark.parametrize(("code", "status", "error"), [
    ("ThrottlingException", 429, EmbeddingsUnavailableError),
    ("ServiceQuotaExceededException", 429, EmbeddingsUnavailableError),
    ("InternalServerException", 500, EmbeddingsUnavailableError),
    ("ModelNotReadyException", 429, EmbeddingsUnavailableError),
    ("SomethingNew", 503, EmbeddingsUnavailableError),
    ("AccessDeniedException", 403, EmbeddingsRequestError),
    ("ValidationException", 400, EmbeddingsRequestError),
])
def test_bedrock_error_mapping(bedrock_case, code, status, error):
    case, stubber = bedrock_case
    stubber.add_client_error("invoke_model", service_error_code=code, service_message="nope", http_status_code=status)
    with pytest.raises(error, match=code):
        case.emb.embed(["Total revenue by region"])


def test_bedrock_connection_error_is_unavailable():
    class Unreachable:
        def invoke_model(self, **kwargs):
            raise EndpointConnectionError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")

    with pytest.raises(EmbeddingsUnavailableError, match="EndpointConnectionError"):
        BedrockEmbeddings(client=Unreachable()).embed(["x"])


def test_bedrock_wrong_sized_embedding_is_unavailable(bedrock_case):
    case, stubber = bedrock_case
    stubber.add_response("invoke_model", titan_response([0.6, 0.8]))
    with pytest.raises(EmbeddingsUnavailableError, match="256"):
        case.emb.embed(["x"])


def test_bedrock_refuses_a_real_client_while_requests_are_forbidden():
    emb = BedrockEmbeddings()  # no client injected; tests/conftest.py forbids real model requests
    assert emb.embed([]) == []
    with pytest.raises(ModelRequestsForbiddenError):
        emb.embed(["Average salary by department"])
    assert emb._client is None


def test_bedrock_real_client_makes_exactly_one_attempt():
    emb = BedrockEmbeddings(region_name="us-east-1")
    with override_allow_model_requests(True):
        client = emb._get_client()  # building a client does no I/O
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert client.meta.config.retries["mode"] == "standard"


def test_bedrock_rejects_unsupported_dimensions():
    with pytest.raises(ValueError, match="256, 512, 1024"):
        BedrockEmbeddings(dim=300)


# ---------------------------------------------------------------------------------------------- helpers

def test_cosine_values():
    assert cosine([1.0, 0.0], [0.0, 3.0]) == 0.0
    assert cosine([1.0, 2.0], [-2.0, -4.0]) == pytest.approx(-1.0)
    assert cosine([1.0, 2.0], [3.0, 6.0]) == pytest.approx(1.0)
    assert cosine([0.0, 0.0], [1.0, 1.0]) == 0.0
    assert cosine([3.0, 4.0], [4.0, 3.0]) == pytest.approx(24 / 25)
    with pytest.raises(ValueError):
        cosine([1.0], [1.0, 2.0])


@pytest.fixture
def store():
    emb = HashingEmbeddings(64)
    texts = ["mean body mass by species", "total revenue by region", "median salary by department",
             "body mass of Gentoo penguins", "revenue by month", "penguins per island", "cars per origin"]
    return emb.embed(["penguin body mass"])[0], list(zip(texts, emb.embed(texts)))


def test_top_k_matches_brute_force(store):
    query, items = store
    expected = sorted(((i, dot(query, v)) for i, v in items), key=lambda p: -p[1])[:3]  # unit vectors: dot = cos
    got = top_k(query, items, 3)
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected])


def test_top_k_pure_python_path_agrees(store, monkeypatch):
    import builtins

    query, items = store
    with_numpy = top_k(query, items, 4)
    real_import = builtins.__import__

    def no_numpy(name, *args, **kwargs):
        if name == "numpy":
            raise ImportError("numpy hidden by test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_numpy)
    without = top_k(query, items, 4)
    assert [i for i, _ in without] == [i for i, _ in with_numpy]
    assert [s for _, s in without] == pytest.approx([s for _, s in with_numpy])


def test_top_k_edges(store):
    query, items = store
    assert top_k(query, items, 0) == []
    assert top_k(query, [], 3) == []
    assert len(top_k(query, items, 100)) == len(items)
    tie = [("first", [1.0, 0.0]), ("second", [1.0, 0.0]), ("other", [0.0, 1.0])]
    assert [i for i, _ in top_k([1.0, 0.0], tie, 2)] == ["first", "second"]
    with pytest.raises(ValueError, match="k must be"):
        top_k(query, items, -1)
    with pytest.raises(ValueError, match="'bad'"):
        top_k(query, items + [("bad", [1.0])], 2)


@pytest.mark.parametrize(("a", "b", "same"), [
    ("Average body mass by species", "Mean body mass for each species", True),
    ("Top 5 cars by horsepower", "the five cars with the highest horsepower", True),
    ("salary above 100,000", "salary more than 100000", True),
    ("Average body mass by species", "Median body mass by species", False),
    ("Highest mpg", "Lowest mpg", False),
    ("penguins observed in 2008", "penguins observed in 2009", False),
    ("Top 5 products", "Top 10 products", False),
    ("revenue growth in 2022", "revenue decline in 2022", False),
    ("orders over $100", "orders under $100", False),
    ("sales over time", "sales across time", True),  # 'over' is a comparison only before a number
    ("cars not from Japan", "cars from Japan", False),
    ("orders in March", "orders in April", False),
])
def test_same_key_terms(a, b, same):
    assert same_key_terms(a, b) is same


def test_key_terms_canonicalise_numbers():
    assert key_terms("1,000 rows and 50k rows, 5.0 and Q1") == {"#1000", "#50000", "#5", "#q1"}


def test_default_threshold_disables_semantic_hits():
    # the bench found no cosine reaching precision 0.99 (see its docstring): no score may pass
    assert DEFAULT_SEMANTIC_THRESHOLD > 1.0


# ---------------------------------------------------------------------------------------------- factory

def test_factory_defaults_to_local_wordllama_without_loading():
    emb = build_embeddings({})
    assert isinstance(emb, WordLlamaEmbeddings) and emb.name == "wordllama:l2_supercat:256"
    assert emb._model is None
    assert isinstance(build_embeddings({"STEPCREW_EMBEDDINGS": " Local "}), WordLlamaEmbeddings)


def test_factory_bedrock_settings():
    emb = build_embeddings({"STEPCREW_EMBEDDINGS": "bedrock"})
    assert isinstance(emb, BedrockEmbeddings) and (emb.model, emb.dim) == (TITAN_V2, 256)
    emb = build_embeddings({"STEPCREW_EMBEDDINGS": "BEDROCK", "STEPCREW_EMBEDDINGS_DIM": "1024",
                            "STEPCREW_EMBEDDINGS_MODEL": "amazon.titan-embed-text-v2:0"})
    assert emb.dim == 1024 and emb._client is None  # no client until the first embed


@pytest.mark.parametrize(("env", "match"), [
    ({"STEPCREW_EMBEDDINGS": "openai"}, "STEPCREW_EMBEDDINGS must be one of local, bedrock, not 'openai'"),
    ({"STEPCREW_EMBEDDINGS": "bedrock", "STEPCREW_EMBEDDINGS_DIM": "300"}, "STEPCREW_EMBEDDINGS_DIM"),
    ({"STEPCREW_EMBEDDINGS": "bedrock", "STEPCREW_EMBEDDINGS_DIM": "big"}, "STEPCREW_EMBEDDINGS_DIM"),
])
def test_factory_errors(env, match):
    with pytest.raises(ValueError, match=match) as info:
        build_embeddings(env)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------- bench arithmetic

def _bench():
    spec = importlib.util.spec_from_file_location("semantic_cache_bench", REPO / "bench" / "semantic_cache.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_scores_and_threshold_choice():
    bench = _bench()
    gold = [True, True, False, True, False]
    s = bench.scores([True, True, True, False, False], gold)
    assert (s["precision"], s["recall"], s["fp"]) == (2 / 3, 2 / 3, 1)
    assert bench.scores([False] * 5, gold)["precision"] is None
    # cos 0.95/0.80 are same pairs, 0.90 a negative: only t in (0.90, 0.95] is all-correct; the guard vetoes pair 2
    cos, guard = [0.95, 0.80, 0.90, 0.10, 0.20], [True, True, True, True, True]
    t, s = bench.choose(cos, guard, gold, use_guard=False)
    assert t == 0.91 and s["precision"] == 1.0 and s["recall"] == pytest.approx(1 / 3)
    t, s = bench.choose(cos, [True, True, False, True, True], gold, use_guard=True)
    assert t == 0.50 and s["recall"] == pytest.approx(2 / 3)


def test_labelled_set_is_well_formed():
    pairs = _bench().load_pairs(REPO / "bench" / "semantic_sets" / "goal_pairs.jsonl")
    assert len(pairs) >= 200
    assert sum(p["kind"] == "hard_negative" for p in pairs) >= 80
    assert len({(p["a"], p["b"]) for p in pairs}) == len(pairs)
    assert all(p["same"] == (p["kind"] in {"paraphrase", "synonym", "reorder", "politeness", "formatting"})
               for p in pairs)
