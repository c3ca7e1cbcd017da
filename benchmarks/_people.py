"""Synthetic UK-like people for the linkage benchmarks (names Zipf-distributed by rank).

The name lists are common UK given names and surnames in rough order of frequency; a name
of rank ``r`` is drawn with probability proportional to ``1 / r**ZIPF_S``; with s = 0.7 over
271 given names the most common is 6.6% of people and the top 100 69% (real UK populations:
2-4% and ~55%; a steeper head helps a frequency attacker, so the figures are conservative).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ZIPF_S = 0.7

_GIVEN_TEXT = """
david john michael paul james andrew peter robert mark richard stephen christopher ian
william thomas daniel simon anthony matthew gary kevin alan martin jonathan steven george
brian keith jason graham neil colin philip darren lee adam craig nicholas stuart jack
edward benjamin samuel joseph luke ryan alexander oliver harry charlie jamie scott ben
sarah susan margaret elizabeth mary helen karen julie patricia emma jennifer claire linda
catherine jane nicola lisa amanda louise rachel michelle alison joanne laura jacqueline
deborah samantha christine gillian rebecca victoria hannah jessica lucy sophie charlotte
emily amy chloe olivia katie kelly natalie zoe anne barbara janet carol ann sandra lynn
pauline valerie diane shirley dorothy joan brenda maureen sheila jean irene doris
joyce eileen sylvia betty kathleen marion ellen ruth wendy tracey dawn donna angela
frances gemma hayley holly jade kirsty leanne lauren megan molly paige rosie stacey
abigail alice amelia ava bethany caitlin eleanor ella evie freya grace isabella isla
lily mia millie poppy ruby scarlett summer aaron adrian barry bradley callum carl
connor dean dominic douglas gavin gordon jake jordan joshua kieran liam lewis marcus
nathan patrick raymond reece robin roger ross russell sean shaun terry timothy tony
trevor wayne alfie archie arthur charles dylan ethan finley freddie henry isaac jacob
leo logan louie mason max noah oscar reuben riley rory sebastian teddy theo toby tyler
zachary mohammed muhammad ahmed ali hassan omar yusuf ibrahim fatima aisha zainab
maryam priya anjali ravi sanjay deepak sunita rajesh arjun amir leila sofia maria anna
jose carlos siobhan ciaran niamh aoife sinead declan eoin rhys gareth dafydd sian
bethan cerys megan owen iwan fiona alastair hamish morag ailsa eilidh callum
"""
GIVEN = list(dict.fromkeys(_GIVEN_TEXT.split()))

_FAMILY_TEXT = """
smith jones williams taylor brown davies evans wilson thomas johnson roberts robinson
thompson wright walker white edwards hughes green hall lewis harris clarke patel jackson
wood turner martin cooper hill ward morris moore clark lee king baker harrison morgan
allen james scott phillips watson davis parker price bennett young griffiths mitchell
kelly cook carter richardson bailey collins bell shaw murphy miller cox richards khan
marshall anderson simpson ellis adams singh begum wilkinson foster chapman powell webb
rogers gray mason ali hunt hussain campbell matthews owen palmer holmes mills barnes
knight lloyd butler russell barker fisher stevens jenkins murray dixon harvey graham
pearson ahmed fletcher walsh kaur gibson howard andrews stewart elliott reynolds saunders
payne fox ford pearce day brooks west lawrence cole atkinson bradley spencer gill dawson
ball burton obrien watts rose booth perry ryan grant wells armstrong francis rees hayes
hart hudson newman barrett webster hunter gregory carr lowe page marsh riley dunn woods
parsons berry stone reid holland hawkins harding porter robertson newton oliver reed
kennedy williamson bird gardner shah dean lane cooke bates henderson parry burgess bishop
walton burns nicholson shepherd ross cross long freeman warren nicholls hamilton byrne
sutton mcdonald yates hodgson robson curtis hopkins oconnor harper coleman watkins moss
mccarthy chambers odonnell griffin sharp hardy wheeler potter osborne johnston gordon
doyle wallace george jordan hutchinson rowe burke may pritchard gilbert willis higgins
read miles stevenson stephenson hammond arnold buckley walters hewitt barber nelson
slater austin sullivan whitehead mann frost lambert stephens blake akhtar lynch goodwin
barton woodward thomson cunningham quinn barnett baxter bibi clayton nash greenwood
"""
FAMILY = list(dict.fromkeys(_FAMILY_TEXT.split()))

_STREETS_TEXT = """high church station main park victoria green manor kings queens mill school
london york north south west new chapel bridge"""
STREETS = _STREETS_TEXT.split()
TYPES = ["road", "street", "lane", "avenue", "close", "drive", "way", "crescent"]
AREAS = ["LL", "SW", "M", "B", "LS", "CF", "EH", "G", "NE", "BS", "NG", "L", "S", "CV", "OX"]


def zipf_choice(rng: np.random.Generator, n_items: int, size: int) -> npt.NDArray[np.int64]:
    w = 1.0 / np.arange(1, n_items + 1) ** ZIPF_S
    return rng.choice(n_items, size=size, p=w / w.sum())


def people(n: int, *, seed: int = 1) -> dict[str, list[str | None]]:
    """``n`` clean-ish records as identity columns (mixed date formats, some missing fields)."""
    rng = np.random.default_rng(seed)
    gi = zipf_choice(rng, len(GIVEN), n)
    fi = zipf_choice(rng, len(FAMILY), n)
    days = rng.integers(0, 365 * 90, n)
    base = np.datetime64("1930-01-01")
    dates = (base + days.astype("timedelta64[D]")).astype(str)
    fmt = rng.integers(0, 3, n)
    sexes = rng.choice(["M", "F", "male", "female", "1", "2", ""], n)
    area = rng.integers(0, len(AREAS), n)
    district = rng.integers(1, 30, n)
    sector = rng.integers(0, 10, n)
    unit = rng.integers(0, 26 * 26, n)
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    house = rng.integers(1, 200, n)
    street = rng.integers(0, len(STREETS), n)
    stype = rng.integers(0, len(TYPES), n)
    missing = rng.random((n, 3)) < 0.03
    given: list[str | None] = []
    family: list[str | None] = []
    dob: list[str | None] = []
    postcode: list[str | None] = []
    address: list[str | None] = []
    for i in range(n):
        given.append(None if missing[i, 0] else GIVEN[gi[i]].capitalize())
        family.append(FAMILY[fi[i]].upper() if i % 7 == 0 else FAMILY[fi[i]].capitalize())
        d = dates[i]
        if fmt[i] == 0:
            dob.append(d)
        elif fmt[i] == 1:
            dob.append(d.replace("-", ""))
        else:
            dob.append(f"{d[8:10]}/{d[5:7]}/{d[0:4]}")
        u = unit[i]
        pc = f"{AREAS[area[i]]}{district[i]} {sector[i]}{letters[u % 20]}{letters[(u // 20) % 20]}"
        postcode.append(None if missing[i, 1] else (pc.lower() if i % 3 == 0 else pc))
        address.append(
            None
            if missing[i, 2]
            else f"{house[i]} {STREETS[street[i]].capitalize()} {TYPES[stype[i]].capitalize()}"
        )
    return {
        "given_name": given,
        "family_name": family,
        "date_of_birth": dob,
        "sex": [s or None for s in sexes.tolist()],
        "postcode": postcode,
        "address": address,
    }
