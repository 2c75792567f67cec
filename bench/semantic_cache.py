"""Benchmark (a report, not a test): which cosine threshold may a semantic cache of goals use?

A semantic cache answers a new goal with the cached plan/answer of a stored goal whose embedding is close enough. A
wrong hit serves a wrong answer, so precision on ``same`` matters most. This bench embeds the hand-labelled pairs of
``bench/semantic_sets/goal_pairs.jsonl`` (see its README: written blind, before any score) and, for thresholds
0.50..0.99 (step 0.01), predicts ``same`` when

- ``embedding``: ``cosine(a, b) >= t``;
- ``embedding + guard``: ``cosine(a, b) >= t`` and :func:`stepcrew.embeddings.base.same_key_terms` (same numbers,
  years, aggregate/extreme/trend/comparison words).

It prints precision / recall / F1 and the number of predicted hits per threshold for both, the guard alone for
reference, and per mode the chosen threshold = the lowest threshold with precision >= 0.99 (``PRECISION_TARGET``;
thresholds with no hit at all do not qualify). The reported mode is ``embedding + guard`` when its recall at its
chosen threshold is higher, else ``embedding``. Then: a 2-fold check (threshold chosen on even-numbered pairs,
measured on odd ones and vice versa), recall / false hits per ``kind`` at the chosen threshold, the highest-scoring
false hits and the missed positives, and latency: import + model load, ms per 1,000 embeddings in one call and in
1,000 single-text calls, and :func:`top_k` over 1,000 stored vectors (p50 of 20).

Run: ``.venv/bin/python bench/semantic_cache.py [--backend wordllama|hashing] [--budget SECONDS]``. ``hashing`` is
the dependency-free fake, only to exercise the harness. Bounded: it stops measuring latency once ``--budget``
(default 50 s) is spent; a full run takes a few seconds. Exit 0, or 2 when the backend cannot be loaded. The last line
is exactly ``threshold=<t> precision=<p> recall=<r> pairs=<n>`` for the reported mode. When no threshold reaches the
precision target it is ``threshold=inf precision=nan recall=0.000 pairs=<n>`` (both parse with ``float()``): no
cosine is safe, semantic hits must stay off; the bench then also prints each mode's best reachable precision and the
per-kind breakdown at that threshold, to show why.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "stepcrew" / "python"))

from stepcrew.embeddings.base import (  # noqa: E402
    Embeddings,
    EmbeddingsUnavailableError,
    cosine,
    same_key_terms,
    top_k,
)

SETS = Path(__file__).resolve().parent / "semantic_sets"
PRECISION_TARGET = 0.99
THRESHOLDS = [round(0.50 + i / 100, 2) for i in range(50)]  # 0.50 .. 0.99


def load_pairs(path: Path) -> list[dict]:
    """The labelled pairs, in file order; each must have str ``a``/``b`` and bool ``same``."""
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not (isinstance(row.get("a"), str) and isinstance(row.get("b"), str) and isinstance(row.get("same"), bool)):
            raise ValueError(f"{path.name}:{n}: needs str a, str b and bool same")
        pairs.append(row)
    return pairs


def scores(pred: list[bool], gold: list[bool]) -> dict:
    """Precision (None when nothing is predicted), recall, F1 and counts of predicted hits vs gold ``same``."""
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    pos = sum(gold)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / pos if pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "hits": tp + fp, "tp": tp, "fp": fp}


def predict(cos: list[float], guard: list[bool], t: float, use_guard: bool) -> list[bool]:
    return [c >= t and (g or not use_guard) for c, g in zip(cos, guard)]


def choose(cos: list[float], guard: list[bool], gold: list[bool], use_guard: bool) -> tuple[float | None, dict | None]:
    """Lowest threshold whose precision >= PRECISION_TARGET (None if no threshold qualifies)."""
    for t in THRESHOLDS:
        s = scores(predict(cos, guard, t, use_guard), gold)
        if s["precision"] is not None and s["precision"] >= PRECISION_TARGET:
            return t, s
    return None, None


def fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def build_backend(name: str) -> Embeddings:
    if name == "wordllama":
        from stepcrew.embeddings.wordllama import WordLlamaEmbeddings

        return WordLlamaEmbeddings()
    if name == "hashing":
        from stepcrew.embeddings.testing import HashingEmbeddings

        return HashingEmbeddings()
    raise SystemExit(f"unknown backend {name!r} (wordllama|hashing)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="wordllama", help="wordllama (default) or hashing (harness check)")
    ap.add_argument("--sets", type=Path, default=SETS / "goal_pairs.jsonl")
    ap.add_argument("--budget", type=float, default=50.0, help="seconds; latency runs stop when spent")
    args = ap.parse_args(argv)
    started = time.perf_counter()

    pairs = load_pairs(args.sets)
    gold = [p["same"] for p in pairs]
    texts = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
    print(f"pairs={len(pairs)} same={sum(gold)} not_same={len(gold) - sum(gold)} unique_texts={len(texts)} "
          f"kinds={dict(Counter(p['kind'] for p in pairs))}")

    emb = build_backend(args.backend)
    t0 = time.perf_counter()
    try:
        vectors = emb.embed(texts)
    except EmbeddingsUnavailableError as exc:
        print(f"backend {args.backend} unavailable: {exc}")
        return 2
    first_call = time.perf_counter() - t0
    load_s = getattr(emb, "load_seconds", None)
    print(f"backend={emb.name} dim={emb.dim} first embed of {len(texts)} texts {first_call * 1000:.0f} ms"
          + (f" (import + model load {load_s * 1000:.0f} ms)" if load_s is not None else ""))

    vec = dict(zip(texts, vectors))
    cos = [cosine(vec[p["a"]], vec[p["b"]]) for p in pairs]
    guard = [same_key_terms(p["a"], p["b"]) for p in pairs]

    def mean_of(sel):
        vals = [c for c, p in zip(cos, pairs) if sel(p)]
        return f"{statistics.mean(vals):.3f}" if vals else "n/a"

    print(f"mean cosine: same={mean_of(lambda p: p['same'])} hard_negative={mean_of(lambda p: p['kind'] == 'hard_negative')} "
          f"related={mean_of(lambda p: p['kind'] == 'related')} unrelated={mean_of(lambda p: p['kind'] == 'unrelated')}")
    g = scores(guard, gold)
    print(f"guard alone (no embedding): precision={fmt(g['precision'])} recall={g['recall']:.3f} hits={g['hits']}")
    from stepcrew.resilience.cache import normalise_goal

    normalised = [normalise_goal(p["a"]) == normalise_goal(p["b"]) for p in pairs]
    n = scores(normalised, gold)
    print(f"normalised goal key (the plan cache's default, no embedding): precision={fmt(n['precision'])} "
          f"recall={n['recall']:.3f} hits={n['hits']}")

    print()
    print("   t |  embedding: prec  recall     f1  hits | embedding+guard: prec  recall     f1  hits")
    for t in THRESHOLDS:
        e = scores(predict(cos, guard, t, False), gold)
        eg = scores(predict(cos, guard, t, True), gold)
        print(f"{t:.2f} |            {fmt(e['precision'])}   {e['recall']:.3f}  {e['f1']:.3f}  {e['hits']:4d} |"
              f"                  {fmt(eg['precision'])}   {eg['recall']:.3f}  {eg['f1']:.3f}  {eg['hits']:4d}")

    t_emb, s_emb = choose(cos, guard, gold, False)
    t_grd, s_grd = choose(cos, guard, gold, True)
    print()
    for label, t, s in (("embedding", t_emb, s_emb), ("embedding+guard", t_grd, s_grd)):
        if t is None:
            print(f"{label}: no threshold in 0.50..0.99 reaches precision >= {PRECISION_TARGET}")
        else:
            print(f"{label}: lowest threshold with precision >= {PRECISION_TARGET}: {t:.2f} "
                  f"(precision {s['precision']:.3f}, recall {s['recall']:.3f}, hits {s['hits']}, false hits {s['fp']})")
    best = {}
    for label, flag in (("embedding", False), ("embedding+guard", True)):
        cands = [(scores(predict(cos, guard, t, flag), gold), t) for t in THRESHOLDS]
        s_b, t_b = max(((s, t) for s, t in cands if s["precision"] is not None),
                       key=lambda st: (st[0]["precision"], st[0]["recall"]))
        best[label] = (t_b, s_b)
        print(f"{label}: best precision reachable {s_b['precision']:.3f} at {t_b:.2f} (recall {s_b['recall']:.3f})")
    if t_grd is not None or t_emb is not None:
        use_guard = t_grd is not None and (t_emb is None or s_grd["recall"] > s_emb["recall"])
    else:  # nothing qualifies: the guard "helps" when it reaches a higher precision
        use_guard = best["embedding+guard"][1]["precision"] > best["embedding"][1]["precision"]
    mode, t_pick, s_pick = ("embedding+guard", t_grd, s_grd) if use_guard else ("embedding", t_emb, s_emb)
    if t_pick is None:
        print(f"reported mode: {mode}; NO SAFE THRESHOLD: threshold=inf (semantic hits disabled, precision undefined)")
        t_show, _ = best[mode]
    else:
        print(f"reported mode: {mode}")
        t_show = t_pick

    # 2-fold check: choose on one half, measure on the other.
    print()
    for name, train, test in (("even->odd", 0, 1), ("odd->even", 1, 0)):
        idx_tr = [i for i in range(len(pairs)) if i % 2 == train]
        idx_te = [i for i in range(len(pairs)) if i % 2 == test]
        t_f, _ = choose([cos[i] for i in idx_tr], [guard[i] for i in idx_tr], [gold[i] for i in idx_tr], use_guard)
        if t_f is None:
            print(f"2-fold {name}: no qualifying threshold on the training half")
            continue
        s_f = scores(predict([cos[i] for i in idx_te], [guard[i] for i in idx_te], t_f, use_guard),
                     [gold[i] for i in idx_te])
        print(f"2-fold {name}: threshold {t_f:.2f} -> held-out precision {fmt(s_f['precision'])} "
              f"recall {s_f['recall']:.3f} (false hits {s_f['fp']})")

    # Breakdown at the chosen threshold (or, with none, at the mode's best-precision threshold, to illustrate).
    pred = predict(cos, guard, t_show, use_guard)
    print()
    print(f"at threshold {t_show:.2f} ({mode}{'' if t_pick is not None else ', best precision; not safe'}), per kind:")
    for kind in sorted({p["kind"] for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p["kind"] == kind]
        hit = sum(pred[i] for i in idx)
        if pairs[idx[0]]["same"]:
            print(f"  {kind:<14} n={len(idx):3d} recall={hit / len(idx):.3f}")
        else:
            print(f"  {kind:<14} n={len(idx):3d} false hits={hit}")
    false_hits = sorted((i for i in range(len(pairs)) if not gold[i] and pred[i]), key=lambda i: -cos[i])
    print(f"false hits: {len(false_hits)}; highest-scoring twelve (cosine, guard, what differs):")
    for i in false_hits[:12]:
        p = pairs[i]
        print(f"  {cos[i]:.3f} guard={'same' if guard[i] else 'diff'} [{p.get('note', p['kind'])}] "
              f"{p['a']!r} / {p['b']!r}")
    missed = [i for i in range(len(pairs)) if gold[i] and not pred[i]]
    print(f"missed positives: {len(missed)} of {sum(gold)}; lowest-scoring ten:")
    for i in sorted(missed, key=lambda i: cos[i])[:10]:
        p = pairs[i]
        print(f"  {cos[i]:.3f} guard={'same' if guard[i] else 'diff'} {p['a']!r} / {p['b']!r}")

    # Latency.
    print()
    batch = [texts[i % len(texts)] for i in range(1000)]
    t0 = time.perf_counter()
    emb.embed(batch)
    batch_ms = (time.perf_counter() - t0) * 1000
    single_ms = None
    if time.perf_counter() - started < args.budget:
        t0 = time.perf_counter()
        for text in batch:
            emb.embed([text])
        single_ms = (time.perf_counter() - t0) * 1000
    store = [(f"goal-{i}", vectors[i % len(vectors)]) for i in range(1000)]
    runs = []
    for _ in range(20):
        if time.perf_counter() - started >= args.budget:
            break
        t0 = time.perf_counter()
        top_k(vectors[0], store, 5)
        runs.append((time.perf_counter() - t0) * 1000)
    print(f"latency: {batch_ms:.1f} ms per 1,000 embeddings in one call; "
          + (f"{single_ms:.1f} ms per 1,000 single-text calls; " if single_ms is not None else "single calls skipped; ")
          + (f"top_k(k=5) over 1,000 stored vectors p50 {statistics.median(runs):.2f} ms" if runs else ""))
    print(f"elapsed {time.perf_counter() - started:.1f} s")
    if t_pick is None:
        print(f"threshold=inf precision=nan recall=0.000 pairs={len(pairs)} normalised_precision="
              f"{fmt(n['precision'])} normalised_recall={n['recall']:.3f}")
    else:
        print(f"threshold={t_pick:.2f} precision={s_pick['precision']:.3f} recall={s_pick['recall']:.3f} "
              f"pairs={len(pairs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
