"""Compressed request bodies: inflated exactly up to the body limit (extproc/content_encoding.py)."""

from __future__ import annotations

import gzip
import json
import zlib

import brotli
import pytest

from extproc import errors
from extproc.content_encoding import inflate
from extproc.credentials import Credentials
from extproc.gateway import Gateway

from tests.unit.test_header_allowlist import CHAT, config

LIMIT = 4 * 1024 * 1024
REPEATED = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"ab" * 1_500_000 + b'"}]}'
COMPRESS = {"gzip": gzip.compress, "x-gzip": gzip.compress, "br": brotli.compress}


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_a_body_that_compresses_far_better_than_100x_inflates_whole(coding):
    packed = COMPRESS[coding](REPEATED)
    assert len(REPEATED) / len(packed) > 100        # what Envoy's brotli decompressor cut short
    assert inflate(coding, packed, LIMIT) == REPEATED


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_exactly_the_limit_inflates_and_one_byte_more_is_413(coding):
    body = b"x" * 1000
    assert inflate(coding, COMPRESS[coding](body), 1000) == body
    with pytest.raises(errors.PayloadTooLarge) as raised:
        inflate(coding, COMPRESS[coding](body + b"x"), 1000)
    assert raised.value.status == 413 and raised.value.code == "request_too_large"
    assert "limit of 1000 bytes (after decompression)" in raised.value.message


def test_a_brotli_bomb_is_413_without_inflating_it():
    bomb = brotli.compress(b"x" * (1 << 30), quality=5)    # 1 GiB in under 2 KB
    assert len(bomb) < 2000
    with pytest.raises(errors.PayloadTooLarge):
        inflate("br", bomb, LIMIT)


@pytest.mark.parametrize("coding", ["gzip", "br"])
@pytest.mark.parametrize("damage", ["truncated", "trailing", "not compressed"])
def test_a_corrupt_stream_is_400_naming_the_header(coding, damage):
    packed = COMPRESS[coding](REPEATED)
    sent = {"truncated": packed[:-8], "trailing": packed + b"junk", "not compressed": REPEATED}[damage]
    with pytest.raises(errors.InvalidRequest) as raised:
        inflate(coding, sent, LIMIT)
    assert raised.value.status == 400 and raised.value.param == "content-encoding"


def test_gzip_members_and_stacked_codings_are_undone_in_order():
    assert inflate("gzip", gzip.compress(b"ab") + gzip.compress(b"cd"), 10) == b"abcd"   # RFC 1952: members
    assert inflate("gzip, br", brotli.compress(gzip.compress(b"abcd")), 10) == b"abcd"  # br applied last
    assert inflate("identity", b"as is", 10) == b"as is"


@pytest.mark.parametrize("coding", ["deflate", "zstd", "compress", "gzip, zstd"])
def test_other_codings_are_415(coding):
    with pytest.raises(errors.UnsupportedMediaType) as raised:
        inflate(coding, zlib.compress(b"{}"), LIMIT)
    assert raised.value.status == 415


def test_the_upstream_request_carries_no_content_encoding():
    """The gateway always sends its own JSON body, never compressed: the client's header goes."""
    gw = Gateway(config(), Credentials({}))
    headers = {**CHAT, "content-encoding": "br"}
    raw = gw.decode(headers, brotli.compress(json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()))
    rewrite = gw.attempt(gw.request_body(headers, raw), 1)
    assert "content-encoding" in rewrite.remove_headers and "content-encoding" not in rewrite.set_headers
    assert json.loads(rewrite.body)["messages"][0]["content"] == "hi"
