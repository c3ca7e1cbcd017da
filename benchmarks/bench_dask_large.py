"""A table many times the workers' memory, anonymised exactly on Dask (issue 12's 50M target).

``python -m benchmarks dask_large`` (rows: ``BENCH_LARGE_ROWS``, default 50,000,000; the
client's limit: ``BENCH_LARGE_CLIENT_CLASSES``, default the CLI's; ``BENCH_LARGE_PARTS``: a
folder to keep the generated partitions in and reuse): the synthetic table of
``bench_anonymity`` (8 QIs, practically every row unique at level 0; k=5, 2% suppression,
Loss) generated as Parquet partitions of 500,000 rows, then one CLI run of ``pseudogate
anonymise --engine dask`` with a LocalCluster of 2 single-threaded workers limited to 4 GiB
each, writing Parquet partitions. The local engine is not run: it would hold the whole table.

Printed: wall and CPU time, the peak memory (VmHWM, the kernel's high-water mark of resident
memory) of every process (the CLI process, which holds the client and the LocalCluster's
scheduler, and each worker), the report's figures, and the released rows counted back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.bench_anonymity import ETHNICITY, SYNTH_POLICY, synthetic_table

ROWS = int(os.environ.get("BENCH_LARGE_ROWS", "50000000"))
#: A folder of partitions this benchmark generated before (kept there: generating 50M rows
#: takes about ten minutes); written there first when it does not exist.
PARTS = os.environ.get("BENCH_LARGE_PARTS")
CLIENT_CLASSES = os.environ.get("BENCH_LARGE_CLIENT_CLASSES")
PART_ROWS = 500_000
WORKERS = 2
WORKER_MEMORY = "4GiB"


def _write_parts(folder: Path, rows: int) -> None:
    folder.mkdir()
    for i, start in enumerate(range(0, rows, PART_ROWS)):
        frame = synthetic_table(min(PART_ROWS, rows - start), seed=7 + i)
        frame["person_id"] = "P" + (np.arange(len(frame)) + start).astype(str)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                       folder / f"part-{i:05d}.parquet", row_group_size=PART_ROWS)


def _status(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS (KiB) of a live process (empty when it has gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    got = {}
    for line in text.splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            name, value = line.split(":", 1)
            got[name] = int(value.split()[0])
    return got


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    found = [int(c) for c in text.split()]
    return found + [g for c in found for g in _children(c)]


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _label(pid: int, root: int) -> str:
    if pid == root:
        return "CLI process (client + LocalCluster scheduler)"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmd = "?"
    return "worker process" if "spawn_main" in cmd else f"child ({cmd[:40]})"


def _measure(argv: list[str]) -> tuple[float, float, dict[int, tuple[str, int]], str]:
    """Wall s, CPU s of the tree, per process (label, peak KiB), and the run's stdout."""
    start = time.perf_counter()
    # The run's progress lines (stderr) go straight to this benchmark's stderr.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    peaks: dict[int, tuple[str, int]] = {}
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        for pid in [proc.pid, *_children(proc.pid)]:
            status = _status(pid)
            if "VmHWM" in status:
                label = peaks[pid][0] if pid in peaks else _label(pid, proc.pid)
                peaks[pid] = (label, max(status["VmHWM"], peaks.get(pid, ("", 0))[1]))
                cpu[pid] = max(cpu.get(pid, 0.0), _cpu_seconds(pid))
        time.sleep(0.2)
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"anonymise failed ({proc.returncode}), see its messages above")
    return wall, sum(cpu.values()), peaks, out


def main() -> None:
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="bench-dask-large-") as tmp:
        work = Path(tmp)
        parts = Path(PARTS) if PARTS else work / "parts"
        t = time.perf_counter()
        if not parts.exists():
            _write_parts(parts, ROWS)
            print(f"generated {ROWS:,} rows in {time.perf_counter() - t:.0f} s")
        files = sorted(parts.glob("*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        size = sum(f.stat().st_size for f in files)
        print(f"input: {rows:,} rows x 8 QIs in {len(files)} Parquet partitions "
              f"({size / 2**30:.2f} GiB)")
        (work / "ethnicity.csv").write_text(
            "".join(f"{leaf};{group};*\n" for leaf, group in ETHNICITY.items()))
        (work / "synthetic.yaml").write_text(SYNTH_POLICY)
        argv = [sys.executable, "-m", "pseudogate", "anonymise", "--policy",
                str(work / "synthetic.yaml"), "--input", str(parts), "--output",
                str(work / "out"), "--report", str(work / "report.json"), "--engine", "dask",
                "--worker-memory", WORKER_MEMORY]
        if CLIENT_CLASSES:
            argv += ["--client-classes", CLIENT_CLASSES]
        wall, cpu, peaks, _ = _measure(argv)
        report = json.loads((work / "report.json").read_text())
        released = sum(pq.ParquetFile(p).metadata.num_rows for p in (work / "out").iterdir())
        print(f"\nanonymise --engine dask, LocalCluster of {WORKERS} workers x {WORKER_MEMORY}: "
              f"{wall:,.0f} s wall, {cpu:,.0f} s CPU (all processes); load average "
              + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
        print("| process | peak resident memory |\n|---|---:|")
        for _pid, (label, kib) in sorted(peaks.items(), key=lambda item: item[0]):
            print(f"| {label} | {kib / 1024:,.0f} MiB |")
        search = report["search"]
        print(f"\n- levels {report['levels']}")
        print(f"- rows in {report['rows_in']:,}, out {report['rows_out']:,} (released files: "
              f"{released:,}), suppressed {report['suppressed']:,} (limit "
              f"{report['privacy']['max_suppressed']:,}), classes {report['classes']:,}, "
              f"k achieved {report['k_achieved']}, loss {report['loss']:.4f}")
        print(f"- search: {search['transformations']:,} transformations, {search['evaluated']:,} "
              f"evaluated, {search['seconds']:,.0f} s, exact {search['exact']}")


if __name__ == "__main__":
    main()
