"""Calibration: the cost/quality curve of the premium threshold on labelled traffic, so a platform team
picks its operating point (a threshold, or the threshold giving a target share of premium traffic) per
surface from its own requests. Pure: config, requests and classifications in, curve rows out.

The curve is the gateway's own decision, not a model of it. ``scored`` asks ``policy.decide`` for the
two decisions a request can get as the threshold moves: below the cut and at or above it (the
classification remade by ``policy.at_threshold``, the rule ``policy.decide`` applies for a surface's
``premium_threshold``). So at every threshold t the curve counts what ``extproc explain --jsonl`` gives
with ``surfaces.S.premium_threshold: t`` (or, for a row routed under no surface, with
``classifier.premium_threshold`` and the reasoning class's ``min_score`` both t, which the shipped config
keeps equal).

A row is ``Scored(score, label, surface, cost_cheap, cost_premium, floored, moves, premium_above)``: the
classifier's score (0..1, "needs a premium model"); the label (``simple`` | ``complex``, as
bench/devset/RUBRIC.md defines them; None counts for shares and costs only); the estimated USD of the
request's first choice below the cut and at or above it (the reasoning class's first choice: the
"everything premium" baseline of ``saving``); whether each of those is a premium model, that is one as
good as the reasoning class's first choice for that request under no surface's rules (``floored``: a
surface's quality floor makes even the choice below the cut premium; ``premium_above`` false: a surface
that allows only cheap models, such as the shipped ``drafts``, has none to give); ``moves``: a threshold
decides its class at all. A request the classifier names into a routing class of its own (a config may
give ``tool_use``, ``code`` ... their own classes) keeps it at every threshold, and ``fixed_share`` says
how much of the traffic that is. Under the shipped config, whose classes are simple and reasoning,
there is none: code, tool, long-context, vision and structured-output requests move with the threshold
like the others (``policy.threshold_moves``).

At threshold t a request takes its decision at or above the cut iff ``moves`` and score >= t. Quality is
counted on the labels: ``right`` is the share on the right side, ``complex_to_cheap`` the share of
complex requests a cheap model gets (the quality risk), ``simple_to_premium`` the share of simple
requests that pay premium (the waste); ``floor_premium_share`` the share premium at every threshold;
``saving`` = 1 - cost(routed) / cost(everything at or above the cut).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from typing import Any, Iterable, NamedTuple

LABELS = ("simple", "complex")


class Scored(NamedTuple):
    score: float
    label: str | None        # simple | complex; None: unlabelled (shares and costs only)
    surface: str | None
    cost_cheap: float        # USD, the first choice below the cut (whatever the threshold, if not ``moves``)
    cost_premium: float      # USD, the reasoning class's first choice: the all-premium baseline
    floored: bool = False    # below the cut already a premium model (a surface's quality floor)
    moves: bool = True       # a threshold decides its class (false: a class of its own)
    premium_above: bool = True   # at or above the cut a premium model (false where a surface allows none)


def scored(config: Any, body: dict, endpoint: str, headers: dict[str, str], classification: Any,
           label: str | None, group: str | None, *, now: float = 0.0, caller: Any = None) -> Scored:
    """The ``Scored`` row of one request routed with ``headers`` (its surface among them), by the
    gateway's own ``policy.decide``. ``group`` is the curve's group (the row's surface, configured or
    not). Raises ``errors.GatewayError`` when the gateway refuses the request at some threshold."""
    from .errors import GatewayError
    from .policy import SURFACE_HEADER, at_threshold, decide, threshold_moves, who

    _, _, surface = who(config, headers, caller)
    if surface is not None and getattr(config.surfaces.get(surface), "premium_threshold", None) is not None:
        # the threshold under study replaces the surface's own: decide() must not remake the class again
        config = dataclasses.replace(config, surfaces={
            **config.surfaces, surface: dataclasses.replace(config.surfaces[surface], premium_threshold=None)})
    names = getattr(config.classifier, "classes", None) or {}
    reasoning = names.get("reasoning", "complex_reasoning")

    def first(c, with_headers=headers):
        return decide(config, body, endpoint, with_headers, now=now, classification=c,
                      caller=caller).candidates[0]

    moves = threshold_moves(config, classification)
    above = first(dataclasses.replace(classification, name=reasoning))
    below = first(at_threshold(config, classification, float("inf")) if moves else classification)
    # "premium": as good as the reasoning class's first choice under no surface's rules, so a surface
    # that allows only cheap models (drafts) has no premium traffic, and a quality floor's has some
    plain = {k: v for k, v in headers.items() if k != SURFACE_HEADER}
    try:
        bar = first(dataclasses.replace(classification, name=reasoning), plain).model.quality
    except GatewayError:
        bar = above.model.quality
    premium_below = below.model.quality >= bar
    return Scored(classification.score, label, group, below.cost, above.cost, premium_below, moves,
                  above.model.quality >= bar if moves else premium_below)


def point(rows: list[Scored], t: float) -> dict:
    """The operating point at threshold ``t`` (see the module docstring); rows must not be empty. The
    label counts (``right``, ``simple_to_premium``, ``complex_to_cheap``) are over labelled rows only
    (``label`` None: a row counted for shares and costs alone, as ``--target-share`` reads them)."""
    above = [r.moves and r.score >= t for r in rows]
    premium = [r.premium_above if a else r.floored for a, r in zip(above, rows)]
    simple = [r.label == "simple" for r in rows]
    complex_ = [r.label == "complex" for r in rows]
    n_simple, n_complex = sum(simple), sum(complex_)
    s2p = sum(p and s for p, s in zip(premium, simple))
    c2c = sum((not p) and c for p, c in zip(premium, complex_))
    all_premium = sum(r.cost_premium for r in rows)
    routed = sum(r.cost_premium if a else r.cost_cheap for r, a in zip(rows, above))
    return {"threshold": round(t, 4), "n": len(rows), "premium_share": round(sum(premium) / len(rows), 4),
            "floor_premium_share": round(sum(r.floored and r.premium_above for r in rows) / len(rows), 4),
            "fixed_share": round(sum(not r.moves for r in rows) / len(rows), 4),
            "right": round((n_simple + n_complex - s2p - c2c) / (n_simple + n_complex), 4)
            if n_simple + n_complex else None,
            "simple_to_premium": round(s2p / n_simple, 4) if n_simple else None,
            "complex_to_cheap": round(c2c / n_complex, 4) if n_complex else None,
            "saving": round(1 - routed / all_premium, 4) if all_premium > 0 else None}


def groups(rows: list[Scored]) -> dict[str | None, list[Scored]]:
    """All rows (key None), then each surface's rows, in order of first appearance."""
    out: dict[str | None, list[Scored]] = {None: rows}
    for r in rows:
        if r.surface is not None:
            out.setdefault(r.surface, []).append(r)
    return out


def curve(rows: list[Scored], thresholds: Iterable[float] | None = None) -> list[dict]:
    """Operating points over ``thresholds`` (default 0.00, 0.05, ... 1.00), by surface and for all rows:
    dicts of ``point`` with ``surface`` (None for all rows)."""
    ts = [round(0.05 * i, 2) for i in range(21)] if thresholds is None else list(thresholds)
    return [{"surface": s, **point(g, t)} for s, g in groups(rows).items() if g for t in ts]


def threshold_for_share(rows: list[Scored], share: float) -> float:
    """The threshold (0..1, 4 decimals) whose premium share on ``rows`` is nearest ``share`` (0..1),
    the higher threshold (the cheaper) on a tie. Cuts fall halfway between neighbouring scores, so a
    row scored a little differently next time stays on its side. Rows the threshold does not make premium
    or cheap (a quality floor, a class of their own, a surface without premium models) count as they
    are at every threshold: a share outside their reach gives the nearest threshold. Check the
    result with ``point``."""
    levels = sorted({r.score for r in rows if r.moves and r.floored != r.premium_above})
    cuts = [0.0] + [round((a + b) / 2, 4) for a, b in zip(levels, levels[1:])]
    if levels and levels[-1] < 1.0:
        cuts.append(min(1.0, round(levels[-1] + 1e-4, 4)))   # above every score: none of them premium
    # point(rows, t)["premium_share"] for every cut in one sweep (point per cut was quadratic: 4,000 rows
    # took 4.5 s): a row is premium_above at and below its score if the threshold moves it, else floored
    movers = sorted((r.score, int(r.premium_above) - int(r.floored)) for r in rows if r.moves)
    scores = [score for score, _ in movers]
    from_top = list(itertools.accumulate(delta for _, delta in reversed(movers)))   # [k-1]: the top k rows
    floored = sum(r.floored for r in rows)

    def premium_share(t: float) -> float:
        k = len(scores) - bisect.bisect_left(scores, t)   # movers at or above t
        return round((floored + (from_top[k - 1] if k else 0)) / len(rows), 4)

    best = None
    for t in sorted(set(cuts)):
        gap = round(abs(premium_share(t) - share), 9)   # a tie is a tie, not float noise
        if best is None or gap <= best[0]:
            best = (gap, t)
    return best[1] if best else 1.0
