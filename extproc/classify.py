"""Request classification: which routing class a chat request belongs to, and how much it needs a premium model.

Pure and deterministic: a classifier takes the parsed OpenAI chat request body (a dict) and returns a
:class:`Classification`; no I/O, no clocks, no randomness at classify time. Learned weights are loaded
once, when the classifier is built.

Two classifiers implement the :class:`Classifier` protocol, plus their combination:

- :class:`RuleClassifier`: hand-written rules over request features (estimated prompt tokens, conversation
  depth, code, math, step-by-step and reasoning cues, tools, JSON schema, images, script). Its score is a
  hand-weighted sum of those cues; it needs no data.
- :class:`LinearClassifier`: two logistic regressions per prompt format over bag-of-words plus a few
  numeric features, trained on the ``train`` split of ``routing_eval.jsonl`` by ``bench/eval_routing.py``
  (weights in ``classifier_model.json``, shipped with the package). The score is the expected quality gain
  of the premium model over the cheap one, P(premium right) - P(cheap right), mapped to 0..1.
- :class:`CombinedClassifier` (the default): the class comes from the rules (capabilities and shape), the
  score is the linear score blended with the rule score (weight ``rules_weight``).

``score`` (0..1, "needs a premium model") is what ``bench/eval_routing.py`` sweeps to measure routing
quality; the class name is what the routing config's ``routing_rules`` keys on.

Config (the routing config's ``classifier:`` section; every key optional)::

    classifier:
      kind: combined            # rules | linear | combined
      model_path: null          # learned weights; default: the classifier_model.json shipped here
      rules_weight: null        # combined: score = (1 - w) * linear + w * rules; null = the model file's
                                #   cross-validated weight
      premium_threshold: 0.52   # score >= this -> the reasoning class (else the simple class)
      long_context_tokens: 8000 # estimated prompt tokens >= this -> long_context
      chars_per_token: 4.0      # token estimate for the length feature
      max_scan_chars: 2000      # the cues read the first and last max_scan_chars/2 characters of the
                                #   last user message
      classes:                  # rename the classes to match routing_rules keys
        simple: simple_queries
        reasoning: complex_reasoning
        code: code
        long_context: long_context
        tool_use: tool_use
        structured_output: structured_output
        vision: vision
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

DEFAULT_MODEL_PATH = Path(__file__).with_name("classifier_model.json")

# Class roles, in decision precedence. The role is fixed; the name each maps to comes from the config.
ROLES = ("long_context", "tool_use", "vision", "structured_output", "code", "reasoning", "simple")
DEFAULT_CLASSES = {
    "simple": "simple_queries",
    "reasoning": "complex_reasoning",
    "code": "code",
    "long_context": "long_context",
    "tool_use": "tool_use",
    "structured_output": "structured_output",
    "vision": "vision",
}
KINDS = ("rules", "linear", "combined")


@dataclass(frozen=True)
class ClassifierSettings:
    kind: str = "combined"
    model_path: str | None = None
    rules_weight: float | None = None   # None: the blend weight cross-validated into the model file
    premium_threshold: float = 0.52
    long_context_tokens: int = 8000
    chars_per_token: float = 4.0
    max_scan_chars: int = 2000
    classes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CLASSES))

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any] | None) -> "ClassifierSettings":
        """Validate the ``classifier:`` config section. Errors read ``"{key}: {problem}"``."""
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise ValueError(f"classifier: expected a mapping, got {type(mapping).__name__}")
        known = {f.name for f in fields(cls)}
        for key in mapping:
            if key not in known:
                raise ValueError(f"{key}: unknown key (known: {', '.join(sorted(known))})")
        kw: dict[str, Any] = {}
        if "kind" in mapping:
            kind = mapping["kind"]
            if kind not in KINDS:
                raise ValueError(f"kind: must be one of {', '.join(KINDS)}, got {kind!r}")
            kw["kind"] = kind
        if "model_path" in mapping:
            path = mapping["model_path"]
            if path is not None and (not isinstance(path, str) or not path):
                raise ValueError(f"model_path: must be a non-empty string or null, got {path!r}")
            kw["model_path"] = path
        if mapping.get("rules_weight") is not None:
            kw["rules_weight"] = _number("rules_weight", mapping["rules_weight"], 0.0, 1.0)
        if "premium_threshold" in mapping:
            kw["premium_threshold"] = _number("premium_threshold", mapping["premium_threshold"], 0.0, 1.0)
        if "chars_per_token" in mapping:
            kw["chars_per_token"] = _number("chars_per_token", mapping["chars_per_token"], 0.5, 100.0)
        for key, low in (("long_context_tokens", 1), ("max_scan_chars", 64)):
            if key in mapping:
                v = mapping[key]
                if isinstance(v, bool) or not isinstance(v, int) or v < low:
                    raise ValueError(f"{key}: must be an integer >= {low}, got {v!r}")
                kw[key] = v
        if "classes" in mapping:
            raw = mapping["classes"]
            if not isinstance(raw, Mapping):
                raise ValueError(f"classes: expected a mapping of role to class name, got {type(raw).__name__}")
            classes = dict(DEFAULT_CLASSES)
            for role, name in raw.items():
                if role not in DEFAULT_CLASSES:
                    raise ValueError(f"classes.{role}: unknown class role (known: {', '.join(ROLES)})")
                if not isinstance(name, str) or not name:
                    raise ValueError(f"classes.{role}: class name must be a non-empty string, got {name!r}")
                classes[role] = name
            kw["classes"] = classes
        return cls(**kw)


def _number(key: str, v: Any, low: float, high: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
        raise ValueError(f"{key}: must be a number in [{low}, {high}], got {v!r}")
    return float(v)


@dataclass(frozen=True)
class Classification:
    name: str
    confidence: float           # 0..1, how sure the class is
    score: float                # 0..1, how much the request needs a premium model
    features: dict[str, float | int | bool | str]


@runtime_checkable
class Classifier(Protocol):
    def classify(self, body: dict) -> Classification: ...


# ---------------------------------------------------------------------------------------------------
# Request features (shared by every classifier)

# Cues are matched on word tokens (set intersections) and with substring counts, not with big regex
# alternations: Python's re scans an alternation at every position (~100-250 us per 2 KB each), while
# str.translate/split/count and set operations run in C (a few us).
_PUNCT = str.maketrans({c: " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~"})
_CODE_MARKS = ("```", "def ", "=>", "#include", "};", "{\n", ";\n", "return ", "import ", "console.log",
               "public static", "traceback", "self.", "</", "();")
_CODE_WORDS = frozenset(
    "code function script program implement debug refactor compile python javascript typescript java rust "
    "golang sql bash html css api bug regex json yaml dockerfile kubernetes unittest".split())
_MATH_WORDS = frozenset(
    "equation integral derivative probability solve percent percentage sum product remainder prime matrix "
    "theorem calculate compute average ratio total times twice half".split())
_MATH_OPS = ("+", "=", "*", "/", "^", "<", ">", "\\frac", "\\sqrt")
_STEP_PHRASES = ("step by step", "step-by-step", "show your work", "show the work", "explain why", "explain how",
                 "walk me through", "chain of thought", "think carefully", "think through")
_REASON_WORDS = frozenset(
    "why prove derive compare analyze analyse evaluate tradeoff tradeoffs implications justify plan design "
    "optimize optimise hypothesis therefore assume suppose strategy strategies reasoning".split())
_SIMPLE_OPENINGS = ("hi", "hello", "hey", "thanks", "thank you", "what is", "what's", "who is", "when is",
                    "when was", "where is", "define", "translate", "summarize", "summarise", "tl;dr")
_FRACTION_WORDS = frozenset("half third quarter twice percent fraction".split())
_MULTIPLE_CHOICE = re.compile(r"\n\s*[A-D][.)]\s")

_SCRIPTS = (  # (first code point, last code point, script), for the first non-ASCII letters
    (0x0400, 0x04FF, "cyrillic"), (0x0590, 0x05FF, "hebrew"), (0x0600, 0x06FF, "arabic"),
    (0x0900, 0x097F, "devanagari"), (0x0E00, 0x0E7F, "thai"), (0x3040, 0x30FF, "japanese"),
    (0x3400, 0x9FFF, "cjk"), (0xAC00, 0xD7AF, "hangul"), (0x0370, 0x03FF, "greek"),
)


class RequestView:
    """What the classifiers read from a chat request body, extracted in one walk over the messages.

    Only the last user message is read as text (``prompt``): it carries the ask, while system prompts are
    fixed per application and earlier turns are already answered. Everything else is counted."""
    __slots__ = ("prompt", "chars", "messages", "user_turns", "assistant_turns", "tools", "tool_messages",
                 "images", "json_schema", "json_mode")

    def __init__(self, prompt: str, chars: int, messages: int, user_turns: int, assistant_turns: int,
                 tools: int, tool_messages: int, images: int, json_schema: bool, json_mode: bool):
        self.prompt = prompt                  # the last user message's text
        self.chars = chars                    # all message text, for the token estimate
        self.messages = messages
        self.user_turns = user_turns
        self.assistant_turns = assistant_turns
        self.tools = tools
        self.tool_messages = tool_messages
        self.images = images
        self.json_schema = json_schema
        self.json_mode = json_mode


def _content_text(content: Any) -> tuple[str, int]:
    """(text, image count) of a message's content: a string, or a list of typed parts."""
    if content.__class__ is str:
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts, images = [], 0
    for part in content:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in ("image_url", "input_image", "image"):
            images += 1
    return "\n".join(texts), images


def read_request(body: Mapping[str, Any]) -> RequestView:
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        msgs = []
    prompt = ""
    chars = users = assistants = tool_msgs = images = 0
    for m in msgs:
        if not isinstance(m, Mapping):
            continue
        role = m.get("role")
        text, n_images = _content_text(m.get("content"))
        chars += len(text)
        images += n_images
        if role == "user":
            users += 1
            prompt = text
        elif role == "assistant":
            assistants += 1
            if m.get("tool_calls"):
                tool_msgs += 1
        elif role == "tool" or role == "function":
            tool_msgs += 1
    tools = body.get("tools")
    n_tools = len(tools) if isinstance(tools, list) else 0
    if not n_tools and isinstance(body.get("functions"), list):
        n_tools = len(body["functions"])
    rf = body.get("response_format")
    rf_type = rf.get("type") if isinstance(rf, Mapping) else None
    return RequestView(prompt, chars, len(msgs), users, assistants, n_tools, tool_msgs, images,
                       rf_type == "json_schema", rf_type == "json_object")


def _scan(text: str, limit: int) -> str:
    """The text the cues read: all of it, or its head and tail (the ask and its format sit at either end).
    Capping bounds the cost on long prompts; the true length still comes from ``RequestView.chars``."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n" + text[-half:]


class Prompt:
    """The prompt tokenized once: lower-cased text, word list and distinct words. Both the rules and the
    linear model read this, so lowercasing and splitting happen once per request."""
    __slots__ = ("raw", "low", "words", "vocab")

    def __init__(self, text: str, limit: int):
        self.raw = _scan(text, limit)
        self.low = self.raw.lower()
        self.words = self.low.translate(_PUNCT).split()
        self.vocab = frozenset(self.words)    # lookups below touch each distinct word once


def _count_marks(low: str, marks: tuple[str, ...]) -> int:
    """Total occurrences of the marks. A multi-character str.count costs ~0.6 us per KB, a one-character
    membership test ~0.05 us, so a mark is only counted when its first character occurs at all."""
    return sum(low.count(m) for m in marks if m[0] in low)


def _script(text: str) -> str:
    if text.isascii():
        return "latin"
    for ch in text:
        o = ord(ch)
        if o < 0x0370 or not ch.isalpha():
            continue
        for lo, hi, name in _SCRIPTS:
            if lo <= o <= hi:
                return name
        return "other"
    return "latin"


# ---------------------------------------------------------------------------------------------------
# Rules

class RuleClassifier:
    """Hand-written rules. Precedence: long context, tools, images, JSON schema, code, then the score
    decides between the reasoning and the simple class."""

    def __init__(self, settings: ClassifierSettings | None = None):
        self.settings = settings or ClassifierSettings()

    def prompt(self, view: RequestView) -> Prompt:
        return Prompt(view.prompt, self.settings.max_scan_chars)

    def features(self, view: RequestView, p: Prompt | None = None) -> dict[str, float | int | bool | str]:
        """The rule features; ``p`` is the tokenized prompt when the caller already has it."""
        if p is None:
            p = self.prompt(view)
        low, vocab = p.low, p.vocab
        # map() over bound C methods: no Python frame per cue (a generator costs ~10x more here)
        return {
            "tokens": int(view.chars / self.settings.chars_per_token) + 1,
            "messages": view.messages,
            "user_turns": view.user_turns,
            "depth": view.user_turns + view.assistant_turns,
            "code": _count_marks(low, _CODE_MARKS),
            "code_ask": len(vocab & _CODE_WORDS),
            "math": (len(vocab & _MATH_WORDS) + low.count("how many") + low.count("how much")
                     + min(_count_marks(low, _MATH_OPS), 4)),
            "step_by_step": any(map(low.__contains__, _STEP_PHRASES)),
            "reasoning": len(vocab & _REASON_WORDS),
            "simple_opening": low.lstrip().startswith(_SIMPLE_OPENINGS),
            "multiple_choice": len(_MULTIPLE_CHOICE.findall(p.raw)) >= 3,
            "tools": view.tools,
            "tool_messages": view.tool_messages,
            "json_schema": view.json_schema,
            "json_mode": view.json_mode,
            "images": view.images,
            "script": _script(p.raw),
        }

    @staticmethod
    def rule_score(f: Mapping[str, Any]) -> float:
        """Hand-weighted evidence of difficulty, squashed to 0..1; about 0.5 for a 100-token plain question."""
        z = 0.9 * (math.log(f["tokens"] + 1) - math.log(100))  # longer prompts are harder (~0.6 APGR alone)
        z += 0.5 * min(f["math"], 4) / 4 + 0.6 * f["step_by_step"] + 0.35 * min(f["reasoning"], 4)
        z += 0.15 * min(f["code"], 6) + 0.1 * min(f["code_ask"], 3)
        z += 0.15 * min(f["depth"], 10) / 2 + 0.3 * (f["tools"] > 0) + 0.2 * f["json_schema"]
        z += 0.2 * (f["images"] > 0) + 0.2 * (f["script"] != "latin")
        z -= 0.6 * f["simple_opening"]
        return 1.0 / (1.0 + math.exp(-z))

    def decide(self, f: Mapping[str, Any], score: float) -> tuple[str, float]:
        """(role, confidence) for the features and the premium score."""
        s = self.settings
        if f["tokens"] >= s.long_context_tokens:
            return "long_context", min(1.0, 0.75 + 0.25 * (f["tokens"] / s.long_context_tokens - 1))
        if f["tools"] or f["tool_messages"]:
            return "tool_use", 0.95 if f["tools"] else 0.8
        if f["images"]:
            return "vision", 0.95
        if f["json_schema"]:
            return "structured_output", 0.9
        if f["code"] >= 2 or (f["code"] and f["code_ask"]):
            return "code", min(1.0, 0.6 + 0.1 * f["code"] + 0.05 * f["code_ask"])
        t = s.premium_threshold
        role = "reasoning" if score >= t else "simple"
        span = (1.0 - t) if role == "reasoning" else t
        return role, round(0.5 + 0.5 * min(1.0, abs(score - t) / max(span, 1e-9)), 4)

    def classify(self, body: dict) -> Classification:
        return self.classify_view(read_request(body))

    def classify_view(self, view: RequestView) -> Classification:
        f = self.features(view)
        score = self.rule_score(f)
        f["score_rules"] = round(score, 4)
        role, conf = self.decide(f, score)
        return Classification(self.settings.classes[role], conf, score, f)


# ---------------------------------------------------------------------------------------------------
# Learned linear model

# Numeric features of the linear model, in the order of the "dense" weights in classifier_model.json.
# Counts are log1p'd. Numbers are counted as distinct digit tokens (the set is already built, and
# "how many different quantities" is what makes a word problem hard); max_digits stands for magnitude.
DENSE_FEATURES = ("log_chars", "log_distinct_numbers", "log_sentences", "log_percent", "log_dollar",
                  "log_questions", "log_fraction_words", "log_words", "log_avg_word_chars", "log_lines",
                  "log_max_digits", "log_decimals", "log_commas", "log_question_chars", "log_choice_chars",
                  "statements")
_DECIMAL = re.compile(r"\d\.\d")
_STATEMENTS = ("statement 1", "\ni.", "\nii.", " i and ii", " ii and iii")


def linear_features(p: Prompt, chars: int) -> list[float]:
    """The dense features of a tokenized prompt; ``chars`` is the request's full text length."""
    low, raw = p.low, p.raw
    nw = len(p.words)
    lg = math.log1p
    numbers = [w for w in p.vocab if w.isdigit()]   # the regex below (~7 us per KB) only runs when needed
    # word characters = all characters minus the separators split() removed (punctuation is already spaces)
    word_chars = len(low) - low.count(" ") - low.count("\n")
    choice = _MULTIPLE_CHOICE.search(raw)
    question_chars = choice.start() if choice else len(raw)
    sentences = low.count(". ") + low.count("? ") + low.count("! ") + low.count(".\n") + 1
    return [lg(chars), lg(len(numbers)), lg(sentences), lg(raw.count("%")), lg(raw.count("$")),
            lg(raw.count("?")), lg(len(p.vocab & _FRACTION_WORDS)), lg(nw), lg(word_chars / nw if nw else 0.0),
            lg(raw.count("\n")), lg(max(map(len, numbers), default=0)), lg(len(_DECIMAL.findall(raw)) if numbers and "." in raw else 0),
            lg(raw.count(",")), lg(question_chars), lg(len(raw) - question_chars),
            float(any(map(low.__contains__, _STATEMENTS)))]


def linear_inputs(view: RequestView, p: Prompt, multiple_choice: bool) -> tuple[str, list[float], frozenset[str]]:
    """(head name, dense features, distinct words) the linear model reads; the trainer calls this too."""
    return ("mc" if multiple_choice else "open"), linear_features(p, view.chars), p.vocab


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class _Head:
    """Two logistic regressions over the same features: P(premium right), P(cheap right)."""
    __slots__ = ("scale", "bias", "dense", "words", "ws", "ww")

    def __init__(self, raw: Mapping[str, Any]):
        self.scale = float(raw["dense_scale"])
        self.bias = (float(raw["bias"][0]), float(raw["bias"][1]))
        self.dense = [(float(a) * self.scale, float(b) * self.scale) for a, b in raw["dense"]]
        if len(self.dense) != len(DENSE_FEATURES):
            raise ValueError(f"dense: expected {len(DENSE_FEATURES)} weights, got {len(self.dense)}")
        self.words = {w: (float(a), float(b)) for w, (a, b) in raw["words"].items()}
        self.ws = {w: a for w, (a, _) in self.words.items()}
        self.ww = {w: b for w, (_, b) in self.words.items()}

    def gain(self, dense: list[float], tokens: frozenset[str]) -> float:
        zs, zw = self.bias
        for x, (a, b) in zip(dense, self.dense):
            zs += a * x
            zw += b * x
        known = self.ws.keys() & tokens  # set operations and map() run in C
        # fsum is exactly rounded, so the result does not depend on set order (PYTHONHASHSEED)
        zs += math.fsum(map(self.ws.__getitem__, known))
        zw += math.fsum(map(self.ww.__getitem__, known))
        return _sigmoid(zs) - _sigmoid(zw)


class LinearModel:
    """The weights of classifier_model.json: one _Head per prompt format, and the CV-chosen blend weight."""

    def __init__(self, heads: Mapping[str, _Head], rules_weight: float = 0.0):
        if not heads:
            raise ValueError("model_path: the model has no heads")
        self.heads = dict(heads)
        self.rules_weight = rules_weight

    def head(self, name: str) -> _Head:
        return self.heads.get(name) or self.heads[min(self.heads)]


def load_model(path: str | Path | None = None) -> LinearModel:
    """Load and check the linear model's weights (done once, when a classifier is built)."""
    p = Path(path) if path else DEFAULT_MODEL_PATH
    with open(p, encoding="utf-8") as fh:
        raw = json.load(fh)
    if raw.get("format") != "extproc-linear-router/1":
        raise ValueError(f"model_path: {p} is not an extproc-linear-router/1 model")
    if tuple(raw.get("dense_features", ())) != DENSE_FEATURES:
        raise ValueError(f"model_path: {p} was trained with other dense features")
    return LinearModel({name: _Head(h) for name, h in raw["heads"].items()}, float(raw.get("rules_weight", 0.0)))


class LinearClassifier:
    """Learned premium score; the class comes from the same rules as RuleClassifier."""

    def __init__(self, settings: ClassifierSettings | None = None, model: LinearModel | None = None):
        self.settings = settings or ClassifierSettings()
        self.rules = RuleClassifier(self.settings)
        self.model = model if model is not None else load_model(self.settings.model_path)
        w = self.settings.rules_weight
        self.rules_weight = self.model.rules_weight if w is None else w

    def linear_score(self, view: RequestView, p: Prompt, f: dict) -> float:
        fmt, dense, vocab = linear_inputs(view, p, f["multiple_choice"])
        gain = self.model.head(fmt).gain(dense, vocab)
        f["head"] = fmt
        f["expected_gain"] = round(gain, 4)
        return (gain + 1.0) / 2.0

    def classify(self, body: dict) -> Classification:
        view = read_request(body)
        p = self.rules.prompt(view)           # tokenized once, read by the rules and the linear model
        f = self.rules.features(view, p)
        rs = self.rules.rule_score(f)
        ls = self.linear_score(view, p, f)
        f["score_rules"], f["score_linear"] = round(rs, 4), round(ls, 4)
        score = self._blend(ls, rs)
        role, conf = self.rules.decide(f, score)
        return Classification(self.settings.classes[role], conf, score, f)

    def _blend(self, linear: float, rules: float) -> float:
        return linear


class CombinedClassifier(LinearClassifier):
    """Rule classes; score = (1 - rules_weight) * linear + rules_weight * rules."""

    def _blend(self, linear: float, rules: float) -> float:
        w = self.rules_weight
        return (1.0 - w) * linear + w * rules


def build_classifier(settings: ClassifierSettings | None = None) -> Classifier:
    """The classifier the settings name (``kind``)."""
    s = settings or ClassifierSettings()
    if s.kind == "rules":
        return RuleClassifier(s)
    if s.kind == "linear":
        return LinearClassifier(s)
    return CombinedClassifier(s)
