"""A loopback gRPC server that answers ``google.longrunning.Operations`` calls with arbitrary bytes.

Hostile-server tests need answers no well-behaved servicer would send: bytes
that do not parse, another operation's record, an answer larger than the
client's receive limit. :class:`RawOperations` serves, for each method, a
function from the serialized request to the raw response bytes.

Example::

    raw = RawOperations(GetOperation=lambda request: b"\\xff\\xff")
    with serve_raw(raw) as target:
        ...
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import grpc
from servicer import serve_on_loopback

__all__ = ["RawOperations", "serve_raw"]

SERVICE = "google.longrunning.Operations"

Answer = Callable[[bytes], bytes]
"""The raw response bytes for one call, given the raw request bytes."""


class RawOperations(grpc.GenericRpcHandler):
    """Serves each method of ``google.longrunning.Operations`` from a function of raw bytes.

    Methods with no function answer ``UNIMPLEMENTED``. ``calls`` counts the
    calls received per method.
    """

    def __init__(self, **answers: Answer) -> None:
        self.answers = answers
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, method: str) -> int:
        """Calls of ``method`` received so far."""
        with self._lock:
            return self.calls.get(method, 0)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        answer = self.answers.get(method)
        if service != SERVICE or answer is None:
            return None

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            with self._lock:
                self.calls[method] = self.calls.get(method, 0) + 1
            return answer(request)

        # No (de)serializers: the handler sees and returns raw bytes.
        return grpc.unary_unary_rpc_method_handler(handle)


@contextlib.contextmanager
def serve_raw(handler: RawOperations) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port (no message size limits); yields the ``host:port`` target."""
    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with serve_on_loopback(lambda server: server.add_generic_rpc_handlers((handler,)), options=unlimited) as target:
        yield target
