"""lro_grpc lives beside Google's packages in one process, imported in either order.

Each case runs in a fresh interpreter (``python -I -c``): the descriptor pool
clash this guards against happens at import time, once per process. The
installed distribution is checked too: it must add no top-level module named
``generated`` and nothing under the ``google`` namespace.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds wheels and runs interpreters in subprocesses

_OFFICIAL = ("google.api_core.operations_v1", "google.cloud.financialservices_v1", "google.cloud.servicemanagement_v1")

_SCRIPT = textwrap.dedent(
    """
    import importlib
    import sys

    def import_lro_grpc():
        import lro_grpc
        import lro_grpc.registry
        import lro_grpc._json
        import lro_grpc._generated.financialservices_v1_pb2
        import lro_grpc._generated.financialservices_v1_pb2_grpc
        import lro_grpc._generated.servicemanagement_v1_pb2
        import lro_grpc._generated.servicemanagement_v1_pb2_grpc
        import lro_grpc._generated.operations_pb2_grpc

    for name in sys.argv[1:]:
        if name == "lro_grpc":
            import_lro_grpc()
        else:
            importlib.import_module(name)

    # Pack with the official classes (imported now if the order did not include them).
    from google.cloud import financialservices_v1, servicemanagement_v1
    from google.longrunning import operations_pb2
    from google.protobuf import any_pb2
    from lro_grpc._generated import financialservices_v1_pb2 as fs
    from lro_grpc._generated import servicemanagement_v1_pb2 as sm
    from lro_grpc._json import operation_to_dict
    from lro_grpc.registry import default_registry

    registry = default_registry()
    fs_any = any_pb2.Any()
    fs_any.Pack(financialservices_v1.OperationMetadata.pb(financialservices_v1.OperationMetadata(verb="create")))
    fs_metadata = registry.unpack(fs_any)
    assert type(fs_metadata) is fs.OperationMetadata, type(fs_metadata)
    assert fs_metadata.verb == "create"

    sm_any = any_pb2.Any()
    sm_any.Pack(servicemanagement_v1.OperationMetadata.pb(servicemanagement_v1.OperationMetadata(progress_percentage=7)))
    sm_metadata = registry.unpack(sm_any)
    assert type(sm_metadata) is sm.OperationMetadata, type(sm_metadata)
    assert sm_metadata.progress_percentage == 7

    # The other direction, and the official classes still work on their own.
    ours = any_pb2.Any()
    ours.Pack(fs.Instance(name="i", state=fs.Instance.State.ACTIVE))
    theirs = financialservices_v1.Instance.pb()()
    assert ours.Unpack(theirs) and theirs.name == "i" and theirs.state == 2

    operation = operations_pb2.Operation(name="operations/x", metadata=sm_any)
    print(operation_to_dict(operation, registry)["metadata"]["progressPercentage"])
    """
)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # -I: no current directory, PYTHONPATH or user site on sys.path, so only the
    # installed distribution is importable (not the source tree's generated/).
    return subprocess.run(
        [sys.executable, "-I", "-c", _SCRIPT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_ORDERS = [
    *[pytest.param(["lro_grpc", official], id=f"lro_grpc-then-{official}") for official in _OFFICIAL],
    *[pytest.param([official, "lro_grpc"], id=f"{official}-then-lro_grpc") for official in _OFFICIAL],
    pytest.param([_OFFICIAL[1], "lro_grpc", _OFFICIAL[2], _OFFICIAL[0]], id="lro_grpc-between-official"),
]


@pytest.mark.parametrize("order", _ORDERS)
def test_import_order(order: list[str], tmp_path: Path) -> None:
    result = _run(order, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"


_INSPECT = textwrap.dedent(
    """
    import ast
    import importlib.metadata
    import importlib.util
    import json
    import sys

    dist = importlib.metadata.distribution("lro-grpc")
    files = [str(path) for path in dist.files or []]
    finders = {}
    for path in dist.files or []:
        if path.name.startswith("__editable__") and path.name.endswith("_finder.py"):
            values = {}
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                    values[node.target.id] = node.value
                elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    values[node.targets[0].id] = node.value
            finders[path.name] = {
                "mapping": sorted(ast.literal_eval(values["MAPPING"])),
                "namespaces": sorted(ast.literal_eval(values.get("NAMESPACES", ast.Dict(keys=[], values=[])))),
            }
    print(json.dumps({
        "files": files,
        "top_level": (dist.read_text("top_level.txt") or "").split(),
        "finders": finders,
        "generated_spec": importlib.util.find_spec("generated") is not None,
        "lro_generated_spec": importlib.util.find_spec("lro_grpc._generated") is not None,
    }))
    """
)


def test_distribution_adds_no_generated_and_nothing_under_google(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-c", _INSPECT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["top_level"] == ["lro_grpc"]
    assert report["files"], "the distribution lists no files"
    for file in report["files"]:
        top = file.split("/")[0]
        # Scripts live outside site-packages (../../../bin), metadata in *.dist-info,
        # and an editable install adds its finder, its .pth and their bytecode.
        allowed = (
            top in ("lro_grpc", "..", "__pycache__") or top.endswith(".dist-info") or top.startswith("__editable__")
        )
        assert allowed, f"the distribution installs {file!r} outside lro_grpc"
        assert top not in ("generated", "google"), file
        assert not file.startswith(("generated/", "generated.", "google/")), file
    for finder in report["finders"].values():
        assert finder["mapping"], finder
        for module in finder["mapping"]:
            assert module == "lro_grpc" or module.startswith("lro_grpc."), finder
        assert not any(name == "google" or name.startswith("google.") for name in finder["namespaces"]), finder
    assert report["generated_spec"] is False
    assert report["lro_generated_spec"] is True


def test_wheel_installs_only_under_lro_grpc(tmp_path: Path) -> None:
    # Build from a copy so the working tree gets no build/ or egg-info changes.
    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / name).exists():
            shutil.copy2(root / name, source / name)
    for package in ("lro_grpc", "generated"):
        shutil.copytree(root / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            wheels,
            source,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("lro_grpc-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = next(name for name in names if name.endswith(".dist-info/RECORD"))
        recorded = [line.split(",")[0] for line in archive.read(record).decode().splitlines() if line]
        top_level = archive.read(record.replace("RECORD", "top_level.txt")).decode().split()
    assert top_level == ["lro_grpc"]
    for name in [*names, *recorded]:
        top = name.split("/")[0]
        assert top == "lro_grpc" or top.endswith(".dist-info"), f"the wheel installs {name!r} outside lro_grpc"
    assert "lro_grpc/_generated/financialservices_v1_pb2.py" in names
    assert "lro_grpc/_generated/operations_pb2_grpc.py" in names
    assert "lro_grpc/py.typed" in names
