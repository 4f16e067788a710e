"""LLM routing gateway: the Envoy external processor.

Envoy terminates OpenAI-shaped traffic and asks this service, over ext_proc,
where each request goes and how to say it in the chosen provider's API.
"""

__version__ = "0.1.0"
