"""verify-extract: signature, content hash, rows, policy fingerprint, k, l, identifier scan."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pycanon import anonymity as pycanon

from pseudogate import cli
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring, Signer
from pseudogate.core.manifest import Manifest, content_sha256, load_public_key_pem
from pseudogate.core.policy import load_policy
from pseudogate.tools.verify_extract import (
    CheckStatus,
    recompute_k,
    recompute_l,
    scan_identifiers,
    verify_extract,
)

POLICY = """\
version: 1
name: diabetes-study
columns:
  person:             {action: keep}
  gp.birth_date:      {action: generalise, hierarchy: {type: date, levels: [year, 5y]}}
  gp.postcode:        {action: generalise, hierarchy: {type: postcode, levels: [district]}}
  gp.diagnosis:       {action: keep, sensitive: true}
  council.notes:      {action: keep}
privacy:
  k: 2
  l: 2
  suppression_limit: 0.1
"""

HEADER = ["person", "gp.birth_date", "gp.postcode", "gp.diagnosis", "council.notes"]
ROWS = [
    ["pk-1_aaaa", "1980", "LL16", "E11", "home visit"],
    ["pk-1_bbbb", "1980", "LL16", "I10", ""],
    ["pk-1_bbbb", "1980", "LL16", "E11", "review"],
    ["pk-1_cccc", "1975-1979", "LL18", "J45", ""],
    ["pk-1_dddd", "1975-1979", "LL18", "E11", "x"],
    ["pk-1_eeee", "1975-1979", "LL18", "J45", ""],
]
NHS = "943 476 5919"  # the NHS Digital documentation example number (valid check digit)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Keyring.load(EXAMPLE_KEYRING).signer()


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    if path.suffix == ".csv":
        pd.DataFrame(rows, columns=header).to_csv(path, index=False, lineterminator="\n")
    else:
        pd.DataFrame(rows, columns=header).to_parquet(path, index=False)
    return path


def _manifest(signer: Signer, rows: list[list[str]], **overrides: Any) -> Manifest:
    policy_text_fp = overrides.pop("policy_fingerprint", "")
    body = {
        "project": "diabetes-study",
        "datasets": [{"name": "gp", "version": 1}, {"name": "council", "version": 1}],
        "policy_fingerprint": policy_text_fp,
        "key_ids": {"linkage": "lk-1", "project": "pk-1", "signing": signer.key_id},
        "linkage": {"method": "exact"},
        "optout_snapshot": None,
        "optouts_removed": "<10",
        "rows": len(rows),
        "k_achieved": 2,
        "l_achieved": 2,
        "suppressed": 0,
        "loss": 0.25,
        "created_at": "2025-06-01T09:00:00Z",
        "content_sha256": content_sha256(HEADER, rows),
    }
    body.update(overrides)
    return Manifest.from_json_dict(body).signed(signer.sign)


@pytest.fixture
def setup(tmp_path: Path, signer: Signer) -> dict[str, Any]:
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY)
    policy = load_policy(policy_path)
    manifest = _manifest(signer, ROWS, policy_fingerprint=policy.fingerprint)
    (tmp_path / "manifest.json").write_text(manifest.to_json())
    (tmp_path / "pk.pem").write_text(signer.public_key_pem())
    return {
        "dir": tmp_path,
        "policy": policy,
        "manifest": manifest,
        "key": load_public_key_pem(signer.public_key_pem()),
        "csv": _write(tmp_path / "extract.csv", HEADER, ROWS),
        "parquet": _write(tmp_path / "extract.parquet", HEADER, ROWS),
    }


def _statuses(result: Any) -> dict[str, CheckStatus]:
    return {r.name: r.status for r in result.results}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_when_the_extract_is_genuine_then_every_check_passes(setup: dict, kind: str) -> None:
    result = verify_extract(setup[kind], setup["manifest"], setup["key"], policy=setup["policy"])
    assert result.ok, result.render()
    assert set(_statuses(result).values()) == {CheckStatus.PASS}
    assert len(result.results) == 8
    assert "exact (same NHS linkage token), covered by the signature" in result.render()


def test_when_a_manifest_predates_the_linkage_field_then_it_still_verifies(
    setup: dict, signer: Signer
) -> None:
    body = json.loads(_manifest(signer, ROWS).to_json())
    del body["linkage"], body["signature"]
    old = Manifest.from_json_dict(body).signed(signer.sign)
    result = verify_extract(setup["csv"], old, setup["key"])
    assert result.ok, result.render()
    assert _statuses(result)["linkage"] is CheckStatus.NOT_CHECKED
    assert _statuses(result)["manifest signature"] is CheckStatus.PASS


def test_when_linkage_was_probabilistic_then_the_method_and_threshold_are_reported(
    setup: dict, signer: Signer
) -> None:
    linkage = {"method": "probabilistic", "threshold": 0.5, "encoding": "pg-fbf-v1"}
    manifest = _manifest(signer, ROWS, linkage=linkage)
    result = verify_extract(setup["csv"], manifest, setup["key"])
    assert result.ok and _statuses(result)["linkage"] is CheckStatus.PASS
    assert "probabilistic (pg-fbf-v1 encodings, threshold 0.5)" in result.render()
    edited = dataclasses.replace(
        manifest, linkage=dataclasses.replace(manifest.linkage, threshold=0.9))
    assert _statuses(verify_extract(setup["csv"], edited, setup["key"]))[
        "manifest signature"] is CheckStatus.FAIL
    unknown = _manifest(signer, ROWS, linkage={**linkage, "encoding": "clk-v9"})
    result = verify_extract(setup["csv"], unknown, setup["key"])
    assert not result.ok and _statuses(result)["linkage"] is CheckStatus.FAIL


def test_when_no_policy_is_given_then_k_and_l_are_reported_as_not_checked(setup: dict) -> None:
    result = verify_extract(setup["csv"], setup["manifest"], setup["key"])
    assert result.ok
    assert _statuses(result)["k and l"] is CheckStatus.NOT_CHECKED
    assert "k and l not checked" in result.render()


def test_when_a_cell_is_altered_then_the_content_hash_fails(setup: dict) -> None:
    rows = [list(r) for r in ROWS]
    rows[2][3] = "I10"
    path = _write(setup["dir"] / "altered.csv", HEADER, rows)
    result = verify_extract(path, setup["manifest"], setup["key"], policy=setup["policy"])
    assert _statuses(result)["content hash"] is CheckStatus.FAIL
    assert _statuses(result)["manifest signature"] is CheckStatus.PASS
    assert not result.ok


def test_when_a_row_is_removed_then_content_and_row_count_fail(setup: dict) -> None:
    path = _write(setup["dir"] / "short.parquet", HEADER, ROWS[:-1])
    result = verify_extract(path, setup["manifest"], setup["key"], policy=setup["policy"])
    statuses = _statuses(result)
    assert statuses["content hash"] is CheckStatus.FAIL
    assert statuses["row count"] is CheckStatus.FAIL
    assert statuses["k-anonymity"] is CheckStatus.PASS  # 1975-1979 still has 2 people


def test_when_the_manifest_is_edited_then_the_signature_fails(setup: dict) -> None:
    manifest = dataclasses.replace(setup["manifest"], k_achieved=5)
    result = verify_extract(setup["csv"], manifest, setup["key"], policy=setup["policy"])
    statuses = _statuses(result)
    assert statuses["manifest signature"] is CheckStatus.FAIL
    assert statuses["k-anonymity"] is CheckStatus.FAIL


def test_when_another_key_is_used_then_the_signature_fails(setup: dict) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    result = verify_extract(setup["csv"], setup["manifest"], other)
    assert _statuses(result)["manifest signature"] is CheckStatus.FAIL


def test_when_another_policy_is_given_then_the_fingerprint_fails(setup: dict) -> None:
    path = setup["dir"] / "other.yaml"
    path.write_text(POLICY.replace("k: 2", "k: 3"))
    result = verify_extract(setup["csv"], setup["manifest"], setup["key"], policy=load_policy(path))
    statuses = _statuses(result)
    assert statuses["policy fingerprint"] is CheckStatus.FAIL
    assert statuses["k-anonymity"] is CheckStatus.FAIL  # k = 2 < 3


def test_when_the_signed_manifest_overstates_k_then_the_recomputation_fails(
    setup: dict, signer: Signer
) -> None:
    manifest = _manifest(
        signer, ROWS, policy_fingerprint=setup["policy"].fingerprint, k_achieved=3, l_achieved=1
    )
    result = verify_extract(setup["csv"], manifest, setup["key"], policy=setup["policy"])
    statuses = _statuses(result)
    assert statuses["manifest signature"] is CheckStatus.PASS
    assert statuses["k-anonymity"] is CheckStatus.FAIL
    assert statuses["l-diversity"] is CheckStatus.FAIL
    assert "recomputed 2, manifest says 3" in result.render()


def test_when_one_person_has_many_rows_then_k_counts_people_not_rows() -> None:
    frame = pd.DataFrame(ROWS, columns=HEADER)
    assert recompute_k(frame, ["gp.birth_date", "gp.postcode"]) == 2
    only_b = frame[frame["person"] != "pk-1_aaaa"]
    # class 1980/LL16 now has two rows of one person
    assert recompute_k(only_b, ["gp.birth_date", "gp.postcode"]) == 1
    assert recompute_l(frame, ["gp.birth_date"], ["gp.diagnosis"]) == 2


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from("xy"), st.sampled_from("123")),
        min_size=1, max_size=40,
    )
)
def test_when_rows_are_people_then_k_and_l_agree_with_pycanon(rows: list[tuple[str, ...]]) -> None:
    frame = pd.DataFrame(rows, columns=["q1", "q2", "s"])
    assert recompute_k(frame, ["q1", "q2"]) == pycanon.k_anonymity(frame, ["q1", "q2"])
    assert recompute_l(frame, ["q1", "q2"], ["s"]) == pycanon.l_diversity(frame, ["q1", "q2"], ["s"])
    people = frame.assign(person=[f"p{i}" for i in range(len(frame))])
    assert recompute_k(people, ["q1", "q2"]) == pycanon.k_anonymity(frame, ["q1", "q2"])


@pytest.mark.parametrize(
    ("cell", "kind"),
    [
        (NHS, "NHS number"),
        ("943-476-5919", "NHS number"),
        ("9434765919", "NHS number"),
        ("lives at LL16 3AA", "postcode"),
        ("ll163aa", "postcode"),
        ("SW1A 1AA", "postcode"),
        ("contact jane.doe@example.org please", "email address"),
    ],
)
def test_when_a_cell_holds_an_identifier_then_the_scan_names_column_and_row(
    setup: dict, cell: str, kind: str
) -> None:
    rows = [list(r) for r in ROWS]
    rows[4][4] = cell
    frame = pd.DataFrame(rows, columns=HEADER)
    findings = scan_identifiers(frame)
    assert [(f.row, f.column, f.kind) for f in findings] == [(5, "council.notes", kind)]


@pytest.mark.parametrize(
    "cell",
    ["9434765918", "94347659", "LL16 3", "LL16", "LL16 3A", "2019-03", "2015-2019", "a@b",
     "pk-1_mfrggzdfmztwq2lk", "*", "E11.9", "ABLL16 3AAZ"],
)
def test_when_a_cell_is_generalised_or_not_an_identifier_then_it_is_not_flagged(
    cell: str,
) -> None:
    frame = pd.DataFrame({"c": [cell]})
    assert scan_identifiers(frame, date_columns=["c"]) == []


def test_when_a_date_column_holds_full_dates_then_they_are_flagged_only_there() -> None:
    frame = pd.DataFrame({"gp.birth_date": ["1980", "1980-04-12"], "other": ["1980-04-12", ""]})
    findings = scan_identifiers(frame, date_columns=["gp.birth_date"])
    assert [(f.row, f.column, f.kind) for f in findings] == [(2, "gp.birth_date", "full date")]
    assert scan_identifiers(pd.DataFrame({"d": ["2019-02-30"]}), date_columns=["d"]) == []


@st.composite
def nhs_numbers(draw: st.DrawFn) -> str:
    while True:
        digits = draw(st.lists(st.integers(0, 9), min_size=9, max_size=9))
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            text = "".join(map(str, digits + [check]))
            sep = draw(st.sampled_from(["", " ", "-"]))
            return f"{text[:3]}{sep}{text[3:6]}{sep}{text[6:]}"


@given(nhs_numbers())
def test_when_any_valid_nhs_number_is_present_then_it_is_found(number: str) -> None:
    findings = scan_identifiers(pd.DataFrame({"c": ["x", number]}))
    assert [(f.row, f.kind) for f in findings] == [(2, "NHS number")]


# -- the command --------------------------------------------------------------------------------


def run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("verify_extract",))
    return cli.main(list(argv))


def _args(setup: dict, path: Path, *, policy: bool = True) -> list[str]:
    d = setup["dir"]
    extra = ["--policy", str(d / "policy.yaml")] if policy else []
    return ["verify-extract", str(path), "--manifest", str(d / "manifest.json"),
            "--public-key", str(d / "pk.pem"), *extra]


def test_when_the_command_verifies_a_genuine_extract_then_it_exits_0(
    setup: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(monkeypatch, *_args(setup, setup["parquet"])) == 0
    out = capsys.readouterr().out
    assert "VERDICT: PASS" in out and "FAIL" not in out


def test_when_the_command_finds_an_identifier_then_it_exits_1_without_printing_it(
    setup: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [list(r) for r in ROWS]
    rows[0][4] = NHS
    rows[1][4] = "jane.doe@example.org"
    path = _write(setup["dir"] / "leaky.csv", HEADER, rows)
    assert run_cli(monkeypatch, *_args(setup, path, policy=False)) == 1
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "column 'council.notes' row 1: NHS number" in out
    assert "row 2: email address" in out
    assert "k and l not checked" in out
    assert "VERDICT: FAIL" in out
    for value in (NHS, NHS.replace(" ", ""), "jane.doe", "example.org"):
        assert value not in out


def test_when_the_extract_is_missing_or_unreadable_then_it_exits_2(
    setup: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli(monkeypatch, *_args(setup, setup["dir"] / "missing.csv")) == 2
    bad = setup["dir"] / "bad.parquet"
    bad.write_bytes(b"not parquet")
    assert run_cli(monkeypatch, *_args(setup, bad)) == 2
    odd = setup["dir"] / "extract.txt"
    odd.write_text("a,b\n")
    assert run_cli(monkeypatch, *_args(setup, odd)) == 2
