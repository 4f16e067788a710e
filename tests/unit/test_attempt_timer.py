"""The upstream stage's timer (server._until): Envoy's messages, and None when a held attempt's deadline passes."""

import asyncio
import time

from extproc.server import _until


async def _messages(delays):
    for delay, value in delays:
        await asyncio.sleep(delay)
        yield value


def _run(delays, due):
    """Collect what the stage sees; like the stage, it clears the deadline once it has answered it."""
    timer = {"due": due}

    async def run():
        out = []
        async for item in _until(_messages(delays), lambda: timer["due"]):
            out.append(item)
            if item is None:
                timer["due"] = None
        return out
    return asyncio.run(run())


def test_messages_pass_through_untouched_without_a_deadline():
    assert _run([(0, "headers"), (0.01, "body"), (0, "end")], None) == ["headers", "body", "end"]


def test_a_passed_deadline_is_reported_once_and_the_pending_message_still_comes():
    started = time.monotonic()
    assert _run([(0, "headers"), (0.3, "late body")], time.monotonic() + 0.05) == ["headers", None, "late body"]
    assert time.monotonic() - started < 1.0
