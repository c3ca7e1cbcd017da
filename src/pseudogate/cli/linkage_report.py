"""``pseudogate linkage-report``: counts only: records, people, overlaps between datasets."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.v1 import admin_pb2, admin_pb2_grpc


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "linkage-report", help="records, distinct people and overlaps per dataset (counts only)"
    )
    add_client_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("linkage report"):
        reply = admin_pb2_grpc.AdminServiceStub(channel).LinkageReport(
            admin_pb2.LinkageReportRequest()
        )
    print(json.dumps(json.loads(reply.report_json), indent=2, sort_keys=True))
    return 0
