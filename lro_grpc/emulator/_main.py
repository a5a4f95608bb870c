"""``lro-grpc emulator`` / ``python -m lro_grpc.emulator``: run the emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta
from types import FrameType

from lro_grpc.emulator._emulator import DEFAULT_CANCEL_GRACE, DEFAULT_DURATION, Emulator
from lro_grpc.emulator._faults import Faults

__all__ = ["build_parser", "main"]


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, got {text!r}")
    return value


def build_parser(prog: str = "lro-grpc emulator") -> argparse.ArgumentParser:
    """The emulator's command-line parser."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Serve google.longrunning.Operations plus the operation-starting RPCs of Financial Services "
            "(AML) and Service Management (ServiceManager) on a simulated clock, over gRPC and, with "
            "--rest-port, over the APIs' REST routes (HTTP/JSON). Prints the gRPC target (host:port) on stdout "
            "once listening, then the REST base URL (http://host:port) if serving REST; stops on SIGINT or SIGTERM."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument(
        "--rest-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="also serve the REST routes (HTTP/JSON) on this port; 0 picks a free one (default: off)",
    )
    parser.add_argument(
        "--no-ui",
        action="store_true",
        help="with --rest-port, do not serve the operations page at /ui/ (served by default)",
    )
    parser.add_argument("--db", metavar="PATH", help="SQLite file keeping the operations (default: in memory)")
    parser.add_argument(
        "--speed",
        type=_non_negative,
        default=1.0,
        help="simulated seconds per real second; 0 freezes the clock (default: %(default)s)",
    )
    parser.add_argument(
        "--retention-days",
        type=_non_negative,
        default=30.0,
        metavar="D",
        help="simulated days a done operation stays visible (default: %(default)s)",
    )
    parser.add_argument(
        "--default-duration",
        type=_non_negative,
        default=DEFAULT_DURATION,
        metavar="S",
        help="simulated seconds an operation takes (default: %(default)s)",
    )
    parser.add_argument(
        "--cancel-grace",
        type=_non_negative,
        default=DEFAULT_CANCEL_GRACE,
        metavar="S",
        help="a cancel within S simulated seconds of the end does not stop it (default: %(default)s)",
    )
    parser.add_argument(
        "--wait-rpc",
        action="store_true",
        help="serve WaitOperation (neither emulated API offers it: by default it answers UNIMPLEMENTED)",
    )
    faults = parser.add_argument_group("fault injection (off by default)")
    faults.add_argument(
        "--fail-unavailable", type=_fraction, default=0.0, metavar="FRACTION", help="fraction of calls: UNAVAILABLE"
    )
    faults.add_argument(
        "--fail-resource-exhausted",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="fraction of calls: RESOURCE_EXHAUSTED with a RetryInfo",
    )
    faults.add_argument(
        "--retry-delay",
        type=_non_negative,
        default=1.0,
        metavar="S",
        help="RetryInfo delay sent with RESOURCE_EXHAUSTED (default: %(default)s)",
    )
    faults.add_argument("--latency-ms", type=_non_negative, default=0.0, metavar="MS", help="latency added to calls")
    faults.add_argument(
        "--list-filter",
        choices=("obey", "ignore", "reject"),
        default="obey",
        help="ListOperations filters: obey them, ignore them (list done operations too), or reject them",
    )
    faults.add_argument(
        "--list-omit-running",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="fraction of running operations left out of each ListOperations page",
    )
    faults.add_argument("--seed", type=int, default=None, metavar="N", help="seed for reproducible fault draws")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM.

    Prints the gRPC target (``host:port``) as one line on stdout once
    listening, then, with ``--rest-port``, the REST base URL (``http://host:port``).

    Args:
        argv: command-line arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 after a clean stop, 2 for bad arguments, 1 if the
        emulator could not start (port taken, unusable db).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help (0) and on bad usage (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        faults = Faults(
            unavailable=args.fail_unavailable,
            resource_exhausted=args.fail_resource_exhausted,
            retry_delay=args.retry_delay,
            latency=args.latency_ms / 1000,
            list_filter=args.list_filter,
            list_omit_running=args.list_omit_running,
            seed=args.seed,
        )
        emulator = Emulator(
            host=args.host,
            port=args.port,
            rest_port=args.rest_port,
            db=args.db,
            speed=args.speed,
            default_duration=args.default_duration,
            retention=timedelta(days=args.retention_days),
            cancel_grace=args.cancel_grace,
            wait_rpc=args.wait_rpc,
            faults=faults,
            ui=not args.no_ui,
        )
    except (TypeError, ValueError) as error:
        print(f"lro-grpc emulator: error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        try:
            emulator.start()
        except (RuntimeError, ValueError) as error:
            cause = f" ({error.__cause__})" if error.__cause__ is not None else ""
            print(f"lro-grpc emulator: error: {error}{cause}", file=sys.stderr)
            return 1
        try:
            print(emulator.target, flush=True)
            if args.rest_port is not None:
                print(emulator.rest_url, flush=True)
                if not args.no_ui:
                    print(f"operations page: {emulator.ui_url}", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            emulator.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
