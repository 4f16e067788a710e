"""The upstream stage's timer (server._until): Envoy's messages, and None when a held attempt's deadline passes."""

import asyncio
import gc
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


def test_a_stage_that_stops_reading_leaves_no_unretrieved_read():
    """The stage answers on its deadline and stops reading while a read is in flight; Envoy then ends the
    stream. That read's StopAsyncIteration was never retrieved: asyncio logged it for every such attempt."""
    reported = []

    async def run():
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: reported.append(context))
        envoy_done = asyncio.Event()

        async def envoy():
            await envoy_done.wait()
            return
            yield   # an async generator that ends: StopAsyncIteration for the read in flight

        stage = _until(envoy(), lambda: time.monotonic() - 1)   # the deadline has passed already
        assert await stage.__anext__() is None                  # answered on its own, read still in flight
        envoy_done.set()
        await asyncio.sleep(0.05)                               # Envoy's stream ends meanwhile
        await stage.aclose()                                    # the stage is done
        del stage
        gc.collect()
        await asyncio.sleep(0.05)
    asyncio.run(run())
    gc.collect()
    assert not [c for c in reported if "never retrieved" in c.get("message", "")], reported
