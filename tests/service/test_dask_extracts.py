"""``serve --dask-scheduler``: a real gateway's extract on a separately started Dask cluster
equals the local gateway's (same rows, same signed manifest), and without the option an
extract never imports Dask."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pseudogate.cli import main
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.tools.demo import COUNCIL_POLICY, GP_POLICY
from pseudogate.tools.synthetic import make_people, messy_nhs_number
from tests.service.test_end_to_end import EXTRACT_POLICY, _write_csv
from tests.statements import STATEMENT_ARGS

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
#: The end-to-end extract policy, stricter: the search suppresses some rows here.
POLICY = EXTRACT_POLICY.replace("privacy: {k: 3, l: 2, suppression_limit: 0.1, metric: loss}",
                                "privacy: {k: 6, l: 2, suppression_limit: 0.3, metric: loss}")


def gateway_extract(base: Path, dask_scheduler: str | None = None) -> tuple[bytes, dict[str, object]]:
    """Submit two datasets and opt-outs, create a project and extract it through a real gateway
    (CLI over gRPC); the extract's CSV bytes and its manifest."""
    base.mkdir(parents=True)
    (base / "policies").mkdir()
    (base / "policies" / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    (base / "policies" / "council-ingest.yaml").write_text(COUNCIL_POLICY, encoding="utf-8")
    rng = random.Random(5)
    people = make_people(300, seed=5)
    gp, council = people[:200], people[120:]
    _write_csv(base / "gp.csv", ["nhs_number", "given_name", "family_name", "date_of_birth",
                                 "sex", "postcode", "diagnosis"],
               [[messy_nhs_number(p.nhs_number, rng), p.given_name, p.family_name,
                 p.date_of_birth, p.sex, p.postcode, rng.choice(["asthma", "copd", "none"])]
                for p in gp])
    _write_csv(base / "council.csv", ["nhs_number", "full_name", "email", "care_package"],
               [[p.nhs_number, f"{p.given_name} {p.family_name}", p.email,
                 rng.choice(["meals", "home care"])] for p in council])
    _write_csv(base / "optouts.csv", ["nhs_number"], [[p.nhs_number] for p in people[110:135]])
    (base / "extract.yaml").write_text(POLICY, encoding="utf-8")
    gateway = start_gateway(GatewaySettings(
        port=0, insecure=True, data_dir=base / "data", policies=base / "policies",
        clock=lambda: NOW, dask_scheduler=dask_scheduler))
    server = ["--server", gateway.address, "--insecure"]
    try:
        for dataset, policy, org, path in (("gp_diagnoses", "gp-ingest", "gp", "gp.csv"),
                                           ("council_care", "council-ingest", "council",
                                            "council.csv")):
            assert main(["submit", *server, "--dataset", dataset, "--policy", policy,
                         "--organisation", org, "--input", str(base / path)]) == 0
        assert main(["optout", "import", *server, "--input", str(base / "optouts.csv")]) == 0
        assert main(["project", "create", *STATEMENT_ARGS, *server, "--id", "study",
                     "--researcher", "uni", "--datasets", "gp_diagnoses,council_care",
                     "--policy", str(base / "extract.yaml"), "--expires", "2099-01-01"]) == 0
        out, manifest = base / "study.csv", base / "study.manifest.json"
        assert main(["extract", *server, "--project", "study", "--output", str(out),
                     "--manifest", str(manifest)]) == 0
    finally:
        gateway.stop(grace=None)
    return out.read_bytes(), json.loads(manifest.read_text(encoding="utf-8"))


_LOCAL_WITHOUT_DASK = """\
import json, sys
from pathlib import Path
from tests.service.test_dask_extracts import gateway_extract
rows, manifest = gateway_extract(Path(sys.argv[1]))
loaded = sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'})
Path(sys.argv[2]).write_text(json.dumps({'manifest': manifest, 'dask': loaded}))
"""


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, object]]:
    """The local gateway's extract, built in a fresh process that must not import Dask."""
    base = tmp_path_factory.mktemp("local")
    result = base / "result.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    subprocess.run([sys.executable, "-c", _LOCAL_WITHOUT_DASK, str(base / "gw"), str(result)],
                   check=True, cwd=ROOT, env=env, timeout=300)
    found = json.loads(result.read_text(encoding="utf-8"))
    assert found["dask"] == [], "an extract without --dask-scheduler imported Dask"
    return (base / "gw" / "study.csv").read_bytes(), found["manifest"]


@pytest.fixture(scope="module")
def separate_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` and one ``dask worker`` (1 thread) as separate processes on loopback."""
    folder = tmp_path_factory.mktemp("cluster")
    info = folder / "scheduler.json"
    python = [sys.executable, "-m"]
    scheduler = subprocess.Popen(
        [*python, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(info)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text(encoding="utf-8").strip():
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(info.read_text(encoding="utf-8"))["address"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        worker = subprocess.Popen(
            [*python, "distributed.cli.dask_worker", address, "--nworkers", "1",
             "--nthreads", "1", "--no-dashboard", "--memory-limit", "1GiB",
             "--local-directory", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_without_the_option_an_extract_never_imports_dask(
    local: tuple[bytes, dict[str, object]],
) -> None:
    rows, manifest = local
    assert rows and manifest["rows"]


def test_an_extract_on_a_separately_started_cluster_equals_the_local_gateways(
    tmp_path: Path, local: tuple[bytes, dict[str, object]], separate_cluster: str,
) -> None:
    rows, manifest = gateway_extract(tmp_path / "gw", dask_scheduler=separate_cluster)
    local_rows, local_manifest = local
    assert local_manifest["suppressed"] > 0 and local_manifest["optouts_removed"] == 25
    assert manifest["suppressed"] == local_manifest["suppressed"]
    assert manifest["k_achieved"] == local_manifest["k_achieved"]
    assert manifest["l_achieved"] == local_manifest["l_achieved"]
    assert manifest["content_sha256"] == local_manifest["content_sha256"]
    assert manifest == local_manifest  # signed alike: every field, the signature too
    assert rows == local_rows
    assert not any((tmp_path / "gw" / "data" / "cluster-work").iterdir())


def test_serve_refuses_a_plaintext_scheduler_on_another_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "policies").mkdir()
    code = main(["serve", "--port", "0", "--insecure", "--data-dir", str(tmp_path / "data"),
                 "--policies", str(tmp_path / "policies"),
                 "--dask-scheduler", "tcp://192.0.2.1:8786"])
    assert code == 2 and "tls://" in capsys.readouterr().err


def test_what_an_interrupted_extract_left_is_removed_at_start(tmp_path: Path) -> None:
    stale = tmp_path / "data" / "cluster-work" / "extract-old"
    stale.mkdir(parents=True)
    (stale / "part-00000.parquet").write_bytes(b"rows of an interrupted extract")
    gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=tmp_path / "data",
                                            dask_scheduler="tcp://127.0.0.1:1"))  # not reached
    try:
        assert not stale.exists()
    finally:
        gateway.stop(grace=None)
