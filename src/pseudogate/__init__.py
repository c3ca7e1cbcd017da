"""pseudogate: a privacy-preserving pseudonymisation gateway.

The domain core (keys, tokens, normalisation, anonymity, policy, store, audit) never imports
gRPC or the CLI; adapters in ``pseudogate.service`` and ``pseudogate.cli`` convert and delegate.
"""

__version__ = "0.1.0"
