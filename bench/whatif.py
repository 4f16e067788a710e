"""What-if runs: extproc with one suggested change patched in at start-up, to size a suggestion before anyone codes it.

    python -m bench.whatif health-cache serve --config ... --listen ...

``health-cache``: ``HealthTracker.model_health`` answers from a per-model
snapshot recomputed at most every 100 ms instead of summarising (sorting) the
whole 30 s window on every call. The policy reads p95 in 100 ms buckets, so a
100 ms-old view decides the same. This is a measurement aid, not the fix: the
fix belongs in extproc/health.py (incremental counters and a bucketed latency
histogram make the lookup O(1) without staleness).

Used by ``python -m bench --whatif health-cache`` (the gateway row is then
labelled as patched in the results).
"""

from __future__ import annotations

import sys
import time


def health_cache(max_age_s: float = 0.1) -> None:
    from extproc import health

    original = health.HealthTracker.model_health
    cache: dict[tuple[int, str], tuple[float, object]] = {}

    def model_health(self, model_id: str):
        now = time.monotonic()
        hit = cache.get((id(self), model_id))
        if hit is not None and now - hit[0] < max_age_s:
            return hit[1]
        value = original(self, model_id)
        cache[(id(self), model_id)] = (now, value)
        return value

    health.HealthTracker.model_health = model_health


PATCHES = {"health-cache": health_cache}


def main(argv: list[str]) -> int:
    names = argv[0].split(",") if argv and argv[0] != "none" else []
    for name in names:
        PATCHES[name]()
    from extproc.cli import main as extproc_main
    return extproc_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
