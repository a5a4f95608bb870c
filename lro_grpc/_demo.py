"""``lro-grpc demo``: a batch of operations against an in-process emulator, start to finish.

The demo starts the emulator on a free loopback port with a fast simulated
clock, starts a few hundred ``AML.CreateInstance`` operations spread over the
Financial Services locations and a few ``ServiceManager.CreateServiceRollout``
operations (through the generated stubs, as a backend job would), asks for one
of them to be cancelled and one to fail, waits for all of them with the batch
waiter, deletes the finished Financial Services records (Service Management
offers no delete) and prints what happened. Every figure it
prints is measured in the run that prints it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import grpc
from google.longrunning import operations_pb2
from google.rpc import code_pb2

from lro_grpc._json import operation_to_dict
from lro_grpc._progress import operation_state, wait_all_with_progress
from lro_grpc.names import FINANCIAL_SERVICES_LOCATIONS
from lro_grpc.operation import Operation
from lro_grpc.policies import PollPolicy

if TYPE_CHECKING:
    from lro_grpc.client import OperationsClient

__all__ = ["DemoConfig", "DemoReport", "add_arguments", "config_from_args", "run", "run_demo"]

_DURATION_HEADER = "x-emulator-duration-seconds"
_OUTCOME_HEADER = "x-emulator-outcome"
_CREATE_RPC_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """What the demo creates and how fast its simulated world runs.

    Attributes:
        instances: ``AML.CreateInstance`` operations to start (at least 3: one
            is cancelled and one fails).
        rollouts: ``ServiceManager.CreateServiceRollout`` operations to start.
        speed: simulated seconds per real second on the emulator's clock.
        min_duration: shortest simulated duration of an operation, seconds.
        max_duration: longest simulated duration of an operation, seconds.
        timeout: real seconds to wait for the whole batch before giving up.
        poll_interval: real seconds between two polls of one operation (the
            clock runs ``speed`` times faster than real time, so the APIs'
            presets of 5 to 45 s would be minutes of simulated time).
        project: the Google Cloud project id in the names.
        seed: random seed for the durations (``None``: a fresh one each run).
    """

    instances: int = 300
    rollouts: int = 5
    speed: float = 100.0
    min_duration: float = 60.0
    max_duration: float = 300.0
    timeout: float = 60.0
    poll_interval: float = 0.5
    project: str = "demo-project"
    seed: int | None = None

    def __post_init__(self) -> None:
        for field, minimum in (("instances", 3), ("rollouts", 0)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{field} must be an int, got {value!r}")
            if value < minimum:
                raise ValueError(f"{field} must be >= {minimum}, got {value!r}")
        for field in ("speed", "min_duration", "max_duration", "timeout", "poll_interval"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{field} must be a number, got {value!r}")
            if not value > 0 or value == float("inf"):
                raise ValueError(f"{field} must be a finite number > 0, got {value!r}")
        if self.max_duration < self.min_duration:
            raise ValueError(f"max_duration ({self.max_duration!r}) must be >= min_duration ({self.min_duration!r})")
        if not isinstance(self.project, str) or not self.project or "/" in self.project:
            raise ValueError(f"project must be a non-empty id without '/', got {self.project!r}")


@dataclasses.dataclass
class DemoReport:
    """What one run of the demo measured.

    Attributes:
        target: the emulator's ``host:port``.
        created: operations started, by API short name.
        created_per_location: Financial Services operations started, by location.
        create_seconds: real seconds spent starting them.
        cancelled_name: the operation the demo asked to cancel.
        failed_name: the operation the demo asked to fail.
        outcomes: finished operations by outcome (``succeeded``, ``failed``,
            ``cancelled``), plus ``timed_out`` for those not done in time.
        wait_seconds: real seconds from the start of the wait to the last operation done.
        wait_polls: GetOperation calls (retries included) made while waiting.
        deleted: Financial Services records deleted after the wait.
        remaining_after_delete: operations the list RPC still returned afterwards.
        rpcs: RPCs issued by the demo, by method name.
        elapsed_seconds: real seconds for the whole demo, emulator start-up included.
        simulated_seconds: simulated seconds that passed on the emulator's clock.
        failure: the failed operation's error, as REST JSON.
        sample: one finished operation as REST JSON, as the API documentation shows it.
    """

    target: str = ""
    created: dict[str, int] = dataclasses.field(default_factory=dict)
    created_per_location: dict[str, int] = dataclasses.field(default_factory=dict)
    create_seconds: float = 0.0
    cancelled_name: str = ""
    failed_name: str = ""
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    wait_seconds: float = 0.0
    wait_polls: int = 0
    deleted: int = 0
    remaining_after_delete: int = 0
    rpcs: dict[str, int] = dataclasses.field(default_factory=dict)
    elapsed_seconds: float = 0.0
    simulated_seconds: float = 0.0
    failure: dict[str, Any] | None = None
    sample: dict[str, Any] | None = None


class _RpcCounter:
    """Counts RPC attempts by method name; shared by the sync and asyncio channels (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()

    def count(self, method: object) -> None:
        name = (method.decode() if isinstance(method, bytes) else str(method)).rsplit("/", 1)[-1]
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _CountingInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Counts every unary RPC attempt made through a synchronous channel."""

    def __init__(self, counter: _RpcCounter) -> None:
        self._counter = counter

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        self._counter.count(client_call_details.method)
        return continuation(client_call_details, request)


class _AsyncCountingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Counts every unary RPC attempt made through an asyncio channel."""

    def __init__(self, counter: _RpcCounter) -> None:
        self._counter = counter

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        self._counter.count(client_call_details.method)
        return await continuation(client_call_details, request)


@dataclasses.dataclass(frozen=True)
class _Planned:
    """One operation the demo will start."""

    api: str
    request: Any
    duration: float
    outcome: str
    location: str = ""


def _plan(config: DemoConfig, rng: random.Random) -> list[_Planned]:
    from lro_grpc._generated import financialservices_v1_pb2 as fs
    from lro_grpc._generated import servicemanagement_v1_pb2 as sm

    batch = uuid.uuid4().hex[:8]
    planned: list[_Planned] = []
    for index in range(config.instances):
        location = FINANCIAL_SERVICES_LOCATIONS[index % len(FINANCIAL_SERVICES_LOCATIONS)]
        parent = f"projects/{config.project}/locations/{location}"
        instance = fs.Instance(
            kms_key=f"projects/{config.project}-kms/locations/{location}/keyRings/aml/cryptoKeys/instance-{index:04d}"
        )
        request = fs.CreateInstanceRequest(
            parent=parent, instance_id=f"aml-{batch}-{index:04d}", instance=instance, request_id=str(uuid.uuid4())
        )
        planned.append(
            _Planned(
                api="financialservices",
                request=request,
                duration=rng.uniform(config.min_duration, config.max_duration),
                outcome="success",
                location=location,
            )
        )
    for index in range(config.rollouts):
        service = f"svc-{index}.endpoints.{config.project}.cloud.goog"
        rollout = sm.Rollout(
            rollout_id=f"{time.strftime('%Y-%m-%d', time.gmtime())}r{index}-{batch}",
            traffic_percent_strategy=sm.Rollout.TrafficPercentStrategy(percentages={f"config-{batch}": 100.0}),
        )
        request = sm.CreateServiceRolloutRequest(service_name=service, rollout=rollout)
        planned.append(
            _Planned(
                api="servicemanagement",
                request=request,
                duration=rng.uniform(config.min_duration, config.max_duration),
                outcome="success",
            )
        )
    # The failing operation ends early; the cancelled one runs longest, so the
    # cancel request certainly reaches it while it is still running.
    planned[1] = dataclasses.replace(planned[1], outcome="fail", duration=config.min_duration)
    planned[0] = dataclasses.replace(planned[0], duration=config.max_duration * 2)
    return planned


def _start_operations(channel: grpc.Channel, planned: Sequence[_Planned]) -> list[str]:
    """Start every planned operation concurrently through the generated stubs; their names, in order."""
    from lro_grpc._generated import financialservices_v1_pb2_grpc, servicemanagement_v1_pb2_grpc

    aml = financialservices_v1_pb2_grpc.AMLStub(channel)
    service_manager = servicemanagement_v1_pb2_grpc.ServiceManagerStub(channel)
    futures = []
    for item in planned:
        metadata = [(_DURATION_HEADER, f"{item.duration:.3f}")]
        if item.outcome == "fail":
            metadata.append((_OUTCOME_HEADER, "fail"))
        rpc = aml.CreateInstance if item.api == "financialservices" else service_manager.CreateServiceRollout
        futures.append(rpc.future(item.request, metadata=metadata, timeout=_CREATE_RPC_TIMEOUT))
    return [str(future.result().name) for future in futures]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser`` (the ``lro-grpc demo`` sub-command)."""
    defaults = DemoConfig()
    parser.add_argument(
        "--instances",
        type=int,
        default=defaults.instances,
        metavar="N",
        help="AML.CreateInstance operations to start, spread over the locations (default: %(default)s, at least 3)",
    )
    parser.add_argument(
        "--rollouts",
        type=int,
        default=defaults.rollouts,
        metavar="N",
        help="ServiceManager.CreateServiceRollout operations to start (default: %(default)s)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=defaults.speed,
        metavar="X",
        help="simulated seconds per real second on the emulator's clock (default: %(default)s)",
    )
    parser.add_argument(
        "--min-duration",
        type=float,
        default=defaults.min_duration,
        metavar="SECONDS",
        help="shortest simulated operation duration (default: %(default)s)",
    )
    parser.add_argument(
        "--max-duration",
        type=float,
        default=defaults.max_duration,
        metavar="SECONDS",
        help="longest simulated operation duration (default: %(default)s)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=defaults.poll_interval,
        metavar="SECONDS",
        help="real seconds between two polls of one operation (default: %(default)s)",
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=defaults.timeout,
        metavar="SECONDS",
        help="give up waiting for the batch after this many real seconds (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=None, metavar="N", help="random seed for the durations")
    parser.add_argument("--no-progress", action="store_true", help="never draw the progress bar")


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    """The :class:`DemoConfig` the parsed ``lro-grpc demo`` options describe.

    Raises:
        TypeError, ValueError: an option is out of range; the message names it.
    """
    return DemoConfig(
        instances=args.instances,
        rollouts=args.rollouts,
        speed=args.speed,
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        timeout=args.wait_timeout,
        poll_interval=args.poll_interval,
        seed=args.seed,
    )


def _outcome(operation: operations_pb2.Operation) -> str:
    if not operation.done:
        return "timed_out"
    if not operation.HasField("error"):
        return "succeeded"
    return "cancelled" if operation.error.code == code_pb2.CANCELLED else "failed"


def run_demo(config: DemoConfig, *, out: TextIO, bar_stream: TextIO | None = None) -> DemoReport:
    """Run the demo: start an emulator, a batch of operations, wait, clean up; narrate on ``out``.

    Args:
        config: what to create and how fast the simulated clock runs.
        out: where the narration, the summary and the sample JSON go.
        bar_stream: a terminal to draw the progress bar on, or ``None``.

    Returns:
        Everything the run measured.
    """
    from lro_grpc.aio import AsyncOperationsClient
    from lro_grpc.client import OperationsClient
    from lro_grpc.emulator import Emulator

    def say(text: str = "") -> None:
        out.write(text + "\n")
        out.flush()

    started = time.perf_counter()
    report = DemoReport()
    rng = random.Random(config.seed)
    counter = _RpcCounter()
    with contextlib.ExitStack() as stack:
        emulator = stack.enter_context(Emulator(speed=config.speed))
        report.target = emulator.target
        simulated_start = emulator.clock.now()
        say(f"emulator listening on {emulator.target}; its clock runs {config.speed:g}x real time")

        channel = grpc.intercept_channel(grpc.insecure_channel(emulator.target), _CountingInterceptor(counter))
        stack.callback(channel.close)
        client = stack.enter_context(OperationsClient(channel, api="financialservices"))

        planned = _plan(config, rng)
        create_started = time.perf_counter()
        names = _start_operations(channel, planned)
        report.create_seconds = time.perf_counter() - create_started
        report.created = dict(collections.Counter(item.api for item in planned))
        report.created_per_location = dict(collections.Counter(item.location for item in planned if item.location))
        report.cancelled_name, report.failed_name = names[0], names[1]
        say(
            f"started {report.created.get('financialservices', 0)} AML.CreateInstance operations over "
            f"{len(report.created_per_location)} locations and {report.created.get('servicemanagement', 0)} "
            f"ServiceManager.CreateServiceRollout operations in {report.create_seconds:.2f} s "
            f"(simulated durations {config.min_duration:g}-{config.max_duration:g} s)"
        )
        say("  per location: " + ", ".join(f"{loc} {count}" for loc, count in report.created_per_location.items()))

        client.cancel(report.cancelled_name)
        say(f"asked to cancel {report.cancelled_name}")
        say(f"asked the emulator to fail {report.failed_name} (x-emulator-outcome: fail)")

        @contextlib.asynccontextmanager
        async def open_client() -> AsyncIterator[AsyncOperationsClient]:
            async_channel = grpc.aio.insecure_channel(
                emulator.target, interceptors=[_AsyncCountingInterceptor(counter)]
            )
            try:
                async with AsyncOperationsClient(async_channel, api="financialservices") as async_client:
                    yield async_client
            finally:
                await async_channel.close()

        poll_policy = PollPolicy(initial=config.poll_interval, multiplier=1.0, maximum=config.poll_interval)
        say(
            f"waiting for {len(names)} operations with the batch waiter "
            f"(each polled about every {config.poll_interval:g} s)"
        )
        polls_before = counter.snapshot().get("GetOperation", 0)
        wait_started = time.perf_counter()
        results, _ = wait_all_with_progress(
            open_client,
            names,
            timeout=config.timeout,
            poll_policy=poll_policy,
            rpc_timeout=10.0,
            registry=client.registry,
            bar_stream=bar_stream,
        )
        report.wait_seconds = time.perf_counter() - wait_started
        report.wait_polls = counter.snapshot().get("GetOperation", 0) - polls_before
        outcomes = collections.Counter(_outcome(operation) for operation in results)
        report.outcomes = {key: outcomes.get(key, 0) for key in ("succeeded", "failed", "cancelled", "timed_out")}
        say(
            f"done in {report.wait_seconds:.2f} s: {report.outcomes['succeeded']} succeeded, "
            f"{report.outcomes['failed']} failed, {report.outcomes['cancelled']} cancelled, "
            f"{report.outcomes['timed_out']} still running at the {config.timeout:g} s deadline"
        )

        by_name = dict(zip(names, results, strict=True))
        _narrate_ends(report, planned, names, by_name, client, say)
        _clean_up(report, config, planned, names, by_name, client, say)
        report.simulated_seconds = emulator.clock.now() - simulated_start
    report.rpcs = counter.snapshot()
    report.elapsed_seconds = time.perf_counter() - started
    _say_summary(report, len(names), say)
    return report


def _narrate_ends(
    report: DemoReport,
    planned: list[_Planned],
    names: list[str],
    by_name: dict[str, operations_pb2.Operation],
    client: OperationsClient,
    say: Callable[..., None],
) -> None:
    """Say how the failed and the cancelled operation ended; keep one succeeded operation's JSON."""
    failed = by_name[report.failed_name]
    if failed.HasField("error"):
        report.failure = Operation(failed, registry=client.registry).to_dict().get("error")
        say(f"the failure: {Operation(failed, registry=client.registry).error}")
    cancelled = by_name[report.cancelled_name]
    ending = (
        f"{operation_state(operation_to_dict(cancelled, client.registry))}: {cancelled.error.message}"
        if cancelled.HasField("error")
        else _outcome(cancelled)
    )
    say(f"the cancel request: {report.cancelled_name} ended {ending}")

    sample_name = next(
        (
            name
            for name, item in zip(names, planned, strict=True)
            if item.api == "financialservices" and _outcome(by_name[name]) == "succeeded"
        ),
        None,
    )
    if sample_name is not None:
        report.sample = client.get(sample_name).to_dict()


def _clean_up(
    report: DemoReport,
    config: DemoConfig,
    planned: list[_Planned],
    names: list[str],
    by_name: dict[str, operations_pb2.Operation],
    client: OperationsClient,
    say: Callable[..., None],
) -> None:
    """Delete the finished records that can be deleted, then count what the listings still return."""
    # Service Management offers no DeleteOperation: only Financial Services records are deleted.
    deletable = {name for name, item in zip(names, planned, strict=True) if item.api == "financialservices"}
    finished = [name for name in names if by_name[name].done and name in deletable]
    for name in finished:
        client.delete(name)
    report.deleted = len(finished)
    # Financial Services lists by location; Service Management by service (its filter requires serviceName).
    locations = [(f"projects/{config.project}/locations/{location}", "") for location in report.created_per_location]
    services = sorted({item.request.service_name for item in planned if item.api == "servicemanagement"})
    scopes = locations + [("operations", f"serviceName={service}") for service in services]
    report.remaining_after_delete = sum(
        1 for parent, scope_filter in scopes for _ in client.list(parent, filter=scope_filter)
    )
    say(
        f"deleted {report.deleted} finished operation records (Service Management offers no delete); "
        "ListOperations over "
        f"{len(locations)} locations and {len(services)} services now returns {report.remaining_after_delete}"
    )


def _say_summary(report: DemoReport, started: int, say: Callable[..., None]) -> None:
    """The closing summary: outcomes, RPCs, polling rate, time, and the sample operation as JSON."""
    say()
    say("summary")
    say(
        f"  operations: {started} started, "
        + ", ".join(f"{count} {key.replace('_', ' ')}" for key, count in report.outcomes.items())
    )
    say(
        f"  RPCs issued: {sum(report.rpcs.values())} ("
        + ", ".join(f"{method} {count}" for method, count in sorted(report.rpcs.items()))
        + ")"
    )
    say(
        f"  GetOperation calls while waiting: {report.wait_polls} "
        f"({report.wait_polls / started:.1f} per operation, "
        f"{report.wait_polls / report.wait_seconds:.0f} per second)"
    )
    say(f"  elapsed: {report.elapsed_seconds:.2f} s real, {report.simulated_seconds:.0f} s simulated")
    if report.sample is not None:
        say()
        say("one operation as JSON (fetched with GetOperation before the delete; the documentation's shape):")
        say(json.dumps(report.sample, indent=2, ensure_ascii=False))


def run(config: DemoConfig, *, out: TextIO, bar_stream: TextIO | None) -> int:
    """Run ``lro-grpc demo``; the exit code.

    Args:
        config: the demo's settings.
        out: where the narration and summary go.
        bar_stream: a terminal to draw the progress bar on, or ``None``.

    Returns:
        0 when every operation finished (the one failure and the one
        cancellation are part of the show), 3 when some were still running at
        the deadline.
    """
    report = run_demo(config, out=out, bar_stream=bar_stream)
    return 3 if report.outcomes.get("timed_out") else 0
