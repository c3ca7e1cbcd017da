"""Synthetic UK-style people for the demo, tests and benchmarks (never real data).

NHS numbers are generated with valid modulus-11 check digits in the 999 range, which the NHS
reserves for test purposes and never issues, so a synthetic number cannot belong to anyone.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from pseudogate.core.nhs import check_digit

__all__ = [
    "Person",
    "make_people",
    "messy_identity",
    "messy_nhs_number",
    "messy_postcode",
    "nhs_number",
]

_GIVEN = [
    "Siân", "Gareth", "Rhiannon", "Dafydd", "Olivia", "Mohammed", "Zoë", "José", "Aoife",
    "Ólafur", "Priya", "Noah", "Amelia", "Oliver", "Isla", "Ffion", "Ioan", "Chloé", "Łukasz",
    "Fatima", "Kwame", "Mei", "Tomás", "Eilidh",
]
_FAMILY = [
    "O'Brien", "Jones", "Williams", "Davies", "Evans", "Ødegård", "Smith", "Patel", "Hughes",
    "Roberts", "Lewis", "Morgan", "Nowak", "Mensah", "Chen", "García", "Ní Bhriain", "Price",
    "Ap Iorwerth", "Thomas",
]
_AREAS = ["LL15", "LL16", "LL18", "LL17", "CH7", "LL57", "LL11", "SY23", "CF10", "SA1"]
_ETHNICITY = ["White", "Asian", "Black", "Mixed", "Other"]
_STREETS = [
    "High Street", "Church Road", "Station Road", "Park Avenue", "Mill Lane", "Heol y Castell",
    "Ffordd Derwen", "Victoria Road", "Bryn Teg", "Chapel Street", "Maes y Dre", "Clwyd Avenue",
    "Vale Road", "Stryd Fawr", "Ffordd Llanelwy", "Queen Street", "Rhodfa'r Môr", "Well Street",
]
_TOWNS = ["Denbigh", "Ruthin", "Rhyl", "Prestatyn", "St Asaph", "Mold", "Bangor", "Wrexham"]
#: How a second system abbreviates or mistypes an address line.
_ABBREVIATIONS = {"Street": "St", "Road": "Rd", "Avenue": "Ave", "Lane": "Ln"}


@dataclass(frozen=True, slots=True)
class Person:
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: str
    sex: str
    postcode: str
    ethnicity: str
    email: str
    address: str = ""


def nhs_number(rng: random.Random) -> str:
    """A valid NHS number in the 999 test range (never issued to a real person)."""
    while True:
        first_nine = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        check = check_digit(first_nine)
        if check is not None:
            return first_nine + str(check)


def messy_nhs_number(number: str, rng: random.Random) -> str:
    """The same number as different systems type it."""
    style = rng.randrange(4)
    if style == 0:
        return number
    if style == 1:
        return f"{number[:3]} {number[3:6]} {number[6:]}"
    if style == 2:
        return f"{number[:3]}-{number[3:6]}-{number[6:]}"
    return f" {number} "


def messy_postcode(postcode: str, rng: random.Random) -> str:
    style = rng.randrange(3)
    if style == 0:
        return postcode
    if style == 1:
        return postcode.lower()
    return postcode.replace(" ", "")


def make_people(n: int, *, seed: int = 1) -> list[Person]:
    """``n`` distinct synthetic people, reproducible from ``seed``."""
    rng = random.Random(seed)
    # addresses come from a second stream, so adding them left every other value as it was
    address_rng = random.Random(seed * 7919 + 1)
    seen: set[str] = set()
    people: list[Person] = []
    start = dt.date(1930, 1, 1).toordinal()
    span = dt.date(2010, 12, 31).toordinal() - start
    while len(people) < n:
        number = nhs_number(rng)
        if number in seen:
            continue
        seen.add(number)
        given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
        dob = dt.date.fromordinal(start + rng.randrange(span)).isoformat()
        letters = "ABDEFGHJLNPQRSTUWXYZ"
        inward = f"{rng.randrange(10)}{rng.choice(letters)}{rng.choice(letters)}"
        postcode = f"{rng.choice(_AREAS)} {inward}"
        people.append(
            Person(
                nhs_number=number,
                given_name=given,
                family_name=family,
                date_of_birth=dob,
                sex=rng.choice(["F", "M"]),
                postcode=postcode,
                ethnicity=rng.choice(_ETHNICITY),
                email=f"{given.lower()}.{len(people)}@example.org",
                address=f"{address_rng.randrange(1, 200)} {address_rng.choice(_STREETS)}, "
                f"{address_rng.choice(_TOWNS)}",
            )
        )
    return people


def _typo(text: str, rng: random.Random) -> str:
    """One keying error: a letter dropped, doubled, swapped with the next, or replaced."""
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i] + text[i:]
    if kind == 2:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + rng.choice("aeinorst") + text[i + 1 :]


def _moved(rng: random.Random) -> tuple[str, str]:
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    postcode = f"{rng.choice(_AREAS)} {rng.randrange(10)}{rng.choice(letters)}{rng.choice(letters)}"
    address = f"{rng.randrange(1, 200)} {rng.choice(_STREETS)}, {rng.choice(_TOWNS)}"
    return postcode, address


def messy_identity(person: Person, rng: random.Random) -> dict[str, str]:
    """How another system (a council, a fire service) records the same person.

    Realistic, independent errors: case and accents vary, names are mistyped (8%), the
    family name changes on marriage (3%), the date of birth is written ``DD/MM/YYYY`` and
    sometimes has day and month swapped (3%) or is missing (4%), the person has moved (8%),
    the address line is abbreviated, and any field may be blank (2% each).
    """
    given, family = person.given_name, person.family_name
    if rng.random() < 0.5:
        given, family = given.upper(), family.upper()
    if rng.random() < 0.08:
        given = _typo(given, rng)
    if rng.random() < 0.08:
        family = _typo(family, rng)
    if rng.random() < 0.03:
        family = rng.choice(_FAMILY)
    year, month, day = person.date_of_birth.split("-")
    if rng.random() < 0.03 and int(day) <= 12:
        day, month = month, day
    dob = "" if rng.random() < 0.04 else f"{day}/{month}/{year}"
    postcode, address = person.postcode, person.address
    if rng.random() < 0.08:
        postcode, address = _moved(rng)
    for long, short in _ABBREVIATIONS.items():
        address = address.replace(long, short)
    record = {
        "given_name": given,
        "family_name": family,
        "date_of_birth": dob,
        "sex": {"F": "Female", "M": "Male"}[person.sex] if rng.random() < 0.5 else person.sex,
        "postcode": messy_postcode(postcode, rng),
        "address": address.lower() if rng.random() < 0.3 else address,
    }
    return {k: "" if rng.random() < 0.02 else v for k, v in record.items()}
