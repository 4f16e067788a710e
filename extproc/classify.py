"""Request classification: which routing class a chat request belongs to, and how much it needs a premium model.

Pure and deterministic: a classifier takes the parsed OpenAI chat request body (a dict) and returns a
:class:`Classification`; no I/O, no clocks, no randomness at classify time. Learned weights are loaded
once, when the classifier is built.

Two classifiers implement the :class:`Classifier` protocol, plus their combination:

- :class:`RuleClassifier`: hand-written rules over request features (estimated prompt tokens, conversation
  depth, code, math, step-by-step and reasoning cues, tools, JSON schema, images, script). Its score is a
  hand-weighted sum of those cues; it needs no data.
- :class:`LinearClassifier`: two logistic regressions per prompt format over tokens (``linear_tokens``:
  question words, answer-choice words, word pairs) plus a few numeric features, trained on the ``train``
  split of ``routing_eval.jsonl`` by ``bench/eval_routing.py`` with ``bench/logistic.py`` (weights in
  ``classifier_model.json``, shipped with the package). The score is the expected quality gain
  of the premium model over the cheap one, P(premium right) - P(cheap right), mapped to 0..1.
- :class:`CombinedClassifier` (the default): the class comes from the rules (capabilities and shape), the
  score is the linear score blended with the rule score (weight ``rules_weight``), put back on the
  expected-gain scale by the head's calibration so that one ``premium_threshold`` means the same for
  every prompt format.

``score`` (0..1, "needs a premium model") is what ``bench/eval_routing.py`` sweeps to measure routing
quality; the class name is what the routing config's ``routing_rules`` keys on.

Config (the routing config's ``classifier:`` section; every key optional)::

    classifier:
      kind: combined            # rules | linear | combined
      model_path: null          # learned weights; default: the classifier_model.json shipped here
      task_model_path: null     # the task head (product requests); default: task_model.json shipped
                                #   here; "none" turns it off (every request gets the exam score)
      rules_weight: null        # combined: score = (1 - w) * linear + w * rules; null = the model file's
                                #   cross-validated weight for the prompt's format (multiple choice or open),
                                #   then its calibration; set: the plain blend, uncalibrated
      premium_threshold: 0.52   # score >= this -> the reasoning class (else the simple class)
      long_context_tokens: 8000 # estimated prompt tokens >= this -> long_context
      chars_per_token: 4.0      # token estimate for the length feature (ASCII-equivalent characters a token)
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

from .cost import ASCII_UNITS, text_units

DEFAULT_MODEL_PATH = Path(__file__).with_name("classifier_model.json")
DEFAULT_TASK_MODEL_PATH = Path(__file__).with_name("task_model.json")

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
    task_model_path: str | None = None  # None: the shipped task_model.json; "none": no task head
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
        for key in ("model_path", "task_model_path"):
            if key in mapping:
                path = mapping[key]
                if path is not None and (not isinstance(path, str) or not path):
                    raise ValueError(f"{key}: must be a non-empty string or null, got {path!r}")
                kw[key] = path
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
    __slots__ = ("prompt", "chars", "units", "messages", "user_turns", "assistant_turns", "tools",
                 "tool_messages", "images", "json_schema", "json_mode")

    def __init__(self, prompt: str, chars: int, messages: int, user_turns: int, assistant_turns: int,
                 tools: int, tool_messages: int, images: int, json_schema: bool, json_mode: bool,
                 units: float | None = None):
        self.prompt = prompt                  # the last user message's text
        self.chars = chars                    # all message text, in characters (the exam heads' length cue)
        # the same in ASCII-equivalent characters (cost.text_units): what the token estimate reads
        self.units = chars if units is None else units
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
    units = 0.0
    for m in msgs:
        if m.__class__ is not dict and not isinstance(m, Mapping):   # typing.Mapping checks are slow
            continue
        role = m.get("role")
        text, n_images = _content_text(m.get("content"))
        # The router's token estimate weighs a CJK character as about 3 ASCII ones (cost.text_units):
        # a long Chinese prompt is long_context at the same token count as an English one. The exam
        # heads' length cues stay in characters, as they were fitted.
        chars += len(text)
        units += len(text) if text.isascii() else text_units(text) / ASCII_UNITS
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
                       rf_type == "json_schema", rf_type == "json_object", units)


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

def _multiple_choice(p: "Prompt") -> bool:
    """An exam-style question with its lettered choices (three or more)."""
    return len(_MULTIPLE_CHOICE.findall(p.raw)) >= 3


class RuleClassifier:
    """Hand-written rules. Precedence: long context, tools, images, JSON schema, code, then the score
    decides between the reasoning and the simple class."""

    def __init__(self, settings: ClassifierSettings | None = None):
        self.settings = settings or ClassifierSettings()

    def prompt(self, view: RequestView) -> Prompt:
        return Prompt(view.prompt, self.settings.max_scan_chars)

    def class_features(self, view: RequestView, p: Prompt) -> dict[str, float | int | bool | str]:
        """The features ``decide`` reads (capabilities, shape, code), without the difficulty cues."""
        return {
            "tokens": int(view.units / self.settings.chars_per_token) + 1,   # the estimate: long_context
            "length": int(view.chars / self.settings.chars_per_token) + 1,   # the rules' length cue
            "messages": view.messages,
            "user_turns": view.user_turns,
            "depth": view.user_turns + view.assistant_turns,
            "code": _count_marks(p.low, _CODE_MARKS),
            "code_ask": len(p.vocab & _CODE_WORDS),
            "tools": view.tools,
            "tool_messages": view.tool_messages,
            "json_schema": view.json_schema,
            "json_mode": view.json_mode,
            "images": view.images,
        }

    def features(self, view: RequestView, p: Prompt | None = None) -> dict[str, float | int | bool | str]:
        """The rule features; ``p`` is the tokenized prompt when the caller already has it."""
        if p is None:
            p = self.prompt(view)
        low, vocab = p.low, p.vocab
        f = self.class_features(view, p)
        # map() over bound C methods: no Python frame per cue (a generator costs ~10x more here)
        f.update({
            "math": (len(vocab & _MATH_WORDS) + low.count("how many") + low.count("how much")
                     + min(_count_marks(low, _MATH_OPS), 4)),
            "step_by_step": any(map(low.__contains__, _STEP_PHRASES)),
            "reasoning": len(vocab & _REASON_WORDS),
            "simple_opening": low.lstrip().startswith(_SIMPLE_OPENINGS),
            "multiple_choice": _multiple_choice(p),
            "script": _script(p.raw),
        })
        return f

    @staticmethod
    def rule_score(f: Mapping[str, Any]) -> float:
        """Hand-weighted evidence of difficulty, squashed to 0..1; about 0.5 for a 100-token plain question."""
        z = 0.9 * (math.log(f["length"] + 1) - math.log(100))  # longer prompts are harder (~0.6 APGR alone)
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
LINEAR_FORMAT = "extproc-linear-router/2"   # /2: tokens of linear_tokens (question, c:choices, word pairs)
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


def linear_tokens(p: Prompt) -> frozenset[str]:
    """The bag the linear model reads: the question's words, the answer choices' words marked ``c:`` (a
    word in an option says less about the question than the same word asked), and the word pairs of the
    question's first 41 words. Over plain words alone, each part added train-CV APGR (bench/eval_routing.py:
    MMLU 0.699 -> 0.706, GSM8K 0.669 -> 0.674)."""
    choice = _MULTIPLE_CHOICE.search(p.raw)
    if choice is None:
        question, tokens = p.words, set(p.vocab)
    else:
        cut = choice.start()
        question = p.low[:cut].translate(_PUNCT).split()
        tokens = set(question)
        tokens.update(["c:" + w for w in p.low[cut:].translate(_PUNCT).split()])
    tokens.update(map("_".join, zip(question[:40], question[1:41])))
    return frozenset(tokens)


def linear_inputs(view: RequestView, p: Prompt, multiple_choice: bool) -> tuple[str, list[float], frozenset[str]]:
    """(head name, dense features, tokens) the linear model reads; the trainer calls this too."""
    return ("mc" if multiple_choice else "open"), linear_features(p, view.chars), linear_tokens(p)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class _Steps:
    """A word problem's predicted solution length, standardised: (log1p(lines) - mean) / sd, where log1p(lines)
    = bias + dense . x + sum(words[t]) is a ridge regression fitted on GSM8K's own training set
    (bench/gsm8k_steps.py), held to the range [low, high] it predicts on its own training questions (text
    that is no word problem, such as a list of 300 percentages, would read as 40 steps), and mean / sd are
    over the head's train prompts. ``weight`` is its share of the head's linear score
    (bench/results/apgr-protocol-4.md: train CV chose 0.02 of the blended score)."""
    __slots__ = ("bias", "dense", "words", "low", "high", "mean", "sd", "weight")

    def __init__(self, raw: Mapping[str, Any]):
        self.bias = float(raw["bias"])
        self.dense = [float(v) for v in raw["dense"]]
        if len(self.dense) != len(DENSE_FEATURES):
            raise ValueError(f"steps.dense: expected {len(DENSE_FEATURES)} weights, got {len(self.dense)}")
        self.words = {w: float(v) for w, v in raw["words"].items()}
        self.low, self.high = float(raw["low"]), float(raw["high"])
        self.mean, self.sd, self.weight = float(raw["mean"]), float(raw["sd"]), float(raw["weight"])
        if self.sd <= 0:
            raise ValueError("steps.sd: must be positive")

    def log1p_lines(self, dense: list[float], tokens: frozenset[str]) -> float:
        z = self.bias + math.fsum(a * x for a, x in zip(self.dense, dense))
        z += math.fsum(map(self.words.__getitem__, self.words.keys() & tokens))
        return min(max(z, self.low), self.high)

    def term(self, log1p_lines: float) -> float:
        """What a prediction adds to the head's linear score."""
        return self.weight * (log1p_lines - self.mean) / self.sd


class _Head:
    """Two logistic regressions over the same features: P(premium right), P(cheap right); the head's linear
    score is (P(premium right) - P(cheap right) + 1) / 2, plus its ``steps`` term where it has one."""
    __slots__ = ("scale", "bias", "dense", "words", "ws", "ww", "steps")

    def __init__(self, raw: Mapping[str, Any]):
        self.scale = float(raw["dense_scale"])
        self.bias = (float(raw["bias"][0]), float(raw["bias"][1]))
        self.dense = [(float(a) * self.scale, float(b) * self.scale) for a, b in raw["dense"]]
        if len(self.dense) != len(DENSE_FEATURES):
            raise ValueError(f"dense: expected {len(DENSE_FEATURES)} weights, got {len(self.dense)}")
        self.words = {w: (float(a), float(b)) for w, (a, b) in raw["words"].items()}
        self.ws = {w: a for w, (a, _) in self.words.items()}
        self.ww = {w: b for w, (_, b) in self.words.items()}
        self.steps = _Steps(raw["steps"]) if "steps" in raw else None

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

    def linear(self, dense: list[float], tokens: frozenset[str], gain: float) -> float:
        """The head's linear score from its ``gain`` on these inputs (0..1 before the steps term)."""
        score = (gain + 1.0) / 2.0
        return score if self.steps is None else score + self.steps.term(self.steps.log1p_lines(dense, tokens))


class LinearModel:
    """The weights of classifier_model.json: one _Head per prompt format, and the CV-chosen blend weight."""

    def __init__(self, heads: Mapping[str, _Head], rules_weight: float = 0.0,
                 head_weights: Mapping[str, float] | None = None,
                 calibration: Mapping[str, tuple[float, float]] | None = None):
        if not heads:
            raise ValueError("model_path: the model has no heads")
        self.heads = dict(heads)
        self.rules_weight = rules_weight             # the blend weight of a head without its own
        self.head_weights = dict(head_weights or {})  # per head: exam formats differ (CV: MMLU 0, GSM8K 0.4)
        self.calibration = dict(calibration or {})   # per head (a, b); absent: identity

    def blend_weight(self, head: str) -> float:
        return self.head_weights.get(head, self.rules_weight)

    def calibrated(self, head: str, blended: float) -> float:
        """The blended score of a head put back on the expected-gain scale: (1 + a + b * (2 * blended - 1)) / 2,
        clipped to 0..1, with (a, b) a least-squares fit of (premium right - cheap right) on the head's
        out-of-fold train scores. Monotone (b > 0), so each format's ranking (APGR) is unchanged; without it a
        rules blend moves one format's scores against the other's and one ``premium_threshold`` means
        different things for them (the operating point sent 86% of MMLU to premium to keep GSM8K's quality)."""
        cal = self.calibration.get(head)
        if cal is None:
            return blended
        a, b = cal
        return min(1.0, max(0.0, (1.0 + a + b * (2.0 * blended - 1.0)) / 2.0))

    def head(self, name: str) -> _Head:
        return self.heads.get(name) or self.heads[min(self.heads)]


def load_model(path: str | Path | None = None) -> LinearModel:
    """Load and check the linear model's weights (done once, when a classifier is built)."""
    p = Path(path) if path else DEFAULT_MODEL_PATH
    with open(p, encoding="utf-8") as fh:
        raw = json.load(fh)
    if raw.get("format") != LINEAR_FORMAT:
        raise ValueError(f"model_path: {p} is not an {LINEAR_FORMAT} model (retrain it: bench/eval_routing.py --train)")
    if tuple(raw.get("dense_features", ())) != DENSE_FEATURES:
        raise ValueError(f"model_path: {p} was trained with other dense features")
    return LinearModel({name: _Head(h) for name, h in raw["heads"].items()}, float(raw.get("rules_weight", 0.0)),
                       {name: float(h["rules_weight"]) for name, h in raw["heads"].items() if "rules_weight" in h},
                       {name: (float(h["calibration"][0]), float(h["calibration"][1]))
                        for name, h in raw["heads"].items() if "calibration" in h})


class LinearClassifier:
    """Learned premium score; the class comes from the same rules as RuleClassifier."""

    def __init__(self, settings: ClassifierSettings | None = None, model: LinearModel | None = None,
                 task_model: "TaskModel | None" = None):
        self.settings = settings or ClassifierSettings()
        self.rules = RuleClassifier(self.settings)
        self.model = model if model is not None else load_model(self.settings.model_path)
        w = self.settings.rules_weight
        self.rules_weight = self.model.rules_weight if w is None else w
        self.task_model = task_model if task_model is not None else load_task_model(self.settings.task_model_path)

    def linear_score(self, view: RequestView, p: Prompt, f: dict) -> float:
        fmt, dense, vocab = linear_inputs(view, p, f["multiple_choice"])
        head = self.model.head(fmt)
        gain = head.gain(dense, vocab)
        f["head"] = fmt
        f["expected_gain"] = round(gain, 4)
        score = (gain + 1.0) / 2.0
        if head.steps is not None:
            lines = head.steps.log1p_lines(dense, vocab)
            f["predicted_steps"] = round(math.expm1(lines), 1)   # explain: how long a solution it reads as
            score += head.steps.term(lines)
        return score

    def classify(self, body: dict) -> Classification:
        view = read_request(body)
        p = self.rules.prompt(view)           # tokenized once, read by the rules and the linear model
        task = read_task(body, self.settings.max_scan_chars, p) if self.task_model is not None else None
        if task is not None and (task.product or (task.material and not _multiple_choice(p))):
            f = self.rules.class_features(view, p)   # what the class decision reads; no rule score needed
            # Product requests (a system prompt, tools or prior turns, or a turn that pastes material apart
            # from its ask: a log and "how many returned 503?") are scored by the task head: the
            # exam-trained score reads their knowledge bases, pasted documents and history as difficulty.
            # An exam question's lettered choices are not material: those stay with the exam heads.
            score = _sigmoid(self.task_model.logit(task))
            f["head"] = "task"
            f["task_contained"] = round(task.dense[1], 3)
            f["task_verb"] = task.verb
            f["score_task"] = round(score, 4)
        else:
            f = self.rules.features(view, p)
            rs = self.rules.rule_score(f)
            ls = self.linear_score(view, p, f)
            f["score_rules"], f["score_linear"] = round(rs, 4), round(ls, 4)
            score = self._blend(ls, rs, f["head"])
        role, conf = self.rules.decide(f, score)
        return Classification(self.settings.classes[role], conf, score, f)

    def blend_weight(self, head: str) -> float:
        """The rules' share of the combined score for a prompt format (``mc`` / ``open``): the config's
        ``rules_weight`` when set, else the one cross-validated into the model file for that head."""
        w = self.settings.rules_weight
        return self.model.blend_weight(head) if w is None else w

    def _blend(self, linear: float, rules: float, head: str) -> float:
        return linear


class CombinedClassifier(LinearClassifier):
    """Rule classes; score = (1 - w) * linear + w * rules, w = ``blend_weight(head)``, then the head's
    calibration when w is the model file's own (a config ``rules_weight`` was not part of the fit)."""

    def _blend(self, linear: float, rules: float, head: str) -> float:
        w = self.blend_weight(head)
        blended = (1.0 - w) * linear + w * rules
        if self.settings.rules_weight is None:
            return self.model.calibrated(head, blended)
        return blended


def build_classifier(settings: ClassifierSettings | None = None) -> Classifier:
    """The classifier the settings name (``kind``)."""
    s = settings or ClassifierSettings()
    if s.kind == "rules":
        return RuleClassifier(s)
    if s.kind == "linear":
        return LinearClassifier(s)
    return CombinedClassifier(s)


# ---------------------------------------------------------------------------------------------------
# Task features: what the request asks, read apart from the material it carries
#
# Product traffic wraps a small task in a lot of text: a knowledge base in the system prompt, a pasted
# document, search results, code, tool results. Length and formatting instructions are the product's, not
# the task's; the task is the instruction in the last user turn (or the pending step after a tool result).
# So the task head reads: the instruction's words (its verb and object), whether the instruction's words
# occur in the given material (look-up vs. new content), the output shape asked for, and the conversation
# state (tool results, tool errors, prior assistant turns). Lengths enter only as the instruction's own.

TASK_DENSE_FEATURES = ("log_instruction_words", "contained",
                       "after_tool_result", "tool_error", "log_assistant_turns", "has_tools", "json_output",
                       "log_instruction_numbers", "log_instruction_questions", "log_instruction_sentences",
                       "log_instruction_clauses", "routine_verbs", "judgement_cues")
_STOP = frozenset(
    "the a an and or of to in on for with at by from is are was were be been it this that these those my our "
    "your you i we me us can could would should will please what which who how do does did have has had not "
    "no yes if as so all any each into about than then them they their there here just also only now ok it's "
    "i'm don't its be".split())
_ERROR_MARKS = ('"error"', "error:", "timeout", "timed out", "failed", "exception", "unavailable", '"retryable"')
_FORMAT_WORDS = frozenset("json csv table markdown bullet bullets list yaml xml iso e.164".split())
_CLAUSE_MARKS = (" and ", ", ", "; ", " then ", " but ", " without ", " unless ", " while ", " given ")
# The rubric's two sides as words (bench/devset/RUBRIC.md): routine operations on given material, and cues
# of reasoning, judgement or stakes. Dense counts generalize to products the training data did not cover;
# the words' own weights (bag-of-words) refine them.
_ROUTINE_VERBS = frozenset(
    "summarize summarise summary extract convert list translate format reformat rename add shorten shorter "
    "reply confirm accept classify normalise normalize return count relay lookup look find show put table "
    "bullet bullets docstring hints grammar polite thanks thank tl dr top number many much when where "
    "status cost costs price long again".split())
_JUDGEMENT_CUES = frozenset(
    "why explain design compare decide reconcile verify diagnose debug recommend advise advice plan prove "
    "derive hypothesise hypothesize trade risks risk justify weigh negotiate dispute refund compensation "
    "exactly rigorously edge cases consistent plausible trust disagree conflict conflicting correct wrong "
    "efficient performance race concurrent sometimes flaky security options entitled eligible whether "
    "without unless firm sensitive investigation cohort retention median funnel".split())
# A quotation of 40+ characters after a colon that runs to the end of its paragraph: material the
# instruction works on (a draft to shorten, a ticket to classify), not the instruction.
_QUOTED = re.compile(r""":\s*(['"\u201c\u2018\u00ab])(.{40,})$""", re.S)
_CLOSING = {"'": "'", '"': '"', "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}
_CONTEXT_CACHE: dict[str, str] = {}   # system prompt -> lower-cased: products repeat their prompt
_CONTEXT_CACHE_MAX = 256


_FENCED = re.compile(r"(```.*?(?:```|\Z))", re.S)   # a fenced block, or an unclosed one to the end
# First words of a line that asks rather than shows: a question or an imperative (with the cue lists)
_ASK_WORDS = frozenset("what why how which who when where whether is are can could should would does do did "
                       "please fix make write rewrite draft give tell help quote cite describe identify check "
                       "suggest propose state".split())


def _asks(line: str) -> bool:
    """A line that reads as the request itself (a question, or an imperative from the cue lists), not as
    material: how a pasted block's first or last line is told from the block."""
    line = line.strip()
    if not line or len(line) > 300 or _looks_pasted(line):
        return False
    first = line.split(None, 1)[0].lower().strip(",:;.!?")
    return line.endswith("?") or first in _ASK_WORDS or first in _ROUTINE_VERBS or first in _JUDGEMENT_CUES


def _paragraphs(text: str) -> list[tuple[str, bool]]:
    """The turn as (paragraph, is_material) pairs, in order. Fenced blocks are material wherever they sit
    (a question joined to a closing fence by one newline is still a question); a pasted paragraph's first
    and last lines are peeled off when they ask ("Why does this fail?" under a log with no blank line)."""
    out: list[tuple[str, bool]] = []
    for k, piece in enumerate(_FENCED.split(text) if "```" in text else (text,)):
        if k % 2:
            out.append((piece, True))
            continue
        for par in piece.split("\n\n"):
            if not par or par.isspace():
                continue
            if not _looks_pasted(par.lstrip()):
                out.append((par, False))
                continue
            lines = par.strip("\n").split("\n")
            # (a document pasted as one long line and its ask on the next is two lines: tryout 10)
            tail = lines.pop() if len(lines) >= 2 and _asks(lines[-1]) else None
            head = lines.pop(0) if len(lines) >= 2 and _asks(lines[0]) else None
            if head is not None:
                out.append((head, False))
            out.append(("\n".join(lines) if head is not None or tail is not None else par, True))
            if tail is not None:
                out.append((tail, False))
    return out


def _looks_pasted(par: str) -> bool:
    """A paragraph of material (document, code, data, results) rather than an instruction to the model."""
    if len(par) > 400 or par.count("\n") >= 2 or par.startswith(("```", "SELECT", "select ", "WITH ", "{", "[", "<")):
        return True
    symbols = sum(map(par.count, ("{", "}", ";", "=", "|", "@", "#", "(")))
    return symbols > 4


def _lowered(system: str) -> str:
    got = _CONTEXT_CACHE.get(system)
    if got is None:
        got = system.lower()
        if len(_CONTEXT_CACHE) >= _CONTEXT_CACHE_MAX:
            _CONTEXT_CACHE.clear()    # bounded; a product's prompts come back soon enough
        _CONTEXT_CACHE[system] = got
    return got


class TaskView:
    """The task of a chat request: ``instruction`` (text), ``dense`` (TASK_DENSE_FEATURES order) and
    ``tokens`` (instruction words, its first word as ``v:<word>``, word bigrams, state markers)."""
    __slots__ = ("instruction", "verb", "dense", "tokens", "product", "material")

    def __init__(self, instruction: str, verb: str, dense: list[float], tokens: frozenset[str], product: bool,
                 material: bool = False):
        self.instruction = instruction
        self.verb = verb              # the instruction's first content word (its verb, mostly)
        self.dense = dense
        self.tokens = tokens
        self.product = product        # carries product context: a system prompt, tools or prior turns
        self.material = material      # the last user turn pastes material apart from its instruction


def read_task(body: Mapping[str, Any], scan_chars: int = 2000, prompt: "Prompt | None" = None) -> TaskView:
    """Read the task of an OpenAI chat request body (never raises on odd shapes). ``prompt``: the last
    user turn as the rules tokenized it; reused when the instruction is exactly that text."""
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        msgs = []
    system_parts: list[str] = []
    other_context: list[str] = []
    last_user = ""
    last_role = None
    last_tool = ""
    assistants = 0
    for m in msgs:
        if m.__class__ is not dict and not isinstance(m, Mapping):   # typing.Mapping checks are slow
            continue
        role = m.get("role")
        text, _ = _content_text(m.get("content"))
        if role in ("system", "developer"):
            system_parts.append(text)
        elif role == "user":
            if last_user:
                other_context.append(last_user)
            last_user = text
        elif role == "assistant":
            assistants += 1
            if text:
                other_context.append(text)
        elif role in ("tool", "function"):
            last_tool = text
            other_context.append(text)
        if role in ("user", "assistant", "tool", "function"):
            last_role = role
    system = "\n".join(system_parts)
    instr_parts, pasted = [], 0
    # paragraphs are kept as written (not stripped): a turn with no material then joins back to exactly
    # its own text, and the rules' tokenization of it is reused. A long turn is read at both ends: the ask
    # comes before or after what is pasted (a 20 KB log, then "how many returned 503?").
    limit = scan_chars * 4
    text = last_user
    if len(text) > 2 * limit:
        head, tail = text[:limit], text[-limit:]
        # a cut inside a fenced block: the head's open block is closed, the tail's begun one is opened, so
        # a closing fence in the tail is not read as an opening one (code as the ask, the ask as code)
        if head.count("```") % 2:
            head += "\n```"
        if tail.count("```") % 2:
            tail = "```\n" + tail
        text = head + "\n\n" + tail
    for par, material in _paragraphs(text):
        if material:
            pasted += len(par)
            other_context.append(par[:scan_chars])
            continue
        quoted = _QUOTED.search(par) if ":" in par else None
        if quoted is not None and par.rstrip().endswith(_CLOSING[quoted.group(1)]):
            # "Shorten my draft: '...'", "Classify the ticket ...: '...'": the quote is material
            pasted += len(par) - quoted.start()
            other_context.append(quoted.group(2)[:scan_chars])
            par = par[:quoted.start() + 1]
        instr_parts.append(par)
    instruction = "\n\n".join(instr_parts)[:scan_chars]
    if not instruction and last_user:
        instruction = last_user[:200]            # all material: its opening usually says what it is
    after_tool = last_role in ("tool", "function")
    if prompt is not None and instruction == prompt.raw:
        low, words = prompt.low, prompt.words          # the same text, already tokenized once
    else:
        low = instruction.lower()
        words = low.translate(_PUNCT).split()
    content = [w for w in set(words).difference(_STOP) if len(w) > 3]
    # "contained": the share of the instruction's content words found in the material (substring tests
    # run in C; no need to tokenize kilobytes of context per request)
    pieces = [_lowered(system)] if system else []
    pieces.extend(t[:scan_chars].lower() for t in other_context)
    ctx = "\n".join(pieces)
    contained = sum(map(ctx.__contains__, content)) / len(content) if content and ctx else 0.0
    tool_low = last_tool[:scan_chars].lower()
    tool_error = after_tool and any(map(tool_low.__contains__, _ERROR_MARKS))
    tools = body.get("tools")
    has_tools = isinstance(tools, list) and len(tools) > 0
    rf = body.get("response_format")
    json_out = (isinstance(rf, Mapping) and rf.get("type") in ("json_object", "json_schema")) or bool(
        _FORMAT_WORDS.intersection(words))
    numbers = sum(map(str.isdigit, words))
    lg = math.log1p
    # no length of the system prompt or of the pasted material: they identify the product, not the task
    # (with them, leave-one-surface-out fell to 52% on the right side while the in-surface split rose)
    dense = [lg(len(words)), contained, float(after_tool), float(tool_error),
             lg(assistants), float(has_tools), float(json_out), lg(numbers), lg(low.count("?")),
             lg(low.count(". ") + low.count("? ") + low.count("! ")), lg(_count_marks(low, _CLAUSE_MARKS)),
             lg(len(_ROUTINE_VERBS.intersection(words))), lg(len(_JUDGEMENT_CUES.intersection(words)))]
    toks = set(words[:80])
    verb = next((w for w in words[:6] if w not in _STOP and w not in ("hi", "hey", "hello")), "")
    if verb:
        toks.add("v:" + verb)
    toks.update(map("_".join, zip(words[:40], words[1:41])))
    if after_tool:
        toks.add("state:after_tool" + (":error" if tool_error else ""))
    product = bool(system) or has_tools or assistants > 0
    return TaskView(instruction, verb, dense, frozenset(toks), product, pasted > 0 and bool(instr_parts))


class TaskModel:
    """One logistic regression over the task features: P(a premium model is needed), as the rubric in
    bench/devset/RUBRIC.md labels it; ``offset`` moves its logit so that the operating point chosen on
    the development set's train split falls at ``premium_threshold`` (format ``extproc-task-router/1``)."""
    __slots__ = ("bias", "dense", "words", "offset")

    def __init__(self, raw: Mapping[str, Any]):
        if raw.get("format") != "extproc-task-router/1":
            raise ValueError("task model: not an extproc-task-router/1 model")
        if tuple(raw.get("dense_features", ())) != TASK_DENSE_FEATURES:
            raise ValueError("task model: trained with other dense features")
        self.bias = float(raw["bias"])
        self.dense = [float(x) for x in raw["dense"]]
        self.words = {w: float(v) for w, v in raw["words"].items()}
        self.offset = float(raw.get("offset", 0.0))

    def logit(self, task: TaskView) -> float:
        z = self.bias + self.offset + math.fsum(a * x for a, x in zip(self.dense, task.dense))
        words = self.words
        # fsum is exactly rounded, so the result does not depend on set order (PYTHONHASHSEED)
        return z + math.fsum([words[t] for t in task.tokens if t in words])


def load_task_model(path: str | Path | None = None) -> TaskModel | None:
    """The task head's weights (None when ``path`` is "none", or no file is shipped)."""
    if path == "none":
        return None
    p = Path(path) if path else DEFAULT_TASK_MODEL_PATH
    if path is None and not p.exists():
        return None
    with open(p, encoding="utf-8") as fh:
        return TaskModel(json.load(fh))
