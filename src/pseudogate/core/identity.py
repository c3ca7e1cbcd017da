"""Identity fields and their forgiving normalisation (docs/linkage.md, "Normalisation").

Identity fields feed the linkage encoding (core/encoding.py). Messy values are the normal case,
so nothing here raises: a value is normalised for its field where it can be, otherwise kept as
cleaned text, and a value with nothing left (or that is not a string) is missing (``None``).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from typing import NamedTuple

from pseudogate.core.normalise import InvalidValue, Kind, normaliser

__all__ = [
    "DateParts",
    "IdentityField",
    "normalise_address",
    "normalise_date",
    "normalise_name",
    "normalise_postcode",
    "normalise_sex",
]


class IdentityField(enum.StrEnum):
    """The identity fields a policy's ``identify`` action may name (issue 10)."""

    GIVEN_NAME = "given_name"
    FAMILY_NAME = "family_name"
    DATE_OF_BIRTH = "date_of_birth"
    SEX = "sex"
    POSTCODE = "postcode"
    ADDRESS = "address"


# Deleted before anything else, so "O'Brien" and "OBrien" agree: apostrophes, their look-alikes
# and full stops.
_DELETE = str.maketrans("", "", "'\u2018\u2019\u201b\u02bc\u02b9`\u00b4.")


def _fold(value: str) -> str:
    """Delete apostrophes/full stops, NFKD, case-fold, NFKD again, remove combining marks."""
    if value.isascii():  # the same result, faster: ASCII has no marks and folds to lower case
        return value.translate(_DELETE).lower()
    text = unicodedata.normalize("NFKD", value.translate(_DELETE)).casefold()
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("M"))


_ASCII_RUNS = {"L": re.compile(r"[a-z]+"), "LD": re.compile(r"[a-z0-9]+")}


def _runs(text: str, keep: str) -> list[str]:
    """Maximal runs of kept characters: letters (``"L"``) or letters and ASCII digits (``"LD"``)."""
    if text.isascii():  # folded ASCII: the letters are a-z
        return _ASCII_RUNS[keep].findall(text)
    parts: list[str] = []
    cur: list[str] = []
    for ch in text:
        if unicodedata.category(ch).startswith("L") or (keep == "LD" and "0" <= ch <= "9"):
            cur.append(ch)
        elif cur:
            parts.append("".join(cur))
            cur = []
    if cur:
        parts.append("".join(cur))
    return parts


def normalise_name(value: object) -> tuple[str, ...] | None:
    """A name as its parts: ``"Smith-Jones"`` -> ``("smith", "jones")``; ``None`` if none.

    Apostrophes and full stops are deleted, then NFKD, case-folding and removal of combining
    marks; every run of characters that are not letters (spaces, hyphens, digits, other
    punctuation) separates parts.
    """
    if not isinstance(value, str):
        return None
    parts = _runs(_fold(value), "L")
    return tuple(parts) if parts else None


def normalise_address(value: object) -> str | None:
    """A free-text address line: folded like a name, keeping ASCII digits; words joined by one
    space, common street-type abbreviations spelt out (``rd`` -> ``road``)."""
    if not isinstance(value, str):
        return None
    words = [_ABBREVIATIONS.get(w, w) for w in _runs(_fold(value), "LD")]
    return " ".join(words) if words else None


_ABBREVIATIONS = {
    "rd": "road",
    "st": "street",
    "ave": "avenue",
    "av": "avenue",
    "ln": "lane",
    "dr": "drive",
    "cl": "close",
    "ct": "court",
    "cres": "crescent",
    "gdns": "gardens",
    "pl": "place",
    "sq": "square",
    "tce": "terrace",
    "flt": "flat",
}

_STRICT_POSTCODE = normaliser(Kind.POSTCODE)
# Kept unchanged from core/normalise: a valid UK postcode is "OUTWARD INWARD".
_OUTWARD_RE = re.compile(r"[A-Z]{1,2}[0-9][0-9A-Z]?")


def normalise_postcode(value: object) -> str | None:
    """A valid UK postcode as ``"LL15 1AA"`` (the rule of docs/tokens.md); otherwise the ASCII
    letters and digits of the folded value, upper-cased (``"LL15"`` for a partial one)."""
    if not isinstance(value, str):
        return None
    try:
        return _STRICT_POSTCODE(value)
    except InvalidValue:
        pass
    cleaned = "".join(ch for ch in _fold(value) if ch.isascii() and ch.isalnum()).upper()
    return cleaned or None


def postcode_outward(postcode: str) -> str | None:
    """The outward code of a normalised postcode, or of a partial postcode that is only one."""
    if " " in postcode:
        return postcode.split(" ", 1)[0]
    return postcode if _OUTWARD_RE.fullmatch(postcode) else None


def postcode_sector(postcode: str) -> str | None:
    """The sector (``"LL15 1"``) of a valid normalised postcode."""
    return postcode[:-2] if " " in postcode else None


class DateParts(NamedTuple):
    """A date of birth: ``text`` is ``YYYY-MM-DD`` when the parts were read, else cleaned text."""

    text: str
    year: int | None = None
    month: int | None = None
    day: int | None = None

    @property
    def parsed(self) -> bool:
        return self.year is not None


_SPACE_RUN = re.compile(r"\s+")
_DATE_SHAPES = (
    (re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"), (1, 2, 3)),
    (re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})"), (1, 2, 3)),
    (re.compile(r"([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})"), (3, 2, 1)),
)


def normalise_date(value: object) -> DateParts | None:
    """Read ``YYYY-MM-DD``, ``YYYYMMDD`` or ``DD/MM/YYYY`` (also ``DD-MM-YYYY``, ``DD.MM.YYYY``).

    Parts are kept as written, without a calendar check (a 31 February is still evidence),
    when 1 <= month <= 12 and 1 <= day <= 31; a month of 13..31 with a day of 1..12 is read
    the other way round (the only reading that fits). Anything else keeps its cleaned text
    (folded like an address: runs of letters and ASCII digits joined by one space) and no
    parts; with nothing left it is missing.
    """
    if not isinstance(value, str):
        return None
    if (len(value) == 10 or len(value) == 8) and value.isascii():
        fast = _fast_date(value)
        if fast is not None:
            return fast
    text = _SPACE_RUN.sub(" ", value).strip()
    if not text:
        return None
    for pattern, (yi, mi, di) in _DATE_SHAPES:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        year, month, day = int(m.group(yi)), int(m.group(mi)), int(m.group(di))
        if 13 <= month <= 31 and 1 <= day <= 12:
            month, day = day, month
        if year >= 1 and 1 <= month <= 12 and 1 <= day <= 31:
            return DateParts(f"{year:04d}-{month:02d}-{day:02d}", year, month, day)
        break
    cleaned = " ".join(_runs(_fold(text), "LD"))
    return DateParts(cleaned) if cleaned else None


def _fast_date(value: str) -> DateParts | None:
    """``YYYY-MM-DD``, ``DD/MM/YYYY`` and ``YYYYMMDD`` of a plain, valid month and day, without
    regexes (10 or 8 ASCII characters)."""
    if len(value) == 8:
        y, m, d = value[0:4], value[4:6], value[6:8]
    elif value[4] == "-" and value[7] == "-":
        y, m, d = value[0:4], value[5:7], value[8:10]
    elif value[2] == "/" and value[5] == "/":
        y, m, d = value[6:10], value[3:5], value[0:2]
    else:
        return None
    if not (y.isdigit() and m.isdigit() and d.isdigit()):
        return None
    year, month, day = int(y), int(m), int(d)
    if year >= 1 and 1 <= month <= 12 and 1 <= day <= 31:
        return DateParts(f"{y}-{m}-{d}", year, month, day)
    return None


_SEX = {
    "m": "m",
    "male": "m",
    "man": "m",
    "boy": "m",
    "1": "m",
    "f": "f",
    "female": "f",
    "woman": "f",
    "girl": "f",
    "2": "f",
}
_SEX_UNKNOWN = frozenset({"0", "9", "u", "unknown", "not known", "not stated", "x", "n k"})


def normalise_sex(value: object) -> str | None:
    """``"m"`` or ``"f"`` for the usual spellings and ISO/IEC 5218 codes 1 and 2; ``None`` for
    empty and "not known" values (0, 9, u, unknown, not known, not stated, x); otherwise the
    value folded like an address."""
    if not isinstance(value, str):
        return None
    words = _runs(_fold(value), "LD")
    text = " ".join(words)
    if not text or text in _SEX_UNKNOWN:
        return None
    return _SEX.get(text, text)


# Nickname groups: each line is a group, its first name the group's key. A name in no group is
# its own key. Built in and versioned with the encoding (changing it is a new encoding name).
_NICKNAME_GROUPS = """
william bill billy will willy liam
robert bob bobby rob robbie bert
richard dick rick ricky rich richie
james jim jimmy jamie
john jon jack johnny jonny
jonathan jonny
margaret maggie meg peggy madge
elizabeth liz lizzie beth betty bess eliza libby
catherine cathy kate katie kath kathryn katherine kathleen
thomas tom tommy
edward ed eddie ted teddy ned
anthony tony
alexander alex sandy alec
alexandra alex sandra
christopher chris kit
christine chris chrissie christina
michael mike mick mickey
daniel dan danny
david dave davy
joseph joe joey
samuel sam sammy
benjamin ben benny
matthew matt
nicholas nick nicky
patrick pat paddy
peter pete
stephen steve steven
andrew andy drew
charles charlie chas chuck
frederick fred freddie
henry harry hal hank
jennifer jen jenny
rebecca becky becca
susan sue susie suzanne
deborah debbie debra deb
patricia pat patsy trish tricia
victoria vicky tori
samantha sam sammy
abigail abby abbie
amanda mandy
jacqueline jackie
josephine jo josie
gerald gerry
gerard gerry
lawrence larry laurence
leonard leo len lenny
raymond ray
ronald ron ronnie
donald don donnie
timothy tim timmy
philip phil phillip
kenneth ken kenny
terence terry terrance
gregory greg
jeffrey jeff geoffrey geoff
douglas doug
bernard bernie
albert al bert
""".strip().splitlines()

_NICKNAMES: dict[str, str] = {}
for _line in _NICKNAME_GROUPS:
    _key, *_others = _line.split()
    _NICKNAMES.setdefault(_key, _key)
    for _name in _others:
        _NICKNAMES.setdefault(_name, _key)


def nickname_key(part: str) -> str:
    """The nickname group of a normalised name part (``bill`` -> ``william``), else the part.

    A name in several groups takes the first group that lists it (``sam`` -> ``samuel``).
    """
    return _NICKNAMES.get(part, part)


_SOUNDEX_CODES = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


def soundex(part: str) -> str:
    """American Soundex of the letters a-z of ``part`` (others ignored); the part itself if it
    has none. ``h`` and ``w`` do not separate equal codes; vowels do."""
    letters = [ch for ch in part if "a" <= ch <= "z"]
    if not letters:
        return part
    out = [letters[0].upper()]
    last = _SOUNDEX_CODES.get(letters[0], "")
    for ch in letters[1:]:
        code = _SOUNDEX_CODES.get(ch, "")
        if code and code != last:
            out.append(code)
            if len(out) == 4:
                break
        if ch not in "hw":
            last = code
    return "".join(out).ljust(4, "0")
