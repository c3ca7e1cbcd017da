"""Ingestion and ``identify`` columns (issue 10): refused until submissions store encodings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseudogate.core.errors import FailedPrecondition
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import parse_policy
from pseudogate.gateway import Store

from .helpers import Clock, files_under, ipc

SOCIAL_CARE = """\
version: 1
name: social-care
columns:
  nhs_number: {action: tokenise, kind: nhs_number}
  forename: {action: identify, field: given_name}
  service: {action: keep}
"""


def test_when_a_policy_identifies_a_column_then_the_submission_is_refused_naming_it(
    data_dir: Path, keyring: Keyring, clock: Clock
) -> None:
    policies = {"social-care": parse_policy(SOCIAL_CARE, origin="social-care.yaml")}
    with Store.open(data_dir, keyring=keyring, policies=policies, clock=clock) as store:
        sub = store.begin_submission(dataset="care", policy_name="social-care",
                                     organisation="council")
        with pytest.raises(FailedPrecondition) as caught:
            sub.add_arrow_ipc(ipc({"nhs_number": ["9434765919"], "forename": ["Siobhan"],
                                   "service": ["home care"]}))
        sub.abort()
        message = str(caught.value)
        assert message == ("column 'forename' is an identity field: storing linkage encodings "
                           "in submissions is not available yet")
        assert store.catalog.dataset_names() == []
    assert files_under(data_dir) == ["catalog.sqlite3", "store.lock"]
