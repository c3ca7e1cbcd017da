"""Comparison levels: Dice bands of Bloom fields, date levels, exact fields, null."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pseudogate.linkage.comparisons import comparisons, date_levels, dice, levels
from pseudogate.linkage.records import (
    BloomField,
    DateField,
    EncodedRecords,
    ExactField,
    TokenLevel,
)


def _bits(*rows: list[int], width: int = 64) -> npt.NDArray[np.uint8]:
    dense = np.zeros((len(rows), width), dtype=bool)
    for i, on in enumerate(rows):
        dense[i, on] = True
    return np.packbits(dense, axis=1)


def _table(bits: npt.NDArray[np.uint8], present: list[bool], dates: list[tuple[int, int, int]],
           sex: list[int]) -> EncodedRecords:
    n = len(present)
    d = np.array(dates, dtype=np.int16)
    return EncodedRecords(
        key_id="k", source=np.zeros(n, np.int32), row=np.arange(1, n + 1),
        nhs=np.full(n, -1, np.int64),
        blooms={"given_name": BloomField(bits, np.array(present))},
        dates={"date_of_birth": DateField(d[:, 0].copy(), d[:, 1].copy(), d[:, 2].copy())},
        exact={"sex": ExactField(np.array(sex, dtype=np.int64))},
        blocking=np.zeros((n, 0), np.uint64), blocking_fields=(),
    )


def test_when_filters_are_compared_then_dice_is_twice_the_common_bits_over_the_total() -> None:
    a = _bits(list(range(10)))
    b = _bits(list(range(5, 15)))
    assert dice(a, b)[0] == 2 * 5 / 20
    assert dice(a, a)[0] == 1.0
    assert dice(_bits([]), _bits([]))[0] == 0.0


def test_when_dice_falls_in_each_band_then_the_level_follows_the_splink_thresholds() -> None:
    base = list(range(40))
    # Dice with 40 bits against 40 - k shared + k others: (80 - 2k) / 80
    rows = [base, base, base[:38] + [50, 51], base[:34] + [50 + i for i in range(6)],
            base[:26] + [50 + i for i in range(14)], [], base]
    bits = _bits(*rows)
    present = [True] * 6 + [False]
    t = _table(bits, present, [(1, 1, 2000)] * 7, [1] * 7)
    left = np.zeros(6, dtype=np.int64)
    right = np.array([1, 2, 3, 4, 5, 6], dtype=np.int64)
    lv = levels(t, left, right)
    # 1.0 -> 1; 0.95 -> 1; 0.85 -> 2; 0.65 -> 4 (below 0.7); empty -> 4; absent -> null
    assert lv[:, 0].tolist() == [1, 1, 2, 4, 4, 0]
    assert [c.field for c in comparisons(t)] == ["given_name", "date_of_birth", "sex"]


def test_when_dates_differ_then_the_levels_are_exact_swapped_one_part_else_and_null() -> None:
    a = np.array([(3, 7, 1980)] * 6, dtype=np.int64)
    b = np.array([(3, 7, 1980), (7, 3, 1980), (4, 7, 1980), (3, 7, 1981), (9, 9, 1990),
                  (0, 0, 0)], dtype=np.int64)
    lv = date_levels(a[:, 0], a[:, 1], a[:, 2], b[:, 0], b[:, 1], b[:, 2])
    assert lv.tolist() == [1, 2, 3, 3, 4, 0]


def test_when_day_equals_month_then_a_swap_is_exact_not_swapped() -> None:
    a = np.array([5]), np.array([5]), np.array([1990])
    assert date_levels(*a, *a).tolist() == [1]


def test_when_sex_is_compared_then_equal_is_exact_and_missing_is_null() -> None:
    t = _table(_bits([1], [1], [1]), [True] * 3, [(1, 1, 2000)] * 3, [1, 2, -1])
    lv = levels(t, np.array([0, 0, 1]), np.array([0, 1, 2]))
    assert lv[:, 2].tolist() == [1, 2, 0]


def test_when_dice_is_below_the_last_band_then_the_first_agreeing_token_level_applies() -> None:
    base = list(range(40))
    # row 0 against: identical (Dice 1); then Dice 0.65 with level A agreeing across slots;
    # only level B agreeing; nothing agreeing (absent slots, 0, never agree); absent
    bits = _bits(base, base, *[base[:26] + [50 + i for i in range(14)]] * 3, base)
    a_codes = np.array([[7, 0], [7, 0], [0, 7], [9, 9], [0, 0], [7, 0]], dtype=np.int32)
    b_codes = np.array([[5], [6], [6], [5], [6], [5]], dtype=np.int32)
    t = _table(bits, [True] * 5 + [False], [(1, 1, 2000)] * 6, [1] * 6)
    t = EncodedRecords(
        key_id=t.key_id, source=t.source, row=t.row, nhs=t.nhs,
        blooms={"given_name": BloomField(bits, t.blooms["given_name"].present,
                                         (TokenLevel("A", a_codes), TokenLevel("B", b_codes)))},
        dates=t.dates, exact=t.exact, blocking=t.blocking, blocking_fields=())
    assert comparisons(t)[0].labels == ("dice>=0.95", "dice>=0.85", "dice>=0.7", "A", "B",
                                        "else")
    lv = levels(t, np.zeros(5, dtype=np.int64), np.arange(1, 6, dtype=np.int64))
    # identical -> 1 (token levels unused); A (7 in another slot) -> 4; only B -> 5;
    # none (row 0's empty slot does not agree with row 4's) -> 6 (else); absent -> null
    assert lv[:, 0].tolist() == [1, 4, 5, 6, 0]
