#!/usr/bin/env python3
"""Generates the Python gRPC stubs of convgroups from ../../proto into ./gen.

    python generate.py

Uses grpcio-tools (a pip package that bundles protoc and the well-known types
such as google/protobuf/timestamp.proto), so no system protoc is needed.
The output is not checked in; common.py runs this on demand.
"""
import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
OUT = HERE / "gen"


def generate() -> None:
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.glob("convgroups/v1/*.proto"))
    if not protos:
        sys.exit(f"generate.py: no .proto files under {PROTO_ROOT}/convgroups/v1")
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={OUT}",
        f"--pyi_out={OUT}",
        f"--grpc_python_out={OUT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        sys.exit("generate.py: protoc failed")
    print(f"generated {len(protos)} protos into {OUT.relative_to(HERE)}/", file=sys.stderr)


if __name__ == "__main__":
    generate()
