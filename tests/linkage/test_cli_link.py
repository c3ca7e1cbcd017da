"""``pseudogate link``: the output contract, policy rules, errors without values, determinism."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pseudogate.cli import main

ROOT = Path(__file__).resolve().parents[2]
KEYRING = str(ROOT / "keys_example" / "keyring.json")

POLICY = """version: 1
name: council
columns:
  nhs: {action: tokenise, kind: nhs_number}
  forename: {action: identify, field: given_name}
  surname: {action: identify, field: family_name}
  dob: {action: identify, field: date_of_birth}
  sex: {action: identify, field: sex}
  postcode: {action: identify, field: postcode}
  street: {action: identify, field: address}
"""
POLICY_NO_NHS = """version: 1
name: fire
columns:
  first_name: {action: identify, field: given_name}
  last_name: {action: identify, field: family_name}
  born: {action: identify, field: date_of_birth}
  home_postcode: {action: identify, field: postcode}
"""
HEADER = ["nhs", "forename", "surname", "dob", "sex", "postcode", "street"]
ROWS = [
    ["9434765919", "Siobhan", "Quixote", "1971-03-04", "F", "LL11 2AB", "1 High Street"],
    ["", "Siobhan", "Quixote", "04/03/1971", "F", "LL11 2AB", "1 High St"],
    ["", "Aled", "Pritchard", "1955-11-30", "M", "LL16 3CD", "22 Vale Road"],
    ["4010232137", "Megan", "Hughes", "2001-07-19", "F", "LL18 1EF", "5 Marine Drive"],
    ["", "Gareth", "Owen-Jones", "1988-02-14", "M", "LL15 1GH", "9 Castle Lane"],
]
FIRE_HEADER = ["first_name", "last_name", "born", "home_postcode"]
FIRE_ROWS = [
    ["Siobhan", "Quixotte", "19710304", "LL11 2AB"],
    ["Gareth", "Owen Jones", "1988-02-14", "LL15 1GH"],
    ["Nia", "Roberts", "1999-09-09", "LL17 0AA"],
]
SECRETS = ("Siobhan", "Quixote", "Quixotte", "1971", "LL11", "High", "9434765919", "Pritchard")


def _write(path: Path, header: list[str], rows: list[list[str]]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return str(path)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    return {
        "policy": _write_text(tmp_path / "council.yaml", POLICY),
        "fire_policy": _write_text(tmp_path / "fire.yaml", POLICY_NO_NHS),
        "council": _write(tmp_path / "council.csv", HEADER, ROWS),
        "fire": _write(tmp_path / "fire.csv", FIRE_HEADER, FIRE_ROWS),
        "out": str(tmp_path / "clusters.csv"),
    }


def _write_text(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _read(path: str) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_when_two_files_are_linked_then_the_output_has_one_line_per_row_in_order(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["link", "--keyring", KEYRING, "--policy", files["policy"], "--policy",
               files["fire_policy"], files["council"], files["fire"], "--output", files["out"]])
    assert rc == 0
    out = _read(files["out"])
    assert out[0] == ["file", "row", "cluster"]
    assert [(r[0], r[1]) for r in out[1:]] == [
        *(("1", str(i)) for i in range(1, len(ROWS) + 1)),
        *(("2", str(i)) for i in range(1, len(FIRE_ROWS) + 1)),
    ]
    cluster = {(r[0], r[1]): r[2] for r in out[1:]}
    assert cluster["1", "1"] == cluster["1", "2"] == cluster["2", "1"]  # one person, 3 records
    assert cluster["1", "5"] == cluster["2", "2"]
    assert len({cluster["1", "3"], cluster["1", "4"], cluster["2", "3"], cluster["1", "1"]}) == 4
    captured = capsys.readouterr()
    assert "8 records" in captured.out and "clusters" in captured.out
    assert "pairs compared" in captured.out
    for secret in SECRETS:
        assert secret.lower() not in (captured.out + captured.err).lower()
        assert all(secret.lower() not in ",".join(r).lower() for r in out)


def test_when_one_policy_is_given_then_it_applies_to_every_input(
    files: dict[str, str], tmp_path: Path
) -> None:
    second = _write(tmp_path / "again.csv", HEADER, ROWS[:2])
    rc = main(["link", "--keyring", KEYRING, "--policy", files["policy"], files["council"],
               second, "--output", files["out"]])
    assert rc == 0
    out = _read(files["out"])
    assert len(out) == 1 + len(ROWS) + 2
    cluster = {(r[0], r[1]): r[2] for r in out[1:]}
    assert cluster["1", "1"] == cluster["2", "1"] == cluster["2", "2"]


def test_when_policies_do_not_match_the_inputs_then_the_command_refuses(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["link", "--keyring", KEYRING, "--policy", files["policy"], "--policy",
               files["fire_policy"], "--policy", files["policy"], files["council"],
               files["fire"], "--output", files["out"]])
    assert rc == 2
    assert "one per input" in capsys.readouterr().err
    assert not Path(files["out"]).exists()


def test_when_an_nhs_number_is_invalid_then_the_row_is_named_not_the_value(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write(tmp_path / "bad.csv", HEADER, [ROWS[0], ["9434765918", *ROWS[1][1:]]])
    rc = main(["link", "--keyring", KEYRING, "--policy", files["policy"], bad,
               "--output", files["out"]])
    assert rc == 2
    err = capsys.readouterr().err
    assert "row 2" in err and "9434765918" not in err and "Siobhan" not in err
    assert not Path(files["out"]).exists()


def test_when_a_policy_column_is_missing_then_the_error_names_the_column_not_the_data(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["link", "--keyring", KEYRING, "--policy", files["policy"], files["fire"],
               "--output", files["out"]])
    assert rc == 2
    err = capsys.readouterr().err
    assert "'forename'" in err and "Siobhan" not in err


def test_when_a_field_is_identified_twice_then_the_policy_is_refused(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twice = _write_text(tmp_path / "twice.yaml", POLICY_NO_NHS + "  other: {action: identify, "
                        "field: given_name}\n")
    rc = main(["link", "--keyring", KEYRING, "--policy", twice, files["fire"],
               "--output", files["out"]])
    assert rc == 2
    assert "appears twice" in capsys.readouterr().err


def test_when_the_threshold_is_not_a_probability_then_the_command_refuses(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["link", "--keyring", KEYRING, "--policy", files["policy"], files["council"],
               "--output", files["out"], "--threshold", "1.5"])
    assert rc == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_when_the_same_inputs_are_linked_twice_then_the_output_is_identical(
    files: dict[str, str], tmp_path: Path
) -> None:
    args = ["--policy", files["policy"], "--policy", files["fire_policy"], files["council"],
            files["fire"]]
    other = str(tmp_path / "second.csv")
    assert main(["link", "--keyring", KEYRING, *args, "--output", files["out"]]) == 0
    assert main(["link", "--keyring", KEYRING, *args, "--output", other]) == 0
    assert Path(files["out"]).read_bytes() == Path(other).read_bytes()


def test_when_a_pair_is_explained_then_contributions_sum_to_its_weight_without_values() -> None:
    import numpy as np

    from pseudogate.cli.link import LinkInputs, _encode
    from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
    from pseudogate.linkage.engine import Scorer, link

    fields = ["nhs", "given_name", "family_name", "date_of_birth", "sex", "postcode", "address"]
    inputs = LinkInputs()
    inputs.values = {f: [r[i] for r in ROWS * 3] for i, f in enumerate(fields) if f != "nhs"}
    inputs.nhs = [None for _ in range(len(ROWS) * 3)]
    inputs.nhs[0], inputs.nhs[3] = "tokA", "tokB"
    inputs.source = [0] * len(inputs.nhs)
    inputs.row = list(range(1, len(inputs.nhs) + 1))
    table = _encode(Keyring.load(EXAMPLE_KEYRING), inputs)
    result = link(table)
    scorer = Scorer(table, result.model)
    parts = scorer.explain(2, 2 + len(ROWS))
    weight = float(scorer.weights(np.array([2]), np.array([2 + len(ROWS)]))[0])
    assert abs(sum(c.weight for c in parts) - weight) < 1e-9
    text = repr(parts).lower()
    assert all(s.lower() not in text for s in SECRETS)
    assert scorer.explain(0, 3)[-1].weight == float("-inf")  # two different NHS tokens
