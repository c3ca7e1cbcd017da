"""``pseudogate request ...``: people's rights requests, each needing two different people.

Every verb that creates a request prints its id alone on the last line of its output, so a
script can take it with ``tail -n 1``. Results are fetched once: ``result`` (the subject access
report, its requester only) and ``fetch`` (a provider's own records of a re-identification).
Nothing here echoes an NHS number or a token to the terminal (docs/rights.md).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.cli._common import fail
from pseudogate.core.fileio import atomic_write_text
from pseudogate.v1 import audit_pb2, audit_pb2_grpc, rights_pb2, rights_pb2_grpc

__all__ = ["register", "report_text"]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "request", help="people's rights: subject access and re-identification (two approvals)"
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    v = verbs.add_parser("subject-access", help="ask where a person's data is held and went (admin)")
    add_client_arguments(v)
    v.add_argument("--nhs-number", required=True, help="the person's NHS number (never stored)")
    v.add_argument("--reason", required=True, help="why (required; must not name the person)")
    v.set_defaults(handler=run_subject_access)

    v = verbs.add_parser("reidentify", help="send project tokens back to their providers (researcher)")
    add_client_arguments(v)
    v.add_argument("--project", required=True, help="your project's id")
    v.add_argument("--tokens", required=True, type=Path, help="text file: one project token a line")
    v.add_argument("--reason", required=True, help="why (required; must not name the person)")
    v.set_defaults(handler=run_reidentify)

    v = verbs.add_parser("approve", help="approve a pending request (another organisation and role)")
    add_client_arguments(v)
    v.add_argument("id", help="the request id")
    v.set_defaults(handler=run_approve)

    v = verbs.add_parser("refuse", help="refuse a pending request: it ends the request")
    add_client_arguments(v)
    v.add_argument("id", help="the request id")
    v.add_argument("--reason", required=True, help="why it is refused")
    v.set_defaults(handler=run_refuse)

    v = verbs.add_parser("show", help="describe a request (kind, reason, requester, status)")
    add_client_arguments(v)
    v.add_argument("id", help="the request id")
    v.set_defaults(handler=run_show)

    v = verbs.add_parser("list", help="list requests (approvers: all; others: their own)")
    add_client_arguments(v)
    v.add_argument("--status", default="", choices=("", "pending", "approved", "refused",
                                                    "executed", "expired"),
                   help="only requests with this status (default: all)")
    v.set_defaults(handler=run_list)

    v = verbs.add_parser("result", help="write an approved subject access report (once)")
    add_client_arguments(v)
    v.add_argument("id", help="the request id")
    v.add_argument("--output", required=True, type=Path, help="file to write (mode 0600)")
    v.add_argument("--format", choices=("json", "text"), default="json",
                   help="json (docs/rights.md, the default) or readable text")
    v.set_defaults(handler=run_result)

    v = verbs.add_parser("fetch", help="write your own records of an approved re-identification")
    add_client_arguments(v)
    v.add_argument("id", help="the request id")
    v.add_argument("--output", required=True, type=Path, help="CSV file to write (mode 0600)")
    v.set_defaults(handler=run_fetch)

    v = verbs.add_parser("register", help="requests counted per month, kind and outcome (auditor)")
    add_client_arguments(v)
    v.add_argument("--output", type=Path, help="write the JSON here instead of printing a table")
    v.set_defaults(handler=run_register)


def _stub(channel: Any) -> rights_pb2_grpc.RightsServiceStub:
    return rights_pb2_grpc.RightsServiceStub(channel)


def _describe(r: rights_pb2.RightsRequest) -> list[str]:
    lines = [
        f"request {r.id}: {r.kind}, {r.status}",
        f"  requested by {r.requester_organisation} ({r.requester_role}) at {r.created_at}",
        f"  reason: {r.reason}",
    ]
    if r.project:
        lines.append(f"  project: {r.project} ({r.tokens} token(s))")
    if r.status == "pending":
        lines.append(f"  expires at {r.expires_at} unless approved by another organisation and role")
    lines.append(f"  approvals: {r.approvals}")
    if r.refusal_reason:
        lines.append(f"  refused: {r.refusal_reason}")
    return lines


def _created(r: rights_pb2.RightsRequest) -> int:
    for line in _describe(r):
        print(line)
    print(r.id)  # alone on the last line: scripts read it with tail -n 1
    return 0


def run_subject_access(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("subject access request"):
        reply = _stub(channel).RequestSubjectAccess(
            rights_pb2.RequestSubjectAccessRequest(nhs_number=args.nhs_number, reason=args.reason)
        )
    return _created(reply.request)


def _read_tokens(path: Path) -> list[str]:
    try:
        text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text")
    tokens = [line.strip() for line in text.splitlines() if line.strip()]
    if not tokens:
        fail(f"{path} holds no token (one project token a line)")
    return tokens


def run_reidentify(args: argparse.Namespace) -> int:
    tokens = _read_tokens(args.tokens)
    with open_channel(args) as channel, rpc_errors("re-identification request"):
        reply = _stub(channel).RequestReidentification(
            rights_pb2.RequestReidentificationRequest(
                project=args.project, tokens=tokens, reason=args.reason
            )
        )
    return _created(reply.request)


def run_approve(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("approval"):
        reply = _stub(channel).ApproveRequest(rights_pb2.ApproveRequestRequest(request=args.id))
    for line in _describe(reply.request):
        print(line)
    return 0


def run_refuse(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("refusal"):
        reply = _stub(channel).RefuseRequest(
            rights_pb2.RefuseRequestRequest(request=args.id, reason=args.reason)
        )
    for line in _describe(reply.request):
        print(line)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("request lookup"):
        reply = _stub(channel).GetRequest(rights_pb2.GetRequestRequest(request=args.id))
    for line in _describe(reply.request):
        print(line)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("request list"):
        reply = _stub(channel).ListRequests(rights_pb2.ListRequestsRequest(status=args.status))
    if not reply.requests:
        print("no requests")
    for r in reply.requests:
        for line in _describe(r):
            print(line)
    return 0


def report_text(report: dict[str, Any]) -> str:
    """The subject access report as plain text for a letter to the person."""
    out = [f"Subject access report (request {report['request']}, {report['generated_at']})", ""]
    out.append("Datasets holding records about the person:")
    if not report["datasets"]:
        out.append("  none")
    for d in report["datasets"]:
        out.append(
            f"  {d['dataset']} version {d['version']}: {d['records']} record(s), provided by "
            f"{d['organisation']} on {d['submitted_at']}"
        )
    out += ["", "Research projects whose extracts included the person, or would have:"]
    if not report["projects"]:
        out.append("  none")
    for p in report["projects"]:
        title = f" ({p['title']})" if p.get("title") else ""
        out.append(f"  project {p['project']}{title}:")
        for e in p["extracts"]:
            names = ", ".join(f"{d['dataset']} v{d['version']}" for d in e["datasets"])
            if e["outcome"] == "included":
                what = "included"
            else:
                what = f"left out by the national data opt-out (snapshot {e['optout_snapshot']})"
            out.append(f"    extract of {e['created_at']} from {names}: {what}")
    return "\n".join(out) + "\n"


def run_result(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("subject access result"):
        reply = _stub(channel).GetSubjectAccessReport(
            rights_pb2.GetSubjectAccessReportRequest(request=args.id)
        )
    report = json.loads(reply.report_json)
    text = (
        report_text(report) if args.format == "text" else json.dumps(report, indent=2) + "\n"
    )
    atomic_write_text(args.output, text)
    print(
        f"wrote {args.output}: {len(report['datasets'])} dataset version(s), "
        f"{len(report['projects'])} project(s); the gateway will not return it again"
    )
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("re-identification fetch"):
        reply = _stub(channel).FetchReidentification(
            rights_pb2.FetchReidentificationRequest(request=args.id)
        )
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["request", "reason", "dataset", "version", "row", "linkage_token"])
    for r in reply.records:
        writer.writerow([reply.request, reply.reason, r.dataset, r.version, r.row, r.linkage_token])
    atomic_write_text(args.output, buffer.getvalue())
    print(
        f"wrote {args.output}: {len(reply.records)} of your own record(s); resolve each linkage "
        "token against your own register (Tokenise), and a record with none (a probabilistic "
        "project's) by its row. The gateway will not return them again"
    )
    return 0


def run_register(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("request register"):
        reply = audit_pb2_grpc.AuditServiceStub(channel).GetRequestRegister(
            audit_pb2.GetRequestRegisterRequest()
        )
    register_ = json.loads(reply.register_json)
    if args.output is not None:
        atomic_write_text(args.output, json.dumps(register_, indent=2) + "\n")
        print(f"wrote {args.output}: {len(register_['months'])} row(s)")
        return 0
    print("month    kind            outcome   requests")
    for row in register_["months"]:
        print(f"{row['month']:<8} {row['kind']:<15} {row['outcome']:<9} {row['requests']}")
    return 0
