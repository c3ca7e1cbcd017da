"""k-anonymity: generalisation hierarchies, optimal full-domain recoding, metrics, risk report."""
