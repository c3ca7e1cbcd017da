"""The linkage engine: matching and clustering of encoded records (docs/linkage.md).

It sees only encodings (:mod:`pseudogate.linkage.records`), never a name, date or address.
Imports: ``core`` and numpy only.
"""
