"""Front doors: one module per client API, each to and from the internal (OpenAI chat) form.

``FRONT_DOORS`` maps a request path to its module; the OpenAI Chat Completions API is the internal
form itself, so it needs none. Provider APIs are the other axis (``extproc.providers``).
"""

from __future__ import annotations

from . import messages, responses
from .base import FrontDoorTranslator

FRONT_DOORS = {"/v1/messages": messages, "/v1/responses": responses}

__all__ = ["FRONT_DOORS", "FrontDoorTranslator", "messages", "responses"]
