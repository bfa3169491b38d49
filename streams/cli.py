"""`acreage` command line: worker, broker, keys, replay, status."""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import subprocess
import sys
from pathlib import Path

from streams.allocator import start_tuned
from streams.cli_errors import DEBUG_ENV, Parser, describe, one_line
from streams.settings import Settings

BROKER_SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "broker.sh"


def main(argv: list[str] | None = None) -> int:
    """Every failure is one line on stderr (see streams/cli_errors.py)."""
    try:
        return _run(_parser().parse_args(argv))
    except (Exception, KeyboardInterrupt) as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        message, status = describe(exc)
        print(f"acreage: {one_line(message)}", file=sys.stderr)
        return status


def _parser() -> Parser:
    from streams.replay import add_arguments

    parser = Parser(prog="acreage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a metering worker with the API (ACREAGE_* settings)")
    broker = sub.add_parser("broker", help="embedded Kafka broker: fetch|start|stop|status")
    broker.add_argument("action", choices=["fetch", "start", "stop", "status"])
    broker.add_argument("--data-dir", default=".data/kafka")
    broker.add_argument("--port", default="9092")
    keys = sub.add_parser(
        "keys", help="an owner's API keys: create (prints a new key once), list, revoke"
    )
    keys.add_argument("action", choices=["create", "list", "revoke"])
    keys.add_argument("--owner", required=True, help="the apiOwner the keys are of")
    keys.add_argument("--key-id", help="revoke: the key's id, as `list` shows it")
    keys.add_argument("--json", action="store_true", help="list: machine-readable output")
    keys.add_argument("--timeout", type=float, default=10.0,
                      help="revoke: seconds to wait for a worker to write it")
    _broker_flag(keys)
    replay = sub.add_parser("replay", help="publish events from GeoJSON or JSONL to Kafka")
    add_arguments(replay)
    _broker_flag(replay)
    status = sub.add_parser(
        "status", help="per partition: assigned member, committed and end offsets, lag"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    _broker_flag(status)
    return parser


def _broker_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        default=None,
        help="Kafka bootstrap, Faust URL form (default: ACREAGE_BROKER, as the worker)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    """The worker's settings; `--broker` overrides only the broker."""
    broker = getattr(args, "broker", None)
    return Settings(broker=broker) if broker else Settings()


def _run(args: argparse.Namespace) -> int:
    if args.command == "worker":
        start_tuned()
        return run_worker(Settings())
    _quiet_libraries()
    if args.command == "broker":
        return _broker(args)
    if args.command == "keys":
        return _keys(args)
    if args.command == "status":
        from streams.status import run_status

        return run_status(_settings(args), args.json, args.timeout)
    from streams.replay import run

    return run(args, _settings(args))


def _keys(args: argparse.Namespace) -> int:
    from streams import keys_cli
    from streams.cli_errors import EXIT_USAGE, CliError

    settings = _settings(args)
    if args.action == "create":
        return keys_cli.create(settings, args.owner)
    if args.action == "list":
        return keys_cli.list_keys(settings, args.owner, args.json)
    if not args.key_id:
        raise CliError("keys revoke needs --key-id (see acreage keys list)", EXIT_USAGE)
    return keys_cli.revoke(settings, args.owner, args.key_id, args.timeout)


def _quiet_libraries() -> None:
    """aiokafka logs each refused connection; with no handler configured Python prints
    those records to stderr, which would break the one-line error. The worker sets
    up its own logging, and ACREAGE_DEBUG=1 keeps the libraries' records."""
    if os.environ.get(DEBUG_ENV) != "1":
        logging.getLogger().addHandler(logging.NullHandler())


def _broker(args: argparse.Namespace) -> int:
    cmd = ["bash", str(BROKER_SCRIPT), args.action]
    if args.action != "fetch":
        cmd += ["--data-dir", args.data_dir]
    if args.action == "start":
        cmd += ["--port", args.port]
    return subprocess.call(cmd, env=os.environ.copy())


def run_worker(settings: Settings) -> int:
    """Runs until SIGINT/SIGTERM; only a clean exit vouches for the local table files.

    A stop request arms a deadline (`streams.shutdown`): with the broker down the
    graceful stop never ends, and the process hard-exits non-zero instead, without the
    marker. A stall healed by the watchdog also ends non-zero, without the marker.
    """
    import faust

    from streams.app import create_app
    from streams.logs import logging_config
    from streams.shutdown import DEADLINE
    from streams.state_guard import close_state_dir, open_state_dir
    from streams.topics import ensure_topics

    class Worker(faust.Worker):
        def _on_sigint(self) -> None:
            DEADLINE.arm()
            super()._on_sigint()

        def _on_sigterm(self) -> None:
            DEADLINE.arm()
            super()._on_sigterm()

    config = logging_config(settings.log_level, settings.log_burst, settings.log_window_seconds)
    logging.config.dictConfig(config)
    ensure_topics(settings)
    rt = create_app(settings)
    open_state_dir(settings.data_dir, Path(rt.app.conf.tabledir))
    worker = Worker(rt.app, loglevel=settings.log_level, logging_config=config, quiet=True)
    # The start-up spinner sets the root logger to DEBUG, which makes every library
    # build debug records it then drops: ~8 % of a busy worker's CPU.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        DEADLINE.disarm()
        if DEADLINE.failure is not None:
            return DEADLINE.failure
        if exc.code in (0, None):
            close_state_dir(settings.data_dir)
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
