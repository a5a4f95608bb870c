"""Shared fixtures: a scripted Operations servicer on loopback, clients for it, and a channel to a module's emulator."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from both_clients import AnyClient, ClientKind
from servicer import FAST_POLL, FAST_RETRY, ScriptedOperations, serve

from lro_grpc import AsyncOperationsClient, OperationsClient
from lro_grpc._channels import EMULATOR_HOST_ENV
from lro_grpc.emulator import Emulator


@pytest.fixture(autouse=True)
def _no_ambient_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's shell may point LRO_GRPC_EMULATOR_HOST somewhere; tests set it themselves.
    monkeypatch.delenv(EMULATOR_HOST_ENV, raising=False)


@pytest.fixture
def servicer() -> ScriptedOperations:
    return ScriptedOperations()


@pytest.fixture
def target(servicer: ScriptedOperations) -> Iterator[str]:
    with serve(servicer) as address:
        yield address


@pytest.fixture
def client(target: str) -> Iterator[OperationsClient]:
    with OperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as sync_client:
        yield sync_client


@pytest.fixture
async def aclient(target: str) -> AsyncIterator[AsyncOperationsClient]:
    async with AsyncOperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as async_client:
        yield async_client


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> ClientKind:
    """Each test using it runs twice: with ``OperationsClient`` and with ``AsyncOperationsClient``."""
    return ClientKind(is_async=request.param)


@pytest.fixture
async def any_client(kind: ClientKind, target: str) -> AsyncIterator[AnyClient]:
    """A client of ``kind`` on the scripted servicer (see both_clients.py)."""
    async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as opened:
        yield opened


@pytest.fixture
def channel(emu: Emulator) -> Iterator[grpc.Channel]:
    """A channel to the ``emu`` fixture the test module defines (each sets its own clock and options)."""
    with grpc.insecure_channel(emu.target) as opened:
        yield opened


# Ray's own start-up waits 30 s for its GCS server by default; 120 s leaves room on a loaded
# 2-core machine (the cluster waiter's tests and README example start Ray). The GCS timeouts
# seen so far were not slowness, though, but a forked child aborting before it became the GCS
# server, in a process already serving gRPC: see tests/test_docs.py.
os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "120")


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """A local Ray (two CPUs) for the cluster waiter's tests, started once per session and stopped after.

    Ray is imported here, not at module level: only the tests that ask for it pay its start-up.
    """
    import ray

    ray.init(num_cpus=2, include_dashboard=False, namespace="lro-grpc-tests", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
