"""Every rule for a name, once: datasets, projects, linkage domains, organisations, roles, key ids.

Names travel into messages, listings, file names, certificates and the audit log, so each kind
has one pattern that every layer imports from here: a name one part of the gateway accepts
is never refused by another (a project used to accept a domain the tokenisation server
refused). Each rule has a compiled regex (``*_RE``) and the same pattern as text
(``*_PATTERN``) for messages. The ``check_*`` helpers raise :class:`InvalidInput` naming the
field, never the value: a value in the wrong field may be an identifier.
"""

from __future__ import annotations

import re
from typing import Final

from pseudogate.core.errors import InvalidInput
from pseudogate.core.identifiers import contains_identifier

__all__ = [
    "DATASET_NAME_PATTERN",
    "DATASET_NAME_RE",
    "DEFAULT_DOMAIN",
    "DOMAIN_PATTERN",
    "DOMAIN_RE",
    "ENCODING_COLUMN",
    "KEY_ID_PATTERN",
    "KEY_ID_RE",
    "LEGACY_DOMAIN_RE",
    "ORG_PATTERN",
    "ORG_RE",
    "PERSON_COLUMN",
    "PROJECT_ID_PATTERN",
    "PROJECT_ID_RE",
    "ROLE_PATTERN",
    "ROLE_RE",
    "SPIFFE_IDENTITY_RE",
    "check_dataset_name",
    "check_domain",
    "check_organisation",
    "check_project_id",
]

#: Dataset names: they become folder names and column prefixes (``<dataset>.<column>``).
DATASET_NAME_PATTERN: Final = r"[a-z][a-z0-9_]{0,62}"
DATASET_NAME_RE: Final = re.compile(DATASET_NAME_PATTERN)

#: Project ids: the project key is derived from the id, so it is kept short and plain.
PROJECT_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
PROJECT_ID_RE: Final = re.compile(PROJECT_ID_PATTERN)

#: Linkage (token) domain names, everywhere: policies, the server's domain config, projects,
#: opt-outs and ``pseudogate tokenise``. The server's rule was the strictest, so it is the one.
DOMAIN_PATTERN: Final = r"[a-z][a-z0-9_.-]{0,62}"
DOMAIN_RE: Final = re.compile(DOMAIN_PATTERN)
#: The wider domain rule projects and policies followed before :data:`DOMAIN_RE` was the only
#: one. Only the audit log's event check uses it, so that events recorded then still verify.
LEGACY_DOMAIN_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")

#: The linkage domain of people (NHS numbers): the default for projects, opt-outs and the
#: linkage report, and a built-in domain of the tokenisation server.
DEFAULT_DOMAIN: Final = "person"
#: The extract column holding each person's project token. Same word as
#: :data:`DEFAULT_DOMAIN` but a different thing (a column name, fixed whatever the domain).
PERSON_COLUMN: Final = "person"
#: The stored column holding each record's sealed linkage encoding (issue 10, docs/linkage.md),
#: built at ingestion from the policy's ``identify`` columns. Reserved: no policy may name it.
ENCODING_COLUMN: Final = "pg:linkage_encoding"

#: Organisation names, as certificates carry them (SPIFFE URIs, file names of dev certs).
ORG_PATTERN: Final = r"[a-z0-9-]{1,63}"
ORG_RE: Final = re.compile(ORG_PATTERN)

#: Role names as the audit log records them (the roles themselves are ``authz.Role``).
ROLE_PATTERN: Final = r"[a-z]{1,20}"
ROLE_RE: Final = re.compile(ROLE_PATTERN)

#: A caller's identity URI. The role part is matched loosely so that an unknown role gets its
#: own message; ``authz.Role`` decides which roles exist.
SPIFFE_IDENTITY_RE: Final = re.compile(rf"spiffe://pseudogate/org/({ORG_PATTERN})/role/([a-z]+)")

#: Key ids in keyrings, manifests and audit events.
KEY_ID_PATTERN: Final = r"[a-z0-9-]{1,16}"
KEY_ID_RE: Final = re.compile(KEY_ID_PATTERN)


def check_dataset_name(name: object) -> str:
    """``name`` if it is a dataset name; refuses one that is a direct identifier (a dataset
    "ll112ab") too: names travel into messages, listings and the audit log."""
    if not isinstance(name, str) or not DATASET_NAME_RE.fullmatch(name):
        raise InvalidInput(f"dataset name must match {DATASET_NAME_PATTERN}")
    if contains_identifier(name):
        raise InvalidInput("dataset name looks like an identifier (an NHS number or postcode): "
                           "choose a name that is not one")
    return name


def check_project_id(project_id: object) -> str:
    """``project_id`` if it is a project id and not a direct identifier."""
    if not isinstance(project_id, str) or not PROJECT_ID_RE.fullmatch(project_id):
        raise InvalidInput(f"project id must match {PROJECT_ID_PATTERN}")
    if contains_identifier(project_id):
        raise InvalidInput("project id looks like an identifier (an NHS number or postcode): "
                           "choose an id that is not one")
    return project_id


def check_domain(domain: object, *, field: str = "linkage domain") -> str:
    """``domain`` if it is a linkage domain name, else InvalidInput naming ``field``."""
    if not isinstance(domain, str) or not DOMAIN_RE.fullmatch(domain):
        raise InvalidInput(f"{field} must match {DOMAIN_PATTERN}")
    return domain


def check_organisation(value: object, *, field: str) -> str:
    """``value`` if it is an organisation name by the certificate rule (ORG_RE), else
    InvalidInput naming ``field`` (never the value): a name no certificate can carry would make
    a project nobody can extract, or a dataset no certified provider owns."""
    if not isinstance(value, str) or not ORG_RE.fullmatch(value):
        raise InvalidInput(
            f"{field} must be an organisation name as in certificates: lowercase letters, "
            "digits and '-', 1-63 characters"
        )
    if contains_identifier(value):
        raise InvalidInput(f"{field} looks like an identifier (an NHS number or postcode): an "
                           "organisation name names an organisation, not a person")
    return value
