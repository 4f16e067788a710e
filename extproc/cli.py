"""``extproc`` command line: serve, simulate, dev, envoy-config, explain, check, keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from . import config as routing_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="extproc", description="LLM routing gateway: Envoy external processor")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve both ext_proc stages (and gRPC health) over gRPC")
    p.add_argument("--config", default=os.environ.get(routing_config.CONFIG_ENV),
                   help=f"routing config file (default: ${routing_config.CONFIG_ENV})")
    p.add_argument("--listen", default=os.environ.get("EXTPROC_LISTEN", "127.0.0.1:50051"),
                   help="HOST:PORT or unix:PATH (default 127.0.0.1:50051, or $EXTPROC_LISTEN)")
    p.add_argument("--grace", type=float, default=30.0, help="seconds to let in-flight streams finish on SIGTERM")
    p.add_argument("--status-listen", default=os.environ.get("EXTPROC_STATUS_LISTEN"),
                   help="HOST:PORT for the JSON status endpoint GET /status (default: off, or $EXTPROC_STATUS_LISTEN)")

    p = sub.add_parser("simulate", help="run provider simulators on loopback")
    p.add_argument("providers", nargs="+", metavar="NAME=API:PORT",
                   help="e.g. openai=openai:18001 anthropic=anthropic:18002 (API: openai, anthropic, gemini)")

    p = sub.add_parser("dev", help="the whole gateway locally: simulators, extproc and Envoy (make run)")
    p.add_argument("--config", default=os.environ.get(routing_config.CONFIG_ENV) or None)
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "10000")))

    p = sub.add_parser("envoy-config", help="write envoy/envoy.yaml adapted to local ports and simulators")
    p.add_argument("--out", required=True)
    p.add_argument("--listen-port", type=int, default=10000)
    p.add_argument("--admin-port", type=int, default=9901)
    p.add_argument("--extproc", default="127.0.0.1:50051")
    p.add_argument("--simulator", action="append", default=[], metavar="CLUSTER=PORT")

    p = sub.add_parser("explain", help="print the routing decision for a request, offline (no Envoy)")
    p.add_argument("request", nargs="?", help="a JSON file with an OpenAI request body ('-' for stdin)")
    p.add_argument("--jsonl", metavar="FILE", help="one request per line (a chat body or an eval row with "
                   "'prompt'); writes one JSON object per line: id, class, score, model, plan. A row's 'surface' "
                   "that the config defines is routed as its x-llm-surface header, unless --surface names one")
    p.add_argument("--config", default=os.environ.get(routing_config.CONFIG_ENV) or None,
                   help=f"routing config (default: ${routing_config.CONFIG_ENV}, else config/routing.yaml)")
    p.add_argument("--workload", help="as the x-llm-workload header")
    p.add_argument("--surface", help="as the x-llm-surface header")
    p.add_argument("--tenant", help="as a caller with this tenant's gateway key")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="any other request header")
    p.add_argument("--endpoint", choices=("chat", "embeddings"), default="chat")
    p.add_argument("--now", type=float, help="the clock, in Unix seconds (time windows); default: now")
    p.add_argument("--json", action="store_true", help="the whole decision as JSON")
    p.add_argument("--served-by", metavar="MODEL[@CLASS]",
                   help="conversation affinity: this conversation's last turn was served by MODEL (under CLASS; "
                        "default: this request's class); its prompt, all but the last message, counts as cached")
    p.add_argument("--curve", action="store_true",
                   help="with --jsonl on a labelled file (rows with 'label': simple|complex, optional "
                        "'surface'): print the cost/quality curve over premium_threshold instead of decisions")
    p.add_argument("--target-share", type=float, metavar="SHARE",
                   help="with --jsonl: the premium_threshold that sends about SHARE (0..1) of the file's requests "
                        "to a premium model, per surface (or for --surface), and the config lines that set it")
    p.add_argument("--compare", metavar="NEW.yaml", help="with --jsonl: route every request by this config too; "
                   "print changed decisions, projected cost and tier mix of both, and `check` the new config "
                   "against --envoy (extproc/compare.py)")
    p.add_argument("--envoy", help="with --compare: the Envoy config to check against (default: envoy/envoy.yaml)")

    p = sub.add_parser("check", help="validate the routing config together with the Envoy config")
    p.add_argument("--config", default=os.environ.get(routing_config.CONFIG_ENV) or None,
                   help=f"routing config (default: ${routing_config.CONFIG_ENV}, else config/routing.yaml)")
    p.add_argument("--envoy", help="Envoy config (default: envoy/envoy.yaml)")
    p.add_argument("--no-envoy-validate", action="store_true", help="skip `envoy --mode validate`")

    p = sub.add_parser("keys", help="issue and revoke gateway API keys (the key file keeps only their sha256)")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    k = keys_sub.add_parser("create", help="print a new key (once) and the key file line that admits it")
    k.add_argument("--tenant", required=True, help="the tenant the key bills to (a tenant of the routing config)")
    k.add_argument("--id", help="the key's public id (default: TENANT-<8 hex digits>)")
    k.add_argument("--surfaces", help="comma-separated: narrow the tenant's surfaces for this key")
    k.add_argument("--workloads", help="comma-separated: narrow the tenant's workloads for this key")
    k.add_argument("--requests-per-minute", type=int, help="this key's own request rate limit")
    k.add_argument("--tokens-per-minute", type=int, help="this key's own token rate limit")
    k.add_argument("--file", help="append the line to this key file (else only print it)")
    k.add_argument("--config", default=os.environ.get(routing_config.CONFIG_ENV) or None,
                   help="routing config whose tenants are checked (default: config/routing.yaml)")
    k = keys_sub.add_parser("revoke", help="remove a key from a key file, by id or sha256")
    k.add_argument("key", help="the key's id or sha256")
    k.add_argument("--file", required=True, help="the key file to edit in place")

    from .report import add_report_command, run_report
    add_report_command(sub)

    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll is noise
    command = {"serve": _serve, "simulate": _simulate, "dev": _dev, "envoy-config": _envoy_config,
               "explain": _explain, "check": _check, "report": run_report, "keys": _keys}[args.command]
    try:
        status = command(args)
        sys.stdout.flush()     # here, so a closed pipe is seen here and not at interpreter exit
    except BrokenPipeError:
        # `extproc explain ... | head`: the reader left. Quietly, as CLIs do; stdout goes to /dev/null so
        # the interpreter's own flush at exit does not complain again (Python docs, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return status


def _serve(args: argparse.Namespace) -> int:
    from .server import serve

    if not args.config:
        print(f"extproc serve: give --config or set {routing_config.CONFIG_ENV}", file=sys.stderr)
        return 2
    import uvloop   # libuv's event loop: measurably less CPU per gRPC message than asyncio's

    try:
        uvloop.run(serve(args.config, args.listen, args.grace, status_address=args.status_listen))
    except routing_config.ConfigError as exc:
        print(f"extproc serve: invalid config: {exc}", file=sys.stderr)
        return 2
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulators import serve

    providers: dict[str, tuple[str, int]] = {}
    for spec in args.providers:
        name, _, rest = spec.partition("=")
        api, _, port = rest.partition(":")
        if not (name and api and port.isdigit()):
            print(f"extproc simulate: bad provider spec {spec!r}; expected NAME=API:PORT", file=sys.stderr)
            return 2
        providers[name] = (api, int(port))
    try:
        asyncio.run(_until_signal(serve(providers)))
    except KeyboardInterrupt:
        pass
    return 0


async def _until_signal(coro) -> None:
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


def _dev(args: argparse.Namespace) -> int:
    from .devstack import DEFAULT_ROUTING, Stack
    from .report import default_ledger_url   # where `extproc report` looks: the ledger survives restarts

    stack = Stack(routing=args.config or DEFAULT_ROUTING, listen_port=args.port, shadow=True,
                  ledger_url=default_ledger_url(args.config or DEFAULT_ROUTING))
    stack.start()
    simulated = ", ".join(f"{n} (127.0.0.1:{p})" for n, p in stack.simulators.items()) or "none"
    print(f"LLM gateway on {stack.base_url}  (Envoy admin 127.0.0.1:{stack.admin_port}, "
          f"extproc 127.0.0.1:{stack.extproc_port})\nstatus {stack.status_url}, metrics "
          f"{stack.status_url.replace('/status', '/metrics')}\nsimulated providers: {simulated}\n"
          f"usage ledger: {stack.ledger_url}  (extproc report --premium MODEL reads it)\n"
          f"logs: {stack.workdir}/stack.log   Ctrl-C to stop\n"
          f"demo key: {stack.demo_key}", flush=True)
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.stop()
    return 0


def _envoy_config(args: argparse.Namespace) -> int:
    from . import envoy_config

    endpoints = {}
    for spec in args.simulator:
        cluster, _, port = spec.partition("=")
        endpoints[cluster] = ("127.0.0.1", int(port))
    local = envoy_config.localize(envoy_config.load(), listen_port=args.listen_port, admin_port=args.admin_port,
                                  extproc=args.extproc, endpoints=endpoints)
    envoy_config.dump(local, args.out)
    return 0


def _routing_config(path: str | None):
    from .devstack import DEFAULT_ROUTING

    return routing_config.load(path or DEFAULT_ROUTING)


def _classifier(cfg):
    """The classifier ``cfg`` configures (explain shows its answer even when the config has no classes)."""
    from .classify import build_classifier
    return build_classifier(cfg.classifier)


def _explain(args: argparse.Namespace) -> int:
    import json
    import time

    from . import errors
    from .keys import tenant_caller
    from .policy import SURFACE_HEADER, WORKLOAD_HEADER, decide

    if bool(args.request) == bool(args.jsonl):
        print("extproc explain: give one REQUEST.json or --jsonl FILE", file=sys.stderr)
        return 2
    if args.jsonl and args.jsonl != "-" and not os.path.isfile(args.jsonl):
        print(f"extproc explain: --jsonl {args.jsonl}: no such file", file=sys.stderr)
        return 2
    try:
        cfg = _routing_config(args.config)
    except routing_config.ConfigError as exc:
        print(f"extproc explain: invalid config: {exc}", file=sys.stderr)
        return 2
    headers = {}
    for spec in args.header:
        name, sep, value = spec.partition(":")
        if not sep:
            print(f"extproc explain: bad header {spec!r}; expected NAME:VALUE", file=sys.stderr)
            return 2
        headers[name.strip().lower()] = value.strip()
    for name, value in ((WORKLOAD_HEADER, args.workload), (SURFACE_HEADER, args.surface)):
        if value:
            headers[name] = value
    caller = None
    if args.tenant:
        try:
            caller = tenant_caller(cfg, args.tenant)
        except ValueError as exc:
            print(f"extproc explain: --tenant: {exc}", file=sys.stderr)
            return 2
    now = time.time() if args.now is None else args.now
    classifier = _classifier(cfg)

    if args.compare:
        if not args.jsonl:
            print("extproc explain: --compare needs --jsonl FILE", file=sys.stderr)
            return 2
        from .compare import run as compare
        return compare(args, cfg, headers, caller, now, check=_check)
    if args.curve or args.target_share is not None:
        if not args.jsonl:
            print("extproc explain: --curve and --target-share need --jsonl FILE", file=sys.stderr)
            return 2
        if classifier is None:
            print("extproc explain: --curve and --target-share need the classifier's scores "
                  "(extproc.classify is not available)", file=sys.stderr)
            return 2
        if args.curve and args.target_share is not None:
            print("extproc explain: give --curve or --target-share, not both", file=sys.stderr)
            return 2
        if args.target_share is not None and not 0.0 <= args.target_share <= 1.0:
            print(f"extproc explain: --target-share: {args.target_share} is not a share between 0 and 1",
                  file=sys.stderr)
            return 2
        return _calibrate(args, cfg, headers, caller, now, classifier)
    if args.jsonl:
        out = sys.stdout
        failed = 0
        for number, rid, row, body, problem in _rows(args.jsonl, args.endpoint):
            if problem is not None:
                record, failed = {"id": rid, **problem}, failed + 1
            else:
                try:
                    row_headers = _row_headers(cfg, row, headers)
                    c = classifier.classify(body) if classifier is not None else None
                    plan = decide(cfg, body, args.endpoint, row_headers, now=now, classification=c, caller=caller)
                    record = {"id": rid, "class": plan.route_class,
                              "score": None if c is None else c.score, "model": plan.models[0].id,
                              "plan": [m.id for m in plan.models]}
                except errors.GatewayError as exc:
                    record, failed = {"id": rid, "error": exc.message, "status": exc.status}, failed + 1
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    record, failed = {"id": rid, "error": f"line {number}: {type(exc).__name__}: {exc}"}, failed + 1
            out.write(json.dumps(record) + "\n")
        if failed:
            print(f"extproc explain: {failed} request(s) could not be routed (see their 'error')", file=sys.stderr)
        return 0

    try:
        raw = sys.stdin.read() if args.request == "-" else open(args.request, encoding="utf-8").read()
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("the request must be a JSON object")
    except (OSError, ValueError) as exc:
        print(f"extproc explain: cannot read {args.request}: {exc}", file=sys.stderr)
        return 2
    body = body_of(body)
    if args.served_by:
        served, at, cls = args.served_by.partition("@")
        # a misspelt name would explain a pin that can never exist, silently (tryout 9 L3)
        if served not in cfg.models:
            print(f"extproc explain: --served-by: unknown model {served!r} (models: {', '.join(cfg.models)})",
                  file=sys.stderr)
            return 2
        if at and cls not in cfg.classes:
            print(f"extproc explain: --served-by: unknown class {cls!r} (classes: {', '.join(cfg.classes) or 'none'})",
                  file=sys.stderr)
            return 2
    c = classifier.classify(body) if classifier is not None else None
    classification = None if c is None else {"name": c.name, "confidence": c.confidence, "score": c.score,
                                             "features": c.features}
    try:
        plan = decide(cfg, body, args.endpoint, headers, now=now, classification=c, caller=caller)
        if args.served_by:
            plan = decide(cfg, body, args.endpoint, headers, now=now, classification=c, caller=caller,
                          pin=_served_by(cfg, args.served_by, body, plan.route_class))
    except errors.GatewayError as exc:
        if args.json:
            print(json.dumps({"config": cfg.source, "classification": classification,
                              "error": {"status": exc.status, "message": exc.message}}, indent=2, default=str))
        else:
            print(f"config: {cfg.source}\nclassifier: {_describe(classification)}\n"
                  f"no route: {exc.status} {exc.message}")
        return 1
    if args.json:
        print(json.dumps({"config": cfg.source, "model": plan.models[0].id, "classification": classification,
                          **plan.to_dict(), "headers": plan.headers()}, indent=2, default=str))
        return 0
    d = plan.to_dict()
    lines = [f"config:     {cfg.source}",
             f"request:    model={body.get('model')!r} endpoint={args.endpoint} "
             f"~{plan.prompt_tokens} prompt + {plan.output_tokens} output tokens",
             f"classifier: {_describe(classification)}",
             f"class:      {plan.route_class or '(none)'}{'  [pinned]' if plan.pinned else ''}"
             f"{_class_origin(cfg, body, c, plan)}",
             f"workload:   {plan.workload}   surface: {plan.surface or '(none)'}   tenant: {plan.tenant or '(none)'}",
             f"route:      {plan.reason}"]
    if plan.affinity:
        lines.append(f"affinity:   {plan.affinity}")
    lines.append("plan:")
    for i, c_ in enumerate(d["candidates"], 1):
        lines.append(f"  {i}. {c_['model']} via {c_['provider']}  [{c_['tier']}, target {c_['target_ms']} ms, "
                     f"est ${c_['estimated_cost']:.6f}]  {c_['reason']}")
    lines.append("dropped:" if d["dropped"] else "dropped:    (none)")
    for dr in d["dropped"]:
        tier = f" [{dr['tier']}]" if dr["tier"] else ""
        lines.append(f"  - {dr['model']}{tier}: {dr['reason']}")
    print("\n".join(lines))
    return 0


_ROW_KEYS = ("id", "label", "surface", "expect")


def body_of(row: dict) -> dict:
    """The request body of a --jsonl row or REQUEST.json: a chat body, a dev-set row (``body``), or an
    eval row with ``prompt`` (sent as one user message); raises ValueError for anything else."""
    if not isinstance(row, dict):
        raise ValueError(f"a row is a JSON object, not {type(row).__name__}")
    if isinstance(row.get("body"), dict):
        body = dict(row["body"])
    elif "messages" in row or "input" in row:
        # The row's own bookkeeping is not part of the request (OpenAI refuses unknown fields).
        body = {k: v for k, v in row.items() if k not in _ROW_KEYS}
    elif "prompt" in row:
        body = {"model": "auto", "messages": [{"role": "user", "content": row["prompt"]}]}
    else:
        raise ValueError("not a request: a row needs 'body', 'messages', 'input' or 'prompt'")
    body.setdefault("model", "auto")
    return body


def _rows(path: str, endpoint: str):
    """The lines of a --jsonl file as (line number, id, row, body, problem): ``problem`` is None for a
    request the gateway would take, else ``{"error": why}`` for a line that is not a request, or
    ``{"error", "status": 400}`` for one the gateway refuses (``validate``, the gateway's own check: a
    row without messages is its 400, so it is never scored or routed here either)."""
    import json

    from . import errors, validate

    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            rid = row = body = None
            try:
                row = json.loads(line)
                rid = row.get("id") if isinstance(row, dict) else None
                body = body_of(row)
                (validate.chat if endpoint == "chat" else validate.embeddings)(body)
            except errors.GatewayError as exc:
                yield number, rid, row, body, {"error": f"line {number}: {exc.message}", "status": exc.status}
                continue
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                yield number, rid, row, body, {"error": f"line {number}: {type(exc).__name__}: {exc}"}
                continue
            yield number, rid, row, body, None


_SHOWN_SKIPS = 10


def _calibrate(args: argparse.Namespace, cfg, headers: dict[str, str], caller, now: float, classifier) -> int:
    """--curve / --target-share on --jsonl FILE: stdout gets only the curve (one JSON object per
    point) or the threshold and its config snippet; a row that cannot count (not a request, refused by
    the gateway, a label other than simple|complex for --curve) is skipped and told on stderr; no
    usable row at all is exit 2."""
    import json

    from . import calibration, errors

    from .policy import SURFACE_HEADER

    if args.surface and args.surface not in cfg.surfaces and headers.get(SURFACE_HEADER) == args.surface:
        # a surface still to be configured: its rows are routed as the config routes them today (under no
        # surface) and grouped under its name, as a row's own unconfigured 'surface' is
        headers = {k: v for k, v in headers.items() if k != SURFACE_HEADER}
        print(f"extproc explain: surface {args.surface!r} is not in {cfg.source}: its rows are routed under no "
              "surface and grouped by that name", file=sys.stderr)
    rows: list[calibration.Scored] = []
    skipped: list[tuple[int, object, str]] = []
    for number, rid, row, body, problem in _rows(args.jsonl, args.endpoint):
        why = None
        if problem is not None:
            why = problem["error"].partition(": ")[2] or problem["error"]     # without "line N: "
            if "status" in problem:
                why = f"the gateway refuses it: {problem['status']} {why}"
        label = row.get("label") if isinstance(row, dict) else None
        if why is None and args.curve and label not in calibration.LABELS:
            why = (f"label {label!r} is not 'simple' or 'complex'" if "label" in row
                   else "no 'label' (simple|complex)")
        if why is None:
            group = args.surface or (row.get("surface") if isinstance(row.get("surface"), str) else None)
            try:
                row_headers = _row_headers(cfg, row, headers)
                rows.append(calibration.scored(cfg, body, args.endpoint, row_headers, classifier.classify(body),
                                               label if label in calibration.LABELS else None, group,
                                               now=now, caller=caller))
            except errors.GatewayError as exc:
                why = f"the gateway refuses it: {exc.status} {exc.message}"
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                why = f"{type(exc).__name__}: {exc}"
        if why is not None:
            skipped.append((number, rid, why))
    for number, rid, why in skipped[:_SHOWN_SKIPS]:
        print(f"extproc explain: line {number}{'' if rid is None else f' (id {rid!r})'}: skipped: {why}",
              file=sys.stderr)
    if len(skipped) > _SHOWN_SKIPS:
        print(f"extproc explain: ... and {len(skipped) - _SHOWN_SKIPS} more skipped", file=sys.stderr)
    if not rows:
        print(f"extproc explain: {args.jsonl}: no usable row ({len(skipped)} skipped)", file=sys.stderr)
        return 2
    if skipped:
        print(f"extproc explain: {len(skipped)} row(s) skipped, {len(rows)} counted", file=sys.stderr)
    fixed = sum(not r.moves for r in rows)
    if fixed:
        print(f"extproc explain: {fixed} row(s) have a routing class of their own (fixed_share): no threshold "
              f"moves them", file=sys.stderr)
    if args.curve:
        for point in calibration.curve(rows):
            sys.stdout.write(json.dumps(point) + "\n")
        return 0
    print(_target_share(cfg, rows, args.target_share, args.jsonl))
    return 0


def _target_share(cfg, rows, share: float, source: str) -> str:
    """--target-share: per group of rows (a surface, or the rows under none), the threshold whose
    premium share is nearest ``share``, what it gives on the file, and the config lines that set it."""
    from . import calibration

    names = getattr(cfg.classifier, "classes", None) or {}
    reasoning = names.get("reasoning", "complex_reasoning")
    out = [f"target premium share {share:.2f} on {len(rows)} rows of {source} (config {cfg.source}):"]
    surfaces: list[str] = []
    bare = None
    for group, members in calibration.groups(rows).items():
        if group is None:
            members = [r for r in rows if r.surface is None]
            if not members:
                continue
        name = group or "rows under no surface"
        if all(not r.moves or r.floored == r.premium_above for r in members):
            always = calibration.point(members, 0.0)["premium_share"]
            out.append(f"  {name} ({len(members)} rows): no threshold changes these rows (premium share "
                       f"{always:.3f} at every threshold: a quality floor, a class of their own, or no premium model)")
            continue
        t = calibration.threshold_for_share(members, share)
        p = calibration.point(members, t)
        line = (f"  {name} ({p['n']} rows): premium_threshold {t:.4f} -> premium share {p['premium_share']:.3f}")
        if p["right"] is not None:
            line += f", right {p['right']:.3f}"
        if p["saving"] is not None:
            line += f", saving {p['saving']:.3f}"
        if p["floor_premium_share"] > share:
            line += (f"  (out of reach: {p['floor_premium_share']:.3f} of these rows are premium at every "
                     "threshold, by a quality floor or a class of their own)")
        if group is not None and group not in cfg.surfaces:
            line += "  (not a surface of this config yet: add it)"
        out.append(line)
        if group is None:
            bare = t
        else:
            surfaces.append(f"  {group}:\n    premium_threshold: {t:.4f}")
    if not surfaces and bare is None:
        return "\n".join(out)
    out.append("\nset it in the routing config:\n")
    if surfaces:
        out.append("surfaces:\n" + "\n".join(surfaces))
    if bare is not None:
        # rows under no surface: the classifier's cut names simple/reasoning, the reasoning class's band
        # cuts the other kinds (code, tools, ...); the curve's threshold is both
        out.append(f"classifier:\n  premium_threshold: {bare:.4f}\nrouting_rules:\n  {reasoning}:\n"
                   f"    min_score: {bare:.4f}   # keep equal to classifier.premium_threshold")
    return "\n".join(out)


def _served_by(cfg, spec: str, body: dict, route_class: str | None):
    """--served-by MODEL[@CLASS]: the pin of a conversation whose last turn MODEL served."""
    from .affinity import Pin
    from .cost import prompt_tokens

    model_id, _, cls = spec.partition("@")
    if model_id not in cfg.models:
        raise ValueError(f"--served-by: unknown model {model_id!r}")
    msgs = body.get("messages") if isinstance(body.get("messages"), list) else []
    prev = prompt_tokens({**body, "messages": msgs[:-1]}) if len(msgs) > 1 else 0
    return Pin(model_id, cls or route_class, prev, float("inf"))


def _row_headers(cfg, row: dict, headers: dict[str, str]) -> dict[str, str]:
    """The headers a --jsonl row is routed with: the command's, plus the row's ``surface`` as the
    x-llm-surface header when the config defines that surface and the command named none (a surface
    the config does not know is only the row's group in the curve)."""
    from .policy import SURFACE_HEADER

    surface = row.get("surface")
    if isinstance(surface, str) and surface in cfg.surfaces and SURFACE_HEADER not in headers:
        return {**headers, SURFACE_HEADER: surface}
    return headers


def _keys(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import keys

    if args.keys_command == "revoke":
        path = Path(args.file)
        try:
            text = path.read_text(encoding="utf-8")
            entries = keys.parse_keys(text, str(path))
        except (OSError, keys.KeyFileError) as exc:
            print(f"extproc keys revoke: {exc}", file=sys.stderr)
            return 1
        gone = [e for e in entries.values() if args.key in (e.id, e.sha256)]
        if not gone:
            print(f"extproc keys revoke: no key with id or sha256 {args.key!r} in {path}", file=sys.stderr)
            return 1
        kept = keys.without(text, gone[0])
        keys.parse_keys(kept, str(path))   # still a valid key file
        path.write_text(kept, encoding="utf-8")
        print(f"revoked key {gone[0].id} (tenant {gone[0].tenant}) in {path}; the gateway drops it within a "
              f"second of the file changing (edit the Secret the file comes from, where it is one)")
        return 0

    try:
        cfg = _routing_config(args.config)
    except routing_config.ConfigError as exc:
        print(f"extproc keys create: invalid config: {exc}", file=sys.stderr)
        return 2
    split = (lambda v: None if v is None else frozenset(x.strip() for x in v.split(",") if x.strip()))
    key = keys.new_key()
    entry = keys.KeyEntry(id=args.id or f"{args.tenant}-{keys.secrets.token_hex(4)}", tenant=args.tenant,
                          sha256=keys.digest(key), surfaces=split(args.surfaces), workloads=split(args.workloads),
                          requests_per_minute=args.requests_per_minute, tokens_per_minute=args.tokens_per_minute)
    line = entry.line(created=keys.today())
    try:
        keys.parse_keys("keys:\n" + line + "\n")   # the line is what the gateway will read
        keys.caller(cfg, entry)                      # and the routing config can serve the key
    except (keys.KeyFileError, ValueError) as exc:
        print(f"extproc keys create: {exc} ({cfg.source})", file=sys.stderr)
        return 2
    if args.file:
        path = Path(args.file)
        text = path.read_text(encoding="utf-8") if path.exists() else "keys:\n"
        try:
            keys.parse_keys(text + line + "\n", str(path))
        except keys.KeyFileError as exc:
            print(f"extproc keys create: {exc}", file=sys.stderr)
            return 1
        path.write_text(text + ("" if text.endswith("\n") else "\n") + line + "\n", encoding="utf-8")
    print(f"key: {key}\n"
          f"(shown once: hand it to tenant {args.tenant!r}; the gateway keeps only its sha256)\n"
          + (f"added to {args.file}:\n" if args.file else "add this line under 'keys:' in the key file:\n")
          + line)
    return 0


def _describe(classification) -> str:
    # "kind": the classifier's name for the request (code, tool_use ...) is not always a routing class;
    # the class line below says which class routes it and why
    if classification is None:
        return "(extproc.classify not available: the default class applies)"
    feats = ", ".join(f"{k}={v}" for k, v in list((classification.get("features") or {}).items())[:8])
    return (f"kind {classification['name']}, score {classification['score']:.3f} "
            f"(confidence {classification['confidence']:.2f}){'; ' + feats if feats else ''}")


def _class_origin(cfg, body: dict, c, plan) -> str:
    """Why the plan's routing class, when the classifier's kind is not simply it."""
    if plan.route_class is None or c is None or body.get("model") in cfg.classes or c.name == plan.route_class:
        return ""
    s = cfg.surfaces.get(plan.surface) if plan.surface else None
    t = getattr(s, "premium_threshold", None)
    if t is not None:
        return f"  (score {c.score:.3f} {'>=' if c.score >= t else '<'} surface {plan.surface}'s premium_threshold {t})"
    if c.name not in cfg.classes:
        return f"  (by the score's band: kind {c.name!r} has no routing class of its own)"
    return ""


def _check(args: argparse.Namespace) -> int:
    import subprocess
    import tempfile
    from pathlib import Path

    from . import envoy_config
    from .devstack import envoy_binary

    problems: list[str] = []
    try:
        cfg = _routing_config(args.config)
    except routing_config.ConfigError as exc:
        print(f"extproc check: routing config: {exc}", file=sys.stderr)
        return 1
    envoy_path = Path(args.envoy) if args.envoy else envoy_config.DEFAULT_PATH
    try:
        envoy = envoy_config.load(envoy_path)
        clusters = envoy_config.clusters(envoy)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"extproc check: {envoy_path}: cannot read the Envoy config: {exc}", file=sys.stderr)
        return 1
    routed = _matcher_clusters(envoy)
    used = {m.provider.name: m.provider for m in cfg.models.values()}
    for name, provider in sorted(used.items()):
        if provider.cluster not in clusters:
            problems.append(f"{cfg.source}: providers.{name}: cluster {provider.cluster!r} is not defined in "
                            f"{envoy_path} (clusters: {', '.join(sorted(clusters))})")
        elif routed is not None and provider.cluster not in routed:
            problems.append(f"{cfg.source}: providers.{name}: cluster {provider.cluster!r} is not in the route's "
                            f"x-llm-try-N matcher in {envoy_path}, so Envoy cannot send an attempt there")
    if not args.no_envoy_validate:
        try:
            binary = envoy_binary()
        except RuntimeError as exc:
            problems.append(str(exc))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                result = subprocess.run([binary, "--mode", "validate", "-c", str(envoy_path), "--log-level", "error",
                                         "--base-id", str(os.getpid() % 60000 + 1000)], capture_output=True,
                                        text=True, timeout=120, cwd=tmp)
            if result.returncode != 0:
                tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
                problems.append(f"{envoy_path}: envoy --mode validate failed: " + " | ".join(tail))
    if problems:
        for problem in problems:
            print(f"extproc check: {problem}", file=sys.stderr)
        return 1
    print(f"ok: {cfg.source} ({len(cfg.models)} models, {len(cfg.classes)} routing classes) and {envoy_path} "
          f"({len(clusters)} clusters{'' if args.no_envoy_validate else ', envoy --mode validate OK'})")
    return 0


def _matcher_clusters(envoy: dict) -> set[str] | None:
    """Clusters named by ClusterActions in the route's matcher, or None if the config has no such matcher."""
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if str(node.get("@type", "")).endswith("ClusterAction") and "cluster" in node:
                found.add(node["cluster"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(envoy.get("static_resources", {}).get("listeners", []))
    return found or None


if __name__ == "__main__":
    sys.exit(main())
