"""Benchmark (not a test) of the router's token estimate on one 100 KB prompt of each kind, in-process.

    PYTHONPATH=. python bench/estimate_bench.py [--n 200] [--kb 100]

For a CJK prompt (Chinese, Japanese and Korean sentences from tests/multilingual.py, repeated) and an ASCII
prompt of the same UTF-8 size, prints the per-call microseconds (best of 5 repeats of ``--n`` calls) of
``cost.text_units`` on the text, ``cost.prompt_tokens`` on a one-message chat body holding it, the old rule
(``len(text) // 4``) and the o200k count (``tokens.count``) for scale, and each estimate's ratio to the count.
"""

from __future__ import annotations

import argparse
import timeit

from extproc import cost, tokens
from tests.multilingual import SAMPLES


def prompt(kind: str, size: int) -> str:
    """``size`` UTF-8 bytes (or one character fewer) of the sample's sentences of ``kind``, repeated."""
    if kind == "cjk":
        unit = "\n".join(SAMPLES["zh"] + SAMPLES["ja"] + SAMPLES["ko"]) + "\n"
    else:
        unit = "\n".join(SAMPLES["en"]) + "\n"
    text = unit * (size // len(unit.encode()) + 1)
    while len(text.encode()) > size:   # cut on a character boundary
        text = text[: len(text) - max(1, (len(text.encode()) - size) // 3)]
    return text


def per_call_us(fn, n: int) -> float:
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--kb", type=int, default=100)
    args = ap.parse_args()
    tokens.count("warm up")   # loads the o200k ranks once
    for kind in ("cjk", "ascii"):
        text = prompt(kind, args.kb * 1000)
        body = {"messages": [{"role": "user", "content": text}]}
        counted = tokens.count(text)
        estimate = cost.text_units(text) // cost.TOKEN_UNITS
        print(f"{kind:5} {len(text.encode()):7} bytes {len(text):7} chars  o200k {counted:6} tokens  "
              f"estimate {estimate:6} ({estimate / counted:.2f}x)  chars/4 {len(text) // 4:6} "
              f"({len(text) // 4 / counted:.2f}x)")
        print(f"      text_units {per_call_us(lambda: cost.text_units(text), args.n):9.2f} us   "
              f"prompt_tokens {per_call_us(lambda: cost.prompt_tokens(body), args.n):9.2f} us   "
              f"len // 4 {per_call_us(lambda: len(text) // 4, args.n):7.3f} us   "
              f"o200k count {per_call_us(lambda: tokens.count(text), max(1, args.n // 50)):9.0f} us")


if __name__ == "__main__":
    main()
