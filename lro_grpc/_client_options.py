"""Settings google-api-core users bring: ``client_options`` and the universe domain, read for ``for_api``.

No I/O. ``client_options`` is a ``dict`` or a
``google.api_core.client_options.ClientOptions`` (read by attribute; the
package is not imported). Understood: ``api_endpoint``, ``quota_project_id``
and ``universe_domain``. Any other option that is set raises ``ValueError``
naming it: an option silently ignored (a client certificate, say) would be
worse than none.

The universe domain (``client_options``, the ``universe_domain`` argument, or
the ``GOOGLE_CLOUD_UNIVERSE_DOMAIN`` environment variable, as api-core reads
it) replaces ``googleapis.com`` in the API's default host.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["UNIVERSE_DOMAIN_ENV", "ClientSettings", "resolve_client_settings"]

UNIVERSE_DOMAIN_ENV = "GOOGLE_CLOUD_UNIVERSE_DOMAIN"
DEFAULT_UNIVERSE = "googleapis.com"
_UNDERSTOOD = ("api_endpoint", "quota_project_id", "universe_domain")
# ClientOptions attributes that are unset by default (None, or False for the boolean ones).
_KNOWN_OTHERS = (
    "client_cert_source",
    "client_encrypted_cert_source",
    "credentials_file",
    "scopes",
    "api_key",
    "api_audience",
)


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """Where ``for_api`` connects and who pays for quota.

    Attributes:
        target: ``host[:port]`` to connect to.
        quota_project_id: the project billed for quota, or ``None``.
    """

    target: str
    quota_project_id: str | None


def _read_options(client_options: object) -> dict[str, Any]:
    if client_options is None:
        return dict.fromkeys(_UNDERSTOOD)
    if isinstance(client_options, Mapping):
        options = dict(client_options)
        unknown = sorted(key for key, value in options.items() if key not in _UNDERSTOOD and value is not None)
    else:
        names = _UNDERSTOOD + _KNOWN_OTHERS
        if not any(hasattr(client_options, name) for name in names):
            raise TypeError(f"client_options must be a dict or a ClientOptions, got {client_options!r}")
        options = {name: getattr(client_options, name, None) for name in names}
        unknown = sorted(name for name in _KNOWN_OTHERS if options.get(name))
    if unknown:
        raise ValueError(
            f"client_options {', '.join(unknown)} not supported by lro_grpc "
            f"(understood: {', '.join(_UNDERSTOOD)}; pass credentials= for credentials)"
        )
    return {key: options.get(key) for key in _UNDERSTOOD}


def _text(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def resolve_client_settings(
    default_host: str,
    *,
    endpoint: str | None,
    quota_project_id: str | None,
    client_options: object,
    universe_domain: str | None,
    environ: Mapping[str, str] | None = None,
) -> ClientSettings:
    """Merge ``for_api``'s arguments with ``client_options`` and the universe domain.

    Args:
        default_host: the API's public ``host:port`` in the default universe.
        endpoint: the ``endpoint`` argument.
        quota_project_id: the ``quota_project_id`` argument.
        client_options: a dict or ``ClientOptions``, or ``None``.
        universe_domain: the ``universe_domain`` argument.
        environ: where to read ``GOOGLE_CLOUD_UNIVERSE_DOMAIN`` (default ``os.environ``).

    Returns:
        The target and quota project.

    Raises:
        ValueError: an option is not supported, a value is empty, or the same
            setting is given twice with different values (both are named).
        TypeError: ``client_options`` is neither a dict nor a ``ClientOptions``.
    """
    options = _read_options(client_options)
    env = os.environ if environ is None else environ

    def one(what: str, argument: str | None, option: object) -> str | None:
        given = _text(argument, what)
        from_options = _text(option, f"client_options {what}")
        if given is not None and from_options is not None and given != from_options:
            raise ValueError(f"{what} {given!r} and client_options {what} {from_options!r} disagree: give one")
        return given if given is not None else from_options

    api_endpoint = one("endpoint", endpoint, options["api_endpoint"])
    quota_project = one("quota_project_id", quota_project_id, options["quota_project_id"])
    universe = one("universe_domain", universe_domain, options["universe_domain"])
    if universe is None:
        universe = _text(env.get(UNIVERSE_DOMAIN_ENV) or None, UNIVERSE_DOMAIN_ENV)
    if api_endpoint is not None:
        target = api_endpoint
    elif universe is not None and universe != DEFAULT_UNIVERSE:
        host, _, port = default_host.rpartition(":")
        service = host.removesuffix("." + DEFAULT_UNIVERSE)
        target = f"{service}.{universe}:{port}"
    else:
        target = default_host
    return ClientSettings(target=target, quota_project_id=quota_project)
