"""k-anonymity engine: the six Adult cases against ARX, and a 1,000,000-row synthetic table.

Each Adult case runs the CLI in a fresh process (as a user would) and reports the search time
the engine measured (``search.seconds`` in the JSON report: the lattice search alone) and the
whole-process wall time. The synthetic case times the CLI end to end (read, encode, search,
write) on 1,000,000 rows with 8 quasi-identifiers.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ADULT = ROOT.parent / "shared" / "data" / "adult"
QIS = ("age", "education", "marital-status", "native-country", "race", "salary-class", "sex",
       "workclass")
# ARX 3.9.2's warm search times in ms (shared README), keyed by (k, suppression limit).
ARX_WARM_MS = {(2, "0"): 30, (2, "0.05"): 188, (5, "0"): 22, (5, "0.05"): 274, (10, "0"): 19,
               (10, "0.05"): 300}
CLI = [sys.executable, "-c", "import sys; from pseudogate.cli import main; sys.exit(main())"]
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


def _adult_policy(k: int, limit: str, metric: str = "loss") -> str:
    lines = ["version: 1", f"name: adult-k{k}", "columns:"]
    lines += [f"  {qi}: {{action: generalise, hierarchy: {{type: tree, "
              f"file: {ADULT / f'adult_hierarchy_{qi}.csv'}}}}}" for qi in QIS]
    lines += ["  occupation: {action: keep}",
              f"privacy: {{k: {k}, suppression_limit: {limit}, metric: {metric}}}"]
    return "\n".join(lines) + "\n"


def _run_cli(policy: Path, data: Path, out: Path, delimiter: str) -> tuple[float, dict]:
    start = time.perf_counter()
    subprocess.run([*CLI, "anonymise", "--policy", str(policy), "--input", str(data),
                    "--output", str(out / "out.csv"), "--report", str(out / "r.json"),
                    "--delimiter", delimiter], check=True, capture_output=True)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "r.json").read_text())


def bench_adult(work: Path) -> None:
    if not (ADULT / "adult.csv").is_file():
        print("Adult data set absent: skipped")
        return
    print(f"Adult (30,162 rows, 8 QIs, 4,320 transformations), Loss, {REPEATS} fresh CLI "
          "processes per case, medians")
    print("| k | suppression | levels | evaluated | search ms | ARX warm ms | whole process s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for (k, limit), arx_ms in ARX_WARM_MS.items():
        policy = work / f"adult_{k}_{limit}.yaml"
        policy.write_text(_adult_policy(k, limit))
        searches, walls = [], []
        report: dict = {}
        for _ in range(REPEATS):
            wall, report = _run_cli(policy, ADULT / "adult.csv", work, ";")
            searches.append(report["search"]["seconds"] * 1000)
            walls.append(wall)
        levels = ",".join(str(report["levels"][q]) for q in QIS)
        pct = "0%" if limit == "0" else "5%"
        print(f"| {k} | {pct} | {levels} | {report['search']['evaluated']} | "
              f"{statistics.median(searches):.1f} | {arx_ms} | {statistics.median(walls):.2f} |",
              flush=True)


SYNTH_POLICY = """\
version: 1
name: synthetic-1m
columns:
  person_id: {action: keep}
  dob: {action: generalise, hierarchy: {type: date, levels: [month, year, 5y, 10y]}}
  sex: {action: generalise, hierarchy: {type: suppress}}
  postcode: {action: generalise, hierarchy: {type: postcode}}
  imd_decile: {action: generalise, hierarchy: {type: interval, widths: [2, 10]}}
  ethnicity: {action: generalise, hierarchy: {type: tree, file: ethnicity.csv}}
  practice: {action: generalise, hierarchy: {type: mask, keep: [4, 2]}}
  height_cm: {action: generalise, hierarchy: {type: interval, widths: [5, 10, 50]}}
  smoker: {action: generalise, hierarchy: {type: suppress}}
  diagnosis: {action: keep}
privacy: {k: 5, suppression_limit: 0.02, metric: loss}
"""
ETHNICITY = {
    "White British": "White", "White Irish": "White", "White Other": "White",
    "Indian": "Asian", "Pakistani": "Asian", "Bangladeshi": "Asian", "Chinese": "Asian",
    "Caribbean": "Black", "African": "Black", "Mixed": "Mixed or other", "Other": "Mixed or other",
}


def synthetic_table(rows: int, *, seed: int = 7) -> pd.DataFrame:
    """UK-style records: dates of birth, postcodes in 120 districts, 11 ethnic groups, ..."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 365 * 90, rows)
    dob = (np.datetime64("1930-01-01") + days.astype("timedelta64[D]")).astype(str)
    areas = np.array(["LL", "CH", "M", "B", "LS", "CF", "SA", "NE"])
    area = areas[rng.integers(0, len(areas), rows)]
    district = rng.integers(1, 16, rows).astype(str)
    sector = rng.integers(0, 10, rows).astype(str)
    unit = np.array(["AA", "AB", "BD", "XY"])[rng.integers(0, 4, rows)]
    postcode = np.char.add(np.char.add(np.char.add(area, district), " "),
                           np.char.add(sector, unit))
    eth = np.array(list(ETHNICITY))[rng.integers(0, len(ETHNICITY), rows)]
    practice = np.char.add("W9", rng.integers(1000, 9999, rows).astype(str))
    return pd.DataFrame({
        "person_id": np.char.add("P", np.arange(rows).astype(str)),
        "dob": dob,
        "sex": np.array(["F", "M"])[rng.integers(0, 2, rows)],
        "postcode": postcode,
        "imd_decile": rng.integers(1, 11, rows).astype(str),
        "ethnicity": eth,
        "practice": practice,
        "height_cm": rng.normal(170, 10, rows).round().astype(int).astype(str),
        "smoker": np.array(["yes", "no"])[rng.integers(0, 2, rows)],
        "diagnosis": np.array(["J45", "E11", "I10", "F32"])[rng.integers(0, 4, rows)],
    })


def bench_synthetic(work: Path, rows: int = 1_000_000) -> None:
    table = synthetic_table(rows)
    data = work / "synthetic.csv"
    table.to_csv(data, index=False)
    (work / "ethnicity.csv").write_text(
        "".join(f"{leaf};{group};*\n" for leaf, group in ETHNICITY.items()))
    policy = work / "synthetic.yaml"
    policy.write_text(SYNTH_POLICY)
    wall, report = _run_cli(policy, data, work, ",")
    print(f"\nSynthetic {rows:,} rows, 8 QIs, {report['search']['transformations']:,} "
          "transformations, k=5, 2% suppression, Loss:")
    print(f"- end to end (CLI process: read CSV, encode, search, write): {wall:.2f} s")
    print(f"- search alone: {report['search']['seconds']:.2f} s, "
          f"{report['search']['evaluated']} transformations evaluated, method "
          f"{report['search']['method']}")
    print(f"- levels {report['levels']}, suppressed {report['suppressed']:,}, "
          f"classes {report['classes']:,}, loss {report['loss']:.4f}")


def main() -> None:
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench_adult(work)
        bench_synthetic(work)


if __name__ == "__main__":
    main()
