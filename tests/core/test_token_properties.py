"""Hypothesis properties of tokens: deterministic, normalisation-invariant, separated, well-formed."""

from __future__ import annotations

import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pseudogate.core.normalise import HYPHENS, SPACES, Kind, normalise, normalise_many
from pseudogate.core.tokens import DOMAIN_INFO_PREFIX, Tokeniser, derive_key

TOKEN_RE = re.compile(r"^[a-z0-9-]{1,16}_[a-z2-7]{32}$")

keys = st.binary(min_size=32, max_size=32)
key_ids = st.from_regex(r"[a-z0-9-]{1,16}", fullmatch=True)
domains = st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True)
separators = st.text(alphabet=SPACES + HYPHENS, max_size=3)
padding = st.text(alphabet=SPACES, max_size=3)


def tokeniser(key: bytes, domain: str, key_id: str = "k") -> Tokeniser:
    return Tokeniser(
        key_id=key_id,
        label=f"domain/{domain}",
        derived_key=derive_key(key, DOMAIN_INFO_PREFIX + domain),
    )


@st.composite
def nhs_numbers(draw: st.DrawFn) -> str:
    digits = draw(st.lists(st.integers(0, 9), min_size=9, max_size=9))
    check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
    check = 0 if check == 11 else check
    assume(check != 10)
    return "".join(map(str, digits)) + str(check)


@st.composite
def messy_nhs(draw: st.DrawFn, number: str) -> str:
    parts = [number[:3], number[3:6], number[6:]]
    seps = [draw(separators) for _ in range(2)]
    return draw(padding) + parts[0] + seps[0] + parts[1] + seps[1] + parts[2] + draw(padding)


@st.composite
def postcodes(draw: st.DrawFn) -> str:
    area = draw(st.sampled_from(["B", "M", "W", "LL", "SW", "EC", "CR", "DN", "G"]))
    district = draw(st.sampled_from(["1", "15", "2", "9", "1A"]))
    if district.endswith("A") and len(area) == 1 and area != "W":
        district = "1"
    sector = draw(st.integers(0, 9))
    unit = draw(st.text(alphabet="ABDEFGHJLNPQRSTUWXYZ", min_size=2, max_size=2))
    return f"{area}{district} {sector}{unit}"


def random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if f else c for c, f in zip(text, flips, strict=True))


@settings(deadline=None)  # timing varies on a shared machine; speed is benchmarked
@given(key=keys, domain=domains, value=st.text(max_size=40))
def test_tokens_are_deterministic(key: bytes, domain: str, value: str) -> None:
    first = tokeniser(key, domain).token(value)
    assert tokeniser(key, domain).token(value) == first
    assert tokeniser(key, domain).tokens([value, value]) == [first, first]


@settings(deadline=None)  # timing varies on a shared machine; speed is benchmarked
@given(key=keys, key_id=key_ids, values=st.lists(st.text(max_size=30), max_size=20))
def test_tokens_have_the_documented_format(key: bytes, key_id: str, values: list[str]) -> None:
    t = tokeniser(key, "text", key_id)
    made = t.tokens(values)
    assert len(made) == len(values)
    assert all(TOKEN_RE.fullmatch(tok) for tok in made)
    assert made == [t.token(v) for v in values]


@settings(deadline=None)  # timing varies on a shared machine; speed is benchmarked
@given(key=keys, data=st.data(), number=nhs_numbers())
def test_nhs_number_tokens_ignore_spacing(key: bytes, data: st.DataObject, number: str) -> None:
    messy = data.draw(messy_nhs(number))
    t = tokeniser(key, "nhs_number")
    assert normalise(Kind.NHS_NUMBER, messy) == number
    (normalised,), errors = normalise_many(Kind.NHS_NUMBER, [messy])
    assert errors == []
    assert t.token(normalised) == t.token(number)  # type: ignore[arg-type]


@settings(deadline=None)  # timing varies on a shared machine; speed is benchmarked
@given(key=keys, data=st.data(), postcode=postcodes())
def test_postcode_tokens_ignore_case_and_spacing(
    key: bytes, data: st.DataObject, postcode: str
) -> None:
    outward, inward = postcode.split(" ")
    messy = (
        data.draw(padding)
        + random_case(data.draw, outward)
        + data.draw(st.text(alphabet=SPACES, max_size=3))
        + random_case(data.draw, inward)
        + data.draw(padding)
    )
    t = tokeniser(key, "postcode")
    assert t.token(normalise(Kind.POSTCODE, messy)) == t.token(postcode)


@settings(deadline=None)  # timing varies on a shared machine; speed is benchmarked
@given(
    key=keys,
    data=st.data(),
    local=st.from_regex(r"[a-z0-9._+-]{1,12}", fullmatch=True),
    host=st.from_regex(r"[a-z0-9-]{1,10}\.[a-z]{2,4}", fullmatch=True),
)
def test_email_tokens_ignore_case_and_padding(
    key: bytes, data: st.DataObject, local: str, host: str
) -> None:
    clean = f"{local}@{host}"
    messy = data.draw(padding) + random_case(data.draw, clean) + data.draw(padding)
    t = tokeniser(key, "email")
    assert t.token(normalise(Kind.EMAIL, messy)) == t.token(clean)


@settings(deadline=None)  # timing varies on a shared machine; speed is benchmarked
@given(
    key=keys,
    data=st.data(),
    words=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzéøñü", min_size=1, max_size=8),
        min_size=1,
        max_size=4,
    ),
)
def test_name_tokens_ignore_case_accents_and_separators(
    key: bytes, data: st.DataObject, words: list[str]
) -> None:
    clean = normalise(Kind.NAME, " ".join(words))
    gaps = [
        data.draw(st.text(alphabet=SPACES + HYPHENS + "'’.,0123456789", min_size=1, max_size=3))
        for _ in words
    ]
    messy = data.draw(padding) + "".join(
        random_case(data.draw, w) + g for w, g in zip(words, gaps, strict=True)
    )
    t = tokeniser(key, "name")
    assert t.token(normalise(Kind.NAME, messy)) == t.token(clean)
    assert clean == clean.casefold() and "  " not in clean


@settings(max_examples=200, deadline=None)
@given(key=keys, a=domains, b=domains, value=st.text(min_size=1, max_size=30))
def test_different_domains_give_different_tokens(key: bytes, a: str, b: str, value: str) -> None:
    assume(a != b)
    assert tokeniser(key, a).token(value) != tokeniser(key, b).token(value)


@settings(max_examples=200, deadline=None)
@given(a=keys, b=keys, domain=domains, value=st.text(min_size=1, max_size=30))
def test_different_keys_give_different_tokens(a: bytes, b: bytes, domain: str, value: str) -> None:
    assume(a != b)
    assert tokeniser(a, domain).token(value) != tokeniser(b, domain).token(value)


@settings(deadline=None)  # timing varies on a shared machine; speed is benchmarked
@given(
    key=keys,
    domain=domains,
    values=st.lists(st.text(max_size=20), min_size=2, max_size=30, unique=True),
)
def test_different_values_give_different_tokens(key: bytes, domain: str, values: list[str]) -> None:
    made = tokeniser(key, domain).tokens(values)
    assert len(set(made)) == len(values)
