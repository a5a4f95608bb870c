"""What google-api-core users leave behind: add_done_callback on both handles, client_options on for_api."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions

from lro_grpc import AsyncOperationsClient, OperationsClient, PollPolicy
from lro_grpc._client_options import resolve_client_settings
from lro_grpc.emulator import Emulator

PARENT = "projects/demo/locations/us-central1"


# --- add_done_callback, blocking handles ---------------------------------------------------------


def test_done_callback_runs_once_in_a_worker_thread_when_done() -> None:
    with Emulator(speed=0) as emu, OperationsClient(emu.target) as client:
        name = emu.start_operation(PARENT, duration=60)
        handle = client.get(name)
        calls: list[tuple[str, bool, str]] = []
        ran = threading.Event()

        def callback(operation: Any) -> None:
            calls.append((operation.name, operation.done, threading.current_thread().name))
            ran.set()

        handle.add_done_callback(callback)
        assert not ran.wait(0.3)  # still running: not called
        emu.advance(61)
        # The Financial Services preset polls every 5 s at first: within a few polls.
        assert ran.wait(30)
        assert calls == [(name, True, "lro-grpc-callbacks")]
        assert handle.done and handle.response is not None


def test_many_handles_share_one_thread_and_each_callback_runs_once() -> None:
    with Emulator(speed=0) as emu, OperationsClient(emu.target) as client:
        handles = [client.get(emu.start_operation(PARENT, duration=10)) for _ in range(20)]
        threads_before = threading.active_count()
        seen: list[str] = []
        lock = threading.Lock()
        all_ran = threading.Event()

        def callback(operation: Any) -> None:
            with lock:
                seen.append(operation.name)
                if len(seen) == 2 * len(handles):
                    all_ran.set()

        for handle in handles:
            handle.add_done_callback(callback)
            handle.add_done_callback(callback)  # two callbacks on one handle: both run, once each
        assert threading.active_count() <= threads_before + 1  # one follower, not one thread each
        emu.advance(11)
        assert all_ran.wait(30)
        assert sorted(seen) == sorted([handle.name for handle in handles] * 2)


def test_done_handle_runs_the_callback_at_once_and_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with Emulator(speed=0) as emu, OperationsClient(emu.target) as client:
        name = emu.start_operation(PARENT, duration=1)
        emu.advance(2)
        handle = client.get(name)
        where: list[str] = []
        handle.add_done_callback(lambda operation: where.append(threading.current_thread().name))
        assert where == [threading.current_thread().name]

        def broken(operation: Any) -> None:
            raise RuntimeError("callback bug")

        with caplog.at_level(logging.ERROR, logger="lro_grpc.callbacks"):
            handle.add_done_callback(broken)  # does not raise here
        assert "callback bug" in caplog.text
        with pytest.raises(TypeError, match="callable"):
            handle.add_done_callback("not a function")  # type: ignore[arg-type]


def test_a_failing_follow_is_logged_and_the_callback_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    with Emulator(speed=0) as emu, OperationsClient(emu.target) as client:
        name = emu.start_operation(PARENT, duration=60)
        handle = client.get(name)
        client.delete(name)  # its record is gone: following it fails with NOT_FOUND
        ran = threading.Event()
        with caplog.at_level(logging.ERROR, logger="lro_grpc.callbacks"):
            handle.add_done_callback(lambda operation: ran.set())
            assert ran.wait(30)
        assert "NOT_FOUND" in caplog.text
        assert not handle.done


# --- add_done_callback, asyncio handles ----------------------------------------------------------


async def test_async_done_callback_runs_on_the_loop() -> None:
    with Emulator(speed=0) as emu:
        async with AsyncOperationsClient(emu.target, poll_policy=PollPolicy(initial=0.05, maximum=0.05)) as client:
            name = emu.start_operation(PARENT, duration=60)
            handle = await client.get(name)
            loop = asyncio.get_running_loop()
            done = asyncio.Event()
            calls: list[tuple[str, bool]] = []

            def callback(operation: Any) -> None:
                assert asyncio.get_running_loop() is loop
                calls.append((operation.name, operation.done))
                done.set()

            async def coroutine_callback(operation: Any) -> None:
                await asyncio.sleep(0)
                calls.append(("coroutine", operation.done))

            handle.add_done_callback(callback)
            handle.add_done_callback(coroutine_callback)
            await asyncio.sleep(0.2)
            assert calls == []
            emu.advance(61)
            await asyncio.wait_for(done.wait(), 30)
            for _ in range(100):
                if len(calls) == 2:
                    break
                await asyncio.sleep(0.01)
            assert sorted(calls) == sorted([(name, True), ("coroutine", True)])


def test_async_done_callback_needs_a_running_loop() -> None:
    with Emulator(speed=0) as emu:

        async def get() -> Any:
            async with AsyncOperationsClient(emu.target) as client:
                return await client.get(emu.start_operation(PARENT, duration=60))

        handle = asyncio.run(get())
        with pytest.raises(RuntimeError):
            handle.add_done_callback(lambda operation: None)


# --- client_options and the universe domain ------------------------------------------------------


def test_client_options_dict_and_object_set_endpoint_and_quota_project() -> None:
    with Emulator() as emu:
        for options in ({"api_endpoint": emu.target}, ClientOptions(api_endpoint=emu.target)):
            with OperationsClient.for_api("financialservices", client_options=options) as client:
                assert client.endpoint.target == emu.target and client.endpoint.plaintext
                name = emu.start_operation(PARENT, duration=60)
                assert client.get(name).name == name
    settings = resolve_client_settings(
        "financialservices.googleapis.com:443",
        endpoint=None,
        quota_project_id=None,
        client_options=ClientOptions(quota_project_id="billing-project"),
        universe_domain=None,
        environ={},
    )
    assert settings.quota_project_id == "billing-project"
    assert settings.target == "financialservices.googleapis.com:443"


async def test_async_for_api_takes_client_options_too() -> None:
    with Emulator() as emu:
        async with AsyncOperationsClient.for_api("servicemanagement", client_options={"api_endpoint": emu.target}) as c:
            assert c.endpoint.target == emu.target


def test_universe_domain_replaces_googleapis_com() -> None:
    def target(**kwargs: Any) -> str:
        arguments: dict[str, Any] = {
            "endpoint": None,
            "quota_project_id": None,
            "client_options": None,
            "universe_domain": None,
            "environ": {},
        }
        arguments.update(kwargs)
        return resolve_client_settings("financialservices.googleapis.com:443", **arguments).target

    assert target(universe_domain="example-universe.net") == "financialservices.example-universe.net:443"
    assert target(client_options={"universe_domain": "u.example"}) == "financialservices.u.example:443"
    assert target(environ={"GOOGLE_CLOUD_UNIVERSE_DOMAIN": "env.example"}) == "financialservices.env.example:443"
    # An explicit endpoint wins over the universe.
    assert target(endpoint="127.0.0.1:1", universe_domain="u.example") == "127.0.0.1:1"


def test_unsupported_or_conflicting_options_are_named() -> None:
    with pytest.raises(ValueError, match="client_cert_source"):
        OperationsClient.for_api(
            "financialservices", client_options=ClientOptions(client_cert_source=lambda: (b"", b""))
        )
    with pytest.raises(ValueError, match="credentials_file"):
        OperationsClient.for_api("financialservices", client_options={"credentials_file": "/tmp/key.json"})
    with pytest.raises(ValueError, match="disagree"):
        OperationsClient.for_api(
            "financialservices", endpoint="127.0.0.1:1", client_options={"api_endpoint": "127.0.0.1:2"}
        )
    with pytest.raises(TypeError, match="client_options"):
        OperationsClient.for_api("financialservices", client_options=42)
