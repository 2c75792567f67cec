"""The shipped analyst eval suite: its shape, and its expected figures recomputed from the independent pandas
ground truth (``truth.py``) instead of trusted as typed."""

from __future__ import annotations

import hashlib
import importlib.util
import math
from collections import Counter
from pathlib import Path

import pytest
import yaml

pytest.importorskip("pandas")

import stepcrew.data  # noqa: E402

DATA_DIR = Path(stepcrew.data.__file__).resolve().parent
SUITE_DIR = Path(stepcrew.data.__file__).resolve().parents[1] / "evals" / "suites" / "analyst"
SUITE = yaml.safe_load((SUITE_DIR / "suite.yaml").read_text(encoding="utf-8"))
CASES = SUITE["cases"]
ANSWERABLE = [c for c in CASES if c["answerable"]]
ANSWER_TYPES = {"group_comparison", "trend", "extremes", "top_n", "share", "correlation", "filter_aggregate",
                "recommend"}
REASONS = {"forecast", "cause", "unknown_column", "no_rule"}
#: suite.yaml holds every figure rounded to this many decimals.
DECIMALS = 2
SLACK = 0.5 * 10**-DECIMALS + 1e-6


def _truth_module():
    spec = importlib.util.spec_from_file_location("stepcrew_evals_analyst_truth", SUITE_DIR / "truth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRUTH = _truth_module()


def test_suite_header():
    assert SUITE["name"] == "analyst"
    assert SUITE["description"].strip()
    assert 0 < SUITE["gate"]["success_min"] <= 1
    assert SUITE["gate"]["wrong_but_passed_max"] == 0


def test_enough_unique_cases():
    assert len(CASES) >= 30
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    goals = [c["goal"] for c in CASES]
    assert len(goals) == len(set(goals))


@pytest.mark.parametrize("name", sorted(SUITE["datasets"]))
def test_dataset_files_exist(name):
    assert (DATA_DIR / SUITE["datasets"][name]["file"]).is_file()


def test_dataset_checksums_are_documented():
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for ds in SUITE["datasets"].values():
        digest = hashlib.sha256((DATA_DIR / ds["file"]).read_bytes()).hexdigest()
        assert digest in readme, f"README.md does not give the SHA-256 of {ds['file']} ({digest})"


def test_type_coverage():
    per_type = Counter(c["type"] for c in ANSWERABLE)
    for kind in ANSWER_TYPES:
        assert per_type[kind] >= 3, (kind, per_type[kind])
    assert len({c["dataset"] for c in ANSWERABLE}) == len(SUITE["datasets"])
    unanswerable = [c for c in CASES if not c["answerable"]]
    assert len(unanswerable) >= 4
    reasons = Counter(c["reason"] for c in unanswerable)
    assert reasons["forecast"] >= 2 and reasons["cause"] >= 2 and reasons["unknown_column"] >= 2, reasons


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_shape(case):
    assert case["dataset"] in SUITE["datasets"]
    assert case["goal"].strip()
    if case["answerable"]:
        assert case["type"] in ANSWER_TYPES
        assert callable(getattr(TRUTH, case["truth"], None)), case["truth"]
        expect = case["expect"]
        assert expect["figures"] and expect["tools"]
        for fig in expect["figures"]:
            assert set(fig) == {"name", "value", "tolerance"}
            assert fig["tolerance"] > 0
        assert len({f["name"] for f in expect["figures"]}) == len(expect["figures"])
    else:
        assert case["type"] == "unanswerable"
        assert case["reason"] in REASONS
        assert "truth" not in case and "expect" not in case


@pytest.mark.parametrize("case", ANSWERABLE, ids=[c["id"] for c in ANSWERABLE])
def test_expected_figures_match_truth(case):
    data = TRUTH.load(SUITE["datasets"][case["dataset"]]["file"])
    got = getattr(TRUTH, case["truth"])(data)
    expect = case["expect"]
    assert expect.get("entity") == got["entity"]
    assert expect.get("entities") == got.get("entities")
    if case["type"] == "top_n":
        assert expect["entities"] and expect["entities"][0] == expect["entity"]
    figures = {f["name"]: f["value"] for f in expect["figures"]}
    assert set(figures) == set(got["figures"])
    for name, value in figures.items():
        truth = got["figures"][name]
        assert math.isfinite(truth), (name, truth)
        assert abs(value - truth) <= SLACK, f"{name}: suite says {value}, truth computes {truth}"
