"""Errors a client sees, in the OpenAI error shape.

The OpenAI API answers every failure with
``{"error": {"message", "type", "param", "code"}}`` and an HTTP status; clients
(and the official SDKs) key their exception classes on that status. Each class
here fixes the status and the ``type`` so the call sites only say what is wrong.
"""

from __future__ import annotations

import json
import re


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
    """400. ``code`` says which fault: OpenAI's code for it where OpenAI has one (``invalid_type``,
    ``missing_required_parameter``, ``integer_above_max_value``, ...), ``invalid_json`` for a body that
    is not JSON; a call site that names none gets ``invalid_value`` (a value the gateway cannot use),
    so no client ever sees ``code: null`` (README, "Errors")."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


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


# One failure, by the status the client sees, in each client API's words: OpenAI's error type and code
# (Chat Completions, and the Responses API, which shares that envelope) and Anthropic's error type (the
# Messages front door; its "Errors" page: 400 invalid_request_error "also for other 4XX status codes not
# listed", 401 authentication_error, 403 permission_error, 404 not_found_error, 413 request_too_large,
# 429 rate_limit_error, 500 api_error, 504 timeout_error, 529 overloaded_error, which the gateway gives
# as 503). A provider's error (upstream_status) reads the same whichever provider said it (Anthropic's
# "rate_limit_error", Gemini's "RESOURCE_EXHAUSTED" and OpenAI's "rate_limit_exceeded" are one
# situation), in the same words as the gateway's own errors for it (RateLimited, Unavailable,
# DeadlineExceeded, PayloadTooLarge). Clients and SDKs key on the type and code; the provider's own
# words stay in the message. The OpenAI columns of the 4xx rows other than 404/413/429 are what a
# provider's refusal reads as (the gateway's own 4xx carry their class's code).
KINDS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "upstream_invalid_request", "invalid_request_error"),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error"),
    403: ("request_forbidden", "permission_denied", "permission_error"),
    404: ("invalid_request_error", "model_not_found", "not_found_error"),    # the provider does not know the model
    413: ("invalid_request_error", "request_too_large", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded", "rate_limit_error"),
    502: ("upstream_error", "bad_gateway", "api_error"),
    503: ("server_error", "service_unavailable", "overloaded_error"),
    504: ("timeout_error", "gateway_timeout", "timeout_error"),
}
_UPSTREAM = {status: KINDS[status][:2] for status in (404, 413, 429, 502, 503, 504)}
_UPSTREAM_REFUSED = KINDS[400][:2]   # any other 4xx: the provider refused the request the gateway sent it
# (400, 409, 422, ...)


# Anthropic's types for statuses the gateway itself never gives, which a provider's refusal may carry.
_ANTHROPIC_ONLY = {402: "billing_error", 409: "conflict_error", 529: "overloaded_error"}


def anthropic_type(status: int) -> str:
    """Anthropic's error type for a client status (``KINDS``): a 4xx it does not list is
    ``invalid_request_error``, as Anthropic says of its own; any other status ``api_error``."""
    if status in KINDS:
        return KINDS[status][2]
    if status in _ANTHROPIC_ONLY:
        return _ANTHROPIC_ONLY[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def status_of(error: dict) -> int:
    """The client status an OpenAI-shaped ``error`` object stands for (``KINDS``): the row with its type
    and code, else the first with its type; 500 when none. A stream's error event (``upstream_event_error``)
    carries no status, and a front door names the failure by it (Messages' ``overloaded_error``)."""
    type_, code = error.get("type"), error.get("code")
    if code == AUTH_FAILED:
        return 502
    for status, (kind, kind_code, _) in KINDS.items():
        if (kind, kind_code) == (type_, code):
            return status
    for status, (kind, _, _) in KINDS.items():
        if kind == type_:
            return status
    if type_ == "insufficient_quota":
        return 429
    return 500


AUTH_FAILED = "upstream_auth_failed"   # a translator that recognises a rejected key in another status says so

# OpenAI's own codes for a request it refuses, as its published API names them (the ``openai`` SDK's
# types, generated from OpenAI's OpenAPI document: ``SessionTurnError.code`` for context_length_exceeded,
# ``ResponseError.code`` and ``Run.last_error.code`` for invalid_prompt, a prompt its safety system
# flagged, and the image codes). A refused request (a 4xx other than 404/413/429) keeps one of these:
# an OpenAI-API provider's own (OpenAI, Azure, vLLM), or the one a translator recognised in another
# provider's words for the same situation (Anthropic's "prompt is too long", Gemini's "input token count
# ... exceeds", Azure's content_filter). Any other code reads upstream_invalid_request: clients key on
# codes, so the gateway passes on only those whose meaning it knows.
OPENAI_CODES = frozenset({
    "context_length_exceeded", "invalid_prompt",
    "invalid_image", "invalid_image_format", "invalid_base64_image", "invalid_image_url", "image_too_large",
    "image_too_small", "image_parse_error", "image_content_policy_violation", "invalid_image_mode",
    "image_file_too_large", "unsupported_image_media_type", "empty_image_file", "failed_to_download_image",
    "image_file_not_found",
})


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


# What a provider's message may say about the gateway's own account, which is no client's business:
# OpenAI's 429 names the organization ("... in organization org-... on tokens per min") and its 401 a
# masked key ("Incorrect API key provided: sk-proj-****abcd"), Anthropic's 429 the organization's id
# ("... for your organization (0dccdde6-...) of 20,000 input tokens per minute", or "org: <uuid>"),
# Google's errors the project ("consumer 'project_number:123'", "projects/123", "API has not been used in
# project 123 before or it is disabled"), and a key may be
# echoed (Google's "AIza..."). Each is replaced; the rest of the message is the provider's.
_ACCOUNT_IDS = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"   # Anthropic org, Azure ids
    r"|\borg-[A-Za-z0-9]{6,}|\bproj_[A-Za-z0-9]{6,}"                                   # OpenAI org / project
    r"|\bsk-[A-Za-z0-9_*\-]{4,}|\bAIza[0-9A-Za-z_\-]{10,}"                            # API keys, masked or not
    r"|(?<=project_number:)\d+|(?<=projects/)\d+|(?<=\bproject )\d+")                  # Google project numbers


def redact(message: str) -> str:
    """A provider's error message without the gateway's account ids and keys (``_ACCOUNT_IDS``)."""
    return _ACCOUNT_IDS.sub("[redacted]", message)


def upstream_error(status: int, message: str, code: str | None = None,
                   param: str | None = None) -> tuple[int, bytes]:
    """An OpenAI-shaped error for a provider's failure: ``upstream_status`` plus a body whose type and
    code depend on that status (``_UPSTREAM``), never on which provider answered.

    ``code`` is an OpenAI code for the situation (``OPENAI_CODES``: the provider's own when it speaks
    OpenAI's API, else the one its translator recognised), kept when the provider refused the request
    (a 4xx without a code of its own in ``_UPSTREAM``); any other value (a provider's own word, such as
    Gemini's ``INVALID_ARGUMENT``) is not passed on, and the message keeps the provider's words. Or
    ``AUTH_FAILED`` (a translator recognised a rejected gateway key in a status other than 401/403).
    ``param`` is the provider's, when it names a request field."""
    mapped = upstream_status(status)
    message = redact(message)
    if status in (401, 403) or code == AUTH_FAILED:
        if not message.startswith("provider rejected"):
            message = f"provider rejected the gateway's credential: {message}"
        return mapped, error_body(message, "upstream_error", None, AUTH_FAILED)
    type_, gateway_code = _UPSTREAM.get(mapped, _UPSTREAM_REFUSED if mapped < 500 else _UPSTREAM[502])
    if gateway_code == _UPSTREAM_REFUSED[1] and code in OPENAI_CODES:
        gateway_code = code
    return mapped, error_body(message, type_, param if mapped < 500 else None, gateway_code)


def upstream_event_error(status: int, message: str, code: str | None = None) -> dict:
    """The ``error`` object of an SSE error event for a provider's failure in the middle of a stream
    (the client already has its 200): the type and code ``upstream_error`` gives the provider status
    the failure stands for (and ``code``, as there), so a stream's error reads like the same failure
    before the stream, whichever provider sent it."""
    return json.loads(upstream_error(status, message, code)[1])["error"]
