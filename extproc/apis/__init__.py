"""Front doors: one module per client API, each to and from the internal (OpenAI chat) form.

``FRONT_DOORS`` maps a request path to its module; the OpenAI Chat Completions API is the internal
form itself, so it needs none. Provider APIs are the other axis (``extproc.providers``).
"""

from __future__ import annotations

from . import messages, responses
from .base import FrontDoorTranslator

FRONT_DOORS = {"/v1/messages": messages, "/v1/responses": responses}
CLIENT_API = "llm.client_api"   # the request span's attribute naming the client's API


def client_api(front) -> str:
    """The client API of a request: a front door's, else the internal form's own (OpenAI chat)."""
    return front.API if front is not None else "openai_chat"

__all__ = ["CLIENT_API", "FRONT_DOORS", "client_api", "FrontDoorTranslator", "messages", "responses"]
