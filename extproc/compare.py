"""Compare a routing policy before rollout: ``extproc explain --jsonl requests.jsonl --compare new.yaml``.

Every request of the file is routed offline (no Envoy, no providers, no health: every model healthy,
budgets unlimited) by the current config and by the new one, with the row's ``surface`` as
``explain --jsonl`` takes it (``cli._row_headers``). Out come the requests whose decision
changed (class, first model or tier), the projected cost of both (each plan's first candidate's
estimate: the prompt's tokens plus the class's assumed reply, at catalog prices), the tier mix of
both (how many requests each tier would serve first), and ``extproc check`` of the new config against
the Envoy config (a cluster the new config names but Envoy lacks would fail every such request).

Pure core: ``Side`` / ``Comparison`` accumulate plain values; ``render_text`` formats them; ``run``
is the shell the CLI calls.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

SAMPLE_DIFFS = 20   # the text output shows this many changed requests (--json writes all of them)
BAD_LINES_SHOWN = 5  # line numbers of lines that are not requests, named in the output


@dataclass
class Side:
    """One config's decisions over the file."""

    source: str
    cost: float = 0.0
    tiers: Counter = field(default_factory=Counter)     # first candidate's "class/tier" -> requests
    models: Counter = field(default_factory=Counter)    # first model -> requests
    errors: Counter = field(default_factory=Counter)    # "status code" -> requests refused
    examples: dict[str, str] = field(default_factory=dict)   # "status code" -> one refusal's message

    def add(self, decision: dict[str, Any]) -> None:
        if "error" in decision:
            # Grouped by status and code: the messages name each request's own costs and tokens.
            key = f"{decision['status']} {decision['code']}"
            self.errors[key] += 1
            self.examples.setdefault(key, decision["error"])
            return
        self.cost += decision["cost"]
        self.tiers[decision["tier"]] += 1
        self.models[decision["model"]] += 1


def decision(plan: Any) -> dict[str, Any]:
    """The plain summary of one plan: class, first model, its tier, its estimated cost (USD)."""
    first = plan.candidates[0] if plan.candidates else None
    tier = f"{plan.route_class or '-'}/{first.tier if first else '-'}"
    return {"class": plan.route_class, "model": plan.models[0].id if plan.models else None, "tier": tier,
            "cost": first.cost if first else 0.0}


@dataclass
class Comparison:
    old: Side
    new: Side
    requests: int = 0
    changed: int = 0
    diffs: list[dict[str, Any]] = field(default_factory=list)
    keep_diffs: int | None = SAMPLE_DIFFS   # None: keep every diff
    moves: Counter = field(default_factory=Counter)   # (old model, new model) -> requests
    both: list[float] = field(default_factory=lambda: [0.0, 0.0])   # cost of the requests both configs serve
    bad: int = 0                                       # lines that are not requests: skipped, counted
    bad_lines: list[tuple[int, str]] = field(default_factory=list)   # the first few: (line number, why)

    def skip(self, number: int, why: str) -> None:
        """Line ``number`` is not a request (``why``): counted and skipped, so one bad line among
        thousands does not stop the comparison."""
        self.bad += 1
        if len(self.bad_lines) < BAD_LINES_SHOWN:
            self.bad_lines.append((number, why))

    def add(self, rid: Any, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
        """Count one request's two decisions; returns the diff when they differ (else None)."""
        self.requests += 1
        self.old.add(old)
        self.new.add(new)
        if "error" not in old and "error" not in new:
            self.both[0] += old["cost"]
            self.both[1] += new["cost"]
        keys = ("class", "model", "tier", "error")
        if all(old.get(k) == new.get(k) for k in keys):
            return None
        self.changed += 1
        self.moves[(old.get("model") or "refused", new.get("model") or "refused")] += 1
        diff = {"id": rid, "old": old, "new": new}
        if self.keep_diffs is None or len(self.diffs) < self.keep_diffs:
            self.diffs.append(diff)
        return diff

    def summary(self) -> dict[str, Any]:
        def side(s: Side) -> dict[str, Any]:
            return {"config": s.source, "projected_cost_usd": round(s.cost, 6), "tier_mix": dict(s.tiers.most_common()),
                    "models": dict(s.models.most_common()), "refused": dict(s.errors.most_common())}
        return {"requests": self.requests, "changed": self.changed, "old": side(self.old), "new": side(self.new),
                "cost_of_requests_both_serve": [round(self.both[0], 6), round(self.both[1], 6)],
                "moves": [{"from": a, "to": b, "requests": n} for (a, b), n in self.moves.most_common()],
                "skipped_lines": {"count": self.bad, "first": [{"line": n, "why": w} for n, w in self.bad_lines]}}


def render_text(c: Comparison, check: tuple[int, str]) -> str:
    """The human summary: changes, cost, tier mix side by side, the top moves, sample diffs, the check."""
    o, n = c.old, c.new
    pct = (lambda k: f"{100 * k / c.requests:.1f}%" if c.requests else "-")  # noqa: E731
    delta = n.cost - o.cost
    lines = [f"compare: {o.source}  ->  {n.source}",
             f"requests          {c.requests:,}   changed decisions {c.changed:,} ({pct(c.changed)})",
             f"projected cost    ${o.cost:,.4f}  ->  ${n.cost:,.4f}   ({'+' if delta >= 0 else '-'}${abs(delta):,.4f}"
             + (f", {100 * delta / o.cost:+.1f}%)" if o.cost else ")"),
             "  (each request's first candidate: its prompt tokens and the assumed reply at catalog prices;"
             " a refused request costs nothing, so compare:)",
             f"  requests both serve: ${c.both[0]:,.4f}  ->  ${c.both[1]:,.4f}   refused: {sum(o.errors.values()):,} old,"
             f" {sum(n.errors.values()):,} new",
             "", "tier mix (first choice)        old        new"]
    if c.bad:
        lines[2:2] = [f"skipped lines     {c.bad:,} not requests (line "
                      + ", ".join(str(n) for n, _ in c.bad_lines) + (", ..." if c.bad > len(c.bad_lines) else "")
                      + f"; line {c.bad_lines[0][0]}: {c.bad_lines[0][1]})"]
    for tier in sorted(set(o.tiers) | set(n.tiers)):
        lines.append(f"  {tier:<26} {o.tiers[tier]:>8,} {n.tiers[tier]:>10,}")
    for name, side in (("old", o), ("new", n)):
        for err, k in side.errors.most_common():
            lines.append(f"  refused by {name}: {k:,} x {err}  (e.g. {side.examples[err][:160]})")
    if c.moves:
        lines += ["", "moves (first model)"]
        lines += [f"  {a} -> {b}: {k:,}" for (a, b), k in c.moves.most_common(10)]
    if c.diffs:
        lines += ["", f"changed requests (first {len(c.diffs)}; --json writes them all)"]
        for d in c.diffs:
            od, nd = d["old"], d["new"]
            lines.append(f"  {d['id']}: {od.get('tier', od.get('error'))} {od.get('model') or ''} -> "
                         f"{nd.get('tier', nd.get('error'))} {nd.get('model') or ''}")
    status, text = check
    lines += ["", f"check of the new config: {'OK' if status == 0 else 'FAILED'}", *("  " + t for t in text.splitlines())]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, cfg: Any, headers: dict[str, str], caller: Any, now: float,
        check: Any, out: TextIO = sys.stdout) -> int:
    """The shell: route every line by both configs, print, run ``check`` on the new config (``check``:
    the CLI's ``_check(args) -> int``). Exit 1 when the check fails, 2 when the new config is invalid."""
    from . import config as routing_config
    from .keys import tenant_caller

    try:
        new_cfg = routing_config.load(args.compare)
        new_caller = tenant_caller(new_cfg, args.tenant) if args.tenant else None
    except (routing_config.ConfigError, ValueError) as exc:
        print(f"extproc explain --compare: invalid config: {exc}", file=sys.stderr)
        return 2
    # The check (mostly `envoy --mode validate`, a subprocess) runs beside the routing, not after it.
    captured = io.StringIO()

    def checked() -> int:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            return check(argparse.Namespace(config=args.compare, envoy=getattr(args, "envoy", None),
                                            no_envoy_validate=False))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    pending = pool.submit(checked)
    try:
        comparison = _route_all(args, cfg, new_cfg, headers, caller, new_caller, now, out)
    except ValueError as exc:   # printed once the check's output capture is over
        comparison, problem = None, str(exc)
    finally:
        status = pending.result()
        pool.shutdown()
    if comparison is None:
        print(f"extproc explain --compare: {problem}", file=sys.stderr)
        return 2
    if args.json:
        out.write(json.dumps({"summary": comparison.summary(), "check": {"ok": status == 0,
                                                                          "output": captured.getvalue().strip()}})
                  + "\n")
    else:
        out.write(render_text(comparison, (status, captured.getvalue().strip())))
    return 0 if status == 0 else 1


def _route_all(args: argparse.Namespace, cfg: Any, new_cfg: Any, headers: dict[str, str], caller: Any,
               new_caller: Any, now: float, out: TextIO) -> Comparison:
    """Both decisions for every line; a line that is not a request is counted and skipped
    (``Comparison.skip``); raises ValueError when no line is a request."""
    from . import errors
    from .classify import build_classifier
    from .cli import _row_headers, body_of
    from .policy import decide

    first = build_classifier(cfg.classifier)
    # The same classifier settings classify the same way: classify once (it is half the time).
    same = cfg.classifier == new_cfg.classifier
    sides = [(cfg, first, caller), (new_cfg, None if same else build_classifier(new_cfg.classifier), new_caller)]
    comparison = Comparison(Side(cfg.source), Side(new_cfg.source), keep_diffs=None if args.json else SAMPLE_DIFFS)
    stream = sys.stdin if args.jsonl == "-" else open(args.jsonl, encoding="utf-8")
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                body = body_of(row)   # the rows `explain --jsonl` reads: a chat body, a dev-set `body`, a `prompt`
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                comparison.skip(number, f"{type(exc).__name__}: {str(exc)[:120]}")
                continue
            decisions = []
            verdict = None
            for i, (c, classifier, who) in enumerate(sides):
                try:
                    if i == 0 or not same:
                        verdict = classifier.classify(body) if classifier is not None else None
                    # The row's surface, as `explain --jsonl` routes it: each config by the surfaces it
                    # defines (a surface only the new config adds routes there on the new side alone).
                    decisions.append(decision(decide(c, body, args.endpoint, _row_headers(c, row, headers),
                                                     now=now, classification=verdict, caller=who)))
                except errors.GatewayError as exc:
                    decisions.append({"error": f"{exc.status} {exc.message}", "status": exc.status,
                                      "code": exc.code})
            diff = comparison.add(row.get("id", number), *decisions)
            if diff is not None and args.json:
                out.write(json.dumps(diff) + "\n")
    if not comparison.requests and comparison.bad:
        raise ValueError(f"{args.jsonl}: no line is a request ({comparison.bad} skipped; line "
                         f"{comparison.bad_lines[0][0]}: {comparison.bad_lines[0][1]})")
    return comparison
