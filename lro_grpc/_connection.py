"""Reading connection failures: which ones retrying cannot fix, and what to say about them.

No I/O: the functions read the ``UNAVAILABLE`` details gRPC gives when it
could not reach a server, which name the address it tried, e.g.
``failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1:
Failed to connect to remote host: Connection refused``.

Two such failures get a message that points at the fix, and are not retried:

* the port answered, but not with HTTP/2 (gRPC): typically an HTTP/1.1
  server, such as the emulator's ``--rest-port``, given as the gRPC endpoint;
  the same call would fail the same way;
* a loopback port refused the connection before the client ever had an
  answer: nothing listens there (a local emulator that is not running, or
  another port); a server that answered once and then refuses is restarting,
  and is retried as before.
"""

from __future__ import annotations

import ipaddress
import re

import grpc

__all__ = ["connection_hint", "not_http2", "refused_loopback"]

_NOT_HTTP2 = ("Failed parsing HTTP/2", "Trying to connect an http1.x server")
_REFUSED = "Connection refused"
_ADDRESS = re.compile(r"\b(ipv4|ipv6):(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)")


def not_http2(code: grpc.StatusCode | None, details: str) -> bool:
    """Whether a failure says the server's port does not speak HTTP/2 (so not gRPC)."""
    return code is grpc.StatusCode.UNAVAILABLE and any(marker in details for marker in _NOT_HTTP2)


def _address(details: str) -> tuple[str, str] | None:
    match = _ADDRESS.search(details)
    if match is None:
        return None
    return match.group(2).strip("[]"), match.group(3)


def refused_loopback(code: grpc.StatusCode | None, details: str) -> bool:
    """Whether a failure is a connection refused by a loopback address."""
    if code is not grpc.StatusCode.UNAVAILABLE or _REFUSED not in details:
        return False
    address = _address(details)
    if address is None:
        return False
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return False


def connection_hint(code: grpc.StatusCode | None, details: str) -> str | None:
    """What to say about a failure to reach the server, or ``None`` for other failures.

    Args:
        code: the failure's status code.
        details: the failure's status message.

    Returns:
        A sentence to append to the error message.
    """
    address = _address(details)
    where = f"{address[0]}:{address[1]}" if address else "the endpoint"
    if ":" in where.rsplit(":", 1)[0]:  # an IPv6 host
        host, port = where.rsplit(":", 1)
        where = f"[{host}]:{port}"
    if not_http2(code, details):
        return (
            f"{where} does not speak gRPC (HTTP/2): it answered like an HTTP/1.1 server "
            "(is it the emulator's --rest-port? give its gRPC port, the first line it prints)"
        )
    if refused_loopback(code, details):
        return f"nothing listens on {where} (is the emulator running, on that port?)"
    return None
