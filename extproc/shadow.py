"""Shadow evaluation, the pure part: which requests to evaluate, the judge's rubric, verdicts, statistics.

A sampled request (routed below its class's premium tier) is, after the client has its answer,
sent again to the reference (premium) model; a judge model then compares the served answer with the
reference answer twice, with the positions swapped (MT-Bench's pairwise judging with position swap,
Zheng et al. 2023, which removes the judge's order bias). The I/O shell is ``shadow_runner.py``.

Everything here takes plain values and returns plain values: no sockets, no clocks (pass ``draw``,
a uniform random number in [0, 1), and ``now``).

Config (``shadow:`` in the routing config; absent: off)::

    shadow:
      rates: {"*": 0.01, "support": 0.05, "simple_queries/drafts": 0.02}  # CLASS/SURFACE, SURFACE, CLASS or *
      judge_model: gpt-4o             # any model id of the config
      reference_model: null           # default: the best model of the class's premium tier the surface allows
      tenant: gateway                 # the internal tenant the evaluation's calls bill to (gateway overhead)
      key_env: LLM_GATEWAY_SHADOW_KEY # its gateway key (a key of that tenant); never sampled again
      gateway_url: http://127.0.0.1:10000/v1   # Envoy, where the evaluation's calls go (else $LLM_GATEWAY_SHADOW_URL)
      budget_usd_per_day: 5.0         # evaluation spend cap (reference + judge calls), per UTC day
      targets: {support: 0.8}         # per surface: the cheap tier's win-or-tie rate it should keep
      store_text: false               # keep prompts/answers beyond the evaluation (never, unless true)
      apply_thresholds: false         # let `extproc shadow propose --apply` edit the config
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SHADOW_SOURCE = "shadow"        # quality_source of a shadow score in the ledger
SHADOW_OUTCOME = "shadow_eval"  # outcome of a shadow score's own ledger record
SHADOW_SUFFIX = "/shadow"       # its request id: the evaluated request's id + this
KEY_ENV = "LLM_GATEWAY_SHADOW_KEY"
URL_ENV = "LLM_GATEWAY_SHADOW_URL"   # where the evaluation's calls go when the config sets no gateway_url

WIN, TIE, LOSS = "win", "tie", "loss"          # the served answer against the reference
SCORES = {WIN: 1.0, TIE: 0.5, LOSS: 0.0}       # the ledger's 0..1 quality score of a verdict

# The fixed rubric. Its first line marks a judge request (the simulators recognise it; see
# extproc/simulators/core.py). Change it only with a new version tag: scores of different rubrics
# are not comparable.
RUBRIC_TAG = "[llm-gateway shadow judge rubric v1]"
RUBRIC = f"""{RUBRIC_TAG}
You are grading two answers to the same user request. Judge which answer serves the user better:
1. Correctness: facts, reasoning and code are right; no invented content.
2. Completeness: it answers everything the request asks.
3. Instructions: it follows the request's constraints (format, length, language).
4. Clarity: it is clear and to the point.
Ignore the order in which the answers appear and their length as such. Do not prefer either answer
for its style alone. If neither is better, say TIE.
Reply with exactly one line: VERDICT: A, VERDICT: B or VERDICT: TIE."""


@dataclass(frozen=True)
class ShadowSettings:
    rates: Mapping[str, float] = field(default_factory=dict)   # key -> rate (see ``rate_for``)
    judge_model: str | None = None
    reference_model: str | None = None
    tenant: str = "gateway"
    key_env: str = KEY_ENV
    gateway_url: str | None = None
    budget_usd_per_day: float = 5.0
    targets: Mapping[str, float] = field(default_factory=dict)   # surface -> win-or-tie target (0..1)
    store_text: bool = False
    apply_thresholds: bool = False

    @property
    def enabled(self) -> bool:
        return any(r > 0 for r in self.rates.values()) and self.judge_model is not None

    @classmethod
    def from_config(cls, spec: Any, models: Mapping[str, Any] | None = None) -> "ShadowSettings | None":
        """Parse the ``shadow:`` section; None when absent. Raises ValueError ``"key: problem"``."""
        if spec is None:
            return None
        if not isinstance(spec, dict):
            raise ValueError(f"(section): must be a mapping, not {type(spec).__name__}")
        allowed = {"rates", "judge_model", "reference_model", "tenant", "key_env", "gateway_url",
                   "budget_usd_per_day", "targets", "store_text", "apply_thresholds"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")

        def fractions(key: str) -> dict[str, float]:
            value = spec.get(key) or {}
            if not isinstance(value, dict):
                raise ValueError(f"{key}: must be a mapping")
            for k, v in value.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                    raise ValueError(f"{key}.{k}: must be a number from 0 to 1, not {v!r}")
            return {str(k): float(v) for k, v in value.items()}

        for key in ("judge_model", "reference_model"):
            if spec.get(key) is not None and models is not None and spec[key] not in models:
                raise ValueError(f"{key}: unknown model {spec[key]!r}")
        budget = spec.get("budget_usd_per_day", 5.0)
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0:
            raise ValueError(f"budget_usd_per_day: must be a number >= 0, not {budget!r}")
        for key in ("store_text", "apply_thresholds"):
            if not isinstance(spec.get(key, False), bool):
                raise ValueError(f"{key}: must be true or false")
        return cls(rates=fractions("rates"), judge_model=spec.get("judge_model"),
                   reference_model=spec.get("reference_model"), tenant=str(spec.get("tenant", "gateway")),
                   key_env=str(spec.get("key_env", KEY_ENV)), gateway_url=spec.get("gateway_url"),
                   budget_usd_per_day=float(budget), targets=fractions("targets"),
                   store_text=spec.get("store_text", False), apply_thresholds=spec.get("apply_thresholds", False))

    def rate_for(self, route_class: str | None, surface: str | None) -> float:
        """The most specific rate: ``CLASS/SURFACE``, then ``SURFACE``, then ``CLASS``, then ``*`` (else 0)."""
        for key in (f"{route_class}/{surface}", surface, route_class, "*"):
            if key is not None and key in self.rates:
                return self.rates[key]
        return 0.0


# ---- which requests ------------------------------------------------------------------------------------------

def reference_model(cfg: Any, settings: ShadowSettings, route_class: str | None, surface: str | None):
    """The premium model a request of this class and surface is compared with, or None.

    The class's premium tier is the tier holding its highest-quality model; its best model the surface
    allows is the reference (a surface that forbids them all has none: never sampled)."""
    allowed = _surface_allows(cfg, surface)
    if settings.reference_model is not None:
        model = cfg.models.get(settings.reference_model)
        return model if model is not None and allowed(model.id) else None
    rclass = cfg.classes.get(route_class or "")
    if rclass is None or not rclass.tiers:
        return None
    top = max(m.quality for t in rclass.tiers for m in t.models)
    for tier in rclass.tiers:
        if any(m.quality == top for m in tier.models):
            candidates = sorted((m for m in tier.models if allowed(m.id) and "chat" in _endpoints(m)),
                                key=lambda m: -m.quality)
            return candidates[0] if candidates else None
    return None


def _endpoints(model: Any) -> Iterable[str]:
    return getattr(model, "endpoints", None) or ("chat",)


def _surface_allows(cfg: Any, surface: str | None):
    s = cfg.surfaces.get(surface or "")
    if s is None:
        return lambda mid: True
    return lambda mid: mid not in s.deny and (s.allow is None or mid in s.allow)


def uses_tools(body: Mapping[str, Any]) -> bool:
    """A tool-call turn: the request offers tools or carries tool calls or results (never evaluated:
    a judge cannot grade a tool call without running the tool)."""
    if body.get("tools") or body.get("functions"):
        return True
    for m in body.get("messages") or ():
        if isinstance(m, dict) and (m.get("role") in ("tool", "function") or m.get("tool_calls")
                                    or m.get("function_call")):
            return True
    return False


def skip_reason(cfg: Any, settings: ShadowSettings | None, *, endpoint: str, body: Mapping[str, Any],
                route_class: str | None, surface: str | None, tenant: str | None, served_model: Any,
                draw: float) -> str | None:
    """None when this request is to be evaluated, else why not (a short reason, for spans and tests).

    ``served_model``: the config's model that is serving it; ``draw``: uniform in [0, 1)."""
    if settings is None or not settings.enabled:
        return "shadow evaluation is off"
    if tenant == settings.tenant:
        return "the evaluation's own call"
    if endpoint != "chat":
        return "not a chat request"
    if uses_tools(body):
        return "a tool-call turn"
    if body.get("n") not in (None, 1):
        return "n > 1"
    reference = reference_model(cfg, settings, route_class, surface)
    if reference is None:
        return "no reference model the surface allows"
    if served_model is None or served_model.quality >= reference.quality or served_model.id == reference.id:
        return "served at the premium tier"
    rate = settings.rate_for(route_class, surface)
    if not draw < rate:
        return f"not drawn (rate {rate:g})"
    return None


# ---- answers and the judge -----------------------------------------------------------------------------------

def answer_text(body: bytes, stream: bool) -> str | None:
    """The text of an OpenAI chat answer as the client received it (JSON, or SSE chunks); None when it is
    not a plain text answer (tool calls, an error, no choices)."""
    try:
        if not stream:
            data = json.loads(body)
            choice = data["choices"][0]["message"]
            return None if choice.get("tool_calls") else (choice.get("content") or None)
        parts: list[str] = []
        for line in body.decode("utf-8", "replace").splitlines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            chunk = json.loads(line[5:])
            for c in chunk.get("choices") or ():
                delta = c.get("delta") or {}
                if delta.get("tool_calls"):
                    return None
                if c.get("index", 0) == 0 and delta.get("content"):
                    parts.append(delta["content"])
        return "".join(parts) or None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def judge_request(question: str, first: str, second: str, judge_model: str) -> dict[str, Any]:
    """The judge's chat request: the rubric as system message, the request and answers A and B."""
    user = (f"## User request\n{question}\n\n## Answer A\n{first}\n\n## Answer B\n{second}\n\n"
            "Which answer serves the user better? Reply with VERDICT: A, VERDICT: B or VERDICT: TIE.")
    return {"model": judge_model, "temperature": 0, "max_tokens": 16,
            "messages": [{"role": "system", "content": RUBRIC}, {"role": "user", "content": user}]}


def question_of(body: Mapping[str, Any]) -> str:
    """The conversation as the judge reads it: each turn as ``role: text``."""
    out = []
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append(f"{m.get('role', 'user')}: {content or ''}")
    return "\n".join(out)


_VERDICT = re.compile(r"VERDICT:\s*(A|B|TIE)\b", re.IGNORECASE)


def parse_grade(text: str | None) -> str | None:
    """'A', 'B' or 'TIE' from the judge's reply (the last VERDICT line), None if it gave none."""
    found = _VERDICT.findall(text or "")
    return found[-1].upper() if found else None


def combine(served_first: str | None, served_second: str | None) -> str | None:
    """The verdict for the served answer from both orders: ``served_first`` graded (served=A, ref=B),
    ``served_second`` graded (ref=A, served=B). A win needs a win in one order and no loss in the
    other; disagreeing orders (position bias) are a tie. None when either grade is missing."""
    if served_first is None or served_second is None:
        return None
    one = {"A": 1, "B": -1, "TIE": 0}[served_first]
    two = {"B": 1, "A": -1, "TIE": 0}[served_second]
    total = one + two
    return WIN if total > 0 else LOSS if total < 0 else TIE


# ---- statistics -----------------------------------------------------------------------------------------------

def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% at z = 1.96); (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Tally:
    win: int = 0
    tie: int = 0
    loss: int = 0

    @property
    def n(self) -> int:
        return self.win + self.tie + self.loss

    def add(self, verdict: str) -> None:
        setattr(self, verdict, getattr(self, verdict) + 1)

    def rates(self, z: float = 1.96) -> dict[str, Any]:
        """Each rate with its Wilson interval, and win-or-tie (the rate targets are about)."""
        out: dict[str, Any] = {"n": self.n}
        for name, k in (("win", self.win), ("tie", self.tie), ("loss", self.loss),
                        ("win_or_tie", self.win + self.tie)):
            out[name] = {"rate": k / self.n if self.n else None, "ci": wilson(k, self.n, z)}
        return out


def verdict_of(score: float | None) -> str | None:
    return {1.0: WIN, 0.5: TIE, 0.0: LOSS}.get(score) if score is not None else None


def tally(records: Iterable[Any], by: tuple[str, ...] = ("request_class", "surface", "model")
          ) -> dict[tuple, Tally]:
    """Win/tie/loss counts of the ledger's shadow records (``quality_source == 'shadow'``), grouped by
    the record attributes ``by``."""
    out: dict[tuple, Tally] = {}
    for r in records:
        if getattr(r, "quality_source", None) != SHADOW_SOURCE:
            continue
        verdict = verdict_of(r.quality)
        if verdict is not None:
            out.setdefault(tuple(getattr(r, a) for a in by), Tally()).add(verdict)
    return out


def below_target(t: Tally, target: float, z: float = 1.96) -> bool:
    """The win-or-tie rate is below ``target`` with confidence: the interval's upper bound is under it."""
    return t.n > 0 and wilson(t.win + t.tie, t.n, z)[1] < target


MIN_JUDGED = 20   # judged answers before a floor moves: the same evidence the alert rule asks for


def propose_floor(t: Tally, target: float, current_floor: int, premium_quality: int, z: float = 1.96,
                  min_judged: int = MIN_JUDGED) -> tuple[int, str]:
    """A surface's proposed ``quality_floor`` from its cheap-tier tally: raise it to the premium quality
    (the best the surface may use) when the win-or-tie rate is below target with confidence; lower it by
    one when the interval's lower bound clears the target (the cheap tier is safe); else keep it. Fewer
    than ``min_judged`` verdicts never move it (two losses once proposed a floor). Returns (floor, why)."""
    if t.n == 0:
        return current_floor, "no shadow evaluations yet"
    if t.n < min_judged:
        return current_floor, f"only {t.n} judged answers; {min_judged} before a floor moves"
    lo, hi = wilson(t.win + t.tie, t.n, z)
    rate = (t.win + t.tie) / t.n
    if hi < target:
        return max(current_floor, premium_quality), (f"win-or-tie {rate:.2f} (95% CI {lo:.2f}-{hi:.2f}) is below "
                                                     f"the target {target:.2f}: keep this surface on the premium tier")
    if lo >= target and current_floor > 1:
        return current_floor - 1, (f"win-or-tie {rate:.2f} (95% CI {lo:.2f}-{hi:.2f}) clears the target "
                                   f"{target:.2f}: a cheaper tier may serve it")
    return current_floor, f"win-or-tie {rate:.2f} (95% CI {lo:.2f}-{hi:.2f}): not enough evidence to move"


def set_quality_floors(text: str, floors: Mapping[str, int]) -> str:
    """The routing config's YAML ``text`` with ``surfaces.<name>.quality_floor`` set per ``floors``, every
    other line (comments included) kept. Handles a surface written as a block or as ``{...}`` on one
    line; raises ValueError for a surface it cannot find (the caller validates the result)."""
    lines = text.splitlines(keepends=True)
    top = next((i for i, line in enumerate(lines) if re.match(r"surfaces:\s*(#.*)?$", line)), None)
    if top is None:
        raise ValueError("the config has no top-level 'surfaces:' block")
    end = next((i for i in range(top + 1, len(lines)) if re.match(r"\S", lines[i]) and not lines[i].startswith("#")),
               len(lines))
    for name, floor in floors.items():
        head = next((i for i in range(top + 1, end)
                     if re.match(rf"(\s+){re.escape(name)}:(\s|$)", lines[i])), None)
        if head is None:
            raise ValueError(f"surface {name!r} is not in the config's surfaces block")
        indent = len(lines[head]) - len(lines[head].lstrip())
        inline = re.match(r"(\s+\S+:\s*\{)(.*)(\}.*)$", lines[head].rstrip("\n"))
        if inline:
            body = inline[2]
            body = (re.sub(r"quality_floor:\s*\d+", f"quality_floor: {floor}", body) if "quality_floor" in body
                    else f"quality_floor: {floor}, {body.strip()}".rstrip(", "))
            lines[head] = inline[1] + body + inline[3] + "\n"
            continue
        block_end = next((i for i in range(head + 1, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")
                          and len(lines[i]) - len(lines[i].lstrip()) <= indent), end)
        found = next((i for i in range(head + 1, block_end) if re.match(r"\s+quality_floor:", lines[i])), None)
        if found is not None:
            lines[found] = re.sub(r"(quality_floor:\s*)\d+", rf"\g<1>{floor}", lines[found], count=1)
        else:
            lines.insert(head + 1, " " * (indent + 2) + f"quality_floor: {floor}\n")
            end += 1
    return "".join(lines)
