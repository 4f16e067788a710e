"""Client headers a provider may receive (providers.*.forward_headers), the content-encoding check,
and the gRPC message limits sized from limits.max_body_bytes."""

from __future__ import annotations

import json

import pytest
import yaml

from extproc.config import ConfigError, FORWARDABLE_HEADERS, parse
from extproc.credentials import Credentials
from extproc.devstack import DEFAULT_ROUTING
from extproc.gateway import Gateway
from extproc.server import message_limits

CHAT = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}


def config(**anthropic):
    data = yaml.safe_load(DEFAULT_ROUTING.read_text())
    data["providers"]["anthropic"].update(anthropic)
    data["auth"] = "optional"   # these tests are about headers, not keys
    return parse(data)


def exchange(gw: Gateway, model: str, headers: dict[str, str]):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return gw.request_body({**CHAT, **headers}, json.dumps(body).encode())


def test_forward_headers_are_parsed_lowercase():
    assert config(forward_headers=["Anthropic-Beta"]).providers["anthropic"].forward_headers == ("anthropic-beta",)
    assert config().providers["anthropic"].forward_headers == ()


@pytest.mark.parametrize("value", [["cookie"], "anthropic-beta", [1], ["openai-organization"]])
def test_only_forwardable_headers_may_be_listed(value):
    with pytest.raises(ConfigError) as info:
        config(forward_headers=value)
    assert "forward_headers" in str(info.value)


def test_a_listed_client_header_reaches_only_its_provider():
    gw = Gateway(config(forward_headers=["anthropic-beta"]), Credentials({}))
    headers = {"anthropic-beta": "prompt-caching-2024-07-31", "openai-beta": "assistants=v2"}
    claude = gw.attempt(exchange(gw, "claude-haiku-4-5", headers), 1)
    assert claude.set_headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "openai-beta" in claude.remove_headers and "anthropic-beta" not in claude.remove_headers
    gpt = gw.attempt(exchange(gw, "gpt-4o-mini", headers), 1)
    assert "anthropic-beta" not in gpt.set_headers and {"anthropic-beta", "openai-beta"} <= set(gpt.remove_headers)


def test_forwardable_headers_are_removed_when_no_provider_lists_them():
    gw = Gateway(config(), Credentials({}))
    rewrite = gw.attempt(exchange(gw, "claude-haiku-4-5", {"anthropic-beta": "x"}), 1)
    assert "anthropic-beta" not in rewrite.set_headers and set(FORWARDABLE_HEADERS) <= set(rewrite.remove_headers)


@pytest.mark.parametrize("encoding,status", [("gzip", None), ("br", None), ("gzip, br", None), ("deflate", 415),
                                             ("zstd", 415), ("br, compress", 415), ("identity", None), ("", None)])
def test_a_coding_the_gateway_cannot_inflate_is_415_before_the_body(encoding, status):
    """The processor inflates gzip and br itself (extproc/content_encoding.py); others are unreadable."""
    gw = Gateway(config(), Credentials({}))
    answer = gw.request_headers({**CHAT, "content-encoding": encoding}, False)
    assert (answer.status if answer else None) == status
    if answer:
        assert json.loads(answer.body)["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("max_body", [1024, 4 * 1024 * 1024, 48 * 1024 * 1024])
def test_grpc_message_limits_hold_the_largest_body_and_answer(max_body):
    data = yaml.safe_load(DEFAULT_ROUTING.read_text())
    data["limits"]["max_body_bytes"] = max_body
    limits = dict(message_limits(parse(data)))
    for name in ("grpc.max_receive_message_length", "grpc.max_send_message_length"):
        assert limits[name] >= max(2 * max_body, 64 * 1024 * 1024)
