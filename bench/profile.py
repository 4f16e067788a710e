"""Where extproc's CPU goes under load: py-spy on the real process while wrk drives the gateway.

    PYTHONPATH=. python -m bench.profile [--scenario passthrough] [--seconds 20] [--connections 16]

Needs ``py-spy`` on PATH (``pip install py-spy``; not a project dependency).
Writes bench/results/profile-<scenario>.txt: the busiest functions by own time
and by inclusive time, from py-spy's collapsed stacks (also kept, for flame
graph tools, as profile-<scenario>.folded in the run's workdir).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from . import wrk
from .run import RESULTS
from .scenarios import BY_NAME
from .stack import Layout, Stack


def summarize(folded: Path, top: int = 40) -> str:
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        if frames:
            own[_short(frames[-1])] += n
        for f in {_short(f) for f in frames}:
            inclusive[f] += n
    lines = [f"samples: {total}", "", "own time (leaf frames):"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive time (frame anywhere on the stack):"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)"; drop the line number and the path prefix.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scenario", default="passthrough")
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--whatif", default="", help="profile extproc patched with bench/whatif.py changes")
    p.add_argument("--native", action="store_true", help="include C frames (grpc's Cython core, protobuf)")
    args = p.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("bench.profile: py-spy not on PATH (pip install py-spy)", file=sys.stderr)
        return 2
    scenario = BY_NAME[args.scenario]
    stack = Stack(Path(tempfile.mkdtemp(prefix="llm-profile-")), Layout.detect())
    try:
        stack.start_mock()
        stack.start_gateway(whatif=args.whatif)
        stack.mock_config("mock_openai", chunks=50, interval_ms=0, fail_every=scenario.fail_every)
        body = stack.workdir / "body.json"
        body.write_bytes(scenario.body())
        url = f"http://127.0.0.1:{stack.ports['gateway']}/v1/chat/completions"
        wrk.run(url, body, connections=args.connections, seconds=2, cpus=stack.layout.load)
        label = f"{args.scenario}{'-native' if args.native else ''}{'-' + args.whatif if args.whatif else ''}"
        folded = stack.workdir / f"profile-{label}.folded"
        result = {}
        load = threading.Thread(target=lambda: result.update(wrk.run(
            url, body, connections=args.connections, seconds=args.seconds + 2, cpus=stack.layout.load)))
        load.start()
        subprocess.run(["py-spy", "record", "--pid", str(stack.pid("extproc")), "--duration", str(args.seconds),
                        "--rate", str(args.rate), "--format", "raw", "-o", str(folded),
                        # --native pauses the process to unwind C frames: slower, so the load drops somewhat
                        *(["--native"] if args.native else ["--nonblocking"])],
                       check=True, capture_output=True)
        load.join()
        text = (f"scenario {args.scenario}, wrk c={args.connections}: {result.get('rps', 0):.0f} req/s, "
                f"p50 {result.get('p50_us', 0) / 1000:.2f} ms\n" + summarize(folded))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"profile-{label}.txt").write_text(text)
        print(text)
        print(f"collapsed stacks: {folded}")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
