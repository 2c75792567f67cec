"""Benchmark (a report, not a test): the guard port (:mod:`stepcrew.guards.base`) on labelled sets.

What it measures, for one backend (``--backend local``: ``stepcrew.guards.local.LocalGuard``, the default):

- PII (``Guard.pii``): per-entity recall and precision. A predicted span matches a gold span of the same entity when
  they overlap by >= 50% of the gold span; recall = matched gold / gold, precision = matching predictions /
  predictions (predictions on the no-PII records count against precision). Also entity-agnostic recall (a gold span
  matched by a prediction of any entity) and the share of no-PII records with any finding.
- Injection (``Guard.injection``): a text is flagged when the guard returns any finding. Recall overall and per
  family (a detection counts whatever family the guard names; the family agreement is shown beside it), and the
  false-positive rate on the benign records; for the main and the held-out set, with up to 10 misses and 10 false
  positives each.
- Latency: per call p50/p95 (ms) and ms per screened KB (total time / total UTF-8 KB screened), for ``pii`` and
  ``injection`` separately (one warm-up call first; construction time reported apart); plus the same texts screened
  in batches through :func:`stepcrew.guards.base.screen_many`, as production screens many short strings.
- References (from the spec), each marked PASS/MISS: PII recall >= 0.99 for e-mail, SSN, card, IBAN, IP and >= 0.9
  for phone; injection recall >= 0.95 at <= 0.02 false positives on benign; <= 10 ms per screened KB.

Data: ``bench/guard_sets/`` (``pii.jsonl``, ``injection.jsonl``, ``injection_heldout.jsonl``), synthetic, written by
the seeded generator ``bench/guard_sets/generate.py`` blind to the detectors (see ``bench/guard_sets/README.md``).

Run: ``.venv/bin/python bench/guards.py [--backend local|fake|module:Class] [--limit N] [--budget SECONDS]``.
Bounded: stops screening when ``--budget`` (default 100 s) is spent and reports on what it screened. The guard is
imported lazily; exit 0 even when a reference is missed (2 when the backend cannot be loaded). The last line is
``key=value`` pairs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path

SETS = Path(__file__).resolve().parent / "guard_sets"
ENTITIES = ("EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "PHONE_NUMBER", "AWS_ACCESS_KEY",
            "AWS_SECRET_KEY", "API_KEY")
FAMILIES = ("instruction_override", "role_play", "system_prompt_extraction", "encoded_payload",
            "embedded_instruction")
#: Spec references.
PII_RECALL_REF = {"EMAIL_ADDRESS": 0.99, "US_SSN": 0.99, "CREDIT_CARD": 0.99, "IBAN_CODE": 0.99, "IP_ADDRESS": 0.99,
                  "PHONE_NUMBER": 0.9}
INJ_RECALL_REF = 0.95
INJ_FPR_REF = 0.02
MS_PER_KB_REF = 10.0


# ------------------------------------------------------------------------------------------------------ backends

def _fake_guard_class():
    """A deliberately naive guard, only to exercise the harness (``--backend fake``): not a detector."""
    from stepcrew.guards.base import Finding, Guard

    patterns = {"EMAIL_ADDRESS": r"[\w.+-]+@[\w-]+\.[\w.]+", "US_SSN": r"\b\d{3}-\d{2}-\d{4}\b",
                "IP_ADDRESS": r"\b\d{1,3}(?:\.\d{1,3}){3}\b", "AWS_ACCESS_KEY": r"\bAKIA[A-Z0-9]{16}\b",
                "API_KEY": r"\bsk-[\w-]{20,}"}
    compiled = {k: re.compile(v) for k, v in patterns.items()}
    trigger = re.compile(r"ignore (all|previous)|system prompt|\bDAN\b|base64", re.IGNORECASE)

    class FakeGuard(Guard):
        name = "fake"

        def pii(self, text: str) -> list[Finding]:
            out = [Finding(kind="pii", entity=e, start=m.start(), end=m.end(), score=0.5)
                   for e, rx in compiled.items() for m in rx.finditer(text)]
            return sorted(out, key=lambda f: f.start)

        def injection(self, text: str) -> list[Finding]:
            m = trigger.search(text)
            return [Finding(kind="injection", entity="instruction_override", start=m.start(), end=m.end(),
                            score=0.5)] if m else []

        def topics(self, text, denied):
            return []

    return FakeGuard


def load_guard(backend: str):
    if backend == "local":
        from stepcrew.guards.local import LocalGuard
        return LocalGuard()
    if backend == "fake":
        return _fake_guard_class()()
    if ":" in backend:
        module, _, attr = backend.partition(":")
        return getattr(importlib.import_module(module), attr)()
    raise SystemExit(f"unknown backend {backend!r} (local, fake or module:Class)")


# ------------------------------------------------------------------------------------------------------ helpers

def read_jsonl(name: str, limit: int | None) -> list[dict]:
    with (SETS / name).open(encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    return records[:limit] if limit else records


def short(text: str, n: int = 100) -> str:
    t = text.encode("unicode_escape").decode("ascii") if any(ord(c) > 0x2000 for c in text) else text
    t = t.replace("\n", "\\n")
    return t if len(t) <= n else t[:n - 3] + "..."


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q * (len(s) - 1))))
    return s[k]


def mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def fmt(x: float | None, d: int = 3) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{d}f}"


class Timer:
    """Per-call times (ms) and the bytes screened, for one check kind."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.bytes = 0
        self.errors = 0

    def run(self, fn, text: str):
        t0 = time.perf_counter()
        try:
            out = fn(text)
        except Exception as exc:  # noqa: BLE001 - a backend failure is reported, not fatal (GuardUnavailableError among them)
            self.errors += 1
            out = exc
        self.ms.append((time.perf_counter() - t0) * 1000)
        self.bytes += len(text.encode("utf-8"))
        return out

    @property
    def ms_per_kb(self) -> float:
        return sum(self.ms) / (self.bytes / 1024) if self.bytes else float("nan")


class Examples:
    """Up to ``n`` example lines, skipping near-repeats (>= 75% of the smaller word set shared with a shown one, digits
    ignored) so one template does not fill the list; ``count`` counts them all."""

    def __init__(self, n: int = 10) -> None:
        self.n, self.lines, self.keys, self.count = n, [], [], 0

    def add(self, key: str, line: str) -> None:
        self.count += 1
        if len(self.lines) >= self.n:
            return
        words = set(re.findall(r"[^\W\d_]+", key.lower()))
        if any(len(words & k) >= 0.75 * max(1, min(len(words), len(k))) for k in self.keys):
            return
        self.keys.append(words)
        self.lines.append(line)

    def print(self, title: str) -> None:
        if self.count:
            print(f"{title} ({self.count}; up to {self.n} shown, near-repeats skipped):")
            for line in self.lines:
                print("  -", line)


def overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


# ---------------------------------------------------------------------------------------------------------- PII

def bench_pii(guard, records: list[dict], deadline: float) -> dict:
    timer = Timer()
    gold_n: Counter = Counter()
    gold_hit: Counter = Counter()
    gold_hit_any = 0
    pred_n: Counter = Counter()
    pred_ok: Counter = Counter()
    neg_flagged = neg_n = 0
    misses, fps = Examples(), Examples()
    ctx_n: Counter = Counter()
    ctx_hit: Counter = Counter()
    screened = 0
    for rec in records:
        if time.perf_counter() > deadline:
            break
        text, gold = rec["text"], rec["spans"]
        out = timer.run(guard.pii, text)
        screened += 1
        preds = [] if isinstance(out, Exception) else [f for f in out if f.kind == "pii"]
        if not gold:
            neg_n += 1
            neg_flagged += bool(preds)
        for g in gold:
            glen = g["end"] - g["start"]
            gold_n[g["entity"]] += 1
            same = any(p.entity == g["entity"] and overlap(p.start, p.end, g["start"], g["end"]) * 2 >= glen
                       for p in preds)
            anyent = any(overlap(p.start, p.end, g["start"], g["end"]) * 2 >= glen for p in preds)
            gold_hit[g["entity"]] += same
            gold_hit_any += anyent
            ctx_n[rec.get("context", "?")] += 1
            ctx_hit[rec.get("context", "?")] += same
            if not same:
                got = ", ".join(f"{p.entity}:{text[p.start:p.end]!r}" for p in preds
                                if overlap(p.start, p.end, g["start"], g["end"])) or "nothing"
                misses.add(g["entity"] + text, f"{g['entity']} {text[g['start']:g['end']]!r} (got {got}) in: "
                           f"{short(text, 80)}")
        for p in preds:
            pred_n[p.entity] += 1
            ok = any(p.entity == g["entity"] and overlap(p.start, p.end, g["start"], g["end"]) * 2
                     >= g["end"] - g["start"] for g in gold)
            pred_ok[p.entity] += ok
            if not ok:
                fps.add(p.entity + text, f"{p.entity} {text[p.start:p.end]!r} in: {short(text, 80)}")
    return {"timer": timer, "gold_n": gold_n, "gold_hit": gold_hit, "gold_hit_any": gold_hit_any,
            "ctx_n": ctx_n, "ctx_hit": ctx_hit,
            "pred_n": pred_n, "pred_ok": pred_ok, "neg_flagged": neg_flagged, "neg_n": neg_n, "misses": misses,
            "fps": fps, "screened": screened, "total": len(records)}


def report_pii(res: dict) -> dict:
    print(f"\n== PII ({res['screened']}/{res['total']} records screened; {res['neg_n']} without PII) ==")
    print(f"{'entity':<16} {'gold':>5} {'recall':>7} {'pred':>5} {'precision':>9}  reference")
    recalls: dict[str, float] = {}
    precisions: dict[str, float] = {}
    for e in ENTITIES:
        g, h = res["gold_n"][e], res["gold_hit"][e]
        p, ok = res["pred_n"][e], res["pred_ok"][e]
        rec = h / g if g else None
        prec = ok / p if p else None
        if rec is not None:
            recalls[e] = rec
        if prec is not None:
            precisions[e] = prec
        ref = PII_RECALL_REF.get(e)
        refs = f"recall >= {ref:.2f} {mark(rec is not None and rec >= ref)}" if ref else "-"
        print(f"{e:<16} {g:>5} {fmt(rec):>7} {p:>5} {fmt(prec):>9}  {refs}")
    others = {e: n for e, n in res["pred_n"].items() if e not in ENTITIES}
    if others:
        print(f"(predictions of other entities, counted as wrong: {dict(others)})")
    total_gold = sum(res["gold_n"].values())
    total_pred = sum(res["pred_n"].values())
    micro_r = sum(res["gold_hit"].values()) / total_gold if total_gold else None
    micro_p = sum(res["pred_ok"].values()) / total_pred if total_pred else None
    any_r = res["gold_hit_any"] / total_gold if total_gold else None
    neg_rate = res["neg_flagged"] / res["neg_n"] if res["neg_n"] else None
    print(f"{'all (micro)':<16} {total_gold:>5} {fmt(micro_r):>7} {total_pred:>5} {fmt(micro_p):>9}")
    print(f"entity-agnostic recall: {fmt(any_r)}; no-PII records with any finding: {fmt(neg_rate)}"
          f"{'; backend errors: ' + str(res['timer'].errors) if res['timer'].errors else ''}")
    print("recall by context: " + ", ".join(f"{c} {fmt(res['ctx_hit'][c] / n)} (n={n})"
                                             for c, n in sorted(res["ctx_n"].items())))
    res["misses"].print("misses")
    res["fps"].print("false positives")
    ref_ok = [recalls.get(e, 0.0) >= r for e, r in PII_RECALL_REF.items()]
    return {"pii_recall_min": min(recalls.values()) if recalls else None,
            "pii_recall_ref_min": min((recalls.get(e, 0.0) for e in PII_RECALL_REF), default=None),
            "pii_precision_min": min(precisions.values()) if precisions else None,
            "pii_recall_micro": micro_r, "pii_precision_micro": micro_p, "pii_recall_any": any_r,
            "pii_neg_flag_rate": neg_rate, "_passes": ref_ok}


# ---------------------------------------------------------------------------------------------------- injection

def bench_injection(guard, records: list[dict], deadline: float, timer: Timer) -> dict:
    fam_n: Counter = Counter()
    fam_hit: Counter = Counter()
    fam_agree: Counter = Counter()
    benign_n = benign_flagged = 0
    misses, fps = Examples(), Examples()
    style_n: Counter = Counter()
    style_hit: Counter = Counter()
    screened = 0
    for rec in records:
        if time.perf_counter() > deadline:
            break
        out = timer.run(guard.injection, rec["text"])
        screened += 1
        preds = [] if isinstance(out, Exception) else [f for f in out if f.kind == "injection"]
        flagged = bool(preds)
        if rec["label"] == "injection":
            fam = rec.get("family", "?")
            fam_n[fam] += 1
            fam_hit[fam] += flagged
            fam_agree[fam] += any(p.entity == fam for p in preds)
            style_n[rec.get("style", "?")] += 1
            style_hit[rec.get("style", "?")] += flagged
            if not flagged:
                misses.add(rec["text"], f"[{fam}/{rec.get('style', '')}] {short(rec['text'])}")
        else:
            benign_n += 1
            benign_flagged += flagged
            if flagged:
                f0 = preds[0]  # near-repeats judged around the flagged span: the same trigger in another record
                fps.add(rec["text"][max(0, f0.start - 60):f0.end + 60], f"[{f0.entity}] {short(rec['text'])}")
    return {"fam_n": fam_n, "fam_hit": fam_hit, "fam_agree": fam_agree, "benign_n": benign_n,
            "style_n": style_n, "style_hit": style_hit,
            "benign_flagged": benign_flagged, "misses": misses, "fps": fps, "screened": screened,
            "total": len(records)}


def report_injection(label: str, res: dict) -> dict:
    print(f"\n== Injection, {label} ({res['screened']}/{res['total']} records screened) ==")
    print(f"{'family':<26} {'n':>4} {'recall':>7} {'family named':>13}")
    for fam in list(FAMILIES) + sorted(set(res["fam_n"]) - set(FAMILIES)):
        n = res["fam_n"][fam]
        print(f"{fam:<26} {n:>4} {fmt(res['fam_hit'][fam] / n if n else None):>7} "
              f"{fmt(res['fam_agree'][fam] / n if n else None):>13}")
    n_inj = sum(res["fam_n"].values())
    recall = sum(res["fam_hit"].values()) / n_inj if n_inj else None
    fpr = res["benign_flagged"] / res["benign_n"] if res["benign_n"] else None
    print(f"{'all injections':<26} {n_inj:>4} {fmt(recall):>7}   reference >= {INJ_RECALL_REF:.2f} "
          f"{mark(recall is not None and recall >= INJ_RECALL_REF)}")
    print(f"{'false positives on benign':<26} {res['benign_n']:>4} {fmt(fpr):>7}   reference <= {INJ_FPR_REF:.2f} "
          f"{mark(fpr is not None and fpr <= INJ_FPR_REF)}")
    print("injection recall by style: " + ", ".join(f"{st} {fmt(res['style_hit'][st] / n)} (n={n})"
                                                    for st, n in sorted(res["style_n"].items())))
    res["misses"].print("misses")
    res["fps"].print("false positives")
    return {"recall": recall, "fpr": fpr,
            "_passes": [recall is not None and recall >= INJ_RECALL_REF, fpr is not None and fpr <= INJ_FPR_REF]}


# ------------------------------------------------------------------------------------------------------ latency

def bench_batched(guard, texts: list[str], check: str, deadline: float, batch_bytes: int = 16_384) -> float | None:
    """ms per KB when the texts are screened in ~16 KB batches through ``screen_many``."""
    from stepcrew.guards.base import screen_many

    fn = getattr(guard, check)
    total_ms, total_bytes = 0.0, 0
    batch: list[str] = []
    size = 0
    for t in texts + [None]:
        if t is not None:
            batch.append(t)
            size += len(t.encode("utf-8"))
        if batch and (t is None or size >= batch_bytes):
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            try:
                screen_many(fn, batch)
            except Exception:  # noqa: BLE001 - reported through the per-call figures already
                return None
            total_ms += (time.perf_counter() - t0) * 1000
            total_bytes += size
            batch, size = [], 0
    return total_ms / (total_bytes / 1024) if total_bytes else None


def report_latency(timers: dict[str, Timer], batched: dict[str, float | None], setup_ms: float,
                   warm_ms: dict[str, float]) -> dict:
    print(f"\n== Latency (guard construction {setup_ms:.0f} ms; first calls: "
          + ", ".join(f"{k} {v:.0f} ms" for k, v in warm_ms.items()) + ") ==")
    print(f"{'check':<10} {'calls':>6} {'KB':>8} {'p50 ms':>8} {'p95 ms':>8} {'ms/KB':>7} {'batched ms/KB':>14}"
          f"  reference <= {MS_PER_KB_REF:.0f} ms/KB (per call; batched)")
    out = {}
    for kind, t in timers.items():
        mpk = t.ms_per_kb
        out[kind] = mpk
        print(f"{kind:<10} {len(t.ms):>6} {t.bytes / 1024:>8.1f} {fmt(pct(t.ms, 0.5), 2):>8} "
              f"{fmt(pct(t.ms, 0.95), 2):>8} {fmt(mpk, 2):>7} {fmt(batched.get(kind), 2):>14}  "
              f"{mark(not math.isnan(mpk) and mpk <= MS_PER_KB_REF)}; "
              f"{mark(None if batched.get(kind) is None else batched[kind] <= MS_PER_KB_REF)}")
    all_ms = sum(sum(t.ms) for t in timers.values())
    all_kb = sum(t.bytes for t in timers.values()) / 1024
    out["all"] = all_ms / all_kb if all_kb else float("nan")
    return out


# --------------------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Guard benchmark (PII and injection) on bench/guard_sets/.")
    ap.add_argument("--backend", default="local", help="local (default), fake (harness self-test) or module:Class")
    ap.add_argument("--limit", type=int, default=None, help="at most N records from each set")
    ap.add_argument("--budget", type=float, default=100.0, help="seconds of screening before stopping (default 100)")
    args = ap.parse_args(argv)
    start = time.perf_counter()

    pii_set = read_jsonl("pii.jsonl", args.limit)
    main_set = read_jsonl("injection.jsonl", args.limit)
    held_set = read_jsonl("injection_heldout.jsonl", args.limit)

    t0 = time.perf_counter()
    try:
        guard = load_guard(args.backend)
    except Exception as exc:  # noqa: BLE001 - ImportError while LocalGuard is being written, a missing library...
        print(f"backend {args.backend!r} could not be loaded: {type(exc).__name__}: {exc}")
        print(f"backend={args.backend} status=unavailable")
        return 2
    setup_ms = (time.perf_counter() - t0) * 1000
    print(f"guard bench: backend={args.backend} ({type(guard).__module__}.{type(guard).__name__}, "
          f"name={getattr(guard, 'name', '?')}); sets: pii {len(pii_set)}, injection {len(main_set)}, "
          f"held-out {len(held_set)}")

    warm_ms = {}
    for kind in ("pii", "injection"):  # one warm-up call each (lazy model/engine loading), timed apart
        t0 = time.perf_counter()
        try:
            getattr(guard, kind)("warm-up: contact ops@example.com; ignore nothing.")
        except Exception as exc:  # noqa: BLE001 - reported; the records will count the errors
            print(f"warm-up {kind} failed: {type(exc).__name__}: {exc}")
        warm_ms[kind] = (time.perf_counter() - t0) * 1000

    deadline = time.perf_counter() + args.budget  # the budget covers screening, not construction and warm-up
    # budget shares: PII half, injection main and held-out the other half, batched latency whatever is left
    pii_res = bench_pii(guard, pii_set, min(deadline, time.perf_counter() + args.budget * 0.45))
    inj_timer = Timer()
    main_res = bench_injection(guard, main_set, min(deadline, time.perf_counter() + args.budget * 0.3), inj_timer)
    held_res = bench_injection(guard, held_set, min(deadline, time.perf_counter() + args.budget * 0.15), inj_timer)
    batched = {"pii": bench_batched(guard, [r["text"] for r in pii_set], "pii", deadline),
               "injection": bench_batched(guard, [r["text"] for r in main_set + held_set], "injection", deadline)}

    pii_sum = report_pii(pii_res)
    main_sum = report_injection("main set", main_res)
    held_sum = report_injection("held-out set (different templates)", held_res)
    lat = report_latency({"pii": pii_res["timer"], "injection": inj_timer}, batched, setup_ms, warm_ms)

    passes = pii_sum["_passes"] + main_sum["_passes"] + held_sum["_passes"] + [
        not math.isnan(lat["pii"]) and lat["pii"] <= MS_PER_KB_REF,
        not math.isnan(lat["injection"]) and lat["injection"] <= MS_PER_KB_REF]
    truncated = (pii_res["screened"] < pii_res["total"] or main_res["screened"] < main_res["total"]
                 or held_res["screened"] < held_res["total"])
    elapsed = time.perf_counter() - start
    if inj_timer.errors or pii_res["timer"].errors:
        print(f"\nbackend errors (records counted as not flagged): pii {pii_res['timer'].errors}, "
              f"injection {inj_timer.errors}")
    print(f"\nreferences met: {sum(passes)}/{len(passes)}; elapsed {elapsed:.1f} s"
          + ("; TRUNCATED by --budget (figures cover the screened records only)" if truncated else ""))
    kv = {"backend": args.backend,
          "pii_recall_min": fmt(pii_sum["pii_recall_min"]), "pii_recall_ref_min": fmt(pii_sum["pii_recall_ref_min"]),
          "pii_precision_min": fmt(pii_sum["pii_precision_min"]), "pii_recall_any": fmt(pii_sum["pii_recall_any"]),
          "pii_neg_flag_rate": fmt(pii_sum["pii_neg_flag_rate"]),
          "injection_recall": fmt(main_sum["recall"]), "injection_fpr": fmt(main_sum["fpr"]),
          "heldout_recall": fmt(held_sum["recall"]), "heldout_fpr": fmt(held_sum["fpr"]),
          "pii_ms_per_kb": fmt(lat["pii"], 2), "injection_ms_per_kb": fmt(lat["injection"], 2),
          "ms_per_kb": fmt(lat["all"], 2), "refs_passed": f"{sum(passes)}/{len(passes)}",
          "errors": pii_res["timer"].errors + inj_timer.errors,
          "truncated": str(truncated).lower(), "elapsed_s": f"{elapsed:.1f}"}
    print(" ".join(f"{k}={v}" for k, v in kv.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
