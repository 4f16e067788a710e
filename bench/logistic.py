"""The one trainer of the classifier's learned weights: an L2-regularised logistic regression over a few
dense features plus a bag of tokens, fitted by scikit-learn (the ``train`` extra: ``pip install -e
'.[train]'``). ``bench/eval_routing.py`` fits the exam heads with it (two per prompt format: P(premium
right), P(cheap right)), ``bench/eval_devset.py`` the task head (P(complex)).

Why a library: the two scripts each carried a hand-written AdaGrad SGD (8 and 30 epochs) that stopped
short of the optimum; fitted to convergence by L-BFGS, the exam heads' train-CV APGR rose at the same
L2 strength (MMLU 0.663 -> 0.694 at C = 0.03). The gateway does not need it: at run time
``extproc/classify.py`` reads the weights from JSON and adds them up in pure Python.

Objective (scikit-learn's): ``C * sum(log loss) + ||w||^2 / 2`` over the examples, intercept not
penalised. The dense features are standardised for the solver (the bag of tokens is 0/1) and the
weights mapped back, so a model is read on raw features::

    logit = bias + sum(dense[i] * x[i]) + sum(words[t] for t in distinct tokens)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Weights:
    bias: float
    dense: list[float]
    words: dict[str, float]

    def logit(self, dense: Sequence[float], tokens: Iterable[str]) -> float:
        words = self.words
        return self.bias + sum(a * x for a, x in zip(self.dense, dense)) + sum(words.get(t, 0.0) for t in set(tokens))


def fit(rows: Sequence[tuple[Sequence[float], Iterable[str]]], y: Sequence[float], c: float, *, min_df: int = 2,
        dense_scale: float = 1.0, min_weight: float = 5e-4) -> Weights:
    """Fit one logistic regression. ``rows``: (dense features, tokens) per example; ``y``: 0/1 targets;
    ``c``: inverse L2 strength (larger = weaker); a token enters the vocabulary when ``min_df`` examples
    carry it; ``dense_scale`` > 1 weakens the L2 on the standardised dense features by its square;
    tokens whose weight is under ``min_weight`` in magnitude are left out of the result (smaller files,
    same ranking to ~1e-3). Deterministic (L-BFGS from zero)."""
    import numpy as np
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    token_sets = [frozenset(toks) for _, toks in rows]
    df = Counter(t for toks in token_sets for t in toks)
    vocab = sorted(t for t, k in df.items() if k >= min_df)
    index = {t: i for i, t in enumerate(vocab)}
    indptr, indices = [0], []
    for toks in token_sets:
        indices.extend(sorted(index[t] for t in toks if t in index))
        indptr.append(len(indices))
    words = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), len(vocab)))
    dense = np.array([list(d) for d, _ in rows], dtype=float).reshape(len(rows), -1)
    mu = dense.mean(axis=0)
    sd = dense.std(axis=0)
    sd[sd == 0] = 1.0
    k = dense_scale / sd
    x = sparse.hstack([words, sparse.csr_matrix((dense - mu) * k)]).tocsr()
    target = np.asarray(y, dtype=float)
    if target.min() == target.max():
        raise ValueError("fit: every target is the same; nothing to learn")
    m = LogisticRegression(C=c, solver="lbfgs", max_iter=5000, tol=1e-6).fit(x, target)
    w = m.coef_[0]
    w_words, w_dense = w[:len(vocab)], w[len(vocab):] * k
    bias = float(m.intercept_[0] - np.dot(w_dense, mu))
    return Weights(bias, [float(v) for v in w_dense],
                   {t: float(v) for t, v in zip(vocab, w_words) if abs(v) >= min_weight})
