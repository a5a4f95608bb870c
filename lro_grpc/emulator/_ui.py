"""The operations page at the REST port's ``/ui/``, and the small control API behind it.

The page (``lro_grpc/emulator/ui/``: HTML, CSS and vanilla JavaScript, shipped as
package data) talks only to its own origin:

``GET /ui/``, ``/ui/ui.css``, ``/ui/ui.js``
    the page; its per-process control token is in ``<meta name="lro-grpc-ui-token">``.
``GET /ui/api/state``
    the simulated clock, the fault settings, the gRPC target, the locations and
    services seen, the count of operations.
``GET /ui/api/operations?api=&location=&service=&state=&q=&pageSize=&pageToken=``
    one page of operations, newest first, filtered by API
    (``financialservices``/``servicemanagement``), location, service, state
    (``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``CANCELLED``) and a name
    substring; each row with its REST JSON.
``POST /ui/api/operations:succeed|fail|cancel|delete`` ``{"name", "code", "message"}``
    what ``Emulator.succeed``, ``fail``, ``cancel`` and ``delete`` do.
``POST /ui/api/operations:start`` ``{"parent", "duration", "outcome"}``
    starts an operation as ``Emulator.start_operation`` does.
``POST /ui/api/clock:speed|pause|resume|advance`` ``{"speed"}`` / ``{"seconds"}``
    ``Emulator.set_speed`` (pause: speed 0, resume: the speed before), ``Emulator.advance``.
``POST /ui/api/faults`` ``{"unavailable", "resource_exhausted", "latency_ms"}``
    sets those fields of ``Emulator.faults``.

Safe by default: every ``/ui`` route answers only a client on a loopback
address that names a loopback host in ``Host`` (so another site, even one
whose name resolves to 127.0.0.1, gets ``403``); control routes take only
``POST`` with ``Content-Type: application/json`` and the header
``X-Emulator-UI-Token`` carrying the page's token, which another origin cannot
read, and refuse an ``Origin`` other than the page's. Responses carry a
Content-Security-Policy allowing only the page's own origin. Controls act on
the emulator directly: injected faults apply to the APIs, never to the page.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import ipaddress
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc

from lro_grpc._json import operation_to_dict
from lro_grpc.emulator import _model
from lro_grpc.emulator._limits import shown
from lro_grpc.emulator._model import DURATION_HEADER, OUTCOME_HEADER, OperationRecord, RequestError, invalid
from lro_grpc.emulator._server import Backend
from lro_grpc.emulator._steering import FAILURE_CODES, failure_status, starting_request
from lro_grpc.emulator._transcoding import error_body, http_status
from lro_grpc.registry import TypeRegistry

__all__ = ["TOKEN_HEADER", "OperationsPage", "UiRequest", "UiResponse"]

TOKEN_HEADER = "X-Emulator-UI-Token"
"""Request header carrying the page's control token on every ``POST`` to ``/ui/api/``."""
DEFAULT_UI_PAGE_SIZE = 50
MAX_UI_PAGE_SIZE = 500
STATES = ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")

_STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}
_SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
)
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclasses.dataclass(frozen=True)
class UiRequest:
    """One HTTP request to a ``/ui`` route, as the gateway read it."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    client_host: str


@dataclasses.dataclass(frozen=True)
class UiResponse:
    """What to answer: status, ``Content-Type``, body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> UiResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return UiResponse(status, "application/json; charset=UTF-8", body, _SECURITY_HEADERS + headers)


def _error_response(code: grpc.StatusCode, message: str, status: int | None = None) -> UiResponse:
    body = error_body(code, message)
    if status is not None:
        body["error"]["code"] = status
    return _json_response(status or http_status(code), body)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The host of a ``Host`` header, without port or IPv6 brackets."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else ""
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


@dataclasses.dataclass(frozen=True)
class _Browse:
    """The page's filters, as SQL over the store's columns."""

    api: str = ""
    location: str = ""
    service: str = ""
    state: str = ""
    name_contains: str = ""

    def where(self, now: float, retention: float) -> tuple[str, list[object]]:
        conditions: list[str] = ["end_at > ?"]
        parameters: list[object] = [now - retention]
        if self.api:
            conditions.append("api = ?")
            parameters.append(self.api)
        if self.location:
            conditions.append("api = ? AND substr(collection, -length(?)) = ?")
            parameters += [_model.FINANCIAL_SERVICES, f"/locations/{self.location}", f"/locations/{self.location}"]
        if self.service:
            conditions.append("service_name = ?")
            parameters.append(self.service)
        if self.state == "RUNNING":
            conditions.append("end_at > ?")
            parameters.append(now)
        elif self.state:
            outcome = {"SUCCEEDED": _model.SUCCESS, "FAILED": _model.FAIL, "CANCELLED": _model.CANCEL}[self.state]
            conditions.append("end_at <= ? AND outcome = ?")
            parameters += [now, outcome]
        if self.name_contains:
            conditions.append("instr(name, ?) > 0")
            parameters.append(self.name_contains)
        return " AND ".join(conditions), parameters


class OperationsPage:
    """Serves the operations page and its API over an emulator backend (any thread: the store is thread-safe).

    Args:
        backend: the emulator's shared state.
        registry: resolves the types inside operations for their REST JSON.
        grpc_target: the emulator's gRPC ``host:port`` (for the page's ``lro-grpc get`` commands).
    """

    def __init__(self, backend: Backend, *, registry: TypeRegistry, grpc_target: str) -> None:
        self._backend = backend
        self._registry = registry
        self._grpc_target = grpc_target
        self.token = secrets.token_urlsafe(32)
        self._resume_speed = backend.clock.speed or 1.0
        folder = resources.files("lro_grpc.emulator") / "ui"
        index = (folder / "index.html").read_text(encoding="utf-8")
        self._index = index.replace("{{token}}", self.token).encode("utf-8")
        self._static = {name: (folder / name).read_bytes() for name in _STATIC}
        self._controls: dict[str, Callable[[dict[str, Any]], Any]] = {
            "operations:succeed": lambda body: self._finish(body, error=False),
            "operations:fail": lambda body: self._finish(body, error=True),
            "operations:cancel": lambda body: backend.cancel_operation(_text(body, "name")),
            "operations:delete": lambda body: backend.delete_operation(_text(body, "name")),
            "operations:start": self._start,
            "clock:speed": self._set_speed,
            "clock:pause": self._pause,
            "clock:resume": self._resume,
            "clock:advance": lambda body: backend.clock.advance(_number(body, "seconds")),
            "faults": self._set_faults,
        }

    @staticmethod
    def owns(path: str) -> bool:
        """Whether ``path`` is one of the page's routes."""
        return path == "/ui" or path.startswith("/ui/")

    def answer(self, request: UiRequest) -> UiResponse:
        """Answer one request to a ``/ui`` route."""
        if not (_is_loopback(request.client_host) and _host_name(request.headers.get("host", "")) in _LOOPBACK_NAMES):
            return _error_response(grpc.StatusCode.PERMISSION_DENIED, "the page answers loopback clients only")
        split = urlsplit(request.target)
        path, query = split.path, dict(parse_qsl(split.query, keep_blank_values=True))
        if path == "/ui":
            return UiResponse(308, "text/plain; charset=utf-8", b"", (("Location", "/ui/"),))
        route = path.removeprefix("/ui/")
        try:
            if route.startswith("api/"):
                return self._api(request, route.removeprefix("api/"), query)
            if request.method != "GET":
                return _error_response(grpc.StatusCode.INVALID_ARGUMENT, f"{request.method}: the page is GET only", 405)
            if route == "":
                return UiResponse(200, "text/html; charset=utf-8", self._index, _SECURITY_HEADERS)
            if route in self._static:
                return UiResponse(200, _STATIC[route], self._static[route], _SECURITY_HEADERS)
            return _error_response(grpc.StatusCode.NOT_FOUND, f"no such page: {shown(path)}")
        except RequestError as error:
            return _error_response(error.code, error.message)
        except (ValueError, TypeError, LookupError) as error:
            return _error_response(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    # --- the API ---------------------------------------------------------------------------------------

    def _api(self, request: UiRequest, route: str, query: Mapping[str, str]) -> UiResponse:
        if route in ("state", "operations"):
            if request.method != "GET":
                return _error_response(grpc.StatusCode.INVALID_ARGUMENT, f"{request.method}: expected GET", 405)
            return _json_response(200, self._state() if route == "state" else self._operations(query))
        control = self._controls.get(route)
        if control is None:
            return _error_response(grpc.StatusCode.NOT_FOUND, f"no such control: {shown(route)}")
        if request.method != "POST":
            return _error_response(grpc.StatusCode.INVALID_ARGUMENT, f"{request.method}: controls take POST only", 405)
        refusal = self._refuse_control(request)
        if refusal is not None:
            return _error_response(grpc.StatusCode.PERMISSION_DENIED, refusal)
        try:
            body = json.loads(request.body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise invalid("body: expected a JSON object") from None
        if not isinstance(body, dict):
            raise invalid("body: expected a JSON object")
        result = control(body)
        return _json_response(200, result if isinstance(result, dict) else self._state())

    def _refuse_control(self, request: UiRequest) -> str | None:
        """Why a control request is refused (no token, wrong token, foreign origin, not JSON), or ``None``."""
        token = request.headers.get(TOKEN_HEADER.lower(), "")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return f"controls need the page's token in {TOKEN_HEADER}"
        origin = request.headers.get("origin")
        if origin is not None and (urlsplit(origin).hostname or "") not in _LOOPBACK_NAMES:
            return f"controls refuse requests from another origin, got {shown(origin)}"
        if not request.headers.get("content-type", "").startswith("application/json"):
            return "controls take Content-Type: application/json"
        return None

    def _state(self) -> dict[str, Any]:
        backend = self._backend
        now = backend.clock.now()
        faults = backend.faults
        scopes = backend.store.scopes()
        return {
            "now": _iso(now),
            "speed": backend.clock.speed,
            "paused": backend.clock.speed == 0,
            "resumeSpeed": self._resume_speed,
            "faults": {
                "unavailable": faults.unavailable,
                "resourceExhausted": faults.resource_exhausted,
                "latencyMs": round(_seconds(faults.latency) * 1000, 3),
            },
            "grpcTarget": self._grpc_target,
            "locations": sorted({collection.rsplit("/", 1)[-1] for collection in scopes[0]}),
            "services": sorted(scopes[1]),
            "failureCodes": [code.name for code in FAILURE_CODES],
            "count": backend.store.count(),
        }

    def _operations(self, query: Mapping[str, str]) -> dict[str, Any]:
        state = query.get("state", "")
        if state and state not in STATES:
            raise invalid(f"state: expected one of {', '.join(STATES)}, got {shown(state)}")
        api = query.get("api", "")
        if api and api not in (_model.FINANCIAL_SERVICES, _model.SERVICE_MANAGEMENT):
            raise invalid(f"api: expected financialservices or servicemanagement, got {shown(api)}")
        page_size = _query_int(query, "pageSize", DEFAULT_UI_PAGE_SIZE, 1, MAX_UI_PAGE_SIZE)
        before = _query_int(query, "pageToken", 0, 0, 2**62)
        browse = _Browse(api, query.get("location", ""), query.get("service", ""), state, query.get("q", ""))
        backend = self._backend
        now = backend.clock.now()
        condition, parameters = browse.where(now, backend.retention)
        records, more, total = backend.store.browse(condition, parameters, before_seq=before, limit=page_size)
        return {
            "now": _iso(now),
            "total": total,
            "operations": [self._row(record, now) for record in records],
            "nextPageToken": str(records[-1].seq) if more and records else "",
        }

    def _row(self, record: OperationRecord, now: float) -> dict[str, Any]:
        operation = _model.render(record, now)
        rest = operation_to_dict(operation, self._registry)
        done = operation.done
        if not done:
            state = "RUNNING"
        elif operation.HasField("error"):
            state = "CANCELLED" if record.outcome == _model.CANCEL else "FAILED"
        else:
            state = "SUCCEEDED"
        metadata = rest.get("metadata", {})
        fs = record.api == _model.FINANCIAL_SERVICES
        if fs:
            span = record.natural_end - record.start_at
            elapsed = min(now, record.end_at) - record.start_at
            progress = 100 if state == "SUCCEEDED" or span <= 0 else min(100, max(0, int(elapsed * 100 / span)))
            scope = record.collection.rsplit("/", 1)[-1]
            verb, target = metadata.get("verb", ""), metadata.get("target", "")
        else:
            progress = int(metadata.get("progressPercentage", 0))
            scope = record.service_name
            verb, target = record.method, ", ".join(metadata.get("resourceNames", []))
        code = grpc.StatusCode.OK
        if operation.HasField("error"):
            code = next((member for member in grpc.StatusCode if member.value[0] == operation.error.code), code)
        return {
            "name": record.name,
            "api": record.api,
            "scope": scope,
            "state": state,
            "errorCode": code.name if state in ("FAILED", "CANCELLED") else "",
            "progress": progress,
            "verb": verb,
            "target": target,
            "created": _iso(record.start_at),
            "ends": _iso(record.end_at),
            "cancellable": fs and not done,
            "deletable": fs,
            "operation": rest,
        }

    # --- controls ----------------------------------------------------------------------------------------

    def _finish(self, body: dict[str, Any], *, error: bool) -> None:
        status = failure_status(body.get("code", "FAILED_PRECONDITION"), _text(body, "message", "")) if error else None
        self._backend.finish_operation(_text(body, "name"), status)

    def _start(self, body: dict[str, Any]) -> dict[str, Any]:
        parent = _text(body, "parent")
        metadata: list[tuple[str, str | bytes]] = []
        if body.get("duration") not in (None, ""):
            metadata.append((DURATION_HEADER, str(_number(body, "duration"))))
        outcome = _text(body, "outcome", "success")
        metadata.append((OUTCOME_HEADER, outcome))
        method, request = starting_request(parent, unique=secrets.token_hex(6))
        operation = self._backend.start_operation(method, request, metadata)
        return {"name": operation.name}

    def _set_speed(self, body: dict[str, Any]) -> None:
        speed = _number(body, "speed")
        self._backend.clock.set_speed(speed)
        if speed > 0:
            self._resume_speed = speed

    def _pause(self, body: dict[str, Any]) -> None:
        clock = self._backend.clock
        if clock.speed > 0:
            self._resume_speed = clock.speed
            clock.set_speed(0)

    def _resume(self, body: dict[str, Any]) -> None:
        if self._backend.clock.speed == 0:
            self._backend.clock.set_speed(self._resume_speed)

    def _set_faults(self, body: dict[str, Any]) -> None:
        faults = self._backend.faults
        if "unavailable" in body:
            faults.unavailable = _number(body, "unavailable")
        if "resourceExhausted" in body:
            faults.resource_exhausted = _number(body, "resourceExhausted")
        if "latencyMs" in body:
            faults.latency = _number(body, "latencyMs") / 1000


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _text(body: Mapping[str, Any], field: str, default: str | None = None) -> str:
    value = body.get(field, default)
    if not isinstance(value, str):
        raise invalid(f"{field}: expected a string, got {shown(json.dumps(value))}")
    return value


def _number(body: Mapping[str, Any], field: str) -> float:
    value = body.get(field)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{field}: expected a number, got {shown(json.dumps(value))}")
    return float(value)


def _query_int(query: Mapping[str, str], field: str, default: int, low: int, high: int) -> int:
    text = query.get(field, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise invalid(f"{field}: expected an integer in {low}..{high}, got {shown(text)}")
    return value


def header_pairs(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Request headers by lowercased name (the last of repeated ones)."""
    return {key.lower(): value for key, value in headers}
