"""A value that validates against a JSON Schema, made deterministically from the schema alone.

The simulators answer structured-output requests (OpenAI ``response_format`` json_schema, Gemini
``responseJsonSchema``, Anthropic ``output_config.format``, tool parameter schemas) with it, as a
compliant model would. It covers what clients send: pydantic's output (``$defs`` and ``$ref``,
``anyOf`` with null for optionals, ``enum``/``const``, ``allOf`` wrappers, ``format``), OpenAI's
strict schemas, and Gemini's OpenAPI-subset schemas (upper-case ``type`` names, ``nullable``).

Why not a generator from PyPI: the ones that handle ``$ref`` (hypothesis-jsonschema, jsf) draw
random values, while the simulators answer the same request the same way so tests can predict
answers; and they would be runtime dependencies of ``make run``. Checked against ``jsonschema`` in
tests/unit/test_schema_values.py.

``value(schema, hint)`` uses ``hint`` (words from the prompt) for free-text strings.
"""

from __future__ import annotations

import math
import re
from typing import Any

try:  # the regular expression parser of the standard library (``sre_parse`` before 3.11)
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse as _sre_parse  # type: ignore[no-redef]

_MAX_DEPTH = 12          # recursive schemas (a tree of nodes) stop here with their smallest value
_FORMATS = {
    "date": "2024-01-15", "date-time": "2024-01-15T09:30:00Z", "time": "09:30:00", "email": "user@example.com",
    "uri": "https://example.com/", "url": "https://example.com/", "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "hostname": "example.com", "ipv4": "192.0.2.1", "ipv6": "2001:db8::1", "duration": "P1D",
}


def value(schema: Any, hint: str = "example") -> Any:
    """A JSON value valid against ``schema`` (a JSON Schema document, refs resolved within it)."""
    return _Maker(schema, hint or "example").make(schema, 0, 0)


class _Maker:
    def __init__(self, root: Any, hint: str):
        self.root = root
        self.hint = hint

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node.get(part, {}) if isinstance(node, dict) else {}
        return node

    def make(self, schema: Any, depth: int, nth: int) -> Any:
        """``nth`` makes the n-th distinct value (for arrays with uniqueItems)."""
        if schema is True or schema is None or schema == {}:
            return self.hint if nth == 0 else f"{self.hint} {nth + 1}"
        if schema is False or not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            target = self.resolve(schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.make({**target, **rest} if rest and isinstance(target, dict) else target, depth + 1, nth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][min(nth, len(schema["enum"]) - 1)]
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
                merged = _merge(merged, part if isinstance(part, dict) else {})
            return self.make(merged, depth + 1, nth)
        for union in ("anyOf", "oneOf"):
            if isinstance(schema.get(union), list) and schema[union]:
                branches = schema[union]
                # Deep in a recursive schema, prefer the branch that ends it (null, a scalar).
                if depth >= _MAX_DEPTH:
                    branches = sorted(branches, key=lambda b: not _is_null(b))
                else:
                    branches = sorted(branches, key=_is_null)   # otherwise a real value, not the optional's null
                base = {k: v for k, v in schema.items() if k != union}
                return self.make(_merge(base, branches[0]) if base else branches[0], depth + 1, nth)
        kind = _type(schema)
        if kind == "null":
            return None
        if kind == "boolean":
            return nth % 2 == 0
        if kind in ("integer", "number"):
            return _number(schema, kind, nth)
        if kind == "string":
            return _string(schema, self.hint, nth)
        if kind == "array":
            return self._array(schema, depth, nth)
        if kind == "object":
            return self._object(schema, depth, nth)
        return self.hint

    def _array(self, schema: dict, depth: int, nth: int) -> list:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", max(low, 1))
        count = max(low, len(prefix), 0 if depth >= _MAX_DEPTH else 1)
        count = min(count, high)
        out = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            out.append(self.make(sub, depth + 1, i + nth if schema.get("uniqueItems") else nth))
        return out

    def _object(self, schema: dict, depth: int, nth: int) -> dict:
        props = schema.get("properties") or {}
        required = schema.get("required") or []
        # Every property (OpenAI's strict schemas require them all), unless deep in recursion.
        names = list(props) if depth < _MAX_DEPTH else [n for n in props if n in required]
        out = {name: self.make(props[name], depth + 1, nth) for name in names}
        for name in required:
            if name not in out:
                extra = schema.get("additionalProperties")
                out[name] = self.make(extra if isinstance(extra, dict) else {}, depth + 1, nth)
        return out


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and (schema.get("type") in ("null", "NULL") or schema.get("const", 0) is None)


def _type(schema: dict) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        real = [k for k in kind if str(k).lower() != "null"]
        kind = real[0] if real else "null"
    if isinstance(kind, str):
        return kind.lower()  # Gemini's OpenAPI subset spells types in capitals
    if "properties" in schema or "additionalProperties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
        return "string"
    return None


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, val in b.items():
        if key == "properties":
            out["properties"] = {**(out.get("properties") or {}), **val}
        elif key == "required":
            out["required"] = list(dict.fromkeys((out.get("required") or []) + list(val)))
        else:
            out.setdefault(key, val)
    return out


def _number(schema: dict, kind: str, nth: int) -> int | float:
    low = schema.get("minimum")
    high = schema.get("maximum")
    step = schema.get("multipleOf")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_low, (int, float)) and not isinstance(ex_low, bool):
        low = ex_low + (1 if kind == "integer" else 1e-6) if low is None or ex_low >= low else low
    if isinstance(ex_high, (int, float)) and not isinstance(ex_high, bool):
        high = ex_high - (1 if kind == "integer" else 1e-6) if high is None or ex_high <= high else high
    start = low if low is not None else (min(1, high) if high is not None else 1)
    candidate = start + nth
    if step:
        candidate = math.ceil(candidate / step) * step
    if high is not None and candidate > high:
        candidate = high if not step else math.floor(high / step) * step
    if kind == "integer":
        candidate = int(math.ceil(candidate)) if low is not None else int(candidate)
    return candidate


def _string(schema: dict, hint: str, nth: int) -> str:
    fmt = schema.get("format")
    text = _FORMATS.get(fmt, hint) if isinstance(fmt, str) else hint
    if nth:
        text = f"{text} {nth + 1}" if fmt not in _FORMATS else text
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        text = _matching(pattern, text)
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if len(text) < low:
        # Lengthen with the text's own last character first: a padding "x" would break a pattern
        # such as ^[A-Z0-9-]+$ that the text was just built to match.
        padded = text + (text[-1:] or "x") * (low - len(text))
        text = padded if not isinstance(pattern, str) or _searches(pattern, padded) else text + "x" * (low - len(text))
    if high is not None and len(text) > high:
        text = text[:high]
    return text


def _searches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _matching(pattern: str, preferred: str) -> str:
    """``preferred`` if it matches ``pattern`` (searched, as JSON Schema does), else a string built to match."""
    try:
        if re.search(pattern, preferred):
            return preferred
        built = _build(_sre_parse.parse(pattern))
        if re.search(pattern, built):
            return built
    except (re.error, RecursionError, ValueError, TypeError):
        pass
    return preferred


_CATEGORY = {"CATEGORY_DIGIT": "0", "CATEGORY_NOT_DIGIT": "a", "CATEGORY_WORD": "a", "CATEGORY_NOT_WORD": "-",
             "CATEGORY_SPACE": " ", "CATEGORY_NOT_SPACE": "a"}


def _build(parsed: Any) -> str:
    """The shortest-ish string a parsed regular expression accepts: each repeat at its minimum (1 for +)."""
    out = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(arg) != "a" else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_in(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = arg
            out.append(_build(sub) * low)
        elif name == "SUBPATTERN":
            out.append(_build(arg[-1]))
        elif name == "BRANCH":
            out.append(_build(arg[1][0]))
        elif name in ("AT", "ASSERT", "ASSERT_NOT", "GROUPREF"):
            continue
        else:
            raise ValueError(name)
    return "".join(out)


def _in(items: Any) -> str:
    negate = any(str(op) == "NEGATE" for op, _ in items)
    if negate:
        excluded = {chr(a) for op, a in items if str(op) == "LITERAL"}
        return next(c for c in "aZ0_-x" if c not in excluded)
    op, arg = items[0]
    name = str(op)
    if name == "LITERAL":
        return chr(arg)
    if name == "RANGE":
        return chr(arg[0])
    if name == "CATEGORY":
        return _CATEGORY.get(str(arg), "a")
    raise ValueError(name)
