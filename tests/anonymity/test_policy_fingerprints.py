"""Known-good policy fingerprints: refactoring the parser must never change one.

The values were computed by the implementation before hierarchy types became a registry of
classes (commit 1695233); an auditor's recorded fingerprint must keep matching the policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pseudogate.core.policy import parse_policy
from tests.anonymity.conftest import ADULT_QIS, adult_policy_text

TREE = b"a;ab;*\nb;ab;*\nc;c;*\n"

#: Every hierarchy type, tokenise/drop/keep columns, l and a decimal suppression limit.
EVERY_TYPE = """\
version: 1
name: gp-research-extract
columns:
  nhs_number:    {action: tokenise, kind: nhs_number, domain: person}
  given_name:    {action: drop}
  date_of_birth: {action: generalise, hierarchy: {type: date, levels: [month, year, 5y, 10y]}}
  sex:           {action: generalise, hierarchy: {type: suppress}}
  postcode:      {action: generalise, hierarchy: {type: postcode}}
  imd_decile:    {action: generalise, hierarchy: {type: interval, widths: [2, 4]}}
  code:          {action: generalise, hierarchy: {type: mask, keep: [3, 1]}}
  education:     {action: generalise, hierarchy: {type: tree, file: trees/edu.csv}}
  diagnosis:     {action: keep, sensitive: true}
  clinic_code:   {action: keep}
privacy:
  k: 5
  l: 2
  suppression_limit: 0.05
  metric: loss
"""

#: Defaults filled in: domain from the kind, loss metric, l absent.
DEFAULTS = """\
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

#: A postcode subset, mask keep 0, explicit null l, limit 1, discernibility.
SUBSETS = """\
version: 1
name: x
columns:
  p: {action: generalise, hierarchy: {type: postcode, levels: [district]}}
  m: {action: generalise, hierarchy: {type: mask, keep: [0]}}
privacy: {k: 3, l: null, suppression_limit: 1, metric: discernibility}
"""

INGESTION = "version: 1\nname: x\ncolumns:\n  e: {action: tokenise, kind: email}\n"

#: Issue 10: every identity field beside tokenise, keep and drop (an ingestion policy).
IDENTIFY_ALL = """\
version: 1
name: council-social-care
columns:
  nhs:      {action: tokenise, kind: nhs_number, domain: person}
  forename: {action: identify, field: given_name}
  surname:  {action: identify, field: family_name}
  dob:      {action: identify, field: date_of_birth}
  gender:   {action: identify, field: sex}
  postcode: {action: identify, field: postcode}
  street:   {action: identify, field: address}
  service:  {action: keep}
  notes:    {action: drop}
"""

#: Issue 10: one identity field and no NHS number column.
IDENTIFY_ONE = "version: 1\nname: fire\ncolumns:\n  first_name: {action: identify, field: given_name}\n" \
    "  visit: {action: keep}\n"


@pytest.mark.parametrize(
    ("text", "files", "fingerprint"),
    [
        (EVERY_TYPE, {"trees/edu.csv": TREE},
         "2512cad66438b75788f1066610f649ca8ae587d9203597c9a60fcebe878b308d"),
        (DEFAULTS, {}, "2cabdd40cb16afa4ab17a709ad4f739cd04cdd227ba51023f1b35de989297a16"),
        (SUBSETS, {}, "3ff010fc1d5fb48a6fce88f1a7dedf701cf6c5fe25da6295ae61947d95b8d619"),
        (INGESTION, {}, "4db7604c41a2ee4346403803ebf37df46c63a05466ca85a123b8636e8041e4e8"),
        (IDENTIFY_ALL, {}, "8bb3aec2bd312b0bfef3ffa5d904598bcc95d797ee07dd19b727d3867e807d34"),
        (IDENTIFY_ONE, {}, "61701674a2b9d19b592c0e77f110bcd43507f1229da834be3b55103586574ccb"),
    ],
    ids=["every-type", "defaults", "subsets", "ingestion", "identify-all", "identify-one"],
)
def test_when_policy_is_unchanged_then_its_fingerprint_is_the_known_good_value(
    text: str, files: dict[str, bytes], fingerprint: str
) -> None:
    assert parse_policy(text, files=files).fingerprint == fingerprint


@pytest.mark.parametrize(
    ("k", "limit", "metric", "fingerprint"),
    [
        (2, "0", "loss", "fee99b70d4197196344b2814dd1d8d2dfa13d88b7b4dd7a32443eef86b0495f3"),
        (5, "0.05", "loss", "c33a635084a3f92dc47366f5289fb5b312040539f31dc0d3dc24b8bad88278b4"),
        (10, "0.05", "discernibility",
         "b16ac6aa7146cbfb892903701ea076caf6cb1a053f4a5c9716af7d553d34f571"),
    ],
)
def test_when_adult_policy_is_unchanged_then_its_fingerprint_is_the_known_good_value(
    adult_dir: Path, k: int, limit: str, metric: str, fingerprint: str
) -> None:
    files = {f"adult_hierarchy_{qi}.csv": (adult_dir / f"adult_hierarchy_{qi}.csv").read_bytes()
             for qi in ADULT_QIS}
    policy = parse_policy(adult_policy_text(k=k, limit=limit, metric=metric), files=files)
    assert policy.fingerprint == fingerprint
