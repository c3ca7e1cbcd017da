"""k-anonymity: generalisation hierarchies, optimal full-domain recoding, metrics, risk report."""

from pseudogate.anonymity.engine import AnonymisationResult, anonymise

__all__ = ["AnonymisationResult", "anonymise"]
