"""One batch waiter for a whole Ray cluster (``pip install 'lro-grpc[ray]'``).

:meth:`ClusterWaiter.connect` creates, or joins, a named Ray actor that holds
the cluster's one :class:`~lro_grpc.AsyncOperationsClient`, so every task,
actor and driver that waits through it shares one batch scheduler: each list
scope is swept once per round for all of them, one ``batch_qps`` budget holds
for the cluster, and an operation that several callers wait for is tracked
(and polled) once. The handle it returns is small and picklable: pass it to
tasks, or connect by name from anywhere in the cluster::

    waiter = ClusterWaiter.connect("127.0.0.1:8080", batch_qps=100)   # or api="financialservices"
    for op in waiter.as_completed(names, timeout=3600):
        print(op.name, op.error or op.response)

How it fits together:

* **The actor** (:mod:`._actor`) is an asyncio Ray actor named exactly
  ``name`` in ``namespace`` (``name-0`` .. ``name-{K-1}`` with ``shards=K``).
  Its client is built on the actor's node: with ``api=``, Application Default
  Credentials are resolved there and never pickled. Options
  :meth:`ClusterWaiter.connect` sets on it, and why:

  - ``get_if_exists=True``: the first caller creates it, the others join it
    (no race between two creators);
  - ``lifetime="detached"``: it outlives the task or driver that happened to
    create it (otherwise it would die with its creator, under the feet of the
    others); :meth:`ClusterWaiter.shutdown` ends it;
  - ``max_restarts=-1``: restarted after a crash or the loss of its node, for
    as long as the cluster lives;
  - ``max_task_retries=-1`` for the read-only methods (``settings``, ``stats``),
    which are safe to repeat; ``0`` for the streaming method ``stream``, which
    the caller resumes itself (below);
  - ``num_cpus=0``: it waits on the network; it should not take a CPU slot
    from the tasks it serves.

* **A call** (:meth:`~ClusterWaiter.wait_all`, :meth:`~ClusterWaiter.as_completed`
  and their ``_async`` twins) checks the names in the caller
  (:class:`~lro_grpc.InvalidNameError` before anything reaches Ray), splits
  them by shard (a list scope never spans two shards) and opens one Ray
  streaming generator per shard (``num_returns="streaming"``). The actor's
  :class:`~._hub.WaitHub` answers with chunks of ``(name, serialized
  google.longrunning.Operation)``; the caller decodes them into typed
  :class:`~lro_grpc.Operation` handles (``result()``, ``failed``, ``error``,
  ``to_json()`` need no RPC).

* **Exactly once per call, across actor restarts.** Ray would replay a
  failed streaming generator by skipping as many items as the first attempt
  had yielded, which is only right for a deterministic generator; outcomes of a
  restarted actor come in another order. So the stream is never replayed by
  Ray. Instead the caller keeps, per call and shard, the names it still lacks:
  an outcome is taken only if its name is still lacking (so none is handed
  out twice within a call, whatever the actor sends), and when the actor dies
  the caller asks the restarted actor (found again by name) for exactly the
  lacking names, with what is left of the deadline. The new actor knows
  nothing of the dead one: it tracks them again (operations already finished
  cost one GetOperation each, or come from the journal without one).

* **Journal.** ``journal=PATH`` is a file on the actor's node (one per shard:
  ``PATH.0``, ``PATH.1``, ... with ``shards=K``). Outcomes recorded in it are
  handed out again without an RPC by a restarted actor, and on a restart on the
  same node it saves those polls. It does not survive the loss of that node's
  disk, nor follow an actor that Ray restarts on another node (which starts
  from an empty journal there: nothing is lost, the lacking names are polled
  again); for that, put ``PATH`` on storage every node mounts.

* **Lifetime of tracked names.** Names are tracked while some call waits for
  them; outcomes are kept for later callers (so a second caller gets a
  finished operation without an RPC) until the actor next falls idle holding
  more than :data:`~._hub.MAX_KEPT_OUTCOMES`. When no call waits any more,
  names still running are no longer polled.

Logs go to the ``lro_grpc.ray`` logger (in the actor's worker log, which Ray
forwards to the driver, and in the callers); the client's own logs to
``lro_grpc.rpc``, ``lro_grpc.wait`` and ``lro_grpc.batch`` as everywhere.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import ray

from lro_grpc.operation import MetadataT, Operation, ResponseT
from lro_grpc.policies import Duration, PollPolicy
from lro_grpc.ray._actor import remote_class
from lro_grpc.ray._calls import CallTimedOut, ShardCall, merged
from lro_grpc.ray._handles import CallPlan, drive, in_order, in_order_async, timed_out
from lro_grpc.ray._settings import ActorSettings, shard_of

__all__ = ["ClusterStats", "ClusterWaiter"]


@dataclasses.dataclass(frozen=True)
class ClusterStats:
    """What a cluster waiter's actors hold and have done (:meth:`ClusterWaiter.stats`).

    Attributes:
        pending: operations the actors track and have not seen finish.
        active_calls: calls being answered now, from every caller.
        calls: calls the actors have received (since each one last started).
        shared: names a call found already tracked or finished for another call.
        rpcs: RPC attempts of the actors' clients, by method (``GetOperation``, ``ListOperations``).
        sweeps: listings started (first pages of ListOperations).
        restarted_actors: shards whose actor is a restarted instance.
        resumed_calls: times this handle (this copy of it) found an actor dead
            and asked the restarted one again.
        shards: each actor's own figures.
    """

    pending: int
    active_calls: int
    calls: int
    shared: int
    rpcs: dict[str, int]
    sweeps: int
    restarted_actors: int
    resumed_calls: int
    shards: list[dict[str, Any]]


class ClusterWaiter:
    """A picklable handle on a cluster's waiter actor(s); get one with :meth:`connect`."""

    def __init__(self, actors: list[Any], actor_names: list[str], namespace: str | None) -> None:
        self._actors = list(actors)
        self._actor_names = list(actor_names)
        self._namespace = namespace
        self._resumed = 0

    @property
    def actor_names(self) -> list[str]:
        """The Ray actors' names (``ray.get_actor(name, namespace=...)`` finds them)."""
        return list(self._actor_names)

    @classmethod
    def connect(
        cls,
        target: str | None = None,
        *,
        api: str | None = None,
        name: str = "lro-grpc",
        namespace: str | None = None,
        shards: int = 1,
        journal: str | os.PathLike[str] | None = None,
        **client_options: Any,
    ) -> ClusterWaiter:
        """Create the named waiter actor, or join the one that runs.

        Args:
            target: ``host:port`` the actor's client connects to (an emulator, a proxy).
            api: ``"financialservices"`` or ``"servicemanagement"``: the API's
                host, TLS and Application Default Credentials, resolved on the
                actor's node (as :meth:`AsyncOperationsClient.for_api`).
            name: the Ray actor's name (``name-0`` .. ``name-{K-1}`` with ``shards=K``).
            namespace: the Ray namespace (default: the job's).
            shards: spread list scopes over this many actors, each with
                ``batch_qps / shards``; a scope never spans two. Keep 1 unless
                the actor's process nears a full core, and then give each
                actor a core of its own (the README's "Waiting from a Ray
                cluster" has the measurements).
            journal: a journal file on the actor's node (see the module docs).
            **client_options: the clients' keyword arguments (``batch_qps``,
                ``batch_max_in_flight``, ``batch_sweep``, ``rpc_timeout``,
                ``retry_policy``, ``poll_policy``, ``quota_project_id``,
                ``plaintext``, ``endpoint`` with ``api``).

        With neither ``target`` nor ``api`` (nor options), joins whatever runs
        under ``name``. When Ray is not initialized yet, it calls ``ray.init()``,
        which starts a local Ray by forking from this process: call
        ``ray.init(...)`` yourself before this process serves or calls gRPC
        (grpcio's threads in a forked child can abort it; the README's
        "Waiting from a Ray cluster" says more).

        Raises:
            ValueError: an unknown ``api``, both ``target`` and ``api``, a bad
                option value, no actor to join, or an actor that runs with other
                settings (the error names both).
            TypeError: an option that is not forwarded (``credentials``, ...) or of the wrong type.
        """
        actor_names = _actor_names(name, namespace, shards)
        joining = target is None and api is None and journal is None and not client_options
        wanted = [] if joining else _shard_settings(target, api, shards, journal, client_options)
        if not ray.is_initialized():
            ray.init()
        if joining:
            actors = [_existing(actor_name, namespace) for actor_name in actor_names]
            return cls(actors, actor_names, namespace)
        # Settings of the actors already running are compared first, so that a conflict
        # creates nothing; get_if_exists then settles a race between two creators.
        running_now = [_running(actor_name, namespace) for actor_name in actor_names]
        _check_same(
            actor_names, wanted, [ray.get(actor.settings.remote()) for actor in running_now if actor], running_now
        )
        actor_class = remote_class()
        actors = [
            actor_class.options(
                name=actor_name,
                namespace=namespace,
                get_if_exists=True,
                lifetime="detached",
                max_restarts=-1,
                max_task_retries=-1,
                num_cpus=0,
            ).remote(settings)
            for actor_name, settings in zip(actor_names, wanted, strict=True)
        ]
        _check_same(actor_names, wanted, ray.get([actor.settings.remote() for actor in actors]), actors)
        return cls(actors, actor_names, namespace)

    # ------------------------------------------------------------------------ waiting

    def as_completed(
        self,
        names: Iterable[str],
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
    ) -> Iterator[Operation[ResponseT, MetadataT]]:
        """Yield each operation as soon as the cluster's actor sees it finished.

        The arguments are checked when this is called (an invalid name raises
        :class:`~lro_grpc.InvalidNameError` here, before anything reaches the
        actor). Failed, cancelled and not-found operations are yielded like the
        others (check ``op.error``). Each name comes once per call, also when
        the actor restarts meanwhile.

        Args:
            names: operation names (a name given twice comes once).
            timeout: overall wait, seconds or ``timedelta``; ``None`` waits for ever.
            poll_policy: how often to look at each operation (default: the
                actor's client's; for a name another caller already waits for,
                that caller's).
            response_type: decode responses into this message class.
            metadata_type: decode metadata into this message class.

        Raises:
            BatchTimeoutError: after the last operation that finished in time, if
                some were still running at the deadline (its ``pending`` handles
                carry their names only: the actor's last seen state is not sent).
            RuntimeError: called from a running event loop (use :meth:`as_completed_async`).
        """
        plan = CallPlan.check(names, timeout, poll_policy, response_type, metadata_type)
        return drive(self._handles(plan))

    def wait_all(
        self,
        names: Iterable[str],
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
    ) -> list[Operation[ResponseT, MetadataT]]:
        """Wait for every operation; return them in the order of ``names`` (see :meth:`as_completed`).

        Raises:
            BatchTimeoutError: some were still running at the deadline; its
                ``results`` holds every name's operation in order (finished, or
                a handle carrying only the name).
            RuntimeError: called from a running event loop (use :meth:`wait_all_async`).
        """
        plan = CallPlan.check(names, timeout, poll_policy, response_type, metadata_type)
        return in_order(plan, drive(self._handles(plan)))

    async def as_completed_async(
        self,
        names: Iterable[str],
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
    ) -> AsyncIterator[Operation[ResponseT, MetadataT]]:
        """:meth:`as_completed` for async code (async actors, async drivers): ``async for op in ...``.

        The arguments are checked on the first iteration, before anything reaches the actor.
        """
        plan = CallPlan.check(names, timeout, poll_policy, response_type, metadata_type)
        async for handle in self._handles(plan):
            yield handle

    async def wait_all_async(
        self,
        names: Iterable[str],
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
    ) -> list[Operation[ResponseT, MetadataT]]:
        """:meth:`wait_all` for async code: ``await waiter.wait_all_async(names)``."""
        plan = CallPlan.check(names, timeout, poll_policy, response_type, metadata_type)
        return await in_order_async(plan, self._handles(plan))

    # ------------------------------------------------------------------------ the rest

    def stats(self) -> ClusterStats:
        """The actors' figures now (one small RPC to each)."""
        per_shard: list[dict[str, Any]] = ray.get([actor.stats.remote() for actor in self._actors])
        rpcs: dict[str, int] = {}
        for shard in per_shard:
            for method, count in shard["rpcs"].items():
                rpcs[method] = rpcs.get(method, 0) + count
        return ClusterStats(
            pending=sum(shard["pending"] for shard in per_shard),
            active_calls=sum(shard["active_calls"] for shard in per_shard),
            calls=sum(shard["calls"] for shard in per_shard),
            shared=sum(shard["shared"] for shard in per_shard),
            rpcs=rpcs,
            sweeps=sum(shard["sweeps"] for shard in per_shard),
            restarted_actors=sum(bool(shard["reconstructed"]) for shard in per_shard),
            resumed_calls=self._resumed,
            shards=per_shard,
        )

    def shutdown(self) -> None:
        """End the actors (they are detached: they outlive their creator until this, or the cluster's end)."""
        for actor in self._actors:
            ray.kill(actor, no_restart=True)

    def __repr__(self) -> str:
        return f"<ClusterWaiter {self._actor_names!r} namespace={self._namespace!r}>"

    # ------------------------------------------------------------------------ internals

    def _resolver(self, shard: int) -> Any:
        def resolve(fresh: bool) -> Any:
            if fresh:
                self._actors[shard] = _existing(self._actor_names[shard], self._namespace)
            return self._actors[shard]

        return resolve

    def _count_resume(self) -> None:
        self._resumed += 1

    async def _handles(self, plan: CallPlan) -> AsyncIterator[Operation[Any, Any]]:
        deadline = None if plan.timeout is None else time.monotonic() + plan.timeout
        by_shard: list[list[str]] = [[] for _ in self._actors]
        for name in dict.fromkeys(plan.names):
            by_shard[shard_of(name, len(self._actors))].append(name)
        calls = [
            ShardCall(self._resolver(shard), shard_names, deadline, plan.poll_policy, self._count_resume)
            for shard, shard_names in enumerate(by_shard)
            if shard_names
        ]
        if not calls:
            return
        try:
            async for fresh in merged(calls):
                for _, data in fresh:
                    yield plan.handle(data)
        except CallTimedOut as error:
            raise timed_out(plan, error.names) from None


def _actor_names(name: object, namespace: object, shards: object) -> list[str]:
    """The actors' names for ``connect``'s checked ``name`` and ``shards``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if namespace is not None and not isinstance(namespace, str):
        raise TypeError(f"namespace must be a string or None, got {namespace!r}")
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"shards must be an int >= 1, got {shards!r}")
    return [name] if shards == 1 else [f"{name}-{index}" for index in range(shards)]


def _shard_settings(
    target: str | None,
    api: str | None,
    shards: int,
    journal: str | os.PathLike[str] | None,
    client_options: dict[str, Any],
) -> list[ActorSettings]:
    """Each shard's actor settings: ``batch_qps`` split evenly, a journal file of its own."""
    options = dict(client_options)
    qps = options.get("batch_qps")
    if shards > 1 and isinstance(qps, int | float) and not isinstance(qps, bool):
        options["batch_qps"] = qps / shards
    wanted = []
    for index in range(shards):
        shard_journal = journal if journal is None or shards == 1 else f"{os.fspath(journal)}.{index}"
        wanted.append(ActorSettings.build(target, api, options, shard_journal))
    return wanted


def _existing(actor_name: str, namespace: str | None) -> Any:
    actor = _running(actor_name, namespace)
    if actor is None:
        raise ValueError(
            f"no cluster waiter actor named {actor_name!r} in namespace {namespace!r}: "
            "connect with target= or api= to create it"
        )
    return actor


def _running(actor_name: str, namespace: str | None) -> Any:
    """The actor of that name, or ``None``."""
    try:
        return ray.get_actor(actor_name, namespace=namespace)
    except ValueError:
        return None


def _check_same(
    actor_names: list[str], wanted: list[ActorSettings], running: list[ActorSettings], actors: list[Any]
) -> None:
    """Raise if an actor (``actors[i]`` not ``None``) runs with other settings than ``wanted[i]``."""
    found = iter(running)
    for actor_name, settings, actor in zip(actor_names, wanted, actors, strict=True):
        if actor is None:
            continue
        theirs = next(found)
        differences = theirs.differences(settings)
        if differences:
            raise ValueError(
                f"cluster waiter actor {actor_name!r} runs with {theirs.describe()}, but this caller asked for "
                f"{settings.describe()}: {'; '.join(differences)} (connect with no settings to join it)"
            )
