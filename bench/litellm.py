"""LiteLLM's proxy as a peer (``make bench PEERS=litellm``), in front of the same mock upstream.

Installed by the Makefile into its own venv, bench/.venv-litellm, pinned by
``LITELLM_VERSION`` there (not 1.107.0, a compromised release). It runs with one worker on
the same server core the gateway gets, with the model cost map read locally
(no network), a master key, and one model per API: ``gpt-4o-mini`` as an
OpenAI-compatible deployment on the mock's OpenAI port and ``claude-haiku-4-5``
through LiteLLM's Anthropic adapter on the mock's Anthropic port, so it does
the same translation work the gateway does.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .stack import BENCH, Stack, free_port

VENV = BENCH / ".venv-litellm"
MASTER_KEY = "sk-bench-master"


def config(openai_port: int, anthropic_port: int) -> dict:
    return {
        "model_list": [
            {"model_name": "gpt-4o-mini", "litellm_params": {
                "model": "openai/gpt-4o-mini", "api_base": f"http://127.0.0.1:{openai_port}/v1",
                "api_key": "sk-bench-openai"}},
            {"model_name": "claude-haiku-4-5", "litellm_params": {
                "model": "anthropic/claude-haiku-4-5", "api_base": f"http://127.0.0.1:{anthropic_port}",
                "api_key": "sk-bench-anthropic"}},
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }


def version() -> str:
    found = sorted(VENV.glob("lib/python*/site-packages/litellm-*.dist-info"))
    return found[0].name[len("litellm-"):-len(".dist-info")] if found else "unknown"


def start(stack: Stack) -> int:
    binary = VENV / "bin" / "litellm"
    if not binary.exists():
        raise RuntimeError(f"{binary} missing: run `make bench PEERS=litellm` (it creates {VENV})")
    port = free_port()
    path = stack.workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config(stack.ports["mock_openai"], stack.ports["mock_anthropic"])))
    stack.spawn("litellm", [str(binary), "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
                            "--num_workers", "1"], stack.layout.server,
                env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": MASTER_KEY,
                     "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}, cwd=Path(stack.workdir))
    stack.wait_http("litellm", f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    return port
