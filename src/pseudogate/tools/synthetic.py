"""Synthetic UK-style people for the demo, tests and benchmarks (never real data).

NHS numbers are generated with valid modulus-11 check digits in the 999 range, which the NHS
reserves for test purposes and never issues, so a synthetic number cannot belong to anyone.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from pseudogate.core.nhs import check_digit

__all__ = ["Person", "make_people", "messy_nhs_number", "messy_postcode", "nhs_number"]

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
            )
        )
    return people
