"""Hot reload: a valid change is applied whole, an invalid one keeps the old config and is counted once."""

from __future__ import annotations

import asyncio
import os

import pytest

from extproc.config import ConfigError
from extproc.reload import ConfigSource, watch

GOOD = """
providers: {p: {api: openai}}
models: {m: {provider: p}, n: {provider: p}}
routing: {default_model: m}
"""
CHANGED = GOOD.replace("default_model: m", "default_model: n")
BAD = GOOD.replace("default_model: m", "default_model: ghost")


def test_unchanged_file_gives_nothing(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(GOOD)
    source = ConfigSource(path)
    assert source.load().default_model == "m"
    assert source.check() is None and source.reloads == 0


def test_valid_change_is_returned_and_becomes_current(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(GOOD)
    source = ConfigSource(path)
    source.load()
    path.write_text(CHANGED)
    new = source.check()
    assert new is not None and new.default_model == "n" and source.config is new and source.reloads == 1
    assert source.check() is None


def test_same_mtime_different_content_is_noticed(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(GOOD)
    source = ConfigSource(path)
    source.load()
    stat = path.stat()
    path.write_text(CHANGED.replace("n: {provider: p}", "o: {provider: p}").replace("default_model: n",
                                                                                      "default_model: o"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source.check().default_model == "o"


def test_invalid_change_keeps_the_old_config_and_counts_once(tmp_path, caplog):
    path = tmp_path / "routing.yaml"
    path.write_text(GOOD)
    source = ConfigSource(path)
    old = source.load()
    path.write_text(BAD)
    assert source.check() is None
    assert source.config is old and source.reload_failures == 1
    assert "routing.default_model: unknown model 'ghost'" in source.last_error
    assert "keeping the previous one" in caplog.text
    assert source.check() is None and source.reload_failures == 1     # the same bad content: not again
    path.write_text(CHANGED)                                          # fixed: applied
    assert source.check().default_model == "n" and source.last_error is None


def test_configmap_symlink_swap(tmp_path):
    # Kubernetes: routing.yaml -> ..data/routing.yaml, ..data -> ..2024_01_01 (swapped atomically).
    for name, text in (("..v1", GOOD), ("..v2", CHANGED)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "routing.yaml").write_text(text)
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "routing.yaml").symlink_to("..data/routing.yaml")
    source = ConfigSource(tmp_path / "routing.yaml")
    source.load()
    tmp = tmp_path / "..data_tmp"
    tmp.symlink_to("..v2")
    os.replace(tmp, tmp_path / "..data")
    assert source.check().default_model == "n"


def test_missing_file_keeps_the_old_config(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(GOOD)
    source = ConfigSource(path)
    old = source.load()
    path.unlink()
    assert source.check() is None and source.config is old and source.reload_failures == 1


def test_initial_load_raises(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(BAD)
    with pytest.raises(ConfigError, match="unknown model 'ghost'"):
        ConfigSource(path).load()


def test_watch_applies_valid_and_reports_invalid(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(GOOD)
    source = ConfigSource(path)
    source.load()
    applied, errors = [], []

    async def scenario():
        task = asyncio.create_task(watch(path, applied.append, interval=0.01, on_error=errors.append,
                                         source=source))
        await asyncio.sleep(0.05)
        path.write_text(BAD)
        await _until(lambda: errors)
        path.write_text(CHANGED)
        await _until(lambda: applied)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert [c.default_model for c in applied] == ["n"]
    assert len(errors) == 1 and "ghost" in errors[0] and source.reload_failures == 1


def test_watch_with_async_apply_that_fails_keeps_running(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(GOOD)
    calls = []

    async def apply(cfg):
        calls.append(cfg)
        raise RuntimeError("boom")

    async def scenario():
        errors = []
        task = asyncio.create_task(watch(path, apply, interval=0.01, on_error=errors.append))
        await asyncio.sleep(0.05)
        path.write_text(CHANGED)
        await _until(lambda: errors)
        task.cancel()
        return errors

    errors = asyncio.run(scenario())
    assert len(calls) == 1 and errors == ["apply failed: boom"]


async def _until(cond, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)
