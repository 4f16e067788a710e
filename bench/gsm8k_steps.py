"""The auxiliary solution-length predictor of round 4 (bench/results/apgr-protocol-4.md): a ridge
regression, fitted on GSM8K's own training set, of how many steps a word problem's worked solution takes,
read from the question alone. The open (word-problem) exam head adds it to its score, because the eval's
662 GSM8K train prompts are too few to learn what makes a problem long; GSM8K-train's 7,473 problems with
worked solutions teach it. Needs the ``train`` extra and that file::

    grade_school_math/data/train.jsonl of openai/grade-school-math (MIT licence): one JSON object per
    line, {"question": str, "answer": str}; the answer's lines before "#### <number>" are the steps.

GSM8K's training set is disjoint from its test set, which the eval's GSM8K rows come from (0 exact
question matches).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

ALPHA = 100.0   # ridge alpha, chosen by 5-fold CV R^2 on GSM8K-train alone (protocol 4: 0.352 at 100)
MIN_DF = 3      # a token enters the vocabulary when this many questions carry it


def solution_lines(answer: str) -> int:
    """Non-empty lines of a GSM8K worked solution before its ``#### answer`` line: its reasoning steps."""
    return sum(1 for line in answer.split("####")[0].splitlines() if line.strip())


def fit(path: str | Path, min_weight: float = 1e-4) -> dict:
    """Fit the predictor of log1p(solution lines) on every problem of ``path``, on the open head's run-time
    inputs (``classify.linear_inputs`` of the question as one user message: 16 dense features standardised
    for the solver, tokens with ``MIN_DF``). Returns {"bias", "dense" (weights on the raw features), "words"}
    (words under ``min_weight`` in magnitude left out: predictions move by < 0.01), "low" / "high" (the
    range of its predictions on the training questions); a prediction is bias + dense . x + sum(words[t]
    for the distinct tokens t), held to [low, high], as ``classify._Steps`` computes it."""
    import numpy as np
    from scipy import sparse
    from sklearn.linear_model import Ridge

    from bench.eval_routing import body_of
    from extproc import classify as C

    rules = C.RuleClassifier(C.ClassifierSettings())
    problems = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    ins = []
    for g in problems:
        view = C.read_request(body_of(g["question"]))
        p = rules.prompt(view)
        ins.append(C.linear_inputs(view, p, rules.features(view, p)["multiple_choice"])[1:])
    y = np.log1p([solution_lines(g["answer"]) for g in problems])
    df = Counter(t for _, toks in ins for t in set(toks))
    vocab = sorted(t for t, k in df.items() if k >= MIN_DF)
    index = {t: k for k, t in enumerate(vocab)}
    indptr, indices = [0], []
    for _, toks in ins:
        indices.extend(sorted(index[t] for t in set(toks) if t in index))
        indptr.append(len(indices))
    words = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(ins), len(vocab)))
    dense = np.array([d for d, _ in ins], dtype=float)
    mu, sd = dense.mean(axis=0), dense.std(axis=0)
    sd[sd == 0] = 1.0
    m = Ridge(alpha=ALPHA).fit(sparse.hstack([words, sparse.csr_matrix((dense - mu) / sd)]).tocsr(), y)
    w_words, w_dense = m.coef_[:len(vocab)], m.coef_[len(vocab):] / sd
    fitted = m.predict(sparse.hstack([words, sparse.csr_matrix((dense - mu) / sd)]).tocsr())
    return {"bias": round(float(m.intercept_ - np.dot(w_dense, mu)), 6),
            # the range it predicts on its own training questions: a prompt outside it is no word problem
            # (a list of 300 percentages), and its prediction is held to the range
            "low": round(float(fitted.min()), 6), "high": round(float(fitted.max()), 6),
            "dense": [round(float(v), 6) for v in w_dense],
            "words": {t: round(float(v), 5) for t, v in zip(vocab, w_words) if abs(v) >= min_weight},
            "trained_on": f"GSM8K train.jsonl ({len(problems)} problems), ridge alpha {ALPHA}, log1p(solution lines)"}


def predict(aux: dict, dense, tokens) -> float:
    """The fitted predictor on one prompt's (dense, tokens): log1p(predicted solution lines)."""
    words = aux["words"]
    raw = aux["bias"] + sum(a * x for a, x in zip(aux["dense"], dense)) + sum(words.get(t, 0.0) for t in set(tokens))
    return min(max(raw, aux.get("low", raw)), aux.get("high", raw))
