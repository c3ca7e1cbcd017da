"""A project's linkage method from a request: defaults, and refusals that never echo values."""

from __future__ import annotations

import pytest

from pseudogate.core.errors import InvalidInput
from pseudogate.core.linkage_method import Linkage, LinkageMethod, parse_linkage


def _parse(method: str | None, threshold: float | None) -> Linkage:
    return parse_linkage(method, threshold, default_threshold=0.5, encoding="pg-fbf-v1")


@pytest.mark.parametrize(("method", "threshold"), [(None, None), ("", None), ("exact", None),
                                                   ("exact", 0), ("", 0.0)])
def test_when_no_method_or_exact_is_asked_then_the_linkage_is_exact(
    method: str | None, threshold: float | None
) -> None:
    linkage = _parse(method, threshold)
    assert linkage == Linkage() and linkage.to_json_dict() == {"method": "exact"}
    assert not linkage.probabilistic


@pytest.mark.parametrize(("threshold", "expected"), [(None, 0.5), (0, 0.5), (0.9, 0.9)])
def test_when_probabilistic_is_asked_then_an_unset_threshold_is_the_default(
    threshold: float | None, expected: float
) -> None:
    linkage = _parse("probabilistic", threshold)
    assert linkage.method is LinkageMethod.PROBABILISTIC and linkage.threshold == expected
    assert linkage.to_json_dict() == {"method": "probabilistic", "threshold": expected,
                                      "encoding": "pg-fbf-v1"}


@pytest.mark.parametrize(
    ("method", "threshold", "message"),
    [
        ("probabilistic", 1, "strictly between 0 and 1"),
        ("probabilistic", -0.1, "strictly between 0 and 1"),
        ("probabilistic", float("inf"), "strictly between 0 and 1"),
        ("exact", 0.3, "probabilistic linkage only"),
        ("EXACT", None, "unknown linkage method; the methods are exact, probabilistic"),
        ("943 476 5919", None, "unknown linkage method"),
    ],
)
def test_when_the_request_does_not_fit_then_it_is_refused_without_echoing_it(
    method: str, threshold: float | None, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        _parse(method, threshold)
    assert message in str(refused.value) and "943" not in str(refused.value)
