"""Settings and I/O-free logic shared by the sync and asyncio clients.

:class:`BaseOperationsClient` holds every setting and builds every plan (see
:mod:`lro_grpc._core`) without doing I/O; :class:`~lro_grpc.client.OperationsClient`
performs the plans with blocking gRPC calls and
:class:`~lro_grpc.aio.AsyncOperationsClient` with ``await``. Both import this
module; neither imports the other's.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

import grpc
from google.longrunning import operations_pb2
from google.protobuf.message import Message

from lro_grpc import _core
from lro_grpc._batch._settings import DEFAULT_MAX_IN_FLIGHT, check_limits
from lro_grpc._core import USE_CLIENT_DEFAULT, Plan, UseClientDefault
from lro_grpc._handle import check_expected_types
from lro_grpc.apis import CLOUD_PLATFORM_SCOPE, ApiPreset, get_api
from lro_grpc.errors import RpcError
from lro_grpc.names import parse_operation_name, validate_list_parent
from lro_grpc.operation import BaseOperation
from lro_grpc.policies import DEFAULT_POLL_POLICY, DEFAULT_RETRY_POLICY, Deadline, PollPolicy, RetryPolicy, to_seconds
from lro_grpc.registry import TypeRegistry, default_registry

__all__ = ["DEFAULT_RPC_TIMEOUT", "BaseOperationsClient", "HandleT", "OperationPage", "plan_observer"]

DEFAULT_RPC_TIMEOUT = 10.0
"""Per-RPC timeout, in seconds, when the caller gives none (the APIs' published Get/List timeout)."""

HandleT = TypeVar("HandleT", bound=BaseOperation[Any, Any])
"""A handle type: :class:`~lro_grpc.operation.Operation` or :class:`~lro_grpc.operation.AsyncOperation`."""


def _first_plan_observer() -> _core.Observe | None:
    # The telemetry module loads on the first RPC, not at ``import lro_grpc``; from then
    # on its ``observer`` is called directly.
    global plan_observer
    from lro_grpc import _telemetry

    plan_observer = _telemetry.observer
    return _telemetry.observer()


plan_observer: Callable[[], _core.Observe | None] = _first_plan_observer
"""A fresh telemetry counter for one plan's attempts, or ``None`` (the drivers' ``observe=``)."""


@dataclasses.dataclass(frozen=True)
class OperationPage(Generic[HandleT]):
    """One page of a ListOperations answer.

    Attributes:
        operations: the page's operations, as handles bound to the client.
        next_page_token: the token of the next page (empty on the last page).
        unreachable: locations the server could not reach for this page.
        raw: the ``ListOperationsResponse``.
    """

    operations: list[HandleT]
    next_page_token: str
    unreachable: list[str]
    raw: operations_pb2.ListOperationsResponse


class BaseOperationsClient:
    """Settings and I/O-free logic shared by :class:`OperationsClient` and ``AsyncOperationsClient``.

    Args:
        registry: the type registry for metadata, responses and error details
            (default: :func:`~lro_grpc.registry.default_registry`).
        retry_policy: retries of transient RPC failures.
        rpc_timeout: timeout of each RPC in seconds; ``None`` bounds RPCs only by the caller's deadline.
        poll_policy: default interval between polls; ``None`` uses the API's preset
            (from ``api``, else from each operation name's form).
        api: the API's short name or preset; sets scopes and default polling.
        batch_max_in_flight: RPCs in flight at most in the client's batches.
        batch_qps: calls per second at most in the client's batches (``None``: no budget).
        batch_sweep: whether the client's batches sweep list scopes with ListOperations.
    """

    def __init__(
        self,
        *,
        registry: TypeRegistry | None = None,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
        poll_policy: PollPolicy | None = None,
        api: str | ApiPreset | None = None,
        batch_max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        batch_qps: float | None = None,
        batch_sweep: bool = True,
    ) -> None:
        if registry is not None and not isinstance(registry, TypeRegistry):
            raise TypeError(f"registry must be a TypeRegistry or None, got {registry!r}")
        if not isinstance(retry_policy, RetryPolicy):
            raise TypeError(f"retry_policy must be a RetryPolicy, got {retry_policy!r}")
        if poll_policy is not None and not isinstance(poll_policy, PollPolicy):
            raise TypeError(f"poll_policy must be a PollPolicy or None, got {poll_policy!r}")
        self._registry = registry if registry is not None else default_registry()
        self._retry_policy = retry_policy
        self._rpc_timeout = _core.check_rpc_timeout(rpc_timeout)
        self._poll_policy = poll_policy
        self._api = get_api(api) if api is not None else None
        self._batch_max_in_flight, self._batch_qps = check_limits(batch_max_in_flight, batch_qps, prefix="batch_")
        if not isinstance(batch_sweep, bool):
            raise TypeError(f"batch_sweep must be a bool, got {batch_sweep!r}")
        self._batch_sweep = batch_sweep
        self._closed = False
        self._wait_unimplemented = False
        self._answered = False  # set once the server answers an RPC (see CallSettings.first_contact)
        self._clock: Callable[[], float] = time.monotonic
        self._rng: random.Random | None = None
        self._default_settings: _core.CallSettings | None = None
        # A get with the client's own settings makes its first attempt straight on the stub when its
        # plan would make it as a plain call, with this timeout (see lro_grpc._fast_get).
        self._direct_get, self._direct_timeout = _core.first_attempt(
            _core.CallSettings(retry_policy, self._rpc_timeout)
        )

    @property
    def registry(self) -> TypeRegistry:
        """The type registry handles of this client unpack with."""
        return self._registry

    @property
    def api(self) -> ApiPreset | None:
        """The API preset the client was made for, if any."""
        return self._api

    @property
    def retry_policy(self) -> RetryPolicy:
        """Retries of transient RPC failures."""
        return self._retry_policy

    @property
    def rpc_timeout(self) -> float | None:
        """Default timeout of each RPC, in seconds."""
        return self._rpc_timeout

    @property
    def wait_rpc_available(self) -> bool:
        """``False`` once the server answered WaitOperation with ``UNIMPLEMENTED`` (then waits poll)."""
        return not self._wait_unimplemented

    # -- settings -------------------------------------------------------------------------------

    def _scopes(self) -> tuple[str, ...]:
        return self._api.scopes if self._api is not None else (CLOUD_PLATFORM_SCOPE,)

    def _call_settings(
        self,
        rpc_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> _core.CallSettings:
        if rpc_timeout is USE_CLIENT_DEFAULT and timeout is USE_CLIENT_DEFAULT and self._answered:
            # The common call: the client's own settings, past the first answer; built once.
            if self._default_settings is None:
                self._default_settings = _core.CallSettings(
                    self._retry_policy, self._rpc_timeout, rng=self._rng, clock=self._clock, first_contact=False
                )
            return self._default_settings
        attempt_timeout = (
            self._rpc_timeout if isinstance(rpc_timeout, UseClientDefault) else _core.check_rpc_timeout(rpc_timeout)
        )
        retry_policy = self._retry_policy
        if not isinstance(timeout, UseClientDefault):
            # The call's overall timeout replaces the retry policy's for this call.
            overall = None if timeout is None else to_seconds(timeout, what="timeout")
            retry_policy = dataclasses.replace(retry_policy, timeout=overall)
        return _core.CallSettings(
            retry_policy, attempt_timeout, rng=self._rng, clock=self._clock, first_contact=not self._answered
        )

    def _note_reply(self, reply: object) -> object:
        """Record that the server answered (any reply but an ``UNAVAILABLE`` failure); returns ``reply``."""
        if not self._answered and not (
            isinstance(reply, _core.RpcFailure) and reply.code is grpc.StatusCode.UNAVAILABLE
        ):
            self._answered = True
        return reply

    def _poll_policy_for(self, name: str, poll_policy: PollPolicy | None) -> PollPolicy:
        if poll_policy is not None:
            if not isinstance(poll_policy, PollPolicy):
                raise TypeError(f"poll_policy must be a PollPolicy or None, got {poll_policy!r}")
            return poll_policy
        if self._poll_policy is not None:
            return self._poll_policy
        if self._api is not None:
            return self._api.poll_policy
        try:
            return get_api(parse_operation_name(name).api).poll_policy
        except (ValueError, TypeError):
            return DEFAULT_POLL_POLICY

    def _mark_wait_unimplemented(self) -> None:
        self._wait_unimplemented = True

    # -- plans ----------------------------------------------------------------------------------

    def _get_plan(
        self,
        name: str,
        *,
        rpc_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT,
        deadline: Deadline | None = None,
        retry_resource_exhausted: bool = True,
        started: float | None = None,
    ) -> Plan[operations_pb2.Operation]:
        return _core.unary_plan(
            "GetOperation",
            _core.get_request(name),
            routing_name=name,
            settings=self._call_settings(rpc_timeout, timeout),
            deadline=deadline,
            operation_name=name,
            retry_resource_exhausted=retry_resource_exhausted,
            started=started,
        )

    def _cancel_plan(self, name: str, timeout: float | timedelta | UseClientDefault | None) -> Plan[Any]:
        return _core.unary_plan(
            "CancelOperation",
            _core.cancel_request(name),
            routing_name=name,
            settings=self._call_settings(timeout=timeout),
            operation_name=name,
        )

    def _delete_plan(self, name: str, timeout: float | timedelta | UseClientDefault | None) -> Plan[Any]:
        return _core.unary_plan(
            "DeleteOperation",
            _core.delete_request(name),
            routing_name=name,
            settings=self._call_settings(timeout=timeout),
            operation_name=name,
        )

    def _list_plan(
        self,
        request: operations_pb2.ListOperationsRequest,
        settings: _core.CallSettings,
        *,
        deadline: Deadline | None = None,
        retry_resource_exhausted: bool = True,
    ) -> Plan[operations_pb2.ListOperationsResponse]:
        return _core.unary_plan(
            "ListOperations",
            request,
            routing_name=request.name,
            settings=settings,
            deadline=deadline,
            operation_name=request.name or None,
            retry_resource_exhausted=retry_resource_exhausted,
        )

    def _page_plans(
        self, timeout: float | timedelta | UseClientDefault | None
    ) -> Callable[[operations_pb2.ListOperationsRequest], Plan[operations_pb2.ListOperationsResponse]]:
        """The plan of each page of one listing.

        Without ``timeout`` each page gets the client's (the retry policy's
        timeout, across its retries); with one, the whole listing does: the
        clock starts at the first page's request and every page gets the time
        left. ``None`` bounds neither.
        """
        if isinstance(timeout, UseClientDefault):
            settings = self._call_settings()
            return lambda request: self._list_plan(request, settings)
        seconds = None if timeout is None else to_seconds(timeout, what="timeout")
        settings = self._call_settings(timeout=None)
        if seconds is None:
            return lambda request: self._list_plan(request, settings)
        listing_seconds = seconds
        deadlines: list[Deadline] = []

        def plan(request: operations_pb2.ListOperationsRequest) -> Plan[operations_pb2.ListOperationsResponse]:
            now = self._clock()
            if not deadlines:
                deadlines.append(Deadline.after(listing_seconds, now=now))
            elif deadlines[0].expired(now):
                raise RpcError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"the listing did not end within its timeout of {listing_seconds:g} s",
                    method="ListOperations",
                    operation_name=request.name or None,
                )
            return self._list_plan(request, settings, deadline=deadlines[0])

        return plan

    def _list_state(
        self, parent: object, *, filter: object, page_size: object, return_partial_success: object
    ) -> _core.ListPageState:
        return _core.ListPageState.create(
            validate_list_parent(parent),
            filter=filter,
            page_size=page_size,
            return_partial_success=return_partial_success,
        )

    def _handle_wait_plan(
        self,
        handle: BaseOperation[Any, Any],
        *,
        timeout: float | timedelta | None,
        poll_policy: PollPolicy | None,
        rpc_timeout: float | UseClientDefault | None,
        use_wait: bool,
    ) -> Plan[operations_pb2.Operation]:
        now = self._clock()
        timeout_seconds = None if timeout is None else to_seconds(timeout, what="timeout")
        settings = _core.PollSettings(
            poll_policy=self._poll_policy_for(handle.name, poll_policy),
            call=self._call_settings(rpc_timeout),
            use_wait_rpc=use_wait and not self._wait_unimplemented,
        )
        return _core.poll_plan(
            handle.name,
            settings=settings,
            deadline=Deadline.after(timeout_seconds, now=now),
            timeout=timeout_seconds,
            on_update=handle._update,
            on_wait_unimplemented=self._mark_wait_unimplemented,
            wrap=lambda _: handle,
            last_seen=handle.raw,
        )

    @staticmethod
    def _for_api_target(
        api: str | ApiPreset,
        endpoint: str | None,
        rpc_timeout: float | UseClientDefault | None,
        *,
        quota_project_id: str | None = None,
        client_options: object = None,
        universe_domain: str | None = None,
    ) -> tuple[str, ApiPreset, float | None, str | None]:
        """``for_api``'s target, preset, per-RPC timeout (the API's unless given) and quota project.

        ``client_options`` and the universe domain are read as google-api-core's clients
        read them (see ``lro_grpc._client_options``).
        """
        preset = get_api(api)
        from lro_grpc._client_options import resolve_client_settings  # only for_api() reads client options

        settings = resolve_client_settings(
            preset.default_host,
            endpoint=endpoint,
            quota_project_id=quota_project_id,
            client_options=client_options,
            universe_domain=universe_domain,
        )
        timeout = preset.rpc_timeout if isinstance(rpc_timeout, UseClientDefault) else rpc_timeout
        return settings.target, preset, timeout, settings.quota_project_id

    @staticmethod
    def _batch_names(names: Iterable[str] | None, response_type: object, metadata_type: object) -> list[str] | None:
        """A batch call's arguments checked before anything starts: the types, then the names as a list."""
        check_expected_types(response_type, metadata_type)
        return None if names is None else list(names)

    @staticmethod
    def _typed_results(
        results: Sequence[HandleT], trace: Any, response_type: type[Message] | None, metadata_type: type[Message] | None
    ) -> list[HandleT]:
        """``wait_all``'s results, each seen by the batch's trace and set to decode into the given classes."""
        for handle in results:
            trace.seen(handle.raw)
        return [handle._expect_types(response_type, metadata_type) for handle in results]
