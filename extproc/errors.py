"""Errors a client sees, in the OpenAI error shape.

The OpenAI API answers every failure with
``{"error": {"message", "type", "param", "code"}}`` and an HTTP status; clients
(and the official SDKs) key their exception classes on that status. Each class
here fixes the status and the ``type`` so the call sites only say what is wrong.
"""

from __future__ import annotations

import json


class GatewayError(Exception):
    """Base class: a request that fails with a client-visible OpenAI error."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}},
                      ensure_ascii=False).encode()


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class UnsupportedFeature(GatewayError):
    """The request is valid OpenAI, but the chosen provider cannot do it."""

    status = 422
    type = "invalid_request_error"
    code = "unsupported_parameter"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class QuotaExceeded(RateLimited):
    """429: a spend budget cannot take the request.

    OpenAI's own answer for an exhausted quota is type and code ``insufficient_quota``; clients
    and alert rules key on that code, so a gateway budget speaks the same words."""

    type = "insufficient_quota"
    code = "insufficient_quota"


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class Unavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class DeadlineExceeded(GatewayError):
    status = 504
    type = "timeout_error"
    code = "gateway_timeout"


# A provider's error as the client sees it, by the status the client gets (upstream_status): the same
# type and code for the same situation whichever provider said it (Anthropic's "rate_limit_error",
# Gemini's "RESOURCE_EXHAUSTED" and OpenAI's "rate_limit_exceeded" are one situation), and the same
# words as the gateway's own errors for it (RateLimited, Unavailable, DeadlineExceeded, PayloadTooLarge).
# Clients and SDKs key on the code; the provider's own words stay in the message.
_UPSTREAM = {
    404: ("invalid_request_error", "model_not_found"),    # the provider does not know the model it was sent
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    502: ("upstream_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("timeout_error", "gateway_timeout"),
}
_UPSTREAM_REFUSED = ("invalid_request_error", "upstream_invalid_request")   # any other 4xx: the provider
# refused the request the gateway sent it (400, 409, 422, ...)
AUTH_FAILED = "upstream_auth_failed"   # a translator that recognises a rejected key in another status says so


def upstream_status(status: int) -> int:
    """The status a client sees for a provider's error status.

    4xx keep their status (the request itself was at fault); a provider's
    401/403 means *our* credential is wrong, which the client cannot fix, so it
    becomes 502. 503/504 keep their meaning (Anthropic's 529 "overloaded" is a
    503); other 5xx become 502. It depends on the status alone, so the gateway
    can set it before the error body has arrived.
    """
    if status in (401, 403):
        return 502
    if 400 <= status < 500:
        return status
    if status in (503, 504):
        return status
    if status == 529:
        return 503
    return 502


def upstream_error(status: int, message: str, code: str | None = None,
                   param: str | None = None) -> tuple[int, bytes]:
    """An OpenAI-shaped error for a provider's failure: ``upstream_status`` plus a body whose type and
    code depend on that status alone (``_UPSTREAM``), never on which provider answered.

    ``code`` is the provider's own code, which the client does not get (the message keeps the provider's
    words), or ``AUTH_FAILED`` (a translator recognised a rejected gateway key in a status other than
    401/403). ``param`` is
    the provider's, when it names a request field."""
    mapped = upstream_status(status)
    if status in (401, 403) or code == AUTH_FAILED:
        if not message.startswith("provider rejected"):
            message = f"provider rejected the gateway's credential: {message}"
        return mapped, error_body(message, "upstream_error", None, AUTH_FAILED)
    type_, gateway_code = _UPSTREAM.get(mapped, _UPSTREAM_REFUSED if mapped < 500 else _UPSTREAM[502])
    return mapped, error_body(message, type_, param if mapped < 500 else None, gateway_code)


def upstream_event_error(status: int, message: str) -> dict:
    """The ``error`` object of an SSE error event for a provider's failure in the middle of a stream
    (the client already has its 200): the type and code ``upstream_error`` gives the provider status
    the failure stands for, so a stream's error reads like the same failure before the stream."""
    return json.loads(upstream_error(status, message)[1])["error"]
