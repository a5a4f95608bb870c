"""Choosing an endpoint and building gRPC channels (sync and asyncio).

Rules, in one place:

* ``LRO_GRPC_EMULATOR_HOST=host:port`` overrides the endpoint of every client
  that builds its own channel, with a plaintext channel and no credentials.
* Plaintext only to loopback hosts (``localhost``, ``127.0.0.0/8``, ``::1``):
  asking for plaintext to any other host raises ``ValueError`` naming it.
* Credentials are never sent over plaintext. Over TLS, explicit credentials
  are used if given, otherwise Application Default Credentials.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from lro_grpc.errors import CredentialsError

__all__ = [
    "EMULATOR_HOST_ENV",
    "Endpoint",
    "check_interceptors",
    "create_async_channel",
    "create_channel",
    "is_loopback_host",
    "reject_scheme",
    "resolve_endpoint",
    "split_host_port",
    "sync_channel_for",
]

EMULATOR_HOST_ENV = "LRO_GRPC_EMULATOR_HOST"
"""Environment variable naming a loopback ``host:port`` every client then talks to in plaintext."""

_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Operations can carry large responses (a service config, for example).
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # After a lost connection, try again at least once a second (gRPC's default
    # backoff grows to two minutes): a batch sees its operations within a poll
    # interval and a second of the server's return.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # The clients retry by their own policy (a call the server never saw fails UNAVAILABLE,
    # which every RPC retries): gRPC's retry layer would only repeat that, at about 5% of a
    # call's client CPU (its per-call state and buffered sends), paid by every call.
    ("grpc.enable_retries", 0),
)


def split_host_port(target: str) -> tuple[str, str | None]:
    """Split ``host:port``, ``[v6addr]:port``, a bare host or a bare IPv6 address.

    Returns:
        The host (IPv6 without brackets) and the port, or ``None`` without one.

    Raises:
        TypeError: ``target`` is not a string.
        ValueError: ``target`` is empty or malformed.
    """
    if not isinstance(target, str):
        raise TypeError(f"target must be a 'host:port' string, got {target!r}")
    text = target.strip()
    if not text or text != target or any(ch.isspace() for ch in text):
        raise ValueError(f"target must be a non-empty 'host:port' without spaces, got {target!r}")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed target {target!r}: expected '[ipv6]:port'")
        port = rest[1:] if rest else None
    elif text.count(":") > 1:
        host, port = text, None  # a bare IPv6 address
    else:
        host, sep, port_text = text.partition(":")
        port = port_text if sep else None
    if not host:
        raise ValueError(f"malformed target {target!r}: no host")
    if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"malformed target {target!r}: port must be a number in 1..65535")
    return host, port


def reject_scheme(target: object, *, what: str) -> None:
    """Refuse a URL (``http://host:port``, ``https://...``) where a gRPC ``host:port`` is expected.

    Args:
        target: the value given.
        what: how the message names it (``"endpoint"``, the environment variable).

    Raises:
        ValueError: ``target`` starts with a scheme; the message suggests the ``host:port`` in it.
    """
    if not isinstance(target, str) or "://" not in target:
        return
    scheme, _, rest = target.partition("://")
    address = rest.split("/", 1)[0]
    transport = "plaintext to loopback hosts, TLS to others" if scheme.lower() in ("http", "https") else "gRPC"
    raise ValueError(
        f"{what} {target!r} must be 'host:port' without a scheme: give {address!r} "
        f"(the transport is chosen from the host: {transport})"
    )


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP address (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where a client connects, and how.

    Attributes:
        target: the gRPC target, ``host:port``.
        host: the host part of ``target``.
        plaintext: ``True`` for an unencrypted channel (loopback only, never with credentials).
    """

    target: str
    host: str
    plaintext: bool


def resolve_endpoint(
    target: str,
    *,
    plaintext: bool | None,
    has_credentials: bool,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """Decide the endpoint and transport security of a client that builds its own channel.

    Args:
        target: the ``host:port`` the caller asked for.
        plaintext: ``True`` to ask for plaintext, ``False`` for TLS, ``None`` to choose:
            plaintext for loopback hosts without credentials, TLS otherwise.
        has_credentials: whether the caller passed explicit credentials.
        environ: the environment to read ``LRO_GRPC_EMULATOR_HOST`` from (default ``os.environ``).

    Returns:
        The endpoint to connect to.

    Raises:
        ValueError: plaintext was asked for (or set by the environment) towards a
            host that is not loopback, or together with explicit credentials.
    """
    env = os.environ if environ is None else environ
    emulator = env.get(EMULATOR_HOST_ENV, "").strip()
    if emulator:
        reject_scheme(emulator, what=EMULATOR_HOST_ENV)
        host, port = split_host_port(emulator)
        if port is None:
            raise ValueError(f"{EMULATOR_HOST_ENV}={emulator!r} must be 'host:port'")
        if not is_loopback_host(host):
            raise ValueError(
                f"{EMULATOR_HOST_ENV}={emulator!r}: plaintext is only allowed to loopback hosts, not {host!r}"
            )
        # The emulator takes no credentials; explicit ones are dropped, never sent in plaintext.
        return Endpoint(target=emulator, host=host, plaintext=True)
    reject_scheme(target, what="endpoint")
    host, port = split_host_port(target)
    if port is None:
        target = f"[{host}]:443" if ":" in host else f"{host}:443"
    if plaintext is None:
        plaintext = is_loopback_host(host) and not has_credentials
    if plaintext:
        if not is_loopback_host(host):
            raise ValueError(f"plaintext is only allowed to loopback hosts (the emulator), not {host!r}")
        if has_credentials:
            raise ValueError(f"credentials are never sent over plaintext (target {target!r}); use TLS")
    return Endpoint(target=target, host=host, plaintext=bool(plaintext))


def _credentials_and_request(
    credentials: Any, scopes: Sequence[str], quota_project_id: str | None, *, target: str
) -> tuple[Any, Any]:
    import google.auth
    import google.auth.credentials
    import google.auth.exceptions
    import google.auth.transport.requests

    if credentials is None:
        try:
            credentials, _ = google.auth.default(scopes=list(scopes), quota_project_id=quota_project_id)
        except google.auth.exceptions.GoogleAuthError as error:
            raise _no_credentials(target, error) from error
    else:
        if not isinstance(credentials, google.auth.credentials.Credentials):
            raise TypeError(f"credentials must be google.auth.credentials.Credentials, got {credentials!r}")
        credentials = google.auth.credentials.with_scopes_if_required(credentials, list(scopes))
        if quota_project_id is not None:
            if not isinstance(credentials, google.auth.credentials.CredentialsWithQuotaProject):
                raise TypeError(f"credentials {credentials!r} cannot carry a quota project")
            credentials = credentials.with_quota_project(quota_project_id)
    return credentials, google.auth.transport.requests.Request()


def _no_credentials(target: str, error: Exception) -> CredentialsError:
    key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    tried = (
        f"GOOGLE_APPLICATION_CREDENTIALS={key_file!r}"
        if key_file
        else "GOOGLE_APPLICATION_CREDENTIALS (not set), gcloud's application default credentials file, "
        "the metadata server"
    )
    first_line = str(error).split(". ")[0].rstrip(".")
    return CredentialsError(
        f"no credentials for TLS to {target}: tried Application Default Credentials ({tried}): "
        f"{first_line}; {EMULATOR_HOST_ENV} is not set. For a local emulator give "
        f"its loopback 'host:port' as the endpoint or set {EMULATOR_HOST_ENV}; for Google's service run "
        "'gcloud auth application-default login' or pass credentials=",
        endpoint=target,
    )


def check_interceptors(interceptors: object, *, what: str = "interceptors") -> tuple[Any, ...]:
    """Validate a sequence of gRPC client interceptors (not a single one, not a string).

    Raises:
        TypeError: not a list or tuple.
    """
    if not isinstance(interceptors, list | tuple):
        raise TypeError(f"{what} must be a list or tuple of gRPC client interceptors, got {interceptors!r}")
    return tuple(interceptors)


def create_channel(
    endpoint: Endpoint,
    *,
    credentials: Any = None,
    scopes: Sequence[str] = (),
    quota_project_id: str | None = None,
    interceptors: Sequence[Any] = (),
) -> grpc.Channel:
    """A synchronous channel to ``endpoint``: plaintext, or TLS with Google credentials.

    ``interceptors`` (``grpc.UnaryUnaryClientInterceptor`` and the like) see every call on it.
    """
    if endpoint.plaintext:
        channel: grpc.Channel = grpc.insecure_channel(endpoint.target, options=_CHANNEL_OPTIONS)
    else:
        import google.auth.transport.grpc

        credentials, request = _credentials_and_request(credentials, scopes, quota_project_id, target=endpoint.target)
        channel = google.auth.transport.grpc.secure_authorized_channel(
            credentials, request, endpoint.target, options=_CHANNEL_OPTIONS
        )
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


def sync_channel_for(
    target: str | grpc.Channel,
    *,
    credentials: Any,
    scopes: Sequence[str],
    quota_project_id: str | None,
    plaintext: bool | None,
    interceptors: Sequence[Any],
) -> tuple[grpc.Channel, Endpoint | None]:
    """The blocking client's channel: ``target`` as given, or one created to it.

    Returns:
        The channel (with ``interceptors``) and, for a created one, its
        endpoint; ``None`` for a given channel, which its owner closes.

    Raises:
        ValueError: credentials, a quota project or ``plaintext`` with a given
            channel (they apply only to channels the client creates), or
            plaintext to a host that is not loopback.
    """
    if isinstance(target, grpc.Channel):
        if credentials is not None or quota_project_id is not None or plaintext is not None:
            raise ValueError(
                "credentials, quota_project_id and plaintext apply only to channels the client creates, "
                f"not to the given channel {target!r}"
            )
        return (grpc.intercept_channel(target, *interceptors) if interceptors else target), None
    endpoint = resolve_endpoint(target, plaintext=plaintext, has_credentials=credentials is not None)
    channel = create_channel(
        endpoint,
        credentials=None if endpoint.plaintext else credentials,
        scopes=scopes,
        quota_project_id=quota_project_id,
        interceptors=interceptors,
    )
    return channel, endpoint


def create_async_channel(
    endpoint: Endpoint,
    *,
    credentials: Any = None,
    scopes: Sequence[str] = (),
    quota_project_id: str | None = None,
    interceptors: Sequence[Any] = (),
) -> grpc.aio.Channel:
    """An asyncio channel to ``endpoint``; call it inside the event loop that will use it.

    ``interceptors`` (``grpc.aio.UnaryUnaryClientInterceptor`` and the like) see every call on it.
    """
    chain = list(interceptors) or None
    if endpoint.plaintext:
        return grpc.aio.insecure_channel(endpoint.target, options=_CHANNEL_OPTIONS, interceptors=chain)
    import google.auth.transport.grpc

    credentials, request = _credentials_and_request(credentials, scopes, quota_project_id, target=endpoint.target)
    # What secure_authorized_channel does for sync channels, for grpc.aio.
    call_credentials = grpc.metadata_call_credentials(
        google.auth.transport.grpc.AuthMetadataPlugin(credentials, request)
    )
    channel_credentials = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(), call_credentials)
    return grpc.aio.secure_channel(endpoint.target, channel_credentials, options=_CHANNEL_OPTIONS, interceptors=chain)
