"""``pseudogate project create``: register an approved research project with its policy."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.cli._common import fail
from pseudogate.core.authz import check_organisation
from pseudogate.core.linkage_method import LinkageMethod
from pseudogate.core.names import DEFAULT_DOMAIN
from pseudogate.core.policy import load_policy
from pseudogate.core.statements import STATEMENT_FIELDS, STATEMENT_LIMITS, check_statement
from pseudogate.linkage.engine import DEFAULT_THRESHOLD
from pseudogate.v1 import admin_pb2, admin_pb2_grpc


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("project", help="manage research projects")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="register an approved project")
    add_client_arguments(create)
    create.add_argument("--id", required=True, dest="project_id", help="project id")
    create.add_argument("--researcher", required=True, help="the researcher's organisation")
    create.add_argument(
        "--datasets", required=True, help="comma-separated dataset names; the first drives the join"
    )
    create.add_argument("--policy", required=True, type=Path, help="extract policy YAML")
    create.add_argument("--expires", required=True, help="last day extracts are allowed (YYYY-MM-DD, UTC)")
    create.add_argument(
        "--domain", default=DEFAULT_DOMAIN, help=f"linkage domain (default {DEFAULT_DOMAIN})"
    )
    create.add_argument(
        "--linkage", choices=[m.value for m in LinkageMethod], default=LinkageMethod.EXACT.value,
        help="how records are linked into people: exact (same NHS number; the default) or "
        "probabilistic (identity encodings and NHS numbers, docs/linkage.md)",
    )
    create.add_argument(
        "--linkage-threshold", type=float, default=None, metavar="T",
        help="match probability in (0, 1) above which records are one person (probabilistic "
        f"only; default {DEFAULT_THRESHOLD})",
    )
    public = create.add_argument_group(
        "public statements",
        "all four are required and published on the transparency register as written (plain "
        "text; no NHS number, postcode or email address)",
    )
    public.add_argument(
        "--title", required=True,
        help=f"a short title for the public (at most {STATEMENT_LIMITS['title']} characters)",
    )
    public.add_argument(
        "--purpose", required=True,
        help="what the research is for, in plain language "
        f"(at most {STATEMENT_LIMITS['purpose']} characters)",
    )
    public.add_argument(
        "--legal-basis", required=True,
        help='the legal basis, e.g. "UK GDPR Art. 6(1)(e) and 9(2)(j)" '
        f"(at most {STATEMENT_LIMITS['legal_basis']} characters)",
    )
    public.add_argument(
        "--public-benefit", required=True,
        help="who benefits from the research and how "
        f"(at most {STATEMENT_LIMITS['public_benefit']} characters)",
    )
    create.set_defaults(handler=run_create)


def run_create(args: argparse.Namespace) -> int:
    check_organisation(args.researcher, field="--researcher")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not datasets:
        fail("--datasets needs at least one dataset name")
    try:
        dt.date.fromisoformat(args.expires)
    except ValueError:
        fail("--expires must be a date YYYY-MM-DD")
    threshold = args.linkage_threshold
    if threshold is not None:
        if args.linkage != LinkageMethod.PROBABILISTIC.value:
            fail("--linkage-threshold applies to --linkage probabilistic only")
        if not 0.0 < threshold < 1.0:  # also refuses nan
            fail("--linkage-threshold must be a match probability strictly between 0 and 1")
    statements = {  # refused here, naming the flag (never the value), before any call
        name: check_statement(name, getattr(args, name), field="--" + name.replace("_", "-"))
        for name in STATEMENT_FIELDS
    }
    policy = load_policy(args.policy)  # validates locally and collects its tree files
    with open_channel(args) as channel, rpc_errors("project creation"):
        reply = admin_pb2_grpc.AdminServiceStub(channel).CreateProject(
            admin_pb2.CreateProjectRequest(
                project=args.project_id,
                researcher=args.researcher,
                datasets=datasets,
                policy_yaml=policy.text,
                policy_files=dict(policy.files),
                expires=args.expires,
                domain=args.domain,
                linkage=args.linkage,
                linkage_threshold=threshold or 0.0,
                **statements,
            )
        )
    linkage = reply.linkage or LinkageMethod.EXACT.value
    if reply.linkage_threshold:
        linkage += f" (threshold {reply.linkage_threshold:g})"
    print(
        f"project {reply.project} created: policy fingerprint {reply.policy_fingerprint}, "
        f"project key {reply.project_key_id}, linkage {linkage}"
    )
    return 0
