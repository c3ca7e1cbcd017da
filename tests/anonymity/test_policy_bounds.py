"""Policy files are bounded in size, depth, counts and numbers; the error names the file and
line and is raised fast, never a RecursionError or a 3,000-line traceback (issue 14 #9)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudogate.core.errors import ConfigurationError
from pseudogate.core.policy import (
    MAX_LIST_ITEMS,
    MAX_POLICY_BYTES,
    MAX_POLICY_DEPTH,
    load_policy,
    parse_policy,
)
from pseudogate.core.tree import MAX_TREE_LEVELS, parse_tree_file

CLI = (sys.executable, "-c", "import sys; from pseudogate.cli import main; sys.exit(main())")

HEAD = "version: 1\nname: p\ncolumns:\n  a: {action: keep, sensitive: true}\n"


def _privacy(k: str = "2", limit: str = "0.1") -> str:
    return (HEAD + "  b: {action: generalise, hierarchy: {type: suppress}}\n"
            f"privacy: {{k: {k}, l: 2, suppression_limit: {limit}}}\n")


DEEP_FLOW = "version: 1\nname: p\ncolumns: " + "[" * 50_000 + "]" * 50_000 + "\n"
DEEP_MAPS = "version: 1\nname: p\ncolumns: " + "{a: " * 50_000 + "}" * 50_000 + "\n"
DEEP_BLOCK = "version: 1\nname: p\ncolumns:\n" + "".join(
    " " * i + "-\n" for i in range(1, 200)
)
HUGE_K = _privacy(k="9" * 100_000)

BAD_POLICIES = {
    "nested 50,000 flow lists": (DEEP_FLOW, "line 3: too large (nested deeper than 16"),
    "nested 50,000 flow maps": (DEEP_MAPS, "line 3: too large (nested deeper than 16"),
    "nested block lists": (DEEP_BLOCK, "nested deeper than 16"),
    "k of 100,000 digits": (HUGE_K, "line 6: privacy k: a number of more than 32 characters"),
    "k above the bound": (_privacy(k="10_000_000_000_000_000"), "privacy k must be at most"),
    "sexagesimal l of 100,000 digits": (
        _privacy().replace("l: 2", "l: " + "1:" * 50_000 + "1"), "privacy l: a number of more"
    ),
    "suppression exponent": (_privacy(limit="0.1e-999999999"), "must be a finite decimal"),
    "hex k": (_privacy(k="0x" + "f" * 40), "privacy k: a number of more than 32"),
    "too many widths": (
        HEAD + "  b: {action: generalise, hierarchy: {type: interval, widths: ["
        + ", ".join(str(2**i) for i in range(MAX_LIST_ITEMS + 1)) + "]}}\nprivacy: {k: 2}\n",
        f"widths must have at most {MAX_LIST_ITEMS} entries",
    ),
    "too large": (HEAD + "#" * MAX_POLICY_BYTES + "\n", f"at most {MAX_POLICY_BYTES} bytes"),
    "a bad timestamp": (HEAD.replace("name: p", "name: 2001-13-45"), "name: the value cannot"),
    "a long name": (HEAD.replace("name: p", "name: " + "n" * 129), "at most 128 characters"),
}


@pytest.mark.parametrize("text, message", BAD_POLICIES.values(), ids=BAD_POLICIES.keys())
def test_when_a_policy_exceeds_a_bound_then_it_is_refused_fast_with_a_located_error(
    text: str, message: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="^policy for project 'x'") as caught:
        parse_policy(text, origin="for project 'x'")
    assert time.monotonic() - started < 2
    assert message in str(caught.value)
    assert len(str(caught.value)) < 200


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(min_value=1, max_value=3 * MAX_POLICY_DEPTH),
       opener=st.sampled_from(["[", "{a: ", "- "]))
def test_when_yaml_is_nested_to_any_depth_then_only_configuration_errors_come_out(
    depth: int, opener: str
) -> None:
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    if opener == "- ":
        body = "\n" + "".join(" " * (i + 1) + "- \n" for i in range(depth))
    else:
        body = opener * depth + "1" + closer * depth + "\n"
    with pytest.raises(ConfigurationError):
        parse_policy("version: 1\nname: p\ncolumns: " + body)


def test_when_a_tree_file_has_too_many_levels_then_it_is_refused() -> None:
    row = ";".join(f"v{i}" for i in range(MAX_TREE_LEVELS + 1))
    with pytest.raises(ConfigurationError, match=f"line 1: more than {MAX_TREE_LEVELS} levels"):
        parse_tree_file(row.encode() + b"\n", source="t.csv")


def test_when_a_policy_file_is_larger_than_the_bound_then_it_is_not_read_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(HEAD.encode() + b"#" * (MAX_POLICY_BYTES + 10))
    with pytest.raises(ConfigurationError, match=f"big.yaml: larger than {MAX_POLICY_BYTES}"):
        load_policy(path)


@pytest.mark.parametrize("text", [DEEP_FLOW, HUGE_K], ids=["deep", "huge k"])
def test_when_policy_check_reads_an_unbounded_policy_then_one_line_and_exit_2(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([*CLI, "policy", "check", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in done.stderr



def test_when_serve_loads_an_unbounded_policy_then_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "gp.yaml").write_text(DEEP_FLOW, encoding="utf-8")
    done = subprocess.run(
        [*CLI, "serve", "--insecure", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--policies", str(tmp_path / "policies")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    expected = (f"pseudogate serve: error: policy {tmp_path / 'policies' / 'gp.yaml'} "
                "line 3: too large (nested deeper than 16 levels)")
    assert errors == [expected]


@pytest.mark.parametrize(
    "text, message",
    [("domains: " + "[" * 50_000 + "]" * 50_000, "line 1: too large"),
     ("max_batch_values: " + "9" * 100_000, "a value cannot be read"),
     ("domains: {a: nhs_number\n9434765919: [", "line 2: not valid YAML")],
    ids=["deep", "huge number", "broken next to data"],
)
def test_when_a_server_config_is_unbounded_then_a_located_error_without_its_text(
    tmp_path: Path, text: str, message: str
) -> None:
    from pseudogate.core.tokenisation import load_domain_config

    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        load_domain_config(path)
    assert f"config {path}" in str(caught.value) and message in str(caught.value)
    assert "9434765919" not in str(caught.value) and len(str(caught.value)) < 300


_YAML_BITS = st.sampled_from([
    "version: 1\n", "name: p\n", "columns:\n", "  a: {action: keep}\n", "privacy: {k: 2}\n",
    "  b: {action: generalise, hierarchy: {type: interval, widths: [2, 4]}}\n", "[", "]", "{",
    "}", "- ", ": ", "&x ", "*x ", "!!int ", "!!float ", "!!binary ", "!!timestamp ", "1e9",
    "0x1f", "1:2:3", ".inf", "~", "'", '"', "\n", "  ", "\t", "9" * 40, "2001-13-45", "<<: *x",
])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_YAML_BITS, max_size=30).map("".join)))
def test_when_a_policy_is_any_text_then_it_parses_or_is_a_configuration_error(text: str) -> None:
    try:
        parse_policy(text)
    except ConfigurationError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.lists(st.sampled_from(["a", ";", "\n", '"', "\r", "\x00", "é", "b;c"]),
                          max_size=40).map(lambda bits: "".join(bits).encode())))
def test_when_a_tree_file_is_any_bytes_then_it_parses_or_is_a_configuration_error(
    data: bytes,
) -> None:
    try:
        parse_tree_file(data, source="t.csv")
    except ConfigurationError:
        pass
