"""The router's token estimate (``cost.text_units``, ``prompt_tokens``, ``input_tokens``) against o200k counts
(``tokens.count``) over a multilingual sample written for the test (``tests/multilingual.py``)."""

from __future__ import annotations

import json

import pytest

from extproc import cost, tokens

from tests.multilingual import SAMPLES

LOW, HIGH = 0.75, 1.35   # the band the estimate must keep per script: ratio of estimate to o200k


def _ratio(estimate, script: str) -> float:
    texts = SAMPLES[script]
    return sum(estimate(t) for t in texts) / sum(tokens.count(t) for t in texts)


def _chars_over_4(text: str) -> float:
    return len(text) / 4


@pytest.mark.parametrize("script", sorted(SAMPLES))
def test_the_estimate_stays_within_the_band_of_o200k_for_every_script(script):
    ratio = _ratio(lambda t: cost.text_units(t) / cost.TOKEN_UNITS, script)
    assert LOW <= ratio <= HIGH, f"{script}: estimate / o200k = {ratio:.2f}"


@pytest.mark.parametrize("script", ["zh", "ja", "ko"])
def test_characters_over_4_reads_cjk_below_the_band(script):
    # The sample is one the old rule fails: CJK text runs 2.5-3x over chars/4.
    assert _ratio(_chars_over_4, script) < 0.5


@pytest.mark.parametrize("script", ["hi", "th", "ru", "ar"])
def test_utf8_bytes_over_4_would_read_these_scripts_high(script):
    # Why the estimate weighs code-point blocks rather than bytes: these letters are 2-3 UTF-8 bytes
    # and about a third of a token each.
    assert _ratio(lambda t: len(t.encode()) / 4, script) > HIGH
    assert _ratio(lambda t: cost.text_units(t) / cost.TOKEN_UNITS, script) <= HIGH


def test_ascii_text_keeps_characters_over_4_exactly():
    for text in ["", "a", "abc", "abcd", "Hello, world!\n" * 37, "".join(map(chr, range(128))) * 3,
                 *SAMPLES["en"]]:
        assert cost.text_units(text) == cost.ASCII_UNITS * len(text)
        assert cost.text_tokens(text) == len(text) // 4


def test_an_ascii_chat_body_keeps_todays_estimate():
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Find an order by its id",
                                               "parameters": {"type": "object", "properties": {}}}}]
    calls = [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 7}"}}]
    messages = [{"role": "system", "content": SAMPLES["en"][0]},
                {"role": "user", "content": [{"type": "text", "text": SAMPLES["en"][1]},
                                             {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "call_1", "content": SAMPLES["en"][3]}]
    body = {"messages": messages, "tools": tools}
    chars = (len(SAMPLES["en"][0]) + len(SAMPLES["en"][1]) + len(SAMPLES["en"][3]) + len(json.dumps(calls))
             + len(json.dumps(tools)))
    assert cost.prompt_tokens(body) == chars // 4 + 4 * 4 + 3 + cost.IMAGE_TOKENS
    assert cost.input_tokens({"input": [SAMPLES["en"][2], "x"]}) == [len(SAMPLES["en"][2]) // 4 + 1, 1]


def test_a_chinese_chat_body_is_estimated_near_its_o200k_count():
    text = "\n".join(SAMPLES["zh"] * 20)
    body = {"messages": [{"role": "user", "content": text}]}
    counted = tokens.prompt_tokens(body)
    assert LOW <= cost.prompt_tokens(body) / counted <= HIGH
    assert len(text) // 4 / counted < 0.5      # what the estimate read before


def test_tool_definitions_in_chinese_are_weighed_as_characters_not_escapes():
    # json.dumps escapes non-ASCII by default: each ideograph became six ASCII characters (1.5 tokens).
    tools = [{"type": "function", "function": {"name": "query_order", "description": "".join(SAMPLES["zh"]),
                                               "parameters": {"type": "object", "properties": {}}}}]
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": tools}
    counted = tokens.prompt_tokens(body)
    assert LOW <= cost.prompt_tokens(body) / counted <= HIGH


@pytest.mark.parametrize("script", ["zh", "ja", "ko", "hi", "th"])
def test_embeddings_inputs_are_estimated_with_the_same_weights(script):
    texts = SAMPLES[script]
    estimated = cost.input_tokens({"input": texts})
    assert estimated == [cost.text_tokens(t) + 1 for t in texts]
    ratio = sum(estimated) / sum(tokens.input_counts({"input": texts}))
    assert LOW <= ratio <= HIGH, ratio
    assert cost.input_tokens({"input": texts[0]}) == [estimated[0]]
    assert cost.prompt_tokens({"input": texts}) == sum(estimated)


def test_lone_surrogates_and_astral_characters_are_weighed_not_refused():
    # JSON may carry a lone surrogate ("\ud83d"), which UTF-8 cannot encode; emoji are outside the BMP.
    text = json.loads('"\\ud83d tail"')
    assert cost.text_units(text) == cost.WIDE_UNITS + cost.ASCII_UNITS * 5
    assert cost.text_units("\U0001F60A") == cost.ASTRAL_UNITS
    assert cost.text_units("é") == cost.LETTER_UNITS
