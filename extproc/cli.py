"""``extproc`` command line: serve, simulate, dev, envoy-config."""

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

    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll is noise
    return {"serve": _serve, "simulate": _simulate, "dev": _dev, "envoy-config": _envoy_config}[args.command](args)


def _serve(args: argparse.Namespace) -> int:
    from .gateway import Gateway
    from .server import serve

    if not args.config:
        print(f"extproc serve: give --config or set {routing_config.CONFIG_ENV}", file=sys.stderr)
        return 2
    try:
        cfg = routing_config.load(args.config)
    except routing_config.ConfigError as exc:
        print(f"extproc serve: invalid config: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(Gateway(cfg), args.listen, args.grace, status_address=args.status_listen))
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

    stack = Stack(routing=args.config or DEFAULT_ROUTING, listen_port=args.port)
    stack.start()
    simulated = ", ".join(f"{n} (127.0.0.1:{p})" for n, p in stack.simulators.items()) or "none"
    print(f"LLM gateway on {stack.base_url}  (Envoy admin 127.0.0.1:{stack.admin_port}, "
          f"extproc 127.0.0.1:{stack.extproc_port})\nsimulated providers: {simulated}\n"
          f"logs: {stack.workdir}/stack.log   Ctrl-C to stop", flush=True)
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


if __name__ == "__main__":
    sys.exit(main())
