"""Where a cluster waiter's actor connects, checked in the caller before anything reaches Ray."""

from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Any

from lro_grpc._batch import list_scope
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.apis import get_api

__all__ = ["ALLOWED_OPTIONS", "ActorSettings", "shard_of"]

ALLOWED_OPTIONS = frozenset(
    {
        "batch_max_in_flight",
        "batch_qps",
        "batch_sweep",
        "endpoint",
        "plaintext",
        "poll_policy",
        "quota_project_id",
        "retry_policy",
        "rpc_timeout",
    }
)
"""The clients' keyword arguments a cluster waiter forwards to its actor's client.

Not forwarded: ``credentials`` (Application Default Credentials are resolved on
the actor's node; credentials never cross the cluster), ``interceptors`` and
``registry`` (objects of the caller's process; the caller decodes with its own
registry).
"""


@dataclasses.dataclass(frozen=True)
class ActorSettings:
    """What one actor's client is built from (compared when a caller joins an actor).

    Attributes:
        target: ``host:port`` the client connects to, or ``None`` with ``api``.
        api: an API's short name (its default host, TLS and Application Default Credentials).
        options: the clients' keyword arguments, sorted by name.
        journal: the actor's journal file, on the actor's node.
    """

    target: str | None
    api: str | None
    options: tuple[tuple[str, Any], ...] = ()
    journal: str | None = None

    @classmethod
    def build(
        cls, target: str | None, api: str | None, options: dict[str, Any], journal: str | os.PathLike[str] | None
    ) -> ActorSettings:
        """Checked settings.

        Raises:
            TypeError: an option the cluster waiter does not forward, or of the wrong type.
            ValueError: neither or both of ``target`` and ``api``, an unknown ``api``, a bad option value.
        """
        if (target is None) == (api is None):
            raise ValueError(f"give exactly one of target= (host:port) and api=, got target={target!r}, api={api!r}")
        if target is not None and not isinstance(target, str):
            raise TypeError(f"target must be a 'host:port' string, got {target!r}")
        if api is not None:
            api = get_api(api).name
        unknown = sorted(set(options) - ALLOWED_OPTIONS)
        if unknown:
            raise TypeError(
                f"ClusterWaiter.connect() does not forward {', '.join(unknown)} to the actor's client "
                f"(it forwards {', '.join(sorted(ALLOWED_OPTIONS))}; credentials are resolved on the actor's node)"
            )
        if "endpoint" in options and api is None:
            raise TypeError("endpoint= goes with api=; with target= the target is the endpoint")
        settings = cls(
            target=target,
            api=api,
            options=tuple(sorted(options.items())),
            journal=None if journal is None else os.fspath(journal),
        )
        settings.make_client()  # the client's own checks of every value, here, before Ray sees anything
        return settings

    def make_client(self, **extra: Any) -> AsyncOperationsClient:
        """A client built from these settings (no I/O until its first call)."""
        options = {**dict(self.options), **extra}
        if self.api is not None:
            return AsyncOperationsClient.for_api(self.api, **options)
        assert self.target is not None  # build() requires one of them
        return AsyncOperationsClient(self.target, **options)

    def differences(self, other: ActorSettings) -> list[str]:
        """What differs between these settings (the running actor's) and ``other`` (a joining caller's)."""
        found: list[str] = []
        for field in ("target", "api", "journal"):
            mine, theirs = getattr(self, field), getattr(other, field)
            if mine != theirs:
                found.append(f"{field} {mine!r} (running) vs {theirs!r} (asked)")
        mine_options, their_options = dict(self.options), dict(other.options)
        for key in sorted(set(mine_options) | set(their_options)):
            if mine_options.get(key) != their_options.get(key):
                found.append(f"{key} {mine_options.get(key)!r} (running) vs {their_options.get(key)!r} (asked)")
        return found

    def describe(self) -> str:
        """A short description for logs and errors."""
        where = f"target {self.target!r}" if self.target is not None else f"api {self.api!r}"
        return where + "".join(f", {key}={value!r}" for key, value in self.options)


def shard_of(name: str, shards: int) -> int:
    """The shard (``0 .. shards - 1``) that tracks ``name``: a whole list scope always goes to one shard.

    Names that belong to no list scope are spread by their own name. The hash
    is stable across processes (CRC-32, not Python's salted ``hash``).
    """
    if shards == 1:
        return 0
    scope = list_scope(name)
    key = name if scope is None else f"{scope.parent}\n{scope.filter}"
    return zlib.crc32(key.encode()) % shards
