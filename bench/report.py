"""The markdown report of one bench run (bench/results/latest.json -> latest.md).

Every "added" number is the gateway's (or a peer's) value minus Envoy alone's
in the same run, same load, same client; every ratio is against Envoy alone
unless it says otherwise. ``python -m bench.report [FILE]`` re-renders a JSON file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _f(v, digits=2, unit=""):
    return "n/a" if v is None else f"{v:.{digits}f}{unit}"


INCONCLUSIVE = "inconclusive"


def _verdict(ok):
    if ok is INCONCLUSIVE:
        return "inconclusive: Envoy alone's p99 was the higher one (noise), rerun on a quiet box"
    return "n/a" if ok is None else ("**holds**" if ok else "**misses**")


def _tail(added, limit):
    """A p99 difference below zero says the floor's own tail was noisier than the gateway's: no verdict."""
    return None if added is None else (INCONCLUSIVE if added < 0 else added <= limit)


def _index(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def targets(out: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, threshold, measured, holds) for each of issue 7's targets that this run measured."""
    wrk = _index(out["wrk"], "scenario", "connections", "target")
    loop = _index(out["open_loop"], "scenario", "target")
    streams = _index(out["streams"], "scenario", "target")
    rows = []

    def added(scenario, c, field):
        g, e = wrk.get((scenario, c, "gateway")), wrk.get((scenario, c, "envoy"))
        return None if not (g and e) else (g[field] - e[field]) / 1000

    for scenario, p50_max in (("passthrough", 1.0), ("translated", 1.5)):
        a50, a99 = added(scenario, 1, "p50_us"), added(scenario, 1, "p99_us")
        rows.append((f"c=1 {scenario}: added p50", f"<= {p50_max} ms", _f(a50, 2, " ms"),
                     None if a50 is None else a50 <= p50_max))
        rows.append((f"c=1 {scenario}: added p99", "<= 4 ms", _f(a99, 2, " ms"), _tail(a99, 4)))
    for scenario in ("passthrough", "translated", "fallback"):
        g, e = loop.get((scenario, "gateway")), loop.get((scenario, "envoy"))
        if g and e:
            a50, a99 = g["p50_ms"] - e["p50_ms"], g["p99_ms"] - e["p99_ms"]
            rows.append((f"{out['settings']['open_loop_rps']:.0f} req/s open loop {scenario}: added p50", "<= 2 ms",
                         _f(a50, 2, " ms"), a50 <= 2))
            rows.append((f"{out['settings']['open_loop_rps']:.0f} req/s open loop {scenario}: added p99", "<= 6 ms",
                         _f(a99, 2, " ms"), _tail(a99, 6)))
    peak = max(out["settings"]["concurrency"])
    for scenario, floor_rps in (("passthrough", 1500), ("translated", 1000)):
        g = wrk.get((scenario, peak, "gateway"))
        rows.append((f"c={peak} {scenario}: gateway throughput", f">= {floor_rps} req/s",
                     _f(g and g["rps"], 0, " req/s"), None if not g else g["rps"] >= floor_rps))
        l = wrk.get((scenario, peak, "litellm"))
        if g and l:
            ratio = g["rps"] / l["rps"] if l["rps"] else float("inf")
            rows.append((f"c={peak} {scenario}: gateway / LiteLLM", ">= 10x", f"{ratio:.1f}x", ratio >= 10))
    for scenario in ("stream", "stream_translated"):
        g, e = streams.get((scenario, "gateway")), streams.get((scenario, "envoy"))
        if g and e and g["ttft_p50_ms"] is not None and e["ttft_p50_ms"] is not None:
            a = g["ttft_p50_ms"] - e["ttft_p50_ms"]
            rows.append((f"c=1 {scenario}: added TTFT p50", "<= 1.5 ms", _f(a, 2, " ms"), a <= 1.5))
            c = g["chunk_p50_ms"] - e["chunk_p50_ms"]
            rows.append((f"c=1 {scenario}: added per-chunk latency p50", "<= 0.3 ms", _f(c, 3, " ms"), c <= 0.3))
    mem = out.get("memory", {})
    if "steady" in mem:
        s = mem["steady"]
        failed = s.get("errors", 0)
        rows.append((f"extproc RSS over {s['seconds']:.0f} s at {s['rps']:.0f} req/s (target: 300 s), "
                     f"after {s.get('warm_up_s', 0):.0f} s warm-up", "within 10%",
                     f"{s['rss_start_mb']:.1f} -> {s['rss_end_mb']:.1f} MB ({s['growth_pct']:+.1f}%), "
                     f"peak {s['rss_max_mb']:.1f} MB; {failed} of {s.get('requests', '?')} requests failed",
                     abs(s["growth_pct"]) <= 10 and not failed))
    if "concurrent_streams" in mem:
        h = mem["concurrent_streams"]
        rows.append((f"extproc RSS with {h['streams']} concurrent streams (opened over {h.get('ramp_s', 0):.0f} s)",
                     "< 200 MB",
                     f"{h['rss_peak_mb']:.1f} MB (ok {h['ok']}, failed {h['errors']})",
                     h["rss_peak_mb"] < 200 and h["errors"] == 0))
    return rows


def render(out: dict) -> str:
    m, lay = out["machine"], out["layout"]
    lines = ["# Gateway benchmark", "",
             f"Machine: {m['nproc']} cores, {m['cpu']}, Linux {m['kernel']}; Python {m['python']}, "
             f"Envoy {m['envoy']}, {m['wrk']}{', LiteLLM ' + m['litellm'] if m.get('litellm') else ''}; "
             f"code {m.get('tree', '?')}. Server core(s) {lay['server_cpus']} (Envoy with one worker, "
             f"extproc, peers), load core(s) {lay['load_cpus']} (mock upstream, wrk, asyncio clients). "
             f"Run took {out.get('wall_seconds', 0):.0f} s.", "",
             *_noise(out),
             *([f"**What-if run**: extproc patched with `{out['settings']['whatif']}` (bench/whatif.py); "
                "not the shipped code.", ""] if out["settings"].get("whatif") else []),
             "Envoy alone = the same listener and route retry policy with no ext_proc (the floor). "
             "Added = target minus Envoy alone, same run.", ""]
    lines += ["## Targets (issue 7)", "", "| target | threshold | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {t} | {th} | {v} | {_verdict(ok)} |" for t, th, v, ok in targets(out)]
    for name, why in out.get("pending", {}).items():
        lines.append(f"| {name} | | {why} | pending policy |")
    peers = sorted({r["target"] for r in out["wrk"]} - {"envoy", "gateway"})
    head = "| scenario | c | Envoy alone req/s | p50 / p99 ms | gateway req/s | p50 / p99 ms | added p50 ms | gw / Envoy req/s | ext_proc streams / msgs per req |"
    sep = "|---|---|---|---|---|---|---|---|---|"
    for p in peers:
        head += f" {p} req/s | {p} p50 / p99 ms | gw / {p} req/s |"
        sep += "---|---|---|"
    lines += ["", f"## Closed loop (wrk, {out['settings']['seconds']:.0f} s per cell)", "", head, sep]
    wrk = _index(out["wrk"], "scenario", "connections", "target")
    for scenario in out["scenarios"]:
        for c in out["settings"]["concurrency"]:
            e, g = wrk.get((scenario, c, "envoy")), wrk.get((scenario, c, "gateway"))
            if not (e and g):
                continue
            row = (f"| {scenario} | {c} | {e['rps']:.0f} | {e['p50_us'] / 1000:.2f} / {e['p99_us'] / 1000:.2f} | "
                   f"{g['rps']:.0f}{_bad(g)} | {g['p50_us'] / 1000:.2f} / {g['p99_us'] / 1000:.2f} | "
                   f"{(g['p50_us'] - e['p50_us']) / 1000:+.2f} | {g['rps'] / e['rps']:.2f} | "
                   f"{g.get('ext_proc_streams_per_req', 0):.2f} / {g.get('ext_proc_msgs_per_req', 0):.2f} |")
            for p in peers:
                r = wrk.get((scenario, c, p))
                row += (f" {r['rps']:.0f}{_bad(r)} | {r['p50_us'] / 1000:.2f} / {r['p99_us'] / 1000:.2f} | "
                        f"{g['rps'] / r['rps']:.1f}x |" if r and r["rps"] else " n/a | n/a | n/a |")
            lines.append(row)
    lines += ["", f"## Open loop ({out['settings']['open_loop_rps']:.0f} req/s offered, latency from the scheduled send)",
              "", "| scenario | target | p50 ms | p99 ms | p99.9 ms | added p50 / p99 ms | errors |", "|---|---|---|---|---|---|---|"]
    loop = _index(out["open_loop"], "scenario", "target")
    for r in out["open_loop"]:
        e = loop.get((r["scenario"], "envoy"))
        add = f"{r['p50_ms'] - e['p50_ms']:+.2f} / {r['p99_ms'] - e['p99_ms']:+.2f}" if e and r is not e else "(floor)"
        lines.append(f"| {r['scenario']} | {r['target']} | {_f(r['p50_ms'])} | {_f(r['p99_ms'])} | {_f(r['p999_ms'])} | "
                     f"{add} | {r['errors']} |")
    lines += ["", f"## Streams (c=1, {out['settings']['chunks']} chunks, mock pauses "
              f"{out['settings']['pause_ms']} ms between chunks)", "",
              "| scenario | target | TTFT p50 / p99 ms | per-chunk p50 / p99 ms (emission -> client) | chunks seen | errors |",
              "|---|---|---|---|---|---|"]
    for r in out["streams"]:
        lines.append(f"| {r['scenario']} | {r['target']} | {_f(r['ttft_p50_ms'])} / {_f(r['ttft_p99_ms'])} | "
                     f"{_f(r['chunk_p50_ms'], 3)} / {_f(r['chunk_p99_ms'], 3)} | {r['chunks_per_stream']} | {r['errors']} |")
    d = out.get("decision", {})
    if d.get("rows"):
        lines += ["", "## Routing decision (bench/decision_bench.py, in-process)", "", "| step | p50 us | p99 us |",
                  "|---|---|---|"]
        lines += [f"| {k} | {v['p50_us']:.1f} | {v['p99_us']:.1f} |" for k, v in d["rows"].items()]
    elif d:
        lines += ["", f"Routing decision microbenchmark: {d.get('skipped') or d.get('output', '')[-300:]}"]
    h = out.get("hedge", {})
    if h:
        lines += ["", "## Hedging (bench/hedge.py: the primary waits 2 s on 30% of requests; c=4)", "",
                  h.get("table") or f"failed: {h.get('error')}"]
    for note in out.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _noise(out: dict) -> list[str]:
    n = out.get("noise")
    if not n:
        return []
    wall = out.get("wall_seconds") or 1
    share = n["other_cpu_s"] / (wall * out["machine"]["nproc"])
    return [f"Other processes on the box used {n['other_cpu_s']:.0f} CPU-seconds during the run "
            f"({100 * share:.0f}% of the machine; load average {n['loadavg_start'][0]:.1f} at the start, "
            f"{n['loadavg_end'][0]:.1f} at the end)" + (": **the box was busy, treat absolute numbers with care**."
                                                        if share > 0.1 else "."), ""]


def _bad(r: dict) -> str:
    return f" ({r['non2xx']} non-2xx, {r['socket_errors']} errors)" if r["non2xx"] or r["socket_errors"] else ""


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "latest.json"
    print(render(json.loads(path.read_text())))
