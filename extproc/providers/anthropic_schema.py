"""The JSON Schema subset Anthropic's structured outputs (``output_config.format``) accept.

Anthropic compiles the schema into a grammar and answers 400 to keywords the grammar cannot hold,
e.g. ``output_config.format.schema: For 'integer' type, property 'minimum' is not supported``.
Its documented limits (structured-outputs page, as the SDKs and converters quote it): no numeric
constraints (minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf), no string length
constraints (minLength, maxLength), ``pattern`` only as a simple regular expression (no
backreferences, lookaround or word boundaries), no array constraints beyond ``minItems`` 0 or 1
(so no maxItems, uniqueItems), no minProperties / maxProperties, ``format`` only from a fixed list,
and no recursive schemas ("Circular reference detected in schema definitions: A -> A.
Self-referencing or mutually-referencing definitions are not supported.").

``strict_schema`` does what Anthropic's own Python SDK does before it sends a pydantic model
(``anthropic.lib._parse._transform.transform_schema``): every keyword the API refuses leaves the
schema and is appended to the node's ``description`` (here as JSON, ``{"minimum": 0}``), so the
model still reads it. The answer then follows the original schema by the model's compliance with
that description, not by the grammar's guarantee: a client validating against the original
schema (pydantic's ``parse``) can still see a violation. Unlike the SDK, the keywords Anthropic
documents as supported (``const``, ``default``, simple ``pattern``) stay, so their guarantee holds.

``cycle`` finds a recursive schema, which cannot be expressed at all: Claude is then unable.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Keywords the grammar cannot hold, whatever their value.
UNSUPPORTED = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
               "minLength", "maxLength", "maxItems", "uniqueItems", "minProperties", "maxProperties")
# ``format`` values the API takes for strings (the SDK's SupportedStringFormats).
FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"})
# Regular-expression features outside the simple subset: backreferences, lookaround, word boundaries.
_COMPLEX_PATTERN = re.compile(r"\\[1-9bBk]|\(\?<?[=!]")
# Keywords whose value is a schema, or a list or map of schemas.
_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "$defs", "definitions", "patternProperties")


def unsupported(node: dict[str, Any]) -> dict[str, Any]:
    """The keywords of one schema node (not its subschemas) that the API refuses, in order."""
    out = {k: node[k] for k in UNSUPPORTED if k in node}
    if "minItems" in node and node["minItems"] not in (0, 1):
        out["minItems"] = node["minItems"]
    if "format" in node and node.get("type") in ("string", None) and node["format"] not in FORMATS:
        out["format"] = node["format"]
    if isinstance(node.get("pattern"), str) and _COMPLEX_PATTERN.search(node["pattern"]):
        out["pattern"] = node["pattern"]
    return out


def strict_schema(schema: Any) -> Any:
    """``schema`` (a JSON Schema document) with every refused keyword moved into ``description``.

    Returns a new value; the input is not changed. ``oneOf`` becomes ``anyOf`` as in the SDK
    (a value that matches exactly one branch also matches any).
    """
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    moved = unsupported(schema)
    out: dict[str, Any] = {}
    for key, sub in schema.items():
        if key in moved:
            continue
        if key in _MAP and isinstance(sub, dict):
            out[key] = {name: strict_schema(s) for name, s in sub.items()}
        elif key in _ONE or key in _MANY:
            out["anyOf" if key == "oneOf" and "anyOf" not in schema else key] = strict_schema(sub)
        else:
            out[key] = sub
    if moved:
        said = json.dumps(moved, ensure_ascii=False, separators=(", ", ": "))
        out["description"] = f"{out['description']}\n\n{said}" if out.get("description") else said
    return out


def cycle(schema: Any) -> list[str] | None:
    """The names of a reference cycle in ``schema`` (``["Node", "Node"]`` for a self-reference),
    or None when no definition reaches itself. Only local references (``#/...``) are followed."""
    if not isinstance(schema, dict):
        return None
    defs: dict[str, Any] = {}
    for where in ("$defs", "definitions"):
        if isinstance(schema.get(where), dict):
            defs.update({f"#/{where}/{name}": sub for name, sub in schema[where].items()})
    edges = {ref: _refs(sub) for ref, sub in defs.items()}
    edges["#"] = _refs({k: v for k, v in schema.items() if k not in ("$defs", "definitions")})

    def name(ref: str) -> str:
        return ref.rsplit("/", 1)[-1] if ref != "#" else "#"

    state: dict[str, int] = {}   # 1: on the current path, 2: done
    path: list[str] = []

    def visit(ref: str) -> list[str] | None:
        state[ref] = 1
        path.append(ref)
        for nxt in edges.get(ref, ()):
            if state.get(nxt) == 1:
                return [name(r) for r in path[path.index(nxt):]] + [name(nxt)]
            if nxt in edges and state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[ref] = 2
        return None

    return visit("#")


def _refs(node: Any) -> list[str]:
    """Every local ``$ref`` within ``node``."""
    found: list[str] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            ref = cur.get("$ref")
            if isinstance(ref, str) and ref.startswith("#"):
                found.append(ref)
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return found
