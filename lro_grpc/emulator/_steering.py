"""Steering operations by hand (finish, fail, cancel, delete): the checks shared by ``Emulator`` and the page.

No I/O: these turn the caller's arguments into what
:meth:`~lro_grpc.emulator._server.Backend.finish_operation` takes, and the
backend's refusals into the exceptions a Python caller expects.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

from lro_grpc.emulator._limits import MAX_STRING_LENGTH, shown
from lro_grpc.emulator._model import RequestError

__all__ = ["DEFAULT_FAILURE_MESSAGE", "FAILURE_CODES", "as_python_error", "failure_status", "starting_request"]

DEFAULT_FAILURE_MESSAGE = "failed on demand (emulator)"
"""The status message of an operation failed by hand without one."""

FAILURE_CODES = tuple(code for code in grpc.StatusCode if code is not grpc.StatusCode.OK)
"""The codes an operation can be failed with (every code but ``OK``)."""


def failure_status(code: grpc.StatusCode | str | int, message: str | None = None) -> status_pb2.Status:
    """The ``google.rpc.Status`` an operation failed by hand ends with.

    Args:
        code: a ``grpc.StatusCode``, its name (``"RESOURCE_EXHAUSTED"``) or its number; not ``OK``.
        message: the status message; default :data:`DEFAULT_FAILURE_MESSAGE`.

    Raises:
        ValueError: ``code`` is ``OK`` or no status code; ``message`` is too long.
        TypeError: ``code`` or ``message`` has the wrong type.
    """
    chosen: grpc.StatusCode | None = None
    if isinstance(code, grpc.StatusCode):
        chosen = code
    elif isinstance(code, str):
        chosen = grpc.StatusCode.__members__.get(code.strip().upper())
    elif isinstance(code, int) and not isinstance(code, bool):
        chosen = next((member for member in grpc.StatusCode if member.value[0] == code), None)
    else:
        raise TypeError(f"code must be a grpc.StatusCode, its name or its number, got {code!r}")
    if chosen is None or chosen is grpc.StatusCode.OK:
        names = ", ".join(member.name for member in FAILURE_CODES)
        raise ValueError(f"code: expected a status code other than OK ({names}), got {shown(str(code))}")
    if message is None or message == "":
        message = DEFAULT_FAILURE_MESSAGE
    if not isinstance(message, str):
        raise TypeError(f"message must be a string, got {message!r}")
    if len(message) > MAX_STRING_LENGTH or "\0" in message:
        raise ValueError(f"message: at most {MAX_STRING_LENGTH} characters and no NUL, got {shown(message)}")
    return status_pb2.Status(code=chosen.value[0], message=message)


def as_python_error(error: RequestError) -> Exception:
    """A backend refusal as a Python exception: ``LookupError`` for ``NOT_FOUND``, else ``ValueError``."""
    if error.code == grpc.StatusCode.NOT_FOUND:
        return LookupError(error.message)
    return ValueError(error.message)


def starting_request(parent: str, *, unique: str) -> tuple[str, Message]:
    """The RPC (short name) and request that start an operation under ``parent``, as a client would send them.

    Args:
        parent: ``projects/P/locations/L`` (an ``AML.CreateInstance``) or
            ``services/SERVICE_NAME`` (a ``ServiceManager.CreateServiceRollout``).
        unique: makes the new instance's id unique (Financial Services).

    Raises:
        ValueError: ``parent`` is neither shape.
    """
    from lro_grpc._generated import financialservices_v1_pb2 as fs
    from lro_grpc._generated import servicemanagement_v1_pb2 as sm

    parts = parent.split("/") if isinstance(parent, str) else []
    if len(parts) == 4 and parts[0] == "projects" and parts[2] == "locations" and parts[1] and parts[3]:
        instance = fs.Instance(kms_key=f"projects/{parts[1]}/locations/{parts[3]}/keyRings/ring/cryptoKeys/key")
        return "CreateInstance", fs.CreateInstanceRequest(
            parent=parent, instance_id=f"instance-{unique}", instance=instance
        )
    if len(parts) == 2 and parts[0] == "services" and parts[1]:
        rollout = sm.Rollout(
            traffic_percent_strategy=sm.Rollout.TrafficPercentStrategy(percentages={"config-1": 100.0})
        )
        return "CreateServiceRollout", sm.CreateServiceRolloutRequest(service_name=parts[1], rollout=rollout)
    raise ValueError(
        f"parent must be projects/PROJECT/locations/LOCATION or services/SERVICE_NAME, got {shown(str(parent))}"
    )
