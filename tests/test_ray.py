"""The cluster waiter (lro_grpc.ray) on a local Ray, against the emulator.

Ray starts once for these tests (the ``local_ray`` fixture: ``ray.init(num_cpus=2)``);
the emulator runs in the test process and counts, at the server, every
GetOperation and ListOperations with its arrival time. Tasks run on Ray's
workers; they connect by name or get the waiter handle as an argument.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_sweep import start_instances

from lro_grpc import AsyncOperationsClient, BatchTimeoutError, InvalidNameError
from lro_grpc.emulator import Emulator
from lro_grpc.emulator import _server as emulator_server
from lro_grpc.names import FINANCIAL_SERVICES_LOCATIONS
from lro_grpc.policies import PollPolicy
from lro_grpc.types import financialservices_v1 as fs

ray = pytest.importorskip("ray")
lro_ray = pytest.importorskip("lro_grpc.ray")
ClusterWaiter = lro_ray.ClusterWaiter

# Ray's workers cannot import this test module: its tasks travel by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.usefixtures("local_ray")

POLL = PollPolicy(initial=0.5, multiplier=1.0, maximum=0.5, jitter=0.0)
LOCATIONS = list(FINANCIAL_SERVICES_LOCATIONS[:8])


class ServerCalls:
    """GetOperation and ListOperations the emulator served: per name, and when each arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_method: collections.Counter[str] = collections.Counter()
        self.gets: collections.Counter[str] = collections.Counter()
        self.times: list[float] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        counter = self

        def counted(method: str) -> Any:
            original = getattr(emulator_server.OperationsService, method)

            async def serve(service: Any, request: Any, context: Any) -> Any:
                with counter.lock:
                    counter.by_method[method] += 1
                    counter.times.append(time.monotonic())
                    if method == "GetOperation":
                        counter.gets[request.name] += 1
                return await original(service, request, context)

            return serve

        for method in ("GetOperation", "ListOperations"):
            monkeypatch.setattr(emulator_server.OperationsService, method, counted(method))

    def reset(self) -> None:
        with self.lock:
            self.by_method.clear()
            self.gets.clear()
            self.times.clear()

    def busiest_second(self) -> int:
        """The most calls that arrived within any one second."""
        times = sorted(self.times)
        most = 0
        first = 0
        for last, at in enumerate(times):
            while times[first] < at - 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most


@pytest.fixture
def server_calls(monkeypatch: pytest.MonkeyPatch) -> ServerCalls:
    calls = ServerCalls()
    calls.install(monkeypatch)
    return calls


@pytest.fixture
def actor_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh actor name per test; the actors are ended after it."""
    name = f"waiter-{request.node.name[:40]}-{os.getpid()}"
    yield name
    for candidate in [name, *(f"{name}-{index}" for index in range(4))]:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(candidate), no_restart=True)


def start_operations(target: str, durations: list[float], *, project: str) -> list[str]:
    """Financial Services operations over the eight locations (every seventh one fails), started concurrently."""
    return asyncio.run(start_instances(target, durations, project=project))


def quarters(names: list[str]) -> list[list[str]]:
    size = len(names) // 4
    return [names[index * size : (index + 1) * size] for index in range(4)]


@ray.remote(num_cpus=0.25)
def wait_in_task(waiter: Any, names: list[str]) -> list[tuple[str, bool, bool]]:
    """A task waiting with a handle it was given: (name, done, failed) in the order of ``names``."""
    results = waiter.wait_all(names, timeout=600)
    return [(op.name, op.done, op.failed) for op in results]


@ray.remote(num_cpus=0.25)
def stream_in_task(actor: str, names: list[str]) -> list[str]:
    """A task that connects by name and reads ``as_completed``: the names in the order they came."""
    waiter = ClusterWaiter.connect(name=actor)
    return [op.name for op in waiter.as_completed(names, timeout=600)]


# ----------------------------------------------------------------------------- the cluster at work


@pytest.mark.timeout(900)  # about a minute alone; several while other suites load the machine
def test_four_tasks_share_one_actor_sweeps_and_budget(server_calls: ServerCalls, actor_name: str) -> None:
    total = 6000
    qps = 900.0
    rng = random.Random(15)
    with Emulator(speed=0) as emu:
        # One process first, for the figures to compare with: the same number of operations,
        # finishing over the same simulated seconds, with the same client options.
        single_names = start_operations(emu.target, [rng.uniform(1, 6) for _ in range(total)], project="single")
        server_calls.reset()
        emu.set_speed(1)

        async def single() -> int:
            async with AsyncOperationsClient(emu.target, batch_qps=qps, poll_policy=POLL) as client:
                return len(await client.wait_all(single_names, timeout=600))

        assert asyncio.run(single()) == total
        single_lists = server_calls.by_method["ListOperations"]

        emu.set_speed(0)
        names = start_operations(emu.target, [rng.uniform(1, 6) for _ in range(total)], project="cluster")
        waiter = ClusterWaiter.connect(emu.target, name=actor_name, batch_qps=qps, poll_policy=POLL)
        server_calls.reset()
        emu.set_speed(1)
        parts = quarters(names)
        results = ray.get([wait_in_task.remote(waiter, part) for part in parts], timeout=800)
        stats = waiter.stats()

    for part, result in zip(parts, results, strict=True):
        assert [name for name, _, _ in result] == part
        assert all(done for _, done, _ in result)
    failed = {name for result in results for name, _, is_failed in result if is_failed}
    assert failed == {name for index, name in enumerate(names) if index % 7 == 0}
    cluster_lists = server_calls.by_method["ListOperations"]
    assert cluster_lists <= 1.5 * single_lists, (cluster_lists, single_lists)
    # The scheduler's budget is a bucket of one token: any second holds at most qps + 1 starts,
    # and arrival at the server adds a little jitter.
    assert server_calls.busiest_second() <= qps + 2, server_calls.busiest_second()
    # The actor counts what it sent as the server counts what came (none at all when listings answered for all).
    assert stats.rpcs.get("GetOperation", 0) == server_calls.by_method["GetOperation"]
    # Four calls (a call that finds the actor busy past Ray's health checks resumes: one more).
    assert stats.calls >= 4 and stats.pending == 0


def test_results_are_typed_on_the_callers_side_and_need_no_rpc(server_calls: ServerCalls, actor_name: str) -> None:
    with Emulator(speed=1) as emu:
        names = [emu.start_operation("projects/p/locations/us-east1", duration=0.5) for _ in range(3)]
        names.append(emu.start_operation("projects/p/locations/us-east1", duration=0.5, fail=True))
        waiter = ClusterWaiter.connect(emu.target, name=actor_name, poll_policy=POLL)
        results = waiter.wait_all(names, timeout=60, response_type=fs.Instance, metadata_type=fs.OperationMetadata)
        served = server_calls.by_method.total()
        assert isinstance(results[0].result(), fs.Instance)
        assert isinstance(results[0].metadata, fs.OperationMetadata)
        assert not results[0].failed and results[3].failed and results[3].error is not None
        assert '"done": true' in results[1].to_json()
        assert server_calls.by_method.total() == served  # none of that asked the server


async def test_async_twins_from_async_code(actor_name: str) -> None:
    with Emulator(speed=1) as emu:
        names = [emu.start_operation("projects/p/locations/europe-west1", duration=0.3 * i) for i in range(6)]
        waiter = ClusterWaiter.connect(emu.target, name=actor_name, poll_policy=POLL)
        seen = [op.name async for op in waiter.as_completed_async(names, timeout=60)]
        assert sorted(seen) == sorted(names)
        results = await waiter.wait_all_async(list(reversed(names)), timeout=60)
        assert [op.name for op in results] == list(reversed(names))
        with pytest.raises(RuntimeError, match="_async twins"):
            waiter.wait_all(names)


def test_a_deadline_raises_batch_timeout_with_every_result_in_order(actor_name: str) -> None:
    with Emulator(speed=0) as emu:
        quick = emu.start_operation("projects/p/locations/us-east1", duration=0)
        stuck = emu.start_operation("projects/p/locations/us-east1", duration=3600)
        waiter = ClusterWaiter.connect(emu.target, name=actor_name, poll_policy=POLL)
        with pytest.raises(BatchTimeoutError) as raised:
            waiter.wait_all([stuck, quick], timeout=1.5)
    assert raised.value.pending_names == [stuck]
    assert [op.name for op in raised.value.results or []] == [stuck, quick]
    assert raised.value.results is not None and raised.value.results[1].done


def test_overlapping_callers_share_one_set_of_polls(server_calls: ServerCalls, actor_name: str) -> None:
    with Emulator(speed=0) as emu:
        names = [emu.start_operation("projects/p/locations/us-west1", duration=60) for _ in range(40)]
        # Polled one by one, so that each name's GetOperation count shows how often it is tracked.
        waiter = ClusterWaiter.connect(emu.target, name=actor_name, poll_policy=POLL, batch_sweep=False)
        first = stream_in_task.remote(actor_name, names[:30])
        second = wait_in_task.remote(waiter, names[10:])
        deadline = time.monotonic() + 60
        while waiter.stats().calls < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # about four polls each, on the frozen clock
        emu.advance(60)
        streamed, waited = ray.get([first, second], timeout=600)
        stats = waiter.stats()

    assert sorted(streamed) == sorted(names[:30])
    assert [name for name, _, _ in waited] == names[10:]
    # 20 names found tracked for the other caller; more if a call was resumed (its names are tracked by then).
    assert stats.shared >= 20
    overlap = [server_calls.gets[name] for name in names[10:30]]
    alone = [server_calls.gets[name] for name in names[:10] + names[30:]]
    # Tracked twice, each overlapping name would be polled about twice as often.
    assert max(overlap) <= max(alone) + 1, (overlap, alone)


# ----------------------------------------------------------------------------- faults


@pytest.mark.timeout(600)
def test_an_actor_killed_mid_batch_loses_nothing_and_repeats_nothing(actor_name: str) -> None:
    rng = random.Random(7)
    with Emulator(speed=0) as emu:
        names = start_operations(emu.target, [rng.uniform(0.5, 8) for _ in range(1200)], project="kill")
        waiter = ClusterWaiter.connect(emu.target, name=actor_name, poll_policy=POLL, batch_qps=500)
        in_task = wait_in_task.remote(waiter, names[600:])
        emu.set_speed(1)
        seen: list[str] = []
        killed = False
        for op in waiter.as_completed(names[:800], timeout=600):
            seen.append(op.name)
            if len(seen) == 200 and not killed:
                ray.kill(ray.get_actor(actor_name), no_restart=False)
                killed = True
        # A task that connects by name after the restart.
        late = ray.get(stream_in_task.remote(actor_name, names[::3]), timeout=600)
        task_results = ray.get(in_task, timeout=600)
        stats = waiter.stats()

    assert killed
    assert len(seen) == len(set(seen)) == 800
    assert set(seen) == set(names[:800])
    assert [name for name, _, _ in task_results] == names[600:]
    assert all(done for _, done, _ in task_results)
    assert len(late) == len(set(late)) and set(late) == set(names[::3])
    assert stats.restarted_actors == 1
    assert stats.resumed_calls >= 1


def test_a_restarted_actor_hands_out_its_journals_outcomes_without_an_rpc(
    server_calls: ServerCalls, actor_name: str, tmp_path: Any
) -> None:
    journal = tmp_path / "cluster.journal"
    with Emulator(speed=1) as emu:
        names = [emu.start_operation("projects/p/locations/us-east1", duration=0.2) for _ in range(20)]
        waiter = ClusterWaiter.connect(emu.target, name=actor_name, poll_policy=POLL, journal=journal)
        first = waiter.wait_all(names, timeout=60)
        time.sleep(0.5)  # the journal's group commit (within 0.1 s)
        ray.kill(ray.get_actor(actor_name), no_restart=False)
        server_calls.reset()
        again = waiter.wait_all(names, timeout=60)  # the restarted actor, on the same node
        stats = waiter.stats()
    assert [op.raw for op in again] == [op.raw for op in first]
    assert server_calls.by_method["GetOperation"] == 0
    assert stats.restarted_actors == 1


# ----------------------------------------------------------------------------- bad input


def test_unknown_api_is_refused_before_any_actor_exists(actor_name: str) -> None:
    with pytest.raises(ValueError, match="unknown api 'bigquery'"):
        ClusterWaiter.connect(api="bigquery", name=actor_name)
    with pytest.raises(ValueError, match="no cluster waiter actor named"):
        ClusterWaiter.connect(name=actor_name)  # nothing was created


def test_options_that_are_not_forwarded_are_refused(actor_name: str) -> None:
    with pytest.raises(TypeError, match="credentials"):
        ClusterWaiter.connect("127.0.0.1:1", name=actor_name, credentials=object())
    with pytest.raises(ValueError, match="batch_qps"):
        ClusterWaiter.connect("127.0.0.1:1", name=actor_name, batch_qps=-1)
    with pytest.raises(ValueError, match="exactly one of target"):
        ClusterWaiter.connect("127.0.0.1:1", api="financialservices", name=actor_name)


def test_joining_with_conflicting_options_names_both(actor_name: str) -> None:
    with Emulator() as emu, Emulator() as other:
        ClusterWaiter.connect(emu.target, name=actor_name, batch_qps=50)
        with pytest.raises(ValueError) as raised:
            ClusterWaiter.connect(other.target, name=actor_name, batch_qps=50)
        assert emu.target in str(raised.value) and other.target in str(raised.value)
        with pytest.raises(ValueError, match=re.escape("batch_qps 50 (running) vs 80 (asked)")):
            ClusterWaiter.connect(emu.target, name=actor_name, batch_qps=80)
        joined = ClusterWaiter.connect(name=actor_name)  # no settings: joins what runs
        assert joined.actor_names == [actor_name]
        assert ray.get_actor(actor_name) is not None  # operators find it by its name


def test_a_conflict_on_one_shard_creates_no_other_shard(actor_name: str) -> None:
    with Emulator() as emu, Emulator() as other:
        ClusterWaiter.connect(emu.target, name=f"{actor_name}-0")  # shard 0 of 2, as another job made it
        with pytest.raises(ValueError, match=re.escape(f"{actor_name}-0")):
            ClusterWaiter.connect(other.target, name=actor_name, shards=2)
        with pytest.raises(ValueError, match="no cluster waiter actor named"):
            ClusterWaiter.connect(name=f"{actor_name}-1")  # nothing was created


def test_an_invalid_name_is_raised_in_the_caller_before_the_actor_sees_it(actor_name: str) -> None:
    with Emulator() as emu:
        waiter = ClusterWaiter.connect(emu.target, name=actor_name)
        good = emu.start_operation("projects/p/locations/us-east1", duration=0)
        with pytest.raises(InvalidNameError, match="not-an-operation"):
            waiter.as_completed([good, "not-an-operation"])
        with pytest.raises(InvalidNameError):
            waiter.wait_all(["projects/p/locations/us-east1/operations/"])
        assert waiter.stats().calls == 0


# ----------------------------------------------------------------------------- sharding, pickling


@pytest.mark.timeout(600)
def test_shards_split_scopes_and_the_budget(server_calls: ServerCalls, actor_name: str) -> None:
    with Emulator(speed=1) as emu:
        names = start_operations(emu.target, [0.5 + 0.01 * i for i in range(160)], project="shards")
        waiter = ClusterWaiter.connect(emu.target, name=actor_name, shards=3, batch_qps=60, poll_policy=POLL)
        results = waiter.wait_all(names, timeout=600)
        stats = waiter.stats()
    assert [op.name for op in results] == names
    assert waiter.actor_names == [f"{actor_name}-{index}" for index in range(3)]
    per_shard = [shard["calls"] for shard in stats.shards]
    busy = [count for count in per_shard if count]
    # One call to each shard that had names, and one more only where this handle resumed a call (a
    # stream that failed under load is asked again: resumed_calls counts those).
    assert len(busy) >= 2
    assert sum(busy) - len(busy) <= stats.resumed_calls, (per_shard, stats.resumed_calls)
    for location in LOCATIONS:  # a scope is tracked by one shard only
        owners = {lro_ray._settings.shard_of(n, 3) for n in names if f"/locations/{location}/" in n}
        assert len(owners) == 1
    settings = [ray.get(ray.get_actor(name).settings.remote()) for name in waiter.actor_names]
    assert all(dict(each.options)["batch_qps"] == 20.0 for each in settings)


def test_import_lro_grpc_does_not_import_ray() -> None:
    code = (
        "import sys, lro_grpc, lro_grpc.aio, lro_grpc.client, lro_grpc._batch;"
        "from lro_grpc import OperationsClient, AsyncOperationsClient;"
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(("blocking", "twin"), [("as_completed", "as_completed_async"), ("wait_all", "wait_all_async")])
def test_async_twins_take_the_same_arguments(blocking: str, twin: str) -> None:
    import inspect

    signature = inspect.signature(getattr(ClusterWaiter, blocking))
    twin_signature = inspect.signature(getattr(ClusterWaiter, twin))
    assert list(signature.parameters.values()) == list(twin_signature.parameters.values())
