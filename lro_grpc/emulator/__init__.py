"""A local emulator of Google long-running operations, for development and tests.

It serves, over plaintext gRPC on loopback:

* ``google.longrunning.Operations``: ``GetOperation``, ``ListOperations``,
  ``CancelOperation`` and ``DeleteOperation`` (Financial Services operations
  only: Service Management offers neither, so they answer ``UNIMPLEMENTED``
  there), and ``WaitOperation`` when asked for (``wait_rpc=True``,
  ``--wait-rpc``; neither API offers it, so by default it answers
  ``UNIMPLEMENTED``);
* Financial Services v1 ``AML``: ``CreateInstance``, ``UpdateInstance``,
  ``DeleteInstance``;
* Service Management v1 ``ServiceManager``: ``CreateServiceRollout``,
  ``SubmitConfigSource``, ``CreateService``, ``DeleteService``,
  ``UndeleteService``.

With ``rest_port`` (``--rest-port``) it also serves both APIs' REST routes
(HTTP/JSON, as their ``google.api.http`` rules define them) over the same
operations; see ``docs/emulator-rest.md``. Its limits: a listen backlog of
``REST_LISTEN_BACKLOG`` (1024), bodies of at most ``REST_MAX_BODY_BYTES`` (1 MiB;
``413`` above), at most ``REST_MAX_CONNECTIONS`` (256) connections at once
(``503 UNAVAILABLE`` with ``Retry-After: 1`` above). There, at ``/ui/``
(``Emulator.ui_url``; ``ui=False``, ``--no-ui``: off), an operations page shows
both APIs' operations and steers them, the clock and the faults; see
``docs/emulator-ui.md``. ``Emulator.succeed``, ``fail``, ``cancel`` and ``delete``
do from code what its buttons do.

Google's own client libraries work against it unchanged, e.g.
``AMLClient(transport=AMLGrpcTransport(channel=grpc.insecure_channel(emu.target)))``,
or over REST with ``transport="rest"`` and ``client_options={"api_endpoint": emu.rest_url}``.

Use it from tests (sync or asyncio; the server runs on a thread of its own)::

    from lro_grpc.emulator import Emulator, Faults

    with Emulator(speed=0) as emu:          # a frozen clock: only advance() moves it
        channel = grpc.insecure_channel(emu.target)
        ...                                 # start operations, poll them
        emu.advance(60)                     # a simulated minute passes
        emu.faults.unavailable = 0.3        # 30% of calls now fail with UNAVAILABLE

or from a shell: ``lro-grpc emulator --port 8080 [--db PATH]`` (also
``python -m lro_grpc.emulator``), which prints ``host:port`` once listening.

Operations
    An operation runs for a configurable simulated duration (``default_duration``,
    60 s by default; per RPC with ``durations``) on a clock running ``speed``
    times real time. Names: ``projects/P/locations/L/operations/operation-...``
    (Financial Services; the parent comes from the request) and
    ``operations/rollouts.<service>:<rollout-id>``,
    ``operations/serviceConfigs.<service>:<id>``, ``operations/services.<service>:<id>``
    (Service Management). Ids are random, so they stay unique across restarts.
    Metadata evolves as on the real services: Financial Services
    ``OperationMetadata`` gets ``end_time`` when done and
    ``requested_cancellation`` after a cancel; Service Management
    ``OperationMetadata`` steps move ``NOT_STARTED`` -> ``IN_PROGRESS`` ->
    ``DONE`` while ``progress_percentage`` climbs from 0 to 100. Done operations
    carry the typed response (``Instance`` ACTIVE, ``Rollout`` SUCCESS,
    ``Empty`` for deletes, ``SubmitConfigSourceResponse``, ...).

Per-call control (request metadata, or HTTP headers over REST, so any client can use it)
    ``x-emulator-duration-seconds: <float>``
        simulated seconds the operation started by this call takes (``0``: done at once).
    ``x-emulator-outcome: success|fail``
        ``fail`` makes the operation end with a ``FAILED_PRECONDITION`` error
        carrying a ``google.rpc.ErrorInfo`` (reason ``EMULATED_FAILURE``).

Semantics
    * Cancel (Financial Services) is best effort: it sets ``requested_cancellation``; the operation
      ends at once with a ``CANCELLED`` (code 1) error, unless it was due to
      finish within ``cancel_grace`` simulated seconds (2 s by default): then it
      finishes normally. Cancelling a done operation changes nothing.
    * Delete (Financial Services) removes the record without cancelling; later calls say ``NOT_FOUND``.
    * A new rollout cancels the service's earlier rollouts that are still
      running: their operations end at once with ``CANCELLED``, as the
      ``services.rollouts.create`` reference says.
    * A done operation's record is kept for ``retention`` simulated time (30
      days by default); after that ``GetOperation`` says ``NOT_FOUND`` and
      ``ListOperations`` omits it.
    * ``ListOperations`` takes ``name`` ``projects/P/locations/L`` (Financial
      Services: ``page_size`` 0 means 100, at most 1000) or any other value
      (Service Management, whose reference says the name is not used:
      ``page_size`` 0 means 50, at most 100); lists oldest first. The
      ``filter`` follows each API's documented grammar (Financial Services
      ``done=true|false``; Service Management a required top-level
      ``serviceName=``, ``startTime`` comparisons and ``status=``/``!=``
      ``done|in_progress|failed``, with ``AND``, ``OR`` and parentheses; see
      ``lro_grpc.emulator._filters``). The ``page_token`` is opaque, signed
      with the emulator's key for its scope and filter, and stays correct
      while operations are added (it resumes after the last operation returned).
    * ``WaitOperation`` (with ``wait_rpc=True``) waits until the operation is done, at most its
      ``timeout`` in real seconds (60 s when absent) and never past the RPC
      deadline (it answers up to 0.5 s, or a fifth of the time left, before
      it), then returns the operation, done or not.
    * Bad requests get ``INVALID_ARGUMENT`` naming the field and value (a value is
      quoted cut to ``ECHO_LIMIT``, 200 characters, then its length);
      unknown operations ``NOT_FOUND``. So is hostile input, before any work:
      a string field over ``MAX_STRING_LENGTH`` (1,024) characters (a ``filter``:
      8,192) or holding a NUL, a filter nested over 32 parentheses deep or with
      over 200 comparisons, a REST body nested over 64 deep (see
      ``lro_grpc.emulator._limits``). An ``AML`` ``request_id`` must be a
      non-zero UUID; repeated with the same request within 60 simulated
      minutes it returns the operation the first call started, with a
      different request it is ``INVALID_ARGUMENT``. A ``rollout_id`` is at most
      63 lower-case letters, digits, ``.``, ``_`` or ``-``.

State is kept in SQLite: in memory by default, or in the file ``db``; an
emulator restarted on the same file loses nothing, and its clock carries on
from where it was (operations kept progressing in the meantime).

Fault injection (off by default; :class:`Faults`, or the command-line flags)
    a fraction of calls failing with ``UNAVAILABLE``, or with
    ``RESOURCE_EXHAUSTED`` carrying a ``google.rpc.RetryInfo`` in the
    ``grpc-status-details-bin`` trailer (a serialized ``google.rpc.Status``,
    as Google's servers send it); latency added to every call;
    a served ``WaitOperation`` switched back to ``UNIMPLEMENTED``. Draws are seedable.

The behaviours above are listed against the references, each with its test,
in ``docs/emulator-fidelity.md``.
"""

from __future__ import annotations

from lro_grpc.emulator._clock import SimulatedClock
from lro_grpc.emulator._emulator import DEFAULT_CANCEL_GRACE, DEFAULT_DURATION, DEFAULT_RETENTION, Emulator
from lro_grpc.emulator._faults import STATUS_DETAILS_KEY, Faults
from lro_grpc.emulator._limits import ECHO_LIMIT, MAX_STRING_LENGTH
from lro_grpc.emulator._listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SM_DEFAULT_PAGE_SIZE, SM_MAX_PAGE_SIZE
from lro_grpc.emulator._main import main
from lro_grpc.emulator._model import DEFAULT_WAIT_TIMEOUT, DURATION_HEADER, OUTCOME_HEADER
from lro_grpc.emulator._rest import REST_LISTEN_BACKLOG, REST_MAX_BODY_BYTES, REST_MAX_CONNECTIONS
from lro_grpc.emulator._server import STARTING_METHODS

__all__ = [
    "DEFAULT_CANCEL_GRACE",
    "DEFAULT_DURATION",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_RETENTION",
    "DEFAULT_WAIT_TIMEOUT",
    "DURATION_HEADER",
    "ECHO_LIMIT",
    "MAX_PAGE_SIZE",
    "MAX_STRING_LENGTH",
    "OUTCOME_HEADER",
    "REST_LISTEN_BACKLOG",
    "REST_MAX_BODY_BYTES",
    "REST_MAX_CONNECTIONS",
    "SM_DEFAULT_PAGE_SIZE",
    "SM_MAX_PAGE_SIZE",
    "STARTING_METHODS",
    "STATUS_DETAILS_KEY",
    "Emulator",
    "Faults",
    "SimulatedClock",
    "main",
]
