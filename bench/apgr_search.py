"""Model selection for the exam heads on the TRAIN split only, by the criterion fixed in
bench/results/apgr-protocol.md (round 3, ``--round3``: apgr-protocol-3.md, 10 fold seeds, a fixed candidate
set, a paired one-SE shipping rule): APGR of out-of-fold scores, 5-fold CV repeated over 3 fold seeds, per
source; a head's settings are chosen by its own source (mc -> MMLU, open -> GSM8K) and the mean over
MMLU and GSM8K is the one number compared with the shipped configuration. Needs the ``train`` extra.

    python -m bench.apgr_search [--heads mc,open] [--variants wp,stem] [--seeds N]   # one line per candidate
    python -m bench.apgr_search --round3 [--seeds 10]   # round 3's fixed candidate set, bench/results/apgr-protocol-3.md
    python -m bench.apgr_search --round4 PATH/train.jsonl [--seeds 10]   # round 4, apgr-protocol-4.md

Candidates: L2 strength C, the dense features' scale (``dense_scale`` in bench/logistic.py), the model
form (``outcomes``: P(premium right) - P(cheap right); ``pairs``: P(only premium right) - P(only cheap
right), the same expected gain with the two logistic regressions fitted on the disagreements; ``ridge``:
least squares on premium-minus-cheap), the rules blend weight, and feature variants: ``wp``
(``word_problem_features``) and ``stem`` (``stem_tokens``). None of the variants is in the shipped model.
The fits mirror bench/logistic.py exactly (vocabulary by min_df on the fold's training rows, dense
features standardised on them), on matrices built once per head for speed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import eval_routing as E  # noqa: E402
from extproc import classify as C  # noqa: E402

SEEDS = (0, 1, 2)
FOLDS = 5
HEAD_SOURCE = {"mc": "mmlu", "open": "gsm8k"}


def fold_maps(train: list[dict], seeds: tuple[int, ...] = SEEDS) -> list[dict[str, int]]:
    """Fold of every train id per seed; seed 0 is eval_routing.out_of_fold's assignment."""
    out = []
    for seed in seeds:
        ids = sorted(r["id"] for r in train)
        random.Random(seed).shuffle(ids)
        out.append({i: k % FOLDS for k, i in enumerate(ids)})
    return out


class HeadData:
    """One head's train rows as matrices: 0/1 token matrix over every token seen, dense features, targets."""

    def __init__(self, rows: list[dict], prep: E.Prepared, head: str, variants: tuple[str, ...] = ()):
        self.rows = [r for r in rows if r["source"] != "mt_bench" and prep.by_id[r["id"]][0] == head]
        self.ids = [r["id"] for r in self.rows]
        toks = [prep.by_id[i][2] for i in self.ids]
        dense = [prep.by_id[i][1] for i in self.ids]
        if variants:   # this head's candidate features on top of prep's (prep itself is left as it is)
            ps = [variant_prompt(r) for r in self.rows]
            if "wp" in variants:
                dense = [list(d) + word_problem_features(p) for d, p in zip(dense, ps)]
            if "stem" in variants:
                toks = [t | stem_tokens(p) for t, p in zip(toks, ps)]
        vocab = sorted({t for ts in toks for t in ts})
        index = {t: k for k, t in enumerate(vocab)}
        indptr, indices = [0], []
        for ts in toks:
            indices.extend(sorted(index[t] for t in ts))
            indptr.append(len(indices))
        self.words = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(toks), len(vocab)))
        self.dense = np.array(dense, dtype=float)
        self.strong = np.array([float(r["strong_correct"]) for r in self.rows])
        self.weak = np.array([float(r["weak_correct"]) for r in self.rows])
        self.rules = np.array([prep.by_id[i][3] for i in self.ids])


def design(h: HeadData, fit_idx: np.ndarray, min_df: int, dense_scale: float, dense_cols=None):
    """(X_fit, X_all) as bench/logistic.fit builds them from the fit rows."""
    w = h.words[fit_idx]
    df = np.asarray((w > 0).sum(axis=0)).ravel()
    cols = np.flatnonzero(df >= min_df)
    d = h.dense if dense_cols is None else h.dense[:, dense_cols]
    mu = d[fit_idx].mean(axis=0)
    sd = d[fit_idx].std(axis=0)
    sd[sd == 0] = 1.0
    z = (d - mu) * (dense_scale / sd)
    x = sparse.hstack([h.words[:, cols], sparse.csr_matrix(z)]).tocsr()
    return x[fit_idx], x


def targets(h: HeadData, form: str) -> tuple[np.ndarray, np.ndarray]:
    if form == "outcomes":
        return h.strong, h.weak
    return h.strong * (1 - h.weak), h.weak * (1 - h.strong)   # pairs: only premium right, only cheap right


def lr(x, y, c):
    return LogisticRegression(C=c, solver="lbfgs", max_iter=5000, tol=1e-6).fit(x, y)


def oof_gain(h: HeadData, folds: dict[str, int], c: float, dense_scale: float, form: str, min_df: int,
             dense_cols=None) -> np.ndarray:
    fold = np.array([folds[i] for i in h.ids])
    out = np.zeros(len(h.ids))
    ya, yb = targets(h, form)
    for k in range(FOLDS):
        fit_idx, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        xf, xa = design(h, fit_idx, min_df, dense_scale, dense_cols)
        if form == "ridge":   # least squares on premium minus cheap outcome; alpha = 1 / C
            from sklearn.linear_model import Ridge
            out[held] = Ridge(alpha=1.0 / c).fit(xf, (h.strong - h.weak)[fit_idx]).predict(xa[held])
            continue
        pa = lr(xf, ya[fit_idx], c).predict_proba(xa[held])[:, 1]
        pb = lr(xf, yb[fit_idx], c).predict_proba(xa[held])[:, 1]
        out[held] = pa - pb
    return (out + 1.0) / 2.0


def apgr_of(h: HeadData, score: np.ndarray, source: str) -> float:
    """APGR over the head's rows of ``source`` (the open head also carries MT-Bench and one MMLU prompt)."""
    return E.apgr([r for r in h.rows if r["source"] == source], {i: float(s) for i, s in zip(h.ids, score)})


_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty hundred "
    "thousand million dozen half twice double triple third quarter fourth fifth".split())
_OPERATION_WORDS = frozenset(
    "each per every more less fewer left remaining remain total times twice double triple percent discount "
    "spend spent earn earns earned save saves buy buys bought sell sells sold split share shared increase "
    "decrease difference average rate cost costs pay pays paid profit".split())


def word_problem_features(p: C.Prompt) -> list[float]:
    """Candidate dense features of a word problem's size: numbers written as digits (all, not distinct),
    numbers and fractions written as words, and words of arithmetic relations (each, per, left, total...)."""
    lg = np.log1p
    return [float(lg(sum(map(str.isdigit, p.words)))), float(lg(sum(w in _NUMBER_WORDS for w in p.words))),
            float(lg(sum(w in _OPERATION_WORDS for w in p.words)))]


def stem_tokens(p: C.Prompt) -> set[str]:
    """Candidate tokens: 5-letter prefixes of the question's longer words (``s:``), so that inflections
    of one word (derive, derived, derivative) share a weight."""
    return {"s:" + w[:5] for w in p.words if len(w) > 5 and w.isalpha()}


def variant_prompt(r: dict) -> C.Prompt:
    """The row's prompt tokenized as the classifier does at run time (one user message)."""
    view = C.read_request(E.body_of(r["prompt"]))
    return C.Prompt(view.prompt, C.ClassifierSettings().max_scan_chars)


def apply_variants(rows: list[dict], prep: E.Prepared, variants: list[str]) -> None:
    for r in rows:
        head, dense, toks, rs = prep.by_id[r["id"]]
        p = variant_prompt(r)
        if "wp" in variants:
            dense = list(dense) + word_problem_features(p)
        if "stem" in variants:
            toks = toks | stem_tokens(p)
        prep.by_id[r["id"]] = (head, dense, toks, rs)


# Round 3's fixed candidate set (bench/results/apgr-protocol-3.md). Per head: (features, C, dense_scale,
# rules weights); a candidate is one multiple-choice option with one open option.
ROUND3 = {
    "mc": [(v, 0.01, 4.0, (0.0,)) for v in ((), ("stem",))],
    "open": [(v, c, 1.0, (0.0, 0.2, 0.4)) for v in ((), ("wp",), ("stem",), ("wp", "stem"))
             for c in (0.01, 0.02, 0.04)],
}
ROUND3_SHIPPED = {"mc": ((), 0.01, 4.0, 0.0), "open": ((), 0.04, 1.0, 0.4)}   # extproc/classifier_model.json


def _label(head: str, opt: tuple) -> str:
    v, c, ds, w = opt
    return f"{head}[{'+'.join(v) or 'shipped'} C={c} scale={ds} w={w}]"


def round3(rows: list[dict], prep: E.Prepared, seeds: tuple[int, ...]) -> None:
    """Scores every candidate of ROUND3 by S (mean over MMLU and GSM8K of the out-of-fold APGR, per fold seed,
    every prompt scored by its own head), prints the table best first with SE(S) = sd(S_s) / sqrt(n), and
    applies the protocol's shipping rule (paired over seeds) to the best candidate."""
    folds = fold_maps(rows, seeds)
    # per head option: per seed, {id: out-of-fold blended score}
    oof: dict[str, dict[tuple, list[dict[str, float]]]] = {"mc": {}, "open": {}}
    for head, options in ROUND3.items():
        for v, c, ds, ws in options:
            t0 = time.time()
            h = HeadData(rows, prep, head, v)
            gains = [oof_gain(h, f, c, ds, "outcomes", E.MIN_DF) for f in folds]
            for w in ws:
                blended = [(1 - w) * g + w * h.rules for g in gains]
                oof[head][(v, c, ds, w)] = [dict(zip(h.ids, map(float, b))) for b in blended]
                per = [apgr_of(h, b, HEAD_SOURCE[head]) for b in blended]
                print(f"{_label(head, (v, c, ds, w))}: {HEAD_SOURCE[head]} (own head's rows) cv APGR "
                      f"{np.mean(per):.4f} (seeds {' '.join(f'{x:.4f}' for x in per)}) [{time.time() - t0:.0f}s]",
                      flush=True)
    by_src = {s: [r for r in rows if r["source"] == s] for s in ("mmlu", "gsm8k")}
    n = len(seeds)
    table = []
    for m, mc_scores in oof["mc"].items():
        for o, open_scores in oof["open"].items():
            per = {src: [E.apgr(g, {**mc_scores[k], **open_scores[k]}) for k in range(n)]
                   for src, g in by_src.items()}
            s_seed = np.array([(a + b) / 2 for a, b in zip(per["mmlu"], per["gsm8k"])])
            table.append(((m, o), s_seed, np.mean(per["mmlu"]), np.mean(per["gsm8k"])))
    shipped = next(t for t in table if t[0] == (ROUND3_SHIPPED["mc"], ROUND3_SHIPPED["open"]))
    se = lambda x: float(np.std(x, ddof=1) / np.sqrt(len(x)))   # noqa: E731
    order = sorted(range(len(table)), key=lambda k: (-table[k][1].mean(), table[k] is not shipped, k))
    print(f"\n== S over {n} fold seeds ({' '.join(map(str, seeds))}) x {FOLDS}-fold, best first; "
          f"d = S - S(shipped), paired over seeds ==")
    print("rank | S | SE(S) | MMLU | GSM8K | d | SE(d) | candidate")
    for rank, k in enumerate(order, 1):
        (m, o), s_seed, mm, gg = table[k]
        d = s_seed - shipped[1]
        print(f"{rank:2} | {s_seed.mean():.4f} | {se(s_seed):.4f} | {mm:.4f} | {gg:.4f} | {d.mean():+.4f} | "
              f"{se(d):.4f} | {_label('mc', m)} {_label('open', o)}{'  <- shipped' if table[k] is shipped else ''}",
              flush=True)
    (m, o), s_seed, mm, gg = table[order[0]]
    d = s_seed - shipped[1]
    print(f"\nshipped: S {shipped[1].mean():.4f} (SE {se(shipped[1]):.4f}; MMLU {shipped[2]:.4f}, GSM8K "
          f"{shipped[3]:.4f}); per seed {' '.join(f'{x:.4f}' for x in shipped[1])}")
    print(f"chosen:  S {s_seed.mean():.4f} (SE {se(s_seed):.4f}; MMLU {mm:.4f}, GSM8K {gg:.4f}); per seed "
          f"{' '.join(f'{x:.4f}' for x in s_seed)}: {_label('mc', m)} {_label('open', o)}")
    ship = table[order[0]] is not shipped and d.mean() > se(d)
    print(f"paired difference {d.mean():+.4f}, SE(d) {se(d):.4f}: "
          f"{'SHIP (beats the shipped configuration by more than one SE)' if ship else 'DO NOT SHIP (not more than one SE above the shipped configuration)'}")


def round4(rows: list[dict], prep: E.Prepared, seeds: tuple[int, ...], gsm8k_train: str) -> None:
    """Round 4's 8 candidates for the open head (the multiple-choice head at its shipped configuration),
    scored by S as round 3, with the same paired one-SE shipping rule."""
    from bench import gsm8k_steps

    t0 = time.time()
    aux = gsm8k_steps.fit(gsm8k_train, min_weight=0.0)
    print(f"auxiliary steps model fitted in {time.time() - t0:.0f}s ({len(aux['words'])} words)", flush=True)
    folds = fold_maps(rows, seeds)
    mc = HeadData(rows, prep, "mc")
    mc_c, mc_ds, mc_w = ROUND3_SHIPPED["mc"][1:]
    mc_oof = [dict(zip(mc.ids, map(float, (1 - mc_w) * oof_gain(mc, f, mc_c, mc_ds, "outcomes", E.MIN_DF)
                                   + mc_w * mc.rules))) for f in folds]
    print(f"mc head (shipped) out of fold [{time.time() - t0:.0f}s]", flush=True)
    h = HeadData(rows, prep, "open")
    pred = np.array([gsm8k_steps.predict(aux, prep.by_id[i][1], prep.by_id[i][2]) for i in h.ids])
    hf = HeadData(rows, prep, "open")
    hf.dense = np.column_stack([hf.dense, pred])
    cands: dict[str, list[np.ndarray]] = {}
    shipped_c, _, shipped_w = ROUND3_SHIPPED["open"][1:]
    base = [(1 - shipped_w) * oof_gain(h, f, shipped_c, 1.0, "outcomes", E.MIN_DF) + shipped_w * h.rules
            for f in folds]
    cands["shipped"] = base
    for c in (0.02, 0.04):
        gains = [oof_gain(hf, f, c, 1.0, "outcomes", E.MIN_DF) for f in folds]
        for w in (0.2, 0.4):
            cands[f"feat C={c} w={w}"] = [(1 - w) * g + w * hf.rules for g in gains]
    for beta in (0.01, 0.02, 0.04):
        out = []
        for f, b in zip(folds, base):
            fold = np.array([f[i] for i in h.ids])
            z = np.zeros(len(h.ids))
            for k in range(FOLDS):
                fit, held = fold != k, fold == k
                z[held] = (pred[held] - pred[fit].mean()) / pred[fit].std()
            out.append(b + beta * z)
        cands[f"blend beta={beta}"] = out
    by_src = {s: [r for r in rows if r["source"] == s] for s in ("mmlu", "gsm8k")}
    se = lambda x: float(np.std(x, ddof=1) / np.sqrt(len(x)))   # noqa: E731
    table = []
    for name, scores in cands.items():
        per = {src: [E.apgr(g, {**mc_oof[k], **dict(zip(h.ids, map(float, scores[k])))})
                     for k in range(len(seeds))] for src, g in by_src.items()}
        s_seed = np.array([(a + b) / 2 for a, b in zip(per["mmlu"], per["gsm8k"])])
        table.append((name, s_seed, np.mean(per["mmlu"]), np.mean(per["gsm8k"])))
    shipped = table[0]
    order = sorted(range(len(table)), key=lambda k: (-table[k][1].mean(), k != 0, k))
    print(f"\n== S over {len(seeds)} fold seeds x {FOLDS}-fold, best first; d = S - S(shipped), paired ==")
    print("rank | S | SE(S) | MMLU | GSM8K | d | SE(d) | open head candidate")
    for rank, k in enumerate(order, 1):
        name, s_seed, mm, gg = table[k]
        d = s_seed - shipped[1]
        print(f"{rank} | {s_seed.mean():.4f} | {se(s_seed):.4f} | {mm:.4f} | {gg:.4f} | {d.mean():+.4f} | "
              f"{se(d):.4f} | {name}", flush=True)
    name, s_seed, mm, gg = table[order[0]]
    d = s_seed - shipped[1]
    print(f"\nshipped: S {shipped[1].mean():.4f}; per seed {' '.join(f'{x:.4f}' for x in shipped[1])}")
    print(f"chosen:  S {s_seed.mean():.4f}; per seed {' '.join(f'{x:.4f}' for x in s_seed)}: {name}")
    ship = order[0] != 0 and d.mean() > se(d)
    print(f"paired difference {d.mean():+.4f}, SE(d) {se(d):.4f}: "
          f"{'SHIP (beats the shipped configuration by more than one SE)' if ship else 'DO NOT SHIP (not more than one SE above the shipped configuration)'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heads", default="mc,open")
    ap.add_argument("--C", default="0.005,0.01,0.02,0.04")
    ap.add_argument("--scale", default="1,2")
    ap.add_argument("--forms", default="outcomes,pairs")
    ap.add_argument("--min-df", default="3")
    ap.add_argument("--blend", default="0,0.1,0.2,0.3")
    ap.add_argument("--variants", default="", help="comma-separated: wp (word-problem dense features), stem")
    ap.add_argument("--drop-dense", default="", help="comma-separated dense feature names to leave out")
    ap.add_argument("--seeds", type=int, default=len(SEEDS), help="fold seeds 0..N-1 (default 3)")
    ap.add_argument("--round3", action="store_true", help="round 3's fixed candidate set and shipping rule")
    ap.add_argument("--round4", metavar="GSM8K_TRAIN_JSONL", help="round 4 (apgr-protocol-4.md): path of GSM8K's "
                    "grade_school_math/data/train.jsonl")
    a = ap.parse_args()
    rows = [r for r in E.load(E.DEFAULT_DATA) if r["split"] == "train"]
    t0 = time.time()
    prep = E.Prepared(rows, C.ClassifierSettings())
    if a.round4:
        print(f"prepared {len(rows)} train prompts in {time.time() - t0:.0f}s", flush=True)
        round4(rows, prep, tuple(range(a.seeds)), a.round4)
        return
    if a.round3:
        print(f"prepared {len(rows)} train prompts in {time.time() - t0:.0f}s", flush=True)
        round3(rows, prep, tuple(range(a.seeds)))
        return
    variants = [v for v in a.variants.split(",") if v]
    apply_variants(rows, prep, variants)
    folds = fold_maps(rows, tuple(range(a.seeds)))
    print(f"prepared {len(rows)} train prompts in {time.time() - t0:.0f}s; heads "
          f"{dict(Counter((r['source'], prep.by_id[r['id']][0]) for r in rows))}", flush=True)
    drop = [n for n in a.drop_dense.split(",") if n]
    keep = [k for k, n in enumerate(C.DENSE_FEATURES) if n not in drop]
    for head in a.heads.split(","):
        h = HeadData(rows, prep, head)
        for form in a.forms.split(","):
            for md in map(int, a.min_df.split(",")):
                for ds in map(float, a.scale.split(",")):
                    for c in map(float, a.C.split(",")):
                        t0 = time.time()
                        gains = [oof_gain(h, f, c, ds, form, md, keep if drop else None) for f in folds]
                        for bw in map(float, a.blend.split(",")):
                            per = [apgr_of(h, (1 - bw) * g + bw * h.rules, HEAD_SOURCE[head]) for g in gains]
                            print(f"{head} {HEAD_SOURCE[head]} form={form} min_df={md} scale={ds} C={c} "
                                  f"blend={bw} drop={'+'.join(drop) or '-'} variants={'+'.join(variants) or '-'}: cv APGR {np.mean(per):.4f} "
                                  f"(seeds {' '.join(f'{p:.4f}' for p in per)}) [{time.time() - t0:.0f}s]",
                                  flush=True)


if __name__ == "__main__":
    main()
