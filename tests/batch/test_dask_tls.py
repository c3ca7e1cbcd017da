"""``--engine dask --scheduler tls://`` on a real TLS cluster with certificates from a test CA.

A scheduler and a worker are started as separate processes, as docs/keys.md ("Keys on a Dask
cluster") tells operators (``dask scheduler --protocol tls --tls-ca-file ...``), and the
``pseudogate`` CLI runs as a subprocess whose Dask TLS client settings come only from the
environment (``DASK_DISTRIBUTED__COMM__TLS__...``), as docs/keys.md says: its results equal
the local engine's, and a client without the cluster's certificates runs nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .conftest import EXAMPLE_KEYRING, ROOT
from .test_anonymise_dask import POSTCODES, small_job
from .test_tokenise_dask import read_rows, valid_nhs, write_csv, write_parts

#: The CLI and the cluster's processes import pseudogate from this checkout.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
ENV = {k: v for k, v in ENV.items() if not k.startswith("DASK_")}
TIMEOUT = 240  # seconds for one CLI run on a loaded 2-core machine


@dataclass(frozen=True)
class Certs:
    """PEM files (certificate, key) of the cluster's roles, all from one test CA."""

    ca: Path
    scheduler: tuple[Path, Path]
    worker: tuple[Path, Path]
    client: tuple[Path, Path]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(folder: Path, role: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
           *, usages: list[x509.ObjectIdentifier]) -> tuple[Path, Path, x509.Certificate,
                                                         ec.EllipticCurvePrivateKey]:
    """A certificate for ``role`` (self-signed CA when ``ca`` is None) and its key, as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(f"dask {role}"))
               .issuer_name(ca[0].subject if ca else _name(f"dask {role}"))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1)))
    if ca is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0),
                                        critical=True)
    else:
        builder = (builder.add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                         critical=True)
                   .add_extension(x509.SubjectAlternativeName([
                       x509.DNSName("localhost"),
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    cert = builder.sign(ca[1] if ca else key, hashes.SHA256())
    pem, pkey = folder / f"{role}.pem", folder / f"{role}.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkey.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pkey.chmod(0o600)
    return pem, pkey, cert, key


def make_certs(folder: Path) -> Certs:
    """A CA; scheduler and worker certificates (they both listen and connect) and a client's."""
    folder.mkdir(parents=True, exist_ok=True)
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    ca_pem, _, ca_cert, ca_key = _issue(folder, "ca", None, usages=[])
    issued = {role: _issue(folder, role, (ca_cert, ca_key), usages=usages)[:2]
              for role, usages in (("scheduler", both), ("worker", both),
                                   ("client", [ExtendedKeyUsageOID.CLIENT_AUTH]))}
    return Certs(ca_pem, issued["scheduler"], issued["worker"], issued["client"])


def client_env(certs: Certs) -> dict[str, str]:
    """The client's Dask TLS settings as environment variables (docs/keys.md)."""
    return {**ENV,
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(certs.ca),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(certs.client[0]),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(certs.client[1]),
            "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "30s"}


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_scheduler(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler --protocol tls`` and one ``dask worker`` with their certificates, as
    separate processes on 127.0.0.1; the scheduler's ``tls://`` address."""
    folder = tmp_path_factory.mktemp("tls-cluster")
    info = folder / "scheduler.json"
    python = [sys.executable, "-m"]
    scheduler = worker = None
    try:
        scheduler = subprocess.Popen(
            [*python, "distributed.cli.dask_scheduler", "--protocol", "tls",
             "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--tls-ca-file", str(certs.ca), "--tls-cert", str(certs.scheduler[0]),
             "--tls-key", str(certs.scheduler[1]), "--scheduler-file", str(info)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        deadline = time.monotonic() + 90
        while not info.exists() or not info.read_text(encoding="utf-8").strip():
            assert scheduler.poll() is None, "the dask scheduler exited"
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.2)
        time.sleep(0.2)
        address: str = json.loads(info.read_text(encoding="utf-8"))["address"]
        assert address.startswith("tls://127.0.0.1:")
        worker = subprocess.Popen(
            [*python, "distributed.cli.dask_worker", address, "--nworkers", "1",
             "--nthreads", "1", "--no-dashboard", "--memory-limit", "1GiB",
             "--host", "127.0.0.1", "--local-directory", str(folder),
             "--tls-ca-file", str(certs.ca), "--tls-cert", str(certs.worker[0]),
             "--tls-key", str(certs.worker[1])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        from distributed import Client
        from distributed.security import Security

        security = Security(tls_ca_file=str(certs.ca), tls_client_cert=str(certs.client[0]),
                            tls_client_key=str(certs.client[1]), require_encryption=True)
        with Client(address, security=security, timeout=90) as client:
            client.wait_for_workers(1, timeout=90)
            assert all(w.startswith("tls://") for w in client.scheduler_info()["workers"])
        yield address
    finally:
        _stop(worker)
        _stop(scheduler)


def cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m pseudogate ARGV`` in a fresh process with ``env``."""
    return subprocess.run([sys.executable, "-m", "pseudogate", *argv], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


TOKENISE = ["tokenise", "--keyring", str(EXAMPLE_KEYRING), "--domain", "person",
            "--column", "nhs"]


def test_tokenise_on_a_tls_cluster_equals_the_local_engine(
    tmp_path: Path, certs: Certs, tls_scheduler: str,
) -> None:
    rows = [[str(i), valid_nhs(7919 * i), f"n{i}"] for i in range(40)]
    src = write_csv(tmp_path / "in.csv", rows)
    parts = write_parts(tmp_path / "parts", rows, [15, 0, 25], group=6)
    local = cli(*TOKENISE, "--input", str(src), "--output", str(tmp_path / "local.csv"), env=ENV)
    assert local.returncode == 0, local.stderr
    config = tmp_path / "dask-config"  # the YAML of docs/keys.md, in the folder DASK_CONFIG names
    config.mkdir()
    (config / "distributed.yaml").write_text(
        "distributed:\n  comm:\n    require-encryption: true\n    tls:\n"
        f"      ca-file: {certs.ca}\n      client:\n        cert: {certs.client[0]}\n"
        f"        key: {certs.client[1]}\n", encoding="utf-8")
    for out, env in (("dask.csv", client_env(certs)), ("dask", {**ENV, "DASK_CONFIG": str(config)})):
        done = cli(*TOKENISE, "--input", str(parts), "--output", str(tmp_path / out),
                   "--engine", "dask", "--scheduler", tls_scheduler, env=env)
        assert done.returncode == 0, done.stderr
        assert "40 rows tokenised" in done.stdout
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert read_rows(tmp_path / "dask") == read_rows(tmp_path / "local.csv")


def test_anonymise_on_a_tls_cluster_equals_the_local_engine(
    tmp_path: Path, certs: Certs, tls_scheduler: str,
) -> None:
    rows = [(i % 9, ["1958-11-02", "1961-03-01"][i % 2], POSTCODES[i % 5], i % 12 + 1,
             "FM"[i % 2], "flu") for i in range(50)]
    parts, common = small_job(tmp_path, rows, privacy="{k: 2, suppression_limit: 0.2}",
                              cuts=[7, 31], group=5)
    local = cli(*common, "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "l.csv"),
                "--report", str(tmp_path / "l.json"), env=ENV)
    assert local.returncode == 0, local.stderr
    done = cli(*common, "--input", str(parts), "--output", str(tmp_path / "d.csv"),
               "--report", str(tmp_path / "d.json"), "--engine", "dask",
               "--scheduler", tls_scheduler, env=client_env(certs))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "d.csv").read_bytes() == (tmp_path / "l.csv").read_bytes()
    reports = [json.loads((tmp_path / n).read_text()) for n in ("l.json", "d.json")]
    for report in reports:
        report["search"].pop("seconds")
    assert reports[0] == reports[1]


def _without(certs: Certs, *names: str) -> dict[str, str]:
    return {k: v for k, v in client_env(certs).items()
            if not any(k.endswith(name) for name in names)}


@pytest.mark.parametrize("missing", [
    pytest.param(("__CA_FILE", "__CLIENT__CERT", "__CLIENT__KEY"), id="no-tls-settings"),
    pytest.param(("__CLIENT__CERT", "__CLIENT__KEY"), id="no-client-certificate"),
])
def test_a_client_without_the_clusters_certificates_runs_nothing(
    tmp_path: Path, certs: Certs, tls_scheduler: str, missing: tuple[str, ...],
) -> None:
    rows = [[str(i), valid_nhs(31 * i), ""] for i in range(5)]
    parts = write_parts(tmp_path / "parts", rows, [5], group=5)
    env = {**_without(certs, *missing), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}
    done = cli(*TOKENISE, "--input", str(parts), "--output", str(tmp_path / "out"),
               "--engine", "dask", "--scheduler", tls_scheduler, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "needs Dask's TLS client settings" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts"]


@pytest.mark.parametrize("trusts_the_cluster", [
    pytest.param(False, id="client-refuses-the-scheduler"),
    pytest.param(True, id="scheduler-refuses-the-client"),
])
def test_a_client_with_another_cas_certificate_runs_nothing(
    tmp_path: Path, certs: Certs, tls_scheduler: str, trusts_the_cluster: bool,
) -> None:
    other = make_certs(tmp_path / "other")
    if trusts_the_cluster:  # the cluster's CA, but a certificate the cluster did not issue
        other = Certs(certs.ca, other.scheduler, other.worker, other.client)
    rows = [[str(i), valid_nhs(31 * i), ""] for i in range(5)]
    parts = write_parts(tmp_path / "parts", rows, [5], group=5)
    env = {**client_env(other), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}
    done = cli(*TOKENISE, "--input", str(parts), "--output", str(tmp_path / "out"),
               "--engine", "dask", "--scheduler", tls_scheduler, env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"the Dask scheduler {tls_scheduler} could not be reached" in done.stderr
    assert "docs/keys.md" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "parts"]


def _transitions(dask_scheduler: Any) -> int:
    """How many task state changes the scheduler has made (grows with every task run)."""
    return int(dask_scheduler.transition_counter)


def test_serve_with_a_tls_scheduler_builds_the_local_gateways_extract(
    tmp_path: Path, certs: Certs, tls_scheduler: str,
) -> None:
    """The gateway ``serve --dask-scheduler tls://...`` starts (``start_gateway``), its client
    TLS settings from Dask's config: the same CSV and signed manifest as without a cluster."""
    import dask
    from distributed import Client

    from tests.service.test_dask_extracts import gateway_extract

    local_rows, local_manifest = gateway_extract(tmp_path / "local")
    settings = {"distributed.comm.require-encryption": True,
                "distributed.comm.tls.ca-file": str(certs.ca),
                "distributed.comm.tls.client.cert": str(certs.client[0]),
                "distributed.comm.tls.client.key": str(certs.client[1])}
    with dask.config.set(settings), Client(tls_scheduler, timeout=60) as client:  # the same
        before = client.run_on_scheduler(_transitions)
        rows, manifest = gateway_extract(tmp_path / "dask", dask_scheduler=tls_scheduler)
        assert client.run_on_scheduler(_transitions) > before  # the extract ran on the cluster
    assert local_manifest["suppressed"] and local_manifest["rows"]
    assert manifest == local_manifest
    assert rows == local_rows
    assert not any((tmp_path / "dask" / "data" / "cluster-work").iterdir())
