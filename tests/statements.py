"""Public statements for the projects tests create (all four are required: core/statements.py)."""

from __future__ import annotations

#: Keyword arguments of Store.create_project / prepare_project and CreateProjectRequest fields.
STATEMENTS: dict[str, str] = {
    "title": "A test study",
    "purpose": "To check that the gateway works as documented.",
    "legal_basis": "UK GDPR Art. 6(1)(e) and 9(2)(j)",
    "public_benefit": "A gateway that keeps its promises.",
}

#: The same as ``project create`` arguments.
STATEMENT_ARGS: tuple[str, ...] = tuple(
    arg
    for name, value in STATEMENTS.items()
    for arg in ("--" + name.replace("_", "-"), value)
)
