"""The search's large-table shortcuts (slice probes, keyed grouping, memoised narrow codes,
unweighted counts, pair bounds on two threads) never change the answer.

They normally switch on for tables of 100,000+ rows; here they are forced on a few thousand
rows, and the result must equal, field by field, the search with every shortcut switched off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import pseudogate.anonymity.criteria as criteria_module
import pseudogate.anonymity.grouping as grouping_module
import pseudogate.anonymity.search as search_module
import pseudogate.anonymity.transformation as transformation_module
from pseudogate.anonymity import anonymise
from pseudogate.core.policy import parse_policy

GROUPS = b"".join(f"g{i};G{i % 4};*\n".encode() for i in range(12))


def _policy(*, limit: str, metric: str, sensitive: bool):
    return parse_policy(
        "version: 1\nname: fast-paths\ncolumns:\n"
        "  dob: {action: generalise, hierarchy: {type: date, levels: [month, year, 10y]}}\n"
        "  pc: {action: generalise, hierarchy: {type: postcode}}\n"
        "  imd: {action: generalise, hierarchy: {type: interval, widths: [2, 10]}}\n"
        "  grp: {action: generalise, hierarchy: {type: tree, file: g.csv}}\n"
        "  sex: {action: generalise, hierarchy: {type: suppress}}\n"
        f"  dx: {{action: keep, sensitive: {'true' if sensitive else 'false'}}}\n"
        f"privacy: {{k: 3, suppression_limit: {limit}, metric: {metric}"
        + (", l: 2" if sensitive else "") + "}\n",
        files={"g.csv": GROUPS},
    )


def _table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 365 * 60, rows)
    dob = (np.datetime64("1950-01-01") + days.astype("timedelta64[D]")).astype(str)
    pc = [f"{a}{d} {s}A{u}" for a, d, s, u in zip(
        rng.choice(["LL", "CH", "M"], rows), rng.integers(1, 6, rows), rng.integers(0, 4, rows),
        rng.choice(["A", "B"], rows), strict=True)]
    return pd.DataFrame({
        "dob": dob,
        "pc": pc,
        "imd": rng.integers(1, 11, rows).astype(str),
        "grp": rng.choice([f"g{i}" for i in range(12)], rows),
        "sex": rng.choice(["F", "M"], rows),
        "dx": rng.choice(["x", "y", "z"], rows),
    }, dtype=object)


@contextlib.contextmanager
def _shortcuts(on: bool) -> Iterator[list[int]]:
    """Force the shortcuts on (from the first pick) or off; yields [probes that proved]."""
    knobs = ((search_module, "PROBE_MIN_ROWS"), (search_module, "PROJECTION_MIN_ROWS"),
             (search_module, "PROBE_SHARE"), (grouping_module, "KEYED_MAX_SPREAD"),
             (transformation_module, "_MEMO_MIN_ROWS"), (criteria_module, "PARALLEL_MIN_ROWS"))
    saved = [(module, name, getattr(module, name)) for module, name in knobs]
    proved = [0]
    original_probe = search_module._State.probe

    def counting_probe(self, levels, source):  # type: ignore[no-untyped-def]
        got = original_probe(self, levels, source)
        proved[0] += got is not None
        return got

    values = (0, 0, 4, 8, 0, 0) if on else (1 << 62, 1 << 62, 8, 0, 1 << 62, 1 << 62)
    for (module, name), value in zip(knobs, values, strict=True):
        setattr(module, name, value)
    search_module._State.probe = counting_probe  # type: ignore[method-assign]
    try:
        yield proved
    finally:
        search_module._State.probe = original_probe  # type: ignore[method-assign]
        for module, name, value in saved:
            setattr(module, name, value)


@pytest.mark.parametrize(("limit", "metric", "sensitive", "seed", "copies"), [
    ("0.02", "loss", False, 1, 1),
    ("0.1", "loss", False, 2, 1),
    ("0", "loss", False, 3, 1),
    ("0.05", "discernibility", False, 4, 1),
    ("0.05", "loss", True, 5, 1),
    ("0.02", "loss", False, 6, 2),  # repeated rows: distinct combinations count > 1 rows
    ("0.02", "loss", False, 7, 3),  # every combination 3 times: level 0 is acceptable for k=3
])
def test_when_shortcuts_are_forced_then_the_result_is_unchanged(
    limit: str, metric: str, sensitive: bool, seed: int, copies: int
) -> None:
    frame = pd.concat([_table(3000 // copies, seed)] * copies, ignore_index=True)
    policy = _policy(limit=limit, metric=metric, sensitive=sensitive)
    with _shortcuts(False) as proved_off:
        plain = anonymise(frame, policy)
    with _shortcuts(True) as proved_on:
        fast = anonymise(frame, policy)
    assert proved_off == [0]
    assert proved_on[0] > 0 or copies == 3  # the probe really proved picks unacceptable
    for field in ("levels", "suppressed", "rows_out", "classes", "k_achieved", "l_achieved",
                  "loss", "discernibility"):
        assert fast.report.to_json()[field] == plain.report.to_json()[field], field
    pd.testing.assert_frame_equal(fast.table, plain.table)
