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


# Provider error statuses mapped to what an OpenAI client expects to handle.
_UPSTREAM_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


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


def upstream_error(status: int, message: str, code: str | None = None) -> tuple[int, bytes]:
    """An OpenAI-shaped error for a provider's failure: ``upstream_status`` plus a body."""
    mapped = upstream_status(status)
    if status in (401, 403):
        return mapped, error_body(f"provider rejected the gateway's credential: {message}",
                                  "upstream_error", None, code or "upstream_auth_failed")
    if mapped < 500:
        return mapped, error_body(message, _UPSTREAM_TYPES.get(mapped, "invalid_request_error"), None, code)
    if mapped in (503, 504):
        return mapped, error_body(message, "server_error", None, code)
    return mapped, error_body(message, "upstream_error", None, code or "bad_gateway")
