"""Partitioned batch jobs: the same per-partition work, in-process or on a Dask cluster.

``inputs`` finds the partitions of an input (a CSV file, a Parquet file, a folder or glob of
Parquet files); ``runner`` runs a function over them (in this process, or on the workers of a
Dask cluster); ``tokenise`` and ``anonymise`` are the jobs. Nothing here imports Dask except
``runner.dask_runner`` when it is called (docs/performance.md, docs/anonymisation.md).
"""
