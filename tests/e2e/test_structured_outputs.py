"""Structured outputs offline: ``client.chat.completions.parse`` with a pydantic model, through the
gateway, for a model behind each API. The simulators answer with a value valid against the schema
(native JSON Schema output for OpenAI, Gemini and vLLM; for this Claude model, which has no
structured outputs, the schema travels in the system prompt and the simulated model follows it)."""

from __future__ import annotations

import json
from typing import Literal, Optional

import jsonschema
import openai
import pydantic
import pytest

from .conftest import MODELS, upstream_requests


class Step(pydantic.BaseModel):
    explanation: str
    output: str


class Address(pydantic.BaseModel):
    city: str
    zip: str = pydantic.Field(pattern=r"^[0-9]{5}$")


class Extraction(pydantic.BaseModel):
    name: str
    role: Literal["customer", "staff"]
    age: int
    address: Address
    steps: list[Step]
    nickname: Optional[str]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "vllm"])
def test_parse_with_a_pydantic_model(gateway, client, provider):
    completion = client.chat.completions.parse(
        model=MODELS[provider], response_format=Extraction,
        messages=[{"role": "system", "content": "Extract the person."},
                  {"role": "user", "content": "Ada Lovelace, a customer, lives in London."}])
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Extraction)
    assert parsed.role in ("customer", "staff") and parsed.address.zip.isdigit() and parsed.steps
    (record,) = upstream_requests(gateway, provider)
    body = record["body"]
    if provider == "gemini":
        schema = body["generationConfig"]["responseJsonSchema"]
        assert body["generationConfig"]["responseMimeType"] == "application/json"
    elif provider == "anthropic":
        assert body["output_config"]["format"]["type"] == "json_schema"   # Claude Haiku 4.5 has structured outputs
        schema = body["output_config"]["format"]["schema"]
    else:
        schema = body["response_format"]["json_schema"]["schema"]
    jsonschema.validate(json.loads(completion.choices[0].message.content), schema)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "vllm"])
def test_tool_arguments_follow_the_parameter_schema(client, provider):
    tool = {"type": "function", "function": {"name": "book_flight", "strict": True, "parameters": {
        "type": "object", "additionalProperties": False, "required": ["origin", "seats", "cabin", "legs"],
        "properties": {"origin": {"type": "string", "pattern": "^[A-Z]{3}$"},
                       "seats": {"type": "integer", "minimum": 1, "maximum": 9},
                       "cabin": {"type": "string", "enum": ["economy", "business"]},
                       "legs": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/leg"}}},
        "$defs": {"leg": {"type": "object", "additionalProperties": False, "required": ["to"],
                          "properties": {"to": {"type": "string"}}}}}}}
    answer = client.chat.completions.create(model=MODELS[provider], tools=[tool], tool_choice="required",
                                            messages=[{"role": "user", "content": "Book a flight to Oslo"}])
    (call,) = answer.choices[0].message.tool_calls
    jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])


class Member(pydantic.BaseModel):
    age: int = pydantic.Field(ge=18, le=150)
    tags: list[str] = pydantic.Field(min_length=2, max_length=3)
    handle: str = pydantic.Field(min_length=3, max_length=20)


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_parse_with_field_constraints(gateway, client, provider):
    """pydantic Field(ge=, le=, min_length=, max_length=): Anthropic's structured outputs refuse these
    keywords (the strict simulator answers 400 as the API does), so the gateway moves them into the
    descriptions as Anthropic's SDK does; Gemini's responseJsonSchema takes them as they are."""
    completion = client.chat.completions.parse(
        model=MODELS[provider], response_format=Member,
        messages=[{"role": "user", "content": "Make up a club member."}])
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Member) and parsed.age >= 18 and 2 <= len(parsed.tags) <= 3
    (record,) = upstream_requests(gateway, provider)
    if provider == "anthropic":
        props = record["body"]["output_config"]["format"]["schema"]["properties"]
        assert "minimum" not in props["age"] and '"minimum": 18' in props["age"]["description"]
        assert "maxItems" not in props["tags"] and '"minItems": 2' in props["tags"]["description"]
    else:
        props = record["body"]["generationConfig"]["responseJsonSchema"]["properties"]
        assert props["age"]["minimum"] == 18 and props["tags"]["maxItems"] == 3


class Node(pydantic.BaseModel):
    label: str
    children: list["Node"]


def test_a_recursive_schema_pinned_to_claude_is_a_clear_422_and_never_reaches_it(gateway, client):
    """Anthropic refuses recursive structured-output schemas, and nothing expresses one there."""
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.parse(model=MODELS["anthropic"], response_format=Node,
                                      messages=[{"role": "user", "content": "A tree, please."}])
    error = info.value.body
    assert error["param"] == "response_format" and "recursive" in error["message"]
    assert upstream_requests(gateway, "anthropic") == []
    # Gemini's responseJsonSchema takes recursion: the same request pinned there parses.
    tree = client.chat.completions.parse(model=MODELS["gemini"], response_format=Node,
                                         messages=[{"role": "user", "content": "A tree, please."}])
    assert isinstance(tree.choices[0].message.parsed, Node)
