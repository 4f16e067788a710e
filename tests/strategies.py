"""Hypothesis strategies for OpenAI request bodies, shared by the validator's unit tests and the
end-to-end hostile-input suite: any JSON, the right keys with any shapes, and well-typed bodies
with awkward values (the ones that reach the translators)."""

from __future__ import annotations

from hypothesis import strategies as st

from extproc import validate

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                          max_leaves=8)
# Values of the right key but any shape: what a hostile client sends to reach deep into a translator.
field = st.sampled_from(["content", "role", "tool_calls", "tool_call_id", "name", "function", "type", "id",
                         "arguments", "text", "image_url", "url", "file", "file_data", "parameters",
                         "tools", "tool_choice", "stop", "response_format", "json_schema", "schema",
                         "max_tokens", "temperature", "n", "input", "stream", "stream_options"])
shaped = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(field, inner, max_size=4)), max_leaves=12)
messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(list(validate.ROLES))},
    optional={"content": st.one_of(st.text(max_size=5), shaped), "tool_calls": shaped, "tool_call_id": shaped,
              "name": shaped}), min_size=1, max_size=3)
chat_bodies = st.fixed_dictionaries(
    {"model": st.just("m"), "messages": messages},
    optional={k: shaped for k in ("tools", "tool_choice", "stop", "response_format", "max_tokens", "temperature",
                                  "n", "stream", "stream_options", "top_p", "logit_bias", "modalities")})

# Well-typed bodies with awkward values (empty strings, odd arguments, unknown tools): these reach the translators.
text = st.text(max_size=6)
part = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": text}),
                 st.fixed_dictionaries({"type": st.just("image_url"),
                                        "image_url": st.fixed_dictionaries({"url": st.sampled_from(
                                            ["", "x", "https://img/x.png", "data:image/png;base64,AA", "data:,"])})}),
                 st.fixed_dictionaries({"type": st.just("file"), "file": st.fixed_dictionaries(
                     {}, optional={"file_data": text, "file_id": text, "filename": text})}),
                 st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": st.fixed_dictionaries(
                     {"data": text, "format": st.sampled_from(["wav", "mp3"])})}),
                 st.fixed_dictionaries({"type": st.just("refusal"), "refusal": text}))
call = st.fixed_dictionaries({"id": text, "type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": text, "arguments": st.one_of(text, st.sampled_from(["{}", "[]", "1", '{"a": 1}', "null"]))})})
message = st.fixed_dictionaries(
    {"role": st.sampled_from(list(validate.ROLES)), "content": st.one_of(st.none(), text, st.lists(part, max_size=3))},
    optional={"tool_calls": st.lists(call, max_size=2), "tool_call_id": text, "name": text})
tool = st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=6)}, optional={"parameters": st.dictionaries(text, json_value, max_size=2),
                                                         "description": text, "strict": st.booleans()})})
well_typed_chat = st.fixed_dictionaries(
    {"model": st.just("m"), "messages": st.lists(message, min_size=1, max_size=4)},
    optional={"tools": st.lists(tool, max_size=2),
              "tool_choice": st.one_of(st.sampled_from(["none", "auto", "required"]), st.fixed_dictionaries(
                  {"type": st.just("function"), "function": st.fixed_dictionaries({"name": st.text(min_size=1)})})),
              "stop": st.one_of(text, st.lists(text, max_size=4)), "max_tokens": st.integers(1, 2**31 - 1),
              "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "n": st.integers(1, 128),
              "stream": st.booleans(), "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
              "logprobs": st.booleans(), "top_logprobs": st.integers(0, 20), "seed": st.integers(-2**63, 2**63 - 1),
              "response_format": st.one_of(
                  st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])}),
                  st.fixed_dictionaries({"type": st.just("json_schema"), "json_schema": st.fixed_dictionaries(
                      {"name": st.text(min_size=1, max_size=6)}, optional={"schema": st.dictionaries(
                          text, json_value, max_size=2), "strict": st.booleans()})})),
              "modalities": st.lists(st.sampled_from(["text", "audio"]), max_size=2),
              "logit_bias": st.dictionaries(st.text(max_size=3), st.integers(-100, 100), max_size=2),
              "user": text, "parallel_tool_calls": st.booleans()})

# Well-typed bodies with awkward values (empty strings, odd arguments, unknown tools): these reach the translators.
text = st.text(max_size=6)
part = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": text}),
                 st.fixed_dictionaries({"type": st.just("image_url"),
                                        "image_url": st.fixed_dictionaries({"url": st.sampled_from(
                                            ["", "x", "https://img/x.png", "data:image/png;base64,AA", "data:,"])})}),
                 st.fixed_dictionaries({"type": st.just("file"), "file": st.fixed_dictionaries(
                     {}, optional={"file_data": text, "file_id": text, "filename": text})}),
                 st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": st.fixed_dictionaries(
                     {"data": text, "format": st.sampled_from(["wav", "mp3"])})}),
                 st.fixed_dictionaries({"type": st.just("refusal"), "refusal": text}))
call = st.fixed_dictionaries({"id": text, "type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": text, "arguments": st.one_of(text, st.sampled_from(["{}", "[]", "1", '{"a": 1}', "null"]))})})
message = st.fixed_dictionaries(
    {"role": st.sampled_from(list(validate.ROLES)), "content": st.one_of(st.none(), text, st.lists(part, max_size=3))},
    optional={"tool_calls": st.lists(call, max_size=2), "tool_call_id": text, "name": text})
tool = st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=6)}, optional={"parameters": st.dictionaries(text, json_value, max_size=2),
                                                         "description": text, "strict": st.booleans()})})
well_typed_chat = st.fixed_dictionaries(
    {"model": st.just("m"), "messages": st.lists(message, min_size=1, max_size=4)},
    optional={"tools": st.lists(tool, max_size=2),
              "tool_choice": st.one_of(st.sampled_from(["none", "auto", "required"]), st.fixed_dictionaries(
                  {"type": st.just("function"), "function": st.fixed_dictionaries({"name": st.text(min_size=1)})})),
              "stop": st.one_of(text, st.lists(text, max_size=4)), "max_tokens": st.integers(1, 2**31 - 1),
              "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "n": st.integers(1, 128),
              "stream": st.booleans(), "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
              "logprobs": st.booleans(), "top_logprobs": st.integers(0, 20), "seed": st.integers(-2**63, 2**63 - 1),
              "response_format": st.one_of(
                  st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])}),
                  st.fixed_dictionaries({"type": st.just("json_schema"), "json_schema": st.fixed_dictionaries(
                      {"name": st.text(min_size=1, max_size=6)}, optional={"schema": st.dictionaries(
                          text, json_value, max_size=2), "strict": st.booleans()})})),
              "modalities": st.lists(st.sampled_from(["text", "audio"]), max_size=2),
              "logit_bias": st.dictionaries(st.text(max_size=3), st.integers(-100, 100), max_size=2),
              "user": text, "parallel_tool_calls": st.booleans()})
