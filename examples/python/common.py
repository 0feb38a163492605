"""Shared helpers of the Python examples: connection, auth, error details.

Configuration comes from the environment:
  CONVGROUPS_ADDR   host:port of the server (default 127.0.0.1:50051)
  CONVGROUPS_TOKEN  a token from `convgroups token --user example-python`
"""
import collections
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
GEN = HERE / "gen"


def _stubs_are_stale() -> bool:
    marker = GEN / "convgroups" / "v1" / "conversation_group_service_pb2_grpc.py"
    if not marker.exists():
        return True
    built = marker.stat().st_mtime
    return any(p.stat().st_mtime > built for p in (HERE.parent.parent / "proto").rglob("*.proto"))


if _stubs_are_stale():
    import generate

    generate.generate()
sys.path.insert(0, str(GEN))

import grpc  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402  (googleapis-common-protos)
from grpc_status import rpc_status  # noqa: E402  (grpcio-status)

from convgroups.v1 import conversation_group_service_pb2 as groups_pb2  # noqa: E402,F401
from convgroups.v1 import conversation_group_service_pb2_grpc as groups_grpc  # noqa: E402
from convgroups.v1 import conversation_service_pb2 as conversations_pb2  # noqa: E402,F401
from convgroups.v1 import conversation_service_pb2_grpc as conversations_grpc  # noqa: E402
from convgroups.v1 import events_pb2  # noqa: E402,F401
from convgroups.v1 import types_pb2  # noqa: E402,F401


def settings() -> tuple[str, str]:
    addr = os.environ.get("CONVGROUPS_ADDR", "127.0.0.1:50051")
    token = os.environ.get("CONVGROUPS_TOKEN")
    if not token:
        sys.exit("set CONVGROUPS_TOKEN (e.g. export CONVGROUPS_TOKEN=$(convgroups token --user example-python))")
    return addr, token


def connect(addr: str, token: str) -> grpc.Channel:
    """A plaintext channel whose calls all carry `authorization: Bearer <token>`.

    (With TLS, grpc.metadata_call_credentials composed with
    grpc.ssl_channel_credentials does the same; grpcio sends call credentials
    over secure channels only, hence the interceptor for this local server.)
    """
    return grpc.intercept_channel(grpc.insecure_channel(addr), _AuthInterceptor(token))


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class _AuthInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str):
        self._auth = ("authorization", f"Bearer {token}")

    def _with_token(self, d):
        metadata = list(d.metadata or []) + [self._auth]
        return _CallDetails(d.method, d.timeout, metadata, d.credentials, d.wait_for_ready, d.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


def error_info(err: grpc.RpcError):
    """The google.rpc.ErrorInfo of a failed call, or None.

    The server sends a binary google.rpc.Status in the
    `grpc-status-details-bin` trailer; grpc_status.rpc_status.from_call
    decodes it and checks that it agrees with the call's code and message.
    Its `details` are google.protobuf.Any values: unpack the ErrorInfo.
    """
    status = rpc_status.from_call(err)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def describe_error(err: grpc.RpcError) -> str:
    """One readable line: code, message, reason, domain and metadata."""
    line = f"{err.code().name}: {err.details()}"
    info = error_info(err)
    if info is not None:
        metadata = ", ".join(f"{k}={v}" for k, v in sorted(info.metadata.items()))
        line += f" [reason={info.reason} domain={info.domain} {metadata}]"
    return line


class Check:
    """Counts assertions; any mismatch ends the program with exit code 1."""

    def __init__(self, name: str):
        self.name = name
        self.passed = 0

    def equal(self, what: str, got, want) -> None:
        if got != want:
            print(f"FAIL {what}: got {got!r}, want {want!r}", file=sys.stderr)
            sys.exit(1)
        self.passed += 1

    def true(self, what: str, ok: bool, detail: str = "") -> None:
        if not ok:
            print(f"FAIL {what} {detail}".rstrip(), file=sys.stderr)
            sys.exit(1)
        self.passed += 1

    def done(self) -> None:
        print(f"{self.name}: OK ({self.passed} checks)")
