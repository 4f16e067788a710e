"""Calibration: the cost/quality curve of the premium threshold on labelled traffic, so a platform team
picks its operating point (a threshold, or the threshold giving a target share of premium traffic) per
surface from its own requests. Pure: scored rows in, curve rows out.

A row is ``Scored(score, label, surface, cost_cheap, cost_premium, floored)``: the classifier's score (0..1,
"needs a premium model"), the label (``simple`` | ``complex``, as bench/devset/RUBRIC.md defines them),
the estimated USD of the request on the cheap and the premium first choice, and whether the surface's
rules (its quality floor) already send the cheap choice to a premium model. At threshold t a request
goes premium iff score >= t (the classifier's own rule) or it is ``floored``: no threshold moves it, and
``floor_premium_share`` says how much of the traffic that is. Quality is counted on the labels: ``right`` is
the share on the right side, ``complex_to_cheap`` the share of complex requests a cheap model gets (the
quality risk), ``simple_to_premium`` the share of simple requests that pay premium (the waste);
``saving`` = 1 - cost(routed) / cost(everything premium).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple


class Scored(NamedTuple):
    score: float
    label: str
    surface: str | None
    cost_cheap: float
    cost_premium: float
    floored: bool = False   # the surface's quality floor makes even the cheap choice premium


def point(rows: list[Scored], t: float) -> dict:
    """The operating point at threshold ``t`` (see the module docstring); rows must not be empty."""
    premium = [r.score >= t or r.floored for r in rows]
    simple = [r.label == "simple" for r in rows]
    n_simple = sum(simple)
    n_complex = len(rows) - n_simple
    s2p = sum(p and s for p, s in zip(premium, simple))
    c2c = sum((not p) and (not s) for p, s in zip(premium, simple))
    all_premium = sum(r.cost_premium for r in rows)
    routed = sum(r.cost_premium if p else r.cost_cheap for r, p in zip(rows, premium))
    return {"threshold": round(t, 4), "n": len(rows), "premium_share": round(sum(premium) / len(rows), 4),
            "floor_premium_share": round(sum(r.floored for r in rows) / len(rows), 4),
            "right": round((len(rows) - s2p - c2c) / len(rows), 4),
            "simple_to_premium": round(s2p / n_simple, 4) if n_simple else None,
            "complex_to_cheap": round(c2c / n_complex, 4) if n_complex else None,
            "saving": round(1 - routed / all_premium, 4) if all_premium > 0 else None}


def curve(rows: list[Scored], thresholds: Iterable[float] | None = None) -> list[dict]:
    """Operating points over ``thresholds`` (default 0.00, 0.05, ... 1.00), by surface and for all rows:
    dicts of ``point`` with ``surface`` (None for all rows)."""
    ts = [round(0.05 * i, 2) for i in range(21)] if thresholds is None else list(thresholds)
    groups: dict[str | None, list[Scored]] = {None: rows}
    for r in rows:
        if r.surface is not None:
            groups.setdefault(r.surface, []).append(r)
    return [{"surface": s, **point(g, t)} for s, g in groups.items() if g for t in ts]


def threshold_for_share(rows: list[Scored], share: float) -> float:
    """The threshold that sends about ``share`` of the rows to premium, the highest-scored first (rows
    tied at the cut all go premium); above every score for a share of 0."""
    scores = sorted((r.score for r in rows), reverse=True)
    k = int(round(share * len(scores)))
    if k <= 0 or not scores:
        return (scores[0] if scores else 1.0) + 1e-9
    return scores[min(k, len(scores)) - 1]
