"""The Dask engine against the local engine on this machine (issue 12).

``python -m benchmarks dask`` (rows: ``BENCH_DASK_ROWS``, default 5,000,000; one half only with
``BENCH_DASK_ONLY=tokenise`` or ``anonymise``):

- **anonymise**: the synthetic table of ``bench_anonymity`` (8 QIs, practically every row
  unique at level 0; k=5, 2% suppression, Loss) generated as Parquet partitions of 500,000
  rows and as one CSV file with the same rows. The local engine anonymises the CSV; the Dask
  engine (a LocalCluster of 2 single-threaded workers, 4 GiB each) the partitions, writing
  one CSV. Both outputs and reports (``search.seconds`` aside) must be equal.
- **tokenise**: NHS numbers in mixed formats (4 rows per person) as the same Parquet
  partitions and CSV; local engine on the CSV (one core) and on the partitions (in-process),
  Dask engine on the partitions (2 workers). Per-core throughput is rows / wall / cores.

Every run is a fresh CLI process; wall time, CPU time and peak RSS of that process are printed
(a LocalCluster's processes are its children: their CPU is included, and the peak is the
largest RSS among them), with the load average, since other work shares the machine. "warm"
runs go to a running cluster (``dask scheduler`` + ``dask worker --nworkers 2 --nthreads 1``,
started once, as an organisation's cluster would be): their CPU adds the cluster processes'
CPU during the run. On a shared machine wall time moves with the load; rows per CPU-second
is the steadier per-core figure.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.bench_anonymity import ETHNICITY, SYNTH_POLICY, synthetic_table
from benchmarks.bench_tokenise import PEOPLE_PER_ROW, _run_child, mixed_nhs_numbers
from pseudogate.core.keyring import EXAMPLE_KEYRING

ROWS = int(os.environ.get("BENCH_DASK_ROWS", "5000000"))
#: "tokenise" or "anonymise" runs one half only (both by default).
ONLY = os.environ.get("BENCH_DASK_ONLY", "")
PART_ROWS = 500_000
WORKERS = 2
WORKER_MEMORY = "4GiB"
CLI = [sys.executable, "-m", "pseudogate"]


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _write_inputs(folder: Path, rows: int, make: object) -> tuple[Path, Path]:
    """Parquet partitions ``folder/parts`` and ``folder/all.csv`` of the same rows."""
    parts = folder / "parts"
    parts.mkdir()
    csv_path = folder / "all.csv"
    for i, start in enumerate(range(0, rows, PART_ROWS)):
        frame: pd.DataFrame = make(min(PART_ROWS, rows - start), i)  # type: ignore[operator]
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                       parts / f"part-{i:04d}.parquet", row_group_size=PART_ROWS)
        frame.to_csv(csv_path, mode="a", header=i == 0, index=False)
    return parts, csv_path


def _show(label: str, rows: int, got: tuple[float, float, int], cores: int) -> float:
    wall, cpu, rss = got
    print(f"| {label} | {wall:.1f} s | {cpu:.1f} s | {rss / 1024:,.0f} MiB | "
          f"{rows / wall:,.0f} | {rows / wall / cores:,.0f} | {rows / cpu:,.0f} |")
    return cpu


HEAD = ("| engine | wall | CPU | peak RSS (client) | rows/s | rows/s/core (wall) | "
        "rows per CPU-second |\n|---|---:|---:|---:|---:|---:|---:|")


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes on loopback (a "running cluster")."""

    def __init__(self, work: Path) -> None:
        self.file = work / "scheduler.json"
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--dashboard-address", "127.0.0.1:0", "--scheduler-file",
             str(self.file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        while not self.file.exists():
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nworkers",
             str(WORKERS), "--nthreads", "1", "--memory-limit", WORKER_MEMORY,
             "--local-directory", str(work)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(self.address) as client:
            client.wait_for_workers(WORKERS, timeout=120)

    def cpu(self) -> float:
        import psutil

        total = 0.0
        for proc in self.procs:
            p = psutil.Process(proc.pid)
            for q in [p, *p.children(recursive=True)]:
                times = q.cpu_times()
                total += times.user + times.system
        return total

    def run(self, argv: list[str]) -> tuple[float, float, int]:
        before = self.cpu()
        wall, cpu, rss = _run_child([*argv, "--scheduler", self.address])
        return wall, cpu + self.cpu() - before, rss

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=60)


def bench_anonymise(work: Path, rows: int, cluster: Cluster) -> None:
    def make(n: int, i: int) -> pd.DataFrame:
        frame = synthetic_table(n, seed=7 + i)
        frame["person_id"] = "P" + (np.arange(n) + i * PART_ROWS).astype(str)
        return frame

    parts, data = _write_inputs(work, rows, make)
    (work / "ethnicity.csv").write_text(
        "".join(f"{leaf};{group};*\n" for leaf, group in ETHNICITY.items()))
    policy = work / "synthetic.yaml"
    policy.write_text(SYNTH_POLICY)
    common = [*CLI, "anonymise", "--policy", str(policy)]
    print(f"\nanonymise: {rows:,} rows x 8 QIs, k=5, 2% suppression, Loss ({_load()})")
    print(HEAD)
    local = _run_child([*common, "--input", str(data), "--output", str(work / "local.csv"),
                        "--report", str(work / "local.json")])
    _show("local (CSV, 1 core)", rows, local, 1)
    dask = _run_child([*common, "--input", str(parts), "--output", str(work / "dask.csv"),
                       "--report", str(work / "dask.json"), "--engine", "dask",
                       "--worker-memory", WORKER_MEMORY])
    warm = dask
    _show(f"dask, LocalCluster ({WORKERS} workers, Parquet)", rows, dask, WORKERS)
    t_local, t_dask = local[0], dask[0]
    for i in range(1):  # imports on the workers: a second or two, next to minutes here
        (work / "dask.csv").unlink()
        warm = cluster.run([*common, "--input", str(parts), "--output", str(work / "dask.csv"),
                            "--report", str(work / "dask.json"), "--engine", "dask"])
        _show(f"dask, running cluster, run {i + 1}", rows, warm, WORKERS)
    reports = [json.loads((work / f"{n}.json").read_text()) for n in ("local", "dask")]
    seconds = [r["search"].pop("seconds") for r in reports]
    same = reports[0] == reports[1] and filecmp.cmp(work / "local.csv", work / "dask.csv",
                                                    shallow=False)
    print(f"\n- dask / local wall: {t_dask / t_local:.2f}x with a LocalCluster, "
          f"{warm[0] / t_local:.2f}x on a running cluster (target <= 3x); same output and "
          f"report: {same}; search alone {seconds[0]:.2f} s local, {seconds[1]:.2f} s dask")
    rep = reports[1]
    print(f"- levels {rep['levels']}, suppressed {rep['suppressed']:,}, classes "
          f"{rep['classes']:,}, loss {rep['loss']:.4f} ({_load()})")


def _one_partition(parts: Path, work: Path, *, repeats: int = 5) -> float:
    """CPU seconds per row of ``tokenise_part`` on the first partition, in this process (best
    of ``repeats``): the per-row cost without start-up or Dask, steadier than whole runs."""
    from pseudogate.batch.inputs import find_inputs
    from pseudogate.batch.tokenise import tokenise_part
    from pseudogate.core.keyring import Keyring
    from pseudogate.core.normalise import Kind

    inputs = find_inputs(min(parts.glob("*.parquet")))
    key = Keyring.load(EXAMPLE_KEYRING).linkage_key_to_ship("person")
    rows = sum(p.rows or 0 for p in inputs.parts)
    best = float("inf")
    for _ in range(repeats):
        out = work / "one-partition"
        out.mkdir()
        start = time.process_time()
        for i, part in enumerate(inputs.parts):
            tokenise_part((i, part), out_dir=str(out), columns=inputs.columns,
                          col=inputs.columns.index("nhs_number"), kind=Kind.NHS_NUMBER, key=key,
                          csv_out=False)
        best = min(best, time.process_time() - start)
        shutil.rmtree(out)
    return best / rows


def bench_tokenise(work: Path, rows: int, cluster: Cluster) -> None:
    people = max(int(rows * PEOPLE_PER_ROW), 1)
    nhs = np.array(mixed_nhs_numbers(people), dtype=object)
    rng = np.random.default_rng(20261201)

    def make(n: int, i: int) -> pd.DataFrame:
        return pd.DataFrame({"id": (np.arange(n) + i * PART_ROWS).astype(str),
                             "nhs_number": nhs[rng.integers(0, people, n)]})

    parts, data = _write_inputs(work, rows, make)
    common = [*CLI, "tokenise", "--keyring", str(EXAMPLE_KEYRING), "--domain", "person",
              "--column", "nhs_number"]
    print(f"\ntokenise: {rows:,} NHS numbers ({people:,} people, mixed formats) ({_load()})")
    print(HEAD)
    runs = {
        "local (CSV in, CSV out, 1 core)": ([*common, "--input", str(data), "--output",
                                             str(work / "t-local.csv")], 1),
        "local (Parquet in and out, 1 core)": ([*common, "--input", str(parts), "--output",
                                                str(work / "t-local")], 1),
        f"dask ({WORKERS} workers, Parquet in and out)": (
            [*common, "--input", str(parts), "--output", str(work / "t-dask"), "--engine",
             "dask", "--worker-memory", WORKER_MEMORY], WORKERS),
    }
    per_cpu = {}
    for label, (argv, cores) in runs.items():
        per_cpu[label] = rows / _show(label, rows, _run_child(argv), cores)
    warm_argv = [*common, "--input", str(parts), "--output", str(work / "t-warm"),
                 "--engine", "dask"]
    for i in range(2):  # the first run to a running cluster warms its workers (imports)
        shutil.rmtree(work / "t-warm", ignore_errors=True)
        label = f"dask, running cluster, run {i + 1}"
        per_cpu[label] = rows / _show(label, rows, cluster.run(warm_argv), WORKERS)
    per_row = _one_partition(parts, work)
    print(f"\n- one partition ({min(rows, PART_ROWS):,} rows) in this process, tokenise_part: "
          f"{per_row * 1e6:.3f} CPU-us per row, {1 / per_row:,.0f} rows per CPU-second "
          f"(best of 5; {_load()})")
    labels = list(per_cpu)
    same = pq.read_table(work / "t-local").equals(pq.read_table(work / "t-dask")) and \
        pq.read_table(work / "t-local").equals(pq.read_table(work / "t-warm"))
    print(f"\n- rows per CPU-second, dask vs local CSV engine: LocalCluster "
          f"{per_cpu[labels[2]] / per_cpu[labels[0]]:.0%}, running cluster "
          f"{per_cpu[labels[-1]] / per_cpu[labels[0]]:.0%} (vs local Parquet run: "
          f"{per_cpu[labels[-1]] / per_cpu[labels[1]]:.0%}; target >= 80%); same tokens: {same} "
          f"({_load()})")


def main() -> None:
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        work = Path(tmp)
        for sub in ("a", "t", "c"):
            (work / sub).mkdir()
        cluster = Cluster(work / "c")
        try:
            if ONLY in ("", "tokenise"):
                bench_tokenise(work / "t", ROWS, cluster)
            if ONLY in ("", "anonymise"):
                bench_anonymise(work / "a", ROWS, cluster)
        finally:
            cluster.close()


if __name__ == "__main__":
    main()
