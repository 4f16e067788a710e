"""Routing quality and speed of extproc.classify, end to end from the eval file. Needs the ``train`` extra
(scikit-learn, for bench/logistic.py): ``pip install -e '.[train]'``.

    python -m bench.eval_routing                      # evaluate the shipped model on the test split
    python -m bench.eval_routing --train              # retrain classifier_model.json on the train split first
    python -m bench.eval_routing --data PATH --out DIR --score-py PATH

Steps:
1. (--train) cross-validation on split == "train" only, by the protocol in bench/results/apgr-protocol.md
   (5-fold CV repeated over 3 fold seeds): per head (multiple choice -> MMLU, open -> GSM8K) the L2 strength C,
   the dense features' scale, the targets' form and the rules blend weight (GRID); then the criterion, the
   mean of MMLU and GSM8K train-CV APGR, for the chosen and the previously shipped settings (BASELINE); the
   model is fitted on all of train and extproc/classifier_model.json written only if the criterion improves.
   Nothing from the test split is read while training (--train-only stops there).
2. Scores every prompt with the rules, linear and combined classifiers (the prompt sent as one user message,
   exactly as a request would be) and writes scores_{kind}_test.jsonl; runs score.py --curve on them.
3. Picks the operating point on TRAIN: the highest premium_threshold whose train quality kept is >= 95% of
   all-premium on both MMLU and GSM8K (+ a margin), writes decisions_test.jsonl and runs score.py on it.
4. Leakage check: test MMLU prompts whose exact text also occurs in train; APGR without them.
5. Times classify() on a 2 KB chat request: p50/p99 of time.perf_counter_ns over many runs.
6. The product development set's test split (bench/devset, bench/eval_devset.py) next to it: requests
   on the right side of simple/premium under the shipped config, for the task-aware and the exam-only
   classifier.

Only the prompt text is used: the eval's source/subject fields are never features.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import logistic  # noqa: E402
from extproc import classify as C  # noqa: E402

DEFAULT_DATA = Path("/work/shared/eval/routing_eval.jsonl")
SOURCES = ("mmlu", "gsm8k", "mt_bench")
MIN_DF = 3                 # a word enters the vocabulary if it occurs in >= MIN_DF training prompts
QUALITY_KEPT = 0.95
MARGIN = 0.005             # the operating point is picked on train with this much headroom


def load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def body_of(prompt: str) -> dict:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}]}


def outcomes(r: dict) -> tuple[float, float]:
    if r["source"] == "mt_bench":
        return float(r["weak_score"]), float(r["strong_score"])
    return float(r["weak_correct"]), float(r["strong_correct"])


# --- metrics (same definitions as score.py; score.py itself produces the reported numbers) ---------

def apgr(rows: list[dict], sc: dict[str, float]) -> float:
    n = len(rows)
    w = sum(outcomes(r)[0] for r in rows) / n
    s = sum(outcomes(r)[1] for r in rows) / n
    items = sorted(rows, key=lambda r: -sc[r["id"]])
    pts, k, q = [(0.0, 0.0)], 0, w * n
    while k < n:
        level = sc[items[k]["id"]]
        while k < n and sc[items[k]["id"]] == level:
            ow, os_ = outcomes(items[k])
            q += os_ - ow
            k += 1
        pts.append((k / n, (q / n - w) / (s - w)))
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:]))


def kept_and_share(rows: list[dict], sc: dict[str, float], t: float) -> tuple[float, float]:
    q = strong = 0.0
    s_all = 0.0
    for r in rows:
        w, s = outcomes(r)
        s_all += s
        if sc[r["id"]] >= t:
            q, strong = q + s, strong + 1
        else:
            q += w
    return q / s_all, strong / len(rows)


# --- features, once per prompt -------------------------------------------------------------------

class Prepared:
    """Per prompt: head, dense features, tokens, rule score (through the classifier's own code)."""

    def __init__(self, rows: list[dict], settings: C.ClassifierSettings):
        rules = C.RuleClassifier(settings)
        self.by_id = {}
        for r in rows:
            view = C.read_request(body_of(r["prompt"]))
            p = rules.prompt(view)
            f = rules.features(view, p)
            head, dense, tokens = C.linear_inputs(view, p, f["multiple_choice"])
            self.by_id[r["id"]] = (head, dense, tokens, rules.rule_score(f))


# --- training: two L2 logistic regressions per head (bench/logistic.py) ----------------------------

# The per-head candidates that cross-validation chooses from (bench/results/apgr-protocol.md): L2 strength
# C, the dense features' scale for the solver (bench/logistic.py ``dense_scale``: 2 weakens their L2 by 4),
# the targets' form, and the rules blend weight. Each head is chosen by its own source's train-CV APGR.
# The multiple-choice head tries the outcomes form only: in bench/apgr_search.py runs (same folds) pairs
# lost 0.004-0.007 of MMLU train-CV APGR at C 0.005 and 0.01, and each MMLU candidate costs about a minute.
GRID = {
    "mc": {"C": (0.005, 0.01, 0.02), "dense_scale": (1.0, 2.0, 4.0), "form": ("outcomes",),
           "rules_weight": (0.0, 0.05, 0.1)},
    "open": {"C": (0.005, 0.01, 0.02, 0.04, 0.08), "dense_scale": (1.0, 2.0, 4.0), "form": ("outcomes", "pairs"),
             "rules_weight": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)},
}
# The configuration shipped before this selection, measured by the same criterion for the shipping rule.
BASELINE = {"mc": {"C": 0.01, "dense_scale": 1.0, "form": "outcomes", "rules_weight": 0.0},
            "open": {"C": 0.01, "dense_scale": 1.0, "form": "outcomes", "rules_weight": 0.2}}


def targets(strong: float, weak: float, form: str) -> tuple[float, float]:
    """The two logistic regressions' 0/1 targets. ``outcomes``: premium right, cheap right. ``pairs``: only
    the premium model right, only the cheap one right. Either way the difference of the two probabilities
    estimates the same expected quality gain E[premium - cheap]; ``pairs`` spends the fit on disagreements."""
    if form == "outcomes":
        return strong, weak
    return strong * (1.0 - weak), weak * (1.0 - strong)


def fit_head(examples: list[tuple[list[float], frozenset[str], float, float]], c: float,
             dense_scale: float = 1.0, form: str = "outcomes") -> dict:
    """examples: (dense, tokens, strong_correct, weak_correct) -> one head of classifier_model.json: two
    logistic regressions (see ``targets``) with inverse L2 strength ``c``. The file's ``dense_scale`` is
    1: bench/logistic.py maps the weights back onto the raw features whatever scale the solver used."""
    rows = [(d, toks) for d, toks, _, _ in examples]
    ys = [targets(s, w, form) for _, _, s, w in examples]
    strong = logistic.fit(rows, [a for a, _ in ys], c, min_df=MIN_DF, dense_scale=dense_scale)
    weak = logistic.fit(rows, [b for _, b in ys], c, min_df=MIN_DF, dense_scale=dense_scale)
    words = {t: [round(strong.words.get(t, 0.0), 4), round(weak.words.get(t, 0.0), 4)]
             for t in sorted(strong.words.keys() | weak.words.keys())}
    return {"dense_scale": 1.0, "bias": [round(strong.bias, 5), round(weak.bias, 5)],
            "dense": [[round(a, 6), round(b, 6)] for a, b in zip(strong.dense, weak.dense)], "words": words,
            "C": c, "l2_dense_scale": dense_scale, "form": form}


def training_examples(rows: list[dict], prep: Prepared, head: str) -> list:
    ex = []
    for r in rows:
        if r["source"] == "mt_bench":  # judge scores, not right/wrong: not a logistic target (and 37 rows)
            continue
        h, d, toks, _ = prep.by_id[r["id"]]
        if h == head:
            w, s = outcomes(r)
            ex.append((d, toks, s, w))
    return ex


HEAD_SOURCE = {"mc": "mmlu", "open": "gsm8k"}   # the source whose train-CV APGR picks a head's settings
STEPS_BETA = 0.02   # the open head's steps term, chosen by round 4 (bench/results/apgr-protocol-4.md)


def steps_block(aux: dict, examples: list, beta: float, rules_weight: float) -> dict:
    """A head's ``steps`` entry (classify._Steps): the auxiliary predictor ``aux`` (bench/gsm8k_steps.py),
    standardised over the head's training ``examples``, weighted so that it adds ``beta`` times the
    standardised prediction to the blended score (the linear score's share of it is 1 - rules_weight)."""
    import statistics
    from bench import gsm8k_steps

    pred = [gsm8k_steps.predict(aux, d, toks) for d, toks, _, _ in examples]
    return {**{k: aux[k] for k in ("bias", "dense", "words", "low", "high", "trained_on")},
            "mean": round(statistics.fmean(pred), 6), "sd": round(statistics.pstdev(pred), 6),
            "selection": "bench/results/apgr-protocol-4.md", "beta": beta, "weight": round(beta / (1.0 - rules_weight), 6)}


def fit_model(rows: list[dict], prep: Prepared, settings: dict[str, dict], aux: dict | None = None) -> dict:
    """The model file: per head its weights, fit settings and rules blend weight (``settings[head]``:
    C, dense_scale, form, rules_weight, and ``steps_beta`` where the head adds the auxiliary predictor
    ``aux``)."""
    heads = {}
    for head in ("mc", "open"):
        ex = training_examples(rows, prep, head)
        st = settings[head]
        if ex:
            heads[head] = {**fit_head(ex, st["C"], st["dense_scale"], st["form"]), "rules_weight": st["rules_weight"]}
            if st.get("steps_beta") and aux is not None:
                heads[head]["steps"] = steps_block(aux, ex, st["steps_beta"], st["rules_weight"])
    return {"format": C.LINEAR_FORMAT, "dense_features": list(C.DENSE_FEATURES),
            "rules_weight": settings["mc"]["rules_weight"],
            "trained_on": "routing_eval.jsonl split=train (MMLU, GSM8K)", "C": settings["mc"]["C"],
            "selection": "bench/results/apgr-protocol.md", "heads": heads}


def settings_of(raw: dict) -> dict[str, dict]:
    """Per head fit settings of a model file (files before the per-head selection: one C, outcomes, 1)."""
    return {k: {"C": h.get("C", raw["C"]), "dense_scale": h.get("l2_dense_scale", 1.0),
                "form": h.get("form", "outcomes"), "rules_weight": h.get("rules_weight", raw.get("rules_weight", 0.0)),
                **({"steps_beta": h["steps"]["beta"]} if "steps" in h else {})}
            for k, h in raw["heads"].items()}


def model_of(raw: dict) -> C.LinearModel:
    return C.LinearModel({k: C._Head(h) for k, h in raw["heads"].items()}, raw["rules_weight"],
                         {k: h["rules_weight"] for k, h in raw["heads"].items() if "rules_weight" in h},
                         {k: tuple(h["calibration"]) for k, h in raw["heads"].items() if "calibration" in h})


def calibration(train: list[dict], prep: Prepared, settings: dict[str, dict],
                aux: dict | None = None) -> dict[str, list[float]]:
    """Per head (a, b) of classify.LinearModel.calibrated: least squares of (premium right - cheap right) on
    x = 2 * blended - 1 over the head's out-of-fold train scores (fold seed 0). Train split only."""
    oof = out_of_fold(train, prep, settings, aux=aux)
    rules = scores(train, prep, None, "rules")
    out = {}
    for head, st in settings.items():
        w = st["rules_weight"]
        pts = [(2 * ((1 - w) * oof[r["id"]] + w * rules[r["id"]]) - 1, outcomes(r)[1] - outcomes(r)[0])
               for r in train if r["source"] != "mt_bench" and prep.by_id[r["id"]][0] == head]
        n = len(pts)
        mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
        b = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
        if b <= 0:
            raise ValueError(f"calibration: head {head} has a non-increasing fit (slope {b})")
        out[head] = [round(my - b * mx, 6), round(b, 6)]
    return out


def scores(rows: list[dict], prep: Prepared, model: C.LinearModel | None, kind: str,
           rules_weight: float | None = None) -> dict[str, float]:
    """Same arithmetic as the classifiers' classify(), on precomputed inputs (checked in main);
    ``rules_weight`` None: each head's own blend weight."""
    out = {}
    for r in rows:
        head, d, toks, rs = prep.by_id[r["id"]]
        if kind == "rules":
            out[r["id"]] = rs
            continue
        h = model.head(head)
        ls = h.linear(d, toks, h.gain(d, toks))
        w = model.blend_weight(head) if rules_weight is None else rules_weight
        if kind == "linear":
            out[r["id"]] = ls
        else:
            blended = (1 - w) * ls + w * rs
            out[r["id"]] = model.calibrated(head, blended) if rules_weight is None else blended
    return out


def out_of_fold(train: list[dict], prep: Prepared, settings: dict[str, dict] | float, folds: int = 5,
                seed: int = 0, aux: dict | None = None) -> dict[str, float]:
    """Linear scores of every train prompt from a model fit without its fold (``settings``: per head, or
    one C for both heads with the outcomes form)."""
    if not isinstance(settings, dict):
        settings = {h: {"C": settings, "dense_scale": 1.0, "form": "outcomes", "rules_weight": 0.0} for h in GRID}
    rng = random.Random(seed)
    ids = sorted(r["id"] for r in train)
    rng.shuffle(ids)
    fold_of = {i: k % folds for k, i in enumerate(ids)}
    oof: dict[str, float] = {}
    for k in range(folds):
        fit_rows = [r for r in train if fold_of[r["id"]] != k]
        held = [r for r in train if fold_of[r["id"]] == k]
        oof.update(scores(held, prep, model_of(fit_model(fit_rows, prep, settings, aux)), "linear"))
    return oof


def cross_validate(train: list[dict], prep: Prepared) -> tuple[dict[str, dict], list]:
    """Per head, the GRID candidate with the best train-CV APGR on its source (3 x repeated 5-fold CV,
    bench/apgr_search.py's fast path, the same fits); ties: the earlier candidate in grid order.
    Returns (settings per head, table of (head, candidate, mean APGR, per-seed APGR))."""
    from bench import apgr_search as S
    folds = S.fold_maps(train)
    table, chosen = [], {}
    for head, grid in GRID.items():
        h = S.HeadData(train, prep, head)
        best = None
        for form in grid["form"]:
            for ds in grid["dense_scale"]:
                for c in grid["C"]:
                    gains = [S.oof_gain(h, f, c, ds, form, MIN_DF) for f in folds]
                    for bw in grid["rules_weight"]:
                        per = [S.apgr_of(h, (1 - bw) * g + bw * h.rules, HEAD_SOURCE[head]) for g in gains]
                        cand = {"C": c, "dense_scale": ds, "form": form, "rules_weight": bw}
                        m = sum(per) / len(per)
                        table.append((head, cand, m, per))
                        print(f"  cv {head} {cand}: {HEAD_SOURCE[head]} APGR {m:.4f} "
                              f"(seeds {' '.join(f'{p:.4f}' for p in per)})", flush=True)
                        if best is None or m > best[0]:
                            best = (m, cand)
        chosen[head] = best[1]
    return chosen, table


def criterion(train: list[dict], prep: Prepared, settings: dict[str, dict]) -> tuple[float, dict[str, float]]:
    """The protocol's one number: mean over MMLU and GSM8K of the APGR of out-of-fold combined scores,
    averaged over the 3 fold seeds, every prompt scored by its own head (the slow, exact path)."""
    from bench import apgr_search as S
    rules = scores(train, prep, None, "rules")
    per = {"mmlu": [], "gsm8k": []}
    for seed in S.SEEDS:
        oof = out_of_fold(train, prep, settings, seed=seed)
        sc = {i: (1 - settings[prep.by_id[i][0]]["rules_weight"]) * v
              + settings[prep.by_id[i][0]]["rules_weight"] * rules[i] for i, v in oof.items()}
        for src in per:
            per[src].append(apgr([r for r in train if r["source"] == src], sc))
    means = {src: sum(v) / len(v) for src, v in per.items()}
    return (means["mmlu"] + means["gsm8k"]) / 2, means


def write_jsonl(path: Path, items) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for it in items:
            fh.write(json.dumps(it) + "\n")


def run_score(score_py: Path, data: Path, f: Path, curve: bool) -> str:
    cmd = [sys.executable, str(score_py), str(data), str(f)] + (["--curve"] if curve else [])
    print("$ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    print(out, flush=True)
    return out


def latency(clf: C.Classifier, body: dict, runs: int = 20000) -> tuple[float, float]:
    for _ in range(2000):
        clf.classify(body)
    ts = []
    pc = time.perf_counter_ns
    for _ in range(runs):
        t0 = pc()
        clf.classify(body)
        ts.append(pc() - t0)
    ts.sort()
    return ts[len(ts) // 2] / 1000, ts[int(len(ts) * 0.99)] / 1000


def bench_body() -> dict:
    """A 2 KB chat request: system prompt, two turns of history and a reasoning question."""
    system = "You are a helpful assistant for an online electronics store. Answer concisely and accurately. "
    hist = ("My order #48213 arrived yesterday but the charger is missing from the box. Can you help me get "
            "a replacement, and tell me whether the warranty covers the battery if it stops holding charge? ")
    q = ("Compare the two laptops I looked at last week: one has 16 GB RAM and a 512 GB SSD for $1,099, the "
         "other 32 GB RAM and 1 TB for $1,449. If I keep a laptop for 4 years and value my time at $40 per "
         "hour, and the faster one saves me about 10 minutes a day on builds, which is the better deal? "
         "Explain step by step and state your assumptions. ")
    body = {"model": "auto", "messages": [
        {"role": "system", "content": system * 3},
        {"role": "user", "content": hist * 2},
        {"role": "assistant", "content": "I can help with that. " + hist},
        {"role": "user", "content": q * 2}]}
    return body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--score-py", type=Path, default=None, help="default: score.py beside the data file")
    ap.add_argument("--out", type=Path, default=Path("/tmp/eval_routing"))
    ap.add_argument("--train", action="store_true", help="retrain and overwrite extproc/classifier_model.json")
    ap.add_argument("--calibrate", action="store_true",
                    help="refit only the per-head score calibration of --model on train, rewrite it and stop")
    ap.add_argument("--train-only", action="store_true", help="with --train: stop before reading the test split")
    ap.add_argument("--add-steps", metavar="GSM8K_TRAIN_JSONL", type=Path,
                    help="give --model's open head round 4's steps term (apgr-protocol-4.md; GSM8K's own "
                         "grade_school_math/data/train.jsonl), recalibrate it on train, rewrite it and stop")
    ap.add_argument("--model", type=Path, default=C.DEFAULT_MODEL_PATH)
    ap.add_argument("--runs", type=int, default=20000, help="timed classify() calls per classifier")
    a = ap.parse_args()
    score_py = a.score_py or a.data.with_name("score.py")
    a.out.mkdir(parents=True, exist_ok=True)

    rows = load(a.data)
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    settings = C.ClassifierSettings()
    t0 = time.time()
    prep = Prepared(rows, settings)
    print(f"features for {len(rows)} prompts in {time.time() - t0:.1f}s; heads (train): "
          f"{dict(Counter((r['source'], prep.by_id[r['id']][0]) for r in train))}", flush=True)

    if a.train:
        t0 = time.time()
        chosen, _ = cross_validate(train, prep)
        print(f"chosen on train CV per head: {chosen} ({time.time() - t0:.0f}s)", flush=True)
        s_new, per_new = criterion(train, prep, chosen)
        s_old, per_old = criterion(train, prep, BASELINE)
        print(f"criterion (mean of MMLU and GSM8K 3x5-fold train-CV APGR): chosen {s_new:.4f} {per_new}, "
              f"before {s_old:.4f} {per_old}", flush=True)
        if s_new > s_old:
            raw = fit_model(train, prep, chosen)
            for head, cal in calibration(train, prep, chosen).items():
                raw["heads"][head]["calibration"] = cal
            a.model.write_text(json.dumps(raw, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
            print(f"wrote {a.model} ({a.model.stat().st_size / 1024:.0f} KiB, "
                  f"{sum(len(h['words']) for h in raw['heads'].values())} words)", flush=True)
        else:
            print("the criterion did not improve: the model file is left as it was", flush=True)
        if a.train_only:
            return
    if a.add_steps:
        from bench import gsm8k_steps

        raw = json.loads(a.model.read_text())
        aux = gsm8k_steps.fit(a.add_steps)
        chosen = settings_of(raw)
        chosen["open"]["steps_beta"] = STEPS_BETA
        raw["heads"]["open"]["steps"] = steps_block(aux, training_examples(train, prep, "open"), STEPS_BETA,
                                                    chosen["open"]["rules_weight"])
        for head, cal in calibration(train, prep, chosen, aux).items():
            raw["heads"][head]["calibration"] = cal
        a.model.write_text(json.dumps(raw, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {a.model}: open head steps term ({len(aux['words'])} words), calibration "
              f"{ {h: raw['heads'][h]['calibration'] for h in raw['heads']} }", flush=True)
        return
    if a.calibrate:
        raw = json.loads(a.model.read_text())
        cal = calibration(train, prep, settings_of(raw))
        print(f"calibration per head (train out-of-fold): {cal}", flush=True)
        for head, c in cal.items():
            raw["heads"][head]["calibration"] = c
        a.model.write_text(json.dumps(raw, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
        return

    model = C.load_model(a.model)
    bw = {h: model.blend_weight(h) for h in model.heads}
    kinds = {"rules": scores(rows, prep, None, "rules"), "linear": scores(rows, prep, model, "linear"),
             "combined": scores(rows, prep, model, "combined")}

    # The fast path above must equal the real classifiers' classify(). A prompt that pastes material apart
    # from its ask (a few MT-Bench prompts; no MMLU or GSM8K test prompt) is scored by the task head at run
    # time, as product traffic is: its score here is the real classifier's.
    real = {"rules": C.RuleClassifier(settings), "linear": C.LinearClassifier(settings),
            "combined": C.CombinedClassifier(settings)}
    task_rows = [r for r in rows if real["combined"].classify(body_of(r["prompt"])).features.get("head") == "task"]
    print(f"scored by the task head at run time: {dict(Counter((r['split'], r['source']) for r in task_rows))}")
    for r in task_rows:
        for k in ("linear", "combined"):
            kinds[k][r["id"]] = real[k].classify(body_of(r["prompt"])).score
    for r in rows[::97] + task_rows:
        for k, clf in real.items():
            got = clf.classify(body_of(r["prompt"])).score
            assert abs(got - kinds[k][r["id"]]) < 1e-9, (k, r["id"], got, kinds[k][r["id"]])

    print(f"\n== APGR on the test split (combined: rules_weight={bw}) ==", flush=True)
    for k, sc in kinds.items():
        f = a.out / f"scores_{k}_test.jsonl"
        write_jsonl(f, ({"id": r["id"], "score": sc[r["id"]]} for r in test))
        print(f"-- {k}")
        run_score(score_py, a.data, f, curve=True)
    f = a.out / "scores_length_test.jsonl"
    write_jsonl(f, ({"id": r["id"], "score": len(r["prompt"])} for r in test))
    print("-- baseline: longer prompt goes to premium")
    run_score(score_py, a.data, f, curve=True)

    # Operating point, chosen on train only, on out-of-fold scores (in-sample scores flatter the model).
    oof = out_of_fold(train, prep, settings_of(json.loads(a.model.read_text())))
    rules_sc = kinds["rules"]
    train_sc = {"rules": rules_sc, "linear": oof,
                "combined": {i: model.calibrated(prep.by_id[i][0], (1 - bw[prep.by_id[i][0]]) * v
                                                 + bw[prep.by_id[i][0]] * rules_sc[i])
                             for i, v in oof.items()}}[settings.kind]
    sc = kinds[settings.kind]
    by_src = {s: [r for r in train if r["source"] == s] for s in ("mmlu", "gsm8k")}
    best = None
    for t in sorted({round(v, 3) for v in sc.values()}, reverse=True):
        stats = {s: kept_and_share(g, train_sc, t) for s, g in by_src.items()}
        if all(kept >= QUALITY_KEPT + MARGIN for kept, _ in stats.values()):
            best = (t, stats)
            break
    t_oof, stats = best
    # The out-of-fold models' scores are on a different scale from the final model's (trained on 5/4 as
    # much data), so carry over the strong share, not the raw threshold: t is the final model's train-score
    # quantile at the OOF share. Still train only; the test split's labels and scores are not read.
    pool = [i for g in by_src.values() for i in (r["id"] for r in g)]
    share = sum(train_sc[i] >= t_oof for i in pool) / len(pool)
    ranked = sorted((sc[i] for i in pool), reverse=True)
    t = ranked[max(0, min(len(ranked) - 1, round(share * len(ranked)) - 1))]
    print(f"\n== Operating point ({settings.kind}), chosen on train (out-of-fold score >= {t_oof}, strong share "
          f"{100 * share:.2f}%): strong iff score >= {t:.4f} ==")
    for s, (kept, share) in stats.items():
        print(f"  train {s}: quality kept {100 * kept:.2f}%, strong share {100 * share:.2f}%")
    f = a.out / "decisions_test.jsonl"
    write_jsonl(f, ({"id": r["id"], "tier": "strong" if sc[r["id"]] >= t else "weak"} for r in test))
    out = run_score(score_py, a.data, f, curve=False)
    for line in out.splitlines():
        p = line.split()
        if len(p) == 12 and p[1] == "test":
            q, strong_q, rand = float(p[4]), float(p[6]), float(p[7])
            print(f"  test {p[0]}: strong {p[3]}%, saving {p[11]}%, quality kept {100 * q / strong_q:.2f}% "
                  f"(random router at the same share: {100 * rand / strong_q:.2f}%)")

    # Leakage: duplicated MMLU question texts across splits.
    train_texts = {r["prompt"] for r in train}
    dup = [r for r in test if r["prompt"] in train_texts]
    clean = [r for r in test if r["prompt"] not in train_texts]
    print(f"\n== Leakage: {len(dup)} test prompts have an exact-text twin in train "
          f"({dict(Counter(r['source'] for r in dup))}) ==")
    for k, sc_k in kinds.items():
        print(f"  {k}: APGR test mmlu without them {apgr([r for r in clean if r['source'] == 'mmlu'], sc_k):.3f}, "
              f"with {apgr([r for r in test if r['source'] == 'mmlu'], sc_k):.3f}")

    print("\n== classify() latency on a 2 KB chat request ==")
    body = bench_body()
    print(f"  request: {len(json.dumps(body))} bytes of JSON")
    for k, clf in real.items():
        p50, p99 = latency(clf, body, a.runs)
        print(f"  {k:9} p50 {p50:6.1f} us   p99 {p99:6.1f} us   -> {clf.classify(body).name}")
    eval_bodies = [body_of(r["prompt"]) for r in test[::7]]
    clf = real[settings.kind]
    ts = []
    for b in eval_bodies:
        t0 = time.perf_counter_ns()
        clf.classify(b)
        ts.append(time.perf_counter_ns() - t0)
    ts.sort()
    print(f"  {settings.kind} over {len(ts)} eval prompts (one call each): p50 {ts[len(ts) // 2] / 1000:.1f} us, "
          f"p99 {ts[int(len(ts) * 0.99)] / 1000:.1f} us")

    # The realistic product set, next to the exam-derived one (its own trainer: bench/eval_devset.py).
    from bench import eval_devset as D
    from extproc.config import load as load_config
    dev_test = [r for r in D.load() if r["split"] == "test"]
    cfg = load_config(ROOT / "config" / "routing.yaml")
    print(f"\n== Product dev set, test split ({len(dev_test)} requests, bench/devset; shipped config) ==")
    D.report("  task-aware classifier", dev_test, D.decide_all(dev_test, cfg, C.build_classifier(cfg.classifier)))
    D.report("  exam-only (task_model_path: none)", dev_test,
             D.decide_all(dev_test, cfg, C.build_classifier(C.ClassifierSettings(task_model_path="none"))))


if __name__ == "__main__":
    main()
