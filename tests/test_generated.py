"""The generated modules load into the private pool and decode the wire."""

from __future__ import annotations

from lro_grpc import _descriptor_pool
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import servicemanagement_v1_pb2 as sm


def test_messages_live_in_private_pool() -> None:
    found = _descriptor_pool.POOL.FindMessageTypeByName("google.cloud.financialservices.v1.Instance")
    assert found.full_name == fs.Instance.DESCRIPTOR.full_name
    assert fs.Instance.DESCRIPTOR.file.pool is _descriptor_pool.POOL
    assert sm.Rollout.DESCRIPTOR.file.pool is _descriptor_pool.POOL


def test_well_known_types_keep_their_helpers() -> None:
    instance = fs.Instance()
    instance.create_time.FromSeconds(1_468_630_615)
    assert instance.create_time.ToDatetime().year == 2016
