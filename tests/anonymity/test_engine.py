"""The library entry point: columns, order, tokens, person counting, l, errors, heuristic."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
from pycanon import anonymity as canon

import pseudogate.anonymity.search as search_module
from pseudogate.anonymity import anonymise
from pseudogate.core.errors import FailedPrecondition, InvalidInput, RowErrors
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.core.normalise import Kind, normalise
from pseudogate.core.policy import parse_policy

TREE_A = b"a0;A;*\na1;A;*\n"
TREE_B = b"b0;b0x;B;*\nb1;b1x;B;*\n"


def _tie_policy(metric: str):
    return parse_policy(
        "version: 1\nname: tie\ncolumns:\n"
        "  a: {action: generalise, hierarchy: {type: tree, file: a.csv}}\n"
        "  b: {action: generalise, hierarchy: {type: tree, file: b.csv}}\n"
        f"privacy: {{k: 2, suppression_limit: 0, metric: {metric}}}\n",
        files={"a.csv": TREE_A, "b.csv": TREE_B},
    )


@pytest.mark.parametrize("metric", ["loss", "discernibility"])
def test_when_metrics_tie_then_lowest_level_sum_wins_before_lexicographic_order(metric: str) -> None:
    # (1,0) and (0,2) give the same class sizes and the same Loss; (1,0) has the lower sum
    # although (0,2) is lexicographically smaller.
    frame = pd.DataFrame({"a": ["a0", "a1", "a0", "a1"], "b": ["b0", "b0", "b1", "b1"]})
    report = anonymise(frame, _tie_policy(metric)).report.to_json()
    assert report["levels"] == {"a": 1, "b": 0}
    assert report["discernibility"] == 8
    assert report["loss"] == pytest.approx(2 ** 0.5 - 1)


def _keyring() -> Keyring:
    return Keyring.load(EXAMPLE_KEYRING)


POLICY = """\
version: 1
name: gp
columns:
  nhs: {action: tokenise, kind: nhs_number, domain: person}
  name: {action: drop}
  dob: {action: generalise, hierarchy: {type: date, levels: [month, year, 10y]}}
  postcode: {action: generalise, hierarchy: {type: postcode}}
  imd: {action: generalise, hierarchy: {type: interval, widths: [2, 10]}}
  code: {action: generalise, hierarchy: {type: mask, keep: [2]}}
  sex: {action: generalise, hierarchy: {type: suppress}}
  diagnosis: {action: keep, sensitive: true}
privacy: {k: 2, l: 2, suppression_limit: 0.2}
"""

def _nhs(stem: str) -> str:
    """A valid NHS number from nine digits (modulus 11 check digit)."""
    check = 11 - sum(int(d) * w for d, w in zip(stem, range(10, 1, -1), strict=True)) % 11
    return stem + str(0 if check == 11 else check)


NHS = [_nhs(s) for s in ("943476591", "943476587", "943476586", "401023213", "401023214",
                         "401023215")]
assert all(len(n) == 10 and not n.endswith("10") for n in NHS)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "diagnosis": ["flu", "cold", "flu", "cold", "gout", "flu"],
        "name": ["Ann", "Bob", "Cy", "Di", "Ed", "Flo"],
        "nhs": [n[:3] + " " + n[3:6] + " " + n[6:] for n in NHS],
        "dob": ["1958-11-02", "1958-11-20", "1961-03-01", "1962-07-09", "1958-01-01", "1960-12-31"],
        "postcode": ["ll15 1aa", "LL15 1AB", "LL15 2XY", "LL16 3ZZ", "ll15 1ab", "LL16 3ZY"],
        "imd": ["1", "2", "3", "4", "5", "6"],
        "code": ["AB1", "AB2", "AC3", "AC4", "AB5", "AC6"],
        "sex": ["F", "M", "F", "M", "F", "M"],
    }, dtype=object)


def test_outputs_keep_input_order_drop_columns_and_tokenise_normalised_values() -> None:
    result = anonymise(_frame(), parse_policy(POLICY), keyring=_keyring())
    table, report = result.table, result.report.to_json()
    assert list(table.columns) == ["diagnosis", "nhs", "dob", "postcode", "imd", "code", "sex"]
    tokeniser = _keyring().linkage_tokeniser("person")
    assert report["rows_out"] == len(table) == 6 - report["suppressed"]
    expected_tokens = [tokeniser.token(normalise(Kind.NHS_NUMBER, v)) for v in _frame()["nhs"]]
    assert set(table["nhs"]) <= set(expected_tokens)
    kept_positions = [expected_tokens.index(t) for t in table["nhs"]]
    assert kept_positions == sorted(kept_positions)  # input order
    for raw in ("Ann", NHS[0], "1958-11-02", "ll15 1aa"):
        assert raw not in table.to_csv()
    qis = ["dob", "postcode", "imd", "code", "sex"]
    assert canon.k_anonymity(table, qis) == report["k_achieved"] >= 2
    assert canon.l_diversity(table, qis, ["diagnosis"]) == report["l_achieved"] >= 2


def test_generalised_values_follow_the_documented_labels() -> None:
    policy = parse_policy(POLICY.replace("k: 2, l: 2, suppression_limit: 0.2",
                                         "k: 6, suppression_limit: 0"))
    result = anonymise(_frame().assign(diagnosis="x"), policy, keyring=_keyring())
    # k=6 on 6 rows: every QI must reach a level where all rows agree.
    row = result.table.iloc[0]
    assert set(result.table["dob"]) == {"1950-1959"} or set(result.table["dob"]) == {"*"}
    assert set(result.table["sex"]) == {"*"}
    assert row["imd"] in {"0-9", "*"}


def test_hierarchy_levels_match_the_issue_examples() -> None:
    from pseudogate.anonymity.hierarchies import level_labels
    from pseudogate.core.policy import HierarchySpec, HierarchyType

    date = HierarchySpec(HierarchyType.DATE, levels=("month", "quarter", "year", "5y", "10y"))
    assert level_labels(date, "1958-11-02") == [
        "1958-11-02", "1958-11", "1958-Q4", "1958", "1955-1959", "1950-1959", "*"]
    post = HierarchySpec(HierarchyType.POSTCODE, levels=("sector", "district", "area"))
    assert level_labels(post, "LL15 1AA") == ["LL15 1AA", "LL15 1", "LL15", "LL", "*"]
    assert level_labels(post, "B1 1AA")[1:4] == ["B1 1", "B1", "B"]
    interval = HierarchySpec(HierarchyType.INTERVAL, widths=(5, 10))
    assert level_labels(interval, "37") == ["37", "35-39", "30-39", "*"]
    assert level_labels(interval, "-3") == ["-3", "-5--1", "-10--1", "*"]
    mask = HierarchySpec(HierarchyType.MASK, keep=(3, 1))
    assert level_labels(mask, "AB123") == ["AB123", "AB1**", "A****", "*"]


def test_when_postcode_and_date_are_released_at_level_0_they_are_normalised() -> None:
    policy = parse_policy(
        "version: 1\nname: n\ncolumns:\n"
        "  pc: {action: generalise, hierarchy: {type: postcode}}\n"
        "  d: {action: generalise, hierarchy: {type: date, levels: [year]}}\n"
        "privacy: {k: 2}\n")
    frame = pd.DataFrame({"pc": ["ll15 1aa", "LL151AA"], "d": ["2001-02-03", " 2001-02-03 "]})
    result = anonymise(frame, policy)
    assert result.report.to_json()["levels"] == {"pc": 0, "d": 0}
    assert list(result.table["pc"]) == ["LL15 1AA", "LL15 1AA"]
    assert list(result.table["d"]) == ["2001-02-03", "2001-02-03"]


def test_when_values_are_invalid_then_row_errors_name_row_column_reason_not_value() -> None:
    frame = _frame()
    frame.loc[2, "nhs"] = "943 476 5918"  # bad check digit
    frame.loc[4, "imd"] = "seven"
    frame.loc[5, "dob"] = "1960-02-30"
    with pytest.raises(RowErrors) as info:
        anonymise(frame, parse_policy(POLICY), keyring=_keyring())
    message = str(info.value)
    assert "row 3, column 'nhs': invalid_check_digit" in message
    assert "row 5, column 'imd': not_an_integer" in message
    assert "row 6, column 'dob': invalid_date" in message
    for raw in ("943 476 5918", "seven", "1960-02-30"):
        assert raw not in message


def test_when_value_is_not_in_tree_then_row_error() -> None:
    frame = pd.DataFrame({"a": ["a0", "zz", "a1"], "b": ["b0", "b0", "b1"]})
    with pytest.raises(RowErrors, match="row 2, column 'a': not_in_hierarchy") as info:
        anonymise(frame, _tie_policy("loss"))
    assert "zz" not in str(info.value)


def test_when_no_transformation_is_acceptable_then_failed_precondition() -> None:
    frame = pd.DataFrame({"a": ["a0"], "b": ["b0"]})
    with pytest.raises(FailedPrecondition, match="even the most general one suppresses 1 of 1"):
        anonymise(frame, _tie_policy("loss"))


def test_when_person_column_is_given_then_k_counts_distinct_persons() -> None:
    policy = parse_policy(
        "version: 1\nname: p\ncolumns:\n"
        "  person: {action: keep}\n"
        "  a: {action: generalise, hierarchy: {type: tree, file: a.csv}}\n"
        "privacy: {k: 2}\n", files={"a.csv": TREE_A})
    # a0 has two rows of one person: as rows k=2 holds at level 0, as persons it does not.
    frame = pd.DataFrame({"person": ["p1", "p1", "p2", "p3"], "a": ["a0", "a0", "a1", "a1"]})
    assert anonymise(frame, policy).report.to_json()["levels"] == {"a": 0}
    by_person = anonymise(frame, policy, person_column="person").report.to_json()
    assert by_person["levels"] == {"a": 1}
    assert by_person["k_achieved"] == 3
    with pytest.raises(InvalidInput, match="must be a 'keep' column"):
        anonymise(frame, policy, person_column="a")


def test_when_policy_tokenises_without_keyring_then_refused() -> None:
    with pytest.raises(InvalidInput, match="no keyring"):
        anonymise(_frame(), parse_policy(POLICY))


def test_when_input_has_unlisted_column_then_refused() -> None:
    with pytest.raises(InvalidInput, match="input column [0-9]+ is not named"):
        anonymise(_frame().assign(extra="1"), parse_policy(POLICY), keyring=_keyring())


def test_when_lattice_exceeds_the_exact_limit_then_heuristic_is_used_and_flagged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(search_module, "EXACT_LIMIT", 10)
    policy = parse_policy(POLICY.replace("l: 2, ", ""))
    result = anonymise(_frame(), policy, keyring=_keyring())
    report = result.report.to_json()
    assert report["search"]["method"] == "heuristic" and report["search"]["optimal"] is False
    assert report["search"]["transformations"] > 10
    assert report["suppressed"] <= 1 and report["k_achieved"] >= 2
    assert canon.k_anonymity(result.table, list(report["levels"])) >= 2


def test_report_has_the_issue_fields() -> None:
    report = anonymise(_frame(), parse_policy(POLICY), keyring=_keyring()).report.to_json()
    for name in ("policy_fingerprint", "levels", "k_achieved", "l_achieved", "rows_in",
                 "rows_out", "suppressed", "classes", "loss", "discernibility",
                 "prosecutor_risk", "records_by_class_size", "search"):
        assert name in report
    assert set(report["search"]) >= {"transformations", "evaluated", "seconds"}
    assert list(report["records_by_class_size"]) == [str(s) for s in range(1, 2 + 5)]
    shares = sum(report["records_by_class_size"].values()) + report["records_in_larger_classes"]
    assert shares == pytest.approx(1.0)
    assert report["prosecutor_risk"]["highest"] == pytest.approx(1 / report["k_achieved"])
    assert report["prosecutor_risk"]["average"] == pytest.approx(
        report["classes"] / report["rows_out"])


@pytest.mark.parametrize("cells", [["a0", 3], ["a0", None], ["a0", float("nan")], ["a0", b"a1"]])
def test_when_a_column_holds_non_text_cells_then_it_is_refused(cells: list) -> None:
    frame = pd.DataFrame({"a": pd.Series(cells, dtype=object), "b": ["b0", "b1"]})
    with pytest.raises(InvalidInput, match="non-text"):
        anonymise(frame, _tie_policy("loss"))


def test_when_columns_are_all_text_then_they_are_accepted() -> None:
    frame = pd.DataFrame({"a": ["a0", "a1"] * 2, "b": ["b0", "b1", "b1", "b0"]}, dtype=object)
    assert anonymise(frame, _tie_policy("loss")).report.to_json()["rows_in"] == 4


def test_when_report_is_converted_at_the_edge_then_json_has_the_documented_fields_in_order() -> None:
    report = anonymise(_frame(), parse_policy(POLICY), keyring=_keyring()).report
    as_json = report.to_json()
    assert list(as_json) == [
        "policy", "policy_fingerprint", "privacy", "quasi_identifiers", "sensitive_columns",
        "levels", "k_achieved", "l_achieved", "rows_in", "rows_out", "suppressed", "classes",
        "loss", "loss_per_column", "discernibility", "prosecutor_risk", "records_by_class_size",
        "records_in_larger_classes", "class_size_histogram", "search"]
    assert list(as_json["privacy"]) == ["k", "l", "suppression_limit", "max_suppressed",
                                        "metric", "counted_by"]
    assert as_json["privacy"]["metric"] == "loss" and type(as_json["privacy"]["metric"]) is str
    assert list(as_json["search"]) == ["transformations", "evaluated", "seconds", "method",
                                       "optimal"]
    assert json.loads(json.dumps(as_json)) == as_json  # plain JSON values only
    assert as_json["k_achieved"] == report.k_achieved and as_json["levels"] == dict(report.levels)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.suppressed = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        report.levels["dob"] = 0  # type: ignore[index]
