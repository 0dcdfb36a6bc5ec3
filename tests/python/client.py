"""A Python caller of jhf-warp through stubs generated from proto/ with grpcio-tools.

Usage: client.py HOST:PORT READER_TOKEN (the stubs' directory first on PYTHONPATH).
Proves a unary call, a server stream, and a refused call whose google.rpc.ErrorInfo is read
from the status details. Exits non-zero on any surprise.
"""

import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from jhf.warp.v1 import drift_pb2, drift_pb2_grpc, meta_pb2, meta_pb2_grpc, topology_pb2, topology_pb2_grpc


def main() -> int:
    target, token = sys.argv[1], sys.argv[2]
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(target) as channel:
        version = meta_pb2_grpc.MetaServiceStub(channel).GetVersion(meta_pb2.GetVersionRequest(), metadata=metadata, timeout=10)
        assert version.service == "jhf-warp", version
        assert version.proto_package == "jhf.warp.v1", version
        print(f"unary: {version.service} {version.version}")

        stream = topology_pb2_grpc.TopologyServiceStub(channel).WatchTopology(
            topology_pb2.WatchTopologyRequest(), metadata=metadata, timeout=10
        )
        first = next(stream)
        stream.cancel()
        assert first.initial, first
        agents = sorted(node.agent_id for node in first.topology.nodes)
        print(f"stream: first event kind={first.kind} initial={first.initial} agents={agents}")
        if first.kind == topology_pb2.TOPOLOGY_EVENT_KIND_OBSERVED:
            assert agents == ["lead", "research", "writer"], agents

        try:
            drift_pb2_grpc.DriftServiceStub(channel).ObserveNow(
                drift_pb2.ObserveNowRequest(request_id="python-1"), metadata=metadata, timeout=10
            )
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error
            status = rpc_status.from_call(error)
            infos = []
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    infos.append(info)
            assert infos and infos[0].reason == "ROLE_NOT_PERMITTED" and infos[0].domain == "jhf-warp", infos
            print(f"refused: {error.code().name} reason={infos[0].reason} domain={infos[0].domain}")
        else:
            raise AssertionError("a reader may not call ObserveNow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
