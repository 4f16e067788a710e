"""Extproc CPU per streamed chunk for each front door: an OpenAI chat chunk stream (the internal
form, as an OpenAI provider sends it) turned into Messages events, Responses events, or observed
only (an OpenAI chat client). Pure code, no sockets: `.venv/bin/python bench/front_doors.py`."""

from __future__ import annotations

import time

from extproc import sse
from extproc.apis import messages, responses
from extproc.providers.base import Target
from extproc.providers.openai_openai import OpenAIChatTranslator

GPT = Target(model="gpt", upstream_model="gpt-4o-mini", provider="openai", api="openai", base_path="/v1")
CHUNKS = 20_000


def chunk(i: int) -> bytes:
    return sse.encode({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]})


def main() -> None:
    data = [chunk(i) for i in range(CHUNKS)]
    doors = [(messages, {"model": "gpt", "max_tokens": 50, "stream": True,
                         "messages": [{"role": "user", "content": "Hi"}]}),
             (responses, {"model": "gpt", "input": "Hi", "stream": True}), (None, None)]
    for door, client in doors:
        best = float("inf")
        for _ in range(3):
            inner = OpenAIChatTranslator(GPT, created=1, response_id="chatcmpl-x")
            if door is None:
                translator, body = inner, {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}],
                                           "stream": True, "stream_options": {"include_usage": True}}
            else:
                translator, body = door.translator(inner, client, {"id": "x_1", "created": 1}), door.to_internal(client)
            translator.request(body)
            started = time.perf_counter()
            for item in data:
                translator.stream_chunk(item)
            best = min(best, time.perf_counter() - started)
        name = door.API if door is not None else "openai_chat (observed only)"
        print(f"{name:30} {best / CHUNKS * 1e6:6.1f} us per chunk ({CHUNKS} chunks, best of 3)")


if __name__ == "__main__":
    main()
