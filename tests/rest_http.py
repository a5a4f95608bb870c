"""A small HTTP/JSON client for the emulator's REST gateway, on the standard library's http.client."""

from __future__ import annotations

import dataclasses
import http.client
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


@dataclasses.dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers (names lowercased) and the parsed JSON body."""

    status: int
    headers: dict[str, str]
    body: Any
    text: str

    @property
    def error(self) -> dict[str, Any]:
        """The ``error`` object of a Google JSON error body."""
        assert set(self.body) == {"error"}, self.body
        error: dict[str, Any] = self.body["error"]
        return error


def call(
    base_url: str,
    method: str,
    path: str,
    body: bytes | str | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> Reply:
    """Send one request to ``base_url`` + ``path`` and read the JSON answer.

    A mapping body is sent as JSON; bytes and text as they are.
    """
    where = urlsplit(base_url)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=timeout)
    try:
        payload: bytes | None
        if body is None:
            payload = None
        elif isinstance(body, Mapping):
            payload = json.dumps(body).encode()
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body
        sent = {"Authorization": "Bearer test-token", **(headers or {})}
        if payload is not None:
            sent.setdefault("Content-Type", "application/json; charset=utf-8")
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        text = response.read().decode("utf-8")
        return Reply(
            status=response.status,
            headers={key.lower(): value for key, value in response.getheaders()},
            body=json.loads(text) if text else None,
            text=text,
        )
    finally:
        connection.close()
