"""The simulators' JSON-Schema value maker, checked by ``jsonschema`` on the schemas clients send."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Literal, Optional

import jsonschema
import pydantic
import pytest
from openai.lib._pydantic import to_strict_json_schema

from extproc.simulators.schema_values import value


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    street: str
    city: str = pydantic.Field(min_length=2, max_length=40)
    zip: str = pydantic.Field(pattern=r"^[0-9]{5}$")


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=18, le=120)
    score: float = pydantic.Field(gt=0, lt=1)
    color: Color
    kind: Literal["customer", "staff"]
    nickname: Optional[str] = None
    home: Address
    previous: list[Address] = pydantic.Field(min_length=2)
    tags: set[str]
    counts: dict[str, int]
    born: datetime.date
    seen: datetime.datetime
    ident: uuid.UUID


class Tree(pydantic.BaseModel):
    label: str
    children: list["Tree"]


class Step(pydantic.BaseModel):
    explanation: str
    output: str


class MathReasoning(pydantic.BaseModel):  # the openai SDK's structured outputs example
    steps: list[Step]
    final_answer: str


SCHEMAS = {
    "pydantic_person": Person.model_json_schema(),
    "pydantic_tree_recursive": Tree.model_json_schema(),
    "openai_strict_person": to_strict_json_schema(Person),
    "openai_strict_math": to_strict_json_schema(MathReasoning),
    "openai_strict_tree": to_strict_json_schema(Tree),
    "plain_tool_parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7, "multipleOf": 1},
        "when": {"type": ["string", "null"], "format": "date"}}, "required": ["city"]},
    "all_of_and_one_of": {"allOf": [{"type": "object", "properties": {"a": {"type": "integer", "exclusiveMinimum": 3}}},
                                    {"required": ["a", "b"], "properties": {"b": {"oneOf": [
                                        {"type": "string", "maxLength": 3}, {"type": "number"}]}}}]},
    "top_level_array": {"type": "array", "items": {"type": "number", "multipleOf": 0.5, "minimum": 2.2},
                        "minItems": 3, "uniqueItems": True},
    "empty_object_schema": {"type": "object", "properties": {}},
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_values_validate_against_their_schema(name):
    schema = SCHEMAS[name]
    made = value(schema, "Paris")
    jsonschema.validate(made, schema, cls=jsonschema.Draft202012Validator)
    assert made == value(schema, "Paris")   # deterministic: the same request gets the same answer


def test_pydantic_parses_the_values():
    assert Person.model_validate(value(Person.model_json_schema(), "Ada")).home.zip.isdigit()
    assert MathReasoning.model_validate(value(to_strict_json_schema(MathReasoning), "x")).steps


def test_free_text_strings_use_the_hint_and_gemini_type_names_are_read():
    assert value({"type": "object", "properties": {"city": {"type": "string"}}}, "Rome") == {"city": "Rome"}
    gemini = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}, "ok": {"type": "BOOLEAN"},
                                                "xs": {"type": "ARRAY", "items": {"type": "STRING"}}}}
    assert value(gemini, "w") == {"n": 1, "ok": True, "xs": ["w"]}


def test_a_pattern_survives_a_minimum_length():
    """Padding to minLength keeps the pattern the string was built to match (a SKU of capitals came
    back 'Axx' for ^[A-Z0-9-]+$ with minLength 3, and pydantic's parse failed offline)."""
    schema = {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z0-9-]+$", "minLength": 3}},
              "required": ["sku"], "additionalProperties": False}
    got = value(schema)
    jsonschema.validate(got, schema)
    assert len(got["sku"]) >= 3
