"""One failure vocabulary: the batch reads failed RPCs with the core's reader and the core's code table.

The batch's GetOperation and ListOperations attempts come back as ``RpcFailure``
values (``lro_grpc._core.attempt_plan``), read by the functions single calls use;
the codes the batch looks at again, or suspects, are named variants of the one
table in ``lro_grpc._core.failures``. These tests read the batch's source, so a
second table or a second RetryInfo parser fails them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from lro_grpc import _core
from lro_grpc._core import failures
from lro_grpc.policies import RETRIED_CODES, RETRIED_READ_CODES, RetryPolicy

ROOT = Path(__file__).resolve().parent.parent


def _status_codes_in(node: ast.AST) -> int:
    """How many ``grpc.StatusCode.X`` (or ``StatusCode.X``) attributes ``node`` names."""
    count = 0
    for inner in ast.walk(node):
        if isinstance(inner, ast.Attribute) and (
            (isinstance(inner.value, ast.Attribute) and inner.value.attr == "StatusCode")
            or (isinstance(inner.value, ast.Name) and inner.value.id == "StatusCode")
        ):
            count += 1
    return count


def code_tables(path: Path) -> list[str]:
    """Assignments (at any level) whose value names two or more status codes: a table of codes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if value is not None and _status_codes_in(value) >= 2:
            found.append(f"{path.name}:{node.lineno}")
    return found


def status_detail_readers(path: Path) -> list[str]:
    """Places that parse ``google.rpc`` status details (RetryInfo, the status trailer) themselves."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        named = (
            (isinstance(node, ast.Attribute) and node.attr == "RetryInfo")
            or (isinstance(node, ast.Name) and node.id == "RetryInfo")
            or (isinstance(node, ast.Constant) and node.value == "grpc-status-details-bin")
            or (  # status_pb2.Status.FromString(...): parsing a status trailer
                isinstance(node, ast.Attribute)
                and node.attr in {"FromString", "ParseFromString"}
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "Status"
            )
        )
        if named:
            found.append(f"{path.name}:{node.lineno}")
    return found


BATCH_FILES = sorted((ROOT / "lro_grpc" / "_batch").glob("*.py"))


def test_the_batch_has_no_code_table_of_its_own() -> None:
    assert BATCH_FILES
    tables = [place for path in BATCH_FILES for place in code_tables(path)]
    assert not tables, f"code tables in the batch (name a variant in lro_grpc/_core/failures.py): {tables}"


def test_the_batch_parses_no_status_details_itself() -> None:
    readers = [place for path in BATCH_FILES for place in status_detail_readers(path)]
    assert not readers, f"the batch reads status details itself (use lro_grpc._core.retry_info_delay): {readers}"


def test_the_finders_see_a_table_and_a_parser(tmp_path: Path) -> None:
    # What the batch had before the vocabulary was shared: both must be found.
    source = tmp_path / "_old_base.py"
    source.write_text(
        "import grpc\n"
        "from google.rpc import error_details_pb2\n"
        "TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})\n"
        "def delay(value):\n"
        "    info = error_details_pb2.RetryInfo()\n"
        "    return status_pb2.Status.FromString(value), info\n",
        encoding="utf-8",
    )
    assert code_tables(source) == ["_old_base.py:3"]
    assert status_detail_readers(source) == ["_old_base.py:5", "_old_base.py:6"]


def test_the_batch_variants_are_named_from_the_single_call_table() -> None:
    assert failures.RETRIED_CODES is RETRIED_CODES
    assert failures.RETRIED_READ_CODES is RETRIED_READ_CODES
    # A look at an operation is a read: what a read retries, the batch looks at again,
    # except RESOURCE_EXHAUSTED, which pauses the whole scheduler instead.
    assert RETRIED_READ_CODES - {grpc.StatusCode.RESOURCE_EXHAUSTED} <= _core.LOOK_AGAIN_CODES
    assert grpc.StatusCode.RESOURCE_EXHAUSTED not in _core.LOOK_AGAIN_CODES
    assert not _core.LOOK_AGAIN_CODES & _core.SUSPECT_CODES
    assert not (_core.LOOK_AGAIN_CODES | _core.SUSPECT_CODES) & _core.LIST_REJECTED_CODES


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda code: code.name)
def test_the_retry_policy_answers_from_the_table(code: grpc.StatusCode) -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(code, idempotent_read=False) == (code in RETRIED_CODES)
    assert policy.is_retryable(code, idempotent_read=True) == (code in RETRIED_READ_CODES)
