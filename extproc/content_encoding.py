"""Compressed request bodies: ``Content-Encoding`` gzip and br (RFC 9110 section 8.4), inflated with a bound.

The processor inflates them itself, not Envoy's decompressor filter: Envoy's brotli decompressor stops
each data chunk at a fixed 100 times its size and passes on what it made so far, with no error to the
client (envoy/envoy.yaml had it). Brotli compresses repeated text far better than that, so a bomb
arrived as truncated JSON (400, not 413) and so did a legitimate body: 3 MB of repeated text is 87
bytes of br, which arrived as 8.7 KB. Its gzip decompressor bounds the same way at a configurable
ratio. Here the bound is the one the client is told about, the inflated size (``limits.max_body_bytes``),
and decompression stops once it is passed, so a bomb costs at most that much memory.

Pure: bytes in, bytes out; errors are ``extproc.errors`` (413, 400, 415).
"""

from __future__ import annotations

import zlib

import brotli

from .errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

# The codings inflated here (RFC 9110 section 8.4.1; x-gzip is gzip's old name). identity is no coding.
SUPPORTED = ("gzip", "x-gzip", "br")


def codings(header: str) -> list[str]:
    """A ``Content-Encoding`` value's codings in the order they were applied, lowercase, without
    ``identity``; raises UnsupportedMediaType (415) for one this module cannot undo."""
    found = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
    for coding in found:
        if coding not in SUPPORTED:
            raise UnsupportedMediaType(f"Content-Encoding '{coding}' is not supported; send the body uncompressed, "
                                       "or compressed with gzip or br.", param="content-encoding")
    return found


def inflate(header: str, raw: bytes, limit: int) -> bytes:
    """``raw`` decoded from the codings ``header`` (a ``Content-Encoding`` value) names, last applied first.

    Raises PayloadTooLarge (413, ``request_too_large``) once the inflated body passes ``limit`` bytes,
    InvalidRequest (400) for a corrupt or truncated stream, UnsupportedMediaType (415) for a coding
    other than gzip and br. A body without a coding is returned as it is."""
    applied = codings(header)
    for depth, coding in enumerate(reversed(applied)):
        # An inner layer is compressed data: at most a little larger than the body it holds.
        bound = limit if depth == len(applied) - 1 else limit + limit // 64 + 1024
        raw = _brotli(raw, bound) if coding == "br" else _gzip(raw, bound)
    return raw


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the gateway's limit of {limit} bytes "
                           "(after decompression).")


def _corrupt(coding: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"The request body is not valid {coding} data ({why}); compress the whole body, "
                          "or send it uncompressed.", param="content-encoding", code="invalid_value")


def _gzip(raw: bytes, limit: int) -> bytes:
    out = bytearray()
    rest = raw
    while True:   # a gzip body may be several members, one after the other (RFC 1952 section 2.2)
        member = zlib.decompressobj(wbits=31)
        try:
            out += member.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise _corrupt("gzip", str(exc)) from None
        if len(out) > limit or member.unconsumed_tail:
            raise _too_large(limit)
        if not member.eof:
            raise _corrupt("gzip", "the stream ends early")
        rest = member.unused_data
        if not rest:
            return bytes(out)


def _brotli(raw: bytes, limit: int) -> bytes:
    stream = brotli.Decompressor()
    try:
        # The output stops growing at the bound; past it the body is refused, so the rest is never made.
        out = stream.process(raw, output_buffer_limit=limit + 1)
    except brotli.error as exc:
        raise _corrupt("br", str(exc) or "corrupt stream") from None
    if len(out) > limit:
        raise _too_large(limit)
    if not stream.is_finished():
        raise _corrupt("br", "the stream ends early")
    return out
