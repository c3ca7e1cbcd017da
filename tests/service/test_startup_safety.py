"""Gateway start-up safety (issue 14: #2, #7, #13), through `pseudogate serve` and start_gateway.

Nothing the gateway did not create is ever deleted; everything it creates is private whatever
the umask; ``--production`` refuses shared files; a keyring must hold every key the catalog uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.cli import main
from pseudogate.core.errors import FailedPrecondition
from pseudogate.core.fileio import shared_entries
from pseudogate.core.keyring import EXAMPLE_KEYRING, MASTER_KEY_ENV, Keyring, Purpose
from pseudogate.core.policy import parse_policy
from pseudogate.gateway import Store
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.v1 import dataset_pb2, dataset_pb2_grpc
from tests.store.helpers import GP_POLICY, gp_columns, ipc, people, submit

DATASET = "gp_diagnoses"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "gp.yaml").write_text(GP_POLICY, encoding="utf-8")
    return folder


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def fill(
    data_dir: Path, *, versions: int = 1, keyring: Path = EXAMPLE_KEYRING, optouts: bool = False
) -> None:
    """Commit ``versions`` more versions of one dataset (and an opt-out snapshot) with the store."""
    ring = Keyring.load(keyring)
    gp = {"gp": parse_policy(GP_POLICY, origin="gp.yaml")}
    with Store.open(data_dir, keyring=ring, policies=gp) as store:
        for n in range(versions):
            submit(store, DATASET, "gp", "gp-org", ipc(gp_columns(people(3, seed=n))))
        if optouts:
            store.import_optouts([p["nhs_number"] for p in people(2)])


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` by relative path, with the SHA-256 of its bytes."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@dataclass
class Served:
    started: bool
    returncode: int
    stderr: str


def serve_process(tmp_path: Path, *args: str, process_umask: int | None = None) -> Served:
    """Run `pseudogate serve` as a process; if it comes up, stop it with SIGTERM."""
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pseudogate",
        "serve",
        "--port",
        "0",
        "--ready-file",
        str(ready),
        *args,
    ]
    if process_umask is not None:  # the shell sets the umask the process starts with
        command = ["/bin/sh", "-c", f'umask {process_umask:03o} && exec "$0" "$@"', *command]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    started = False
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None:
            if ready.exists() and ready.read_text().strip():
                started = True
                break
            assert time.monotonic() < deadline, "server neither started nor stopped"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    return Served(started, proc.returncode, err)


def generate_keyring(path: Path) -> Path:
    assert main(["keys", "generate", "--out", str(path)]) == 0
    return path


# -- #2: never delete what you did not create ------------------------------------------------


def test_when_the_catalog_is_missing_beside_dataset_files_then_serve_refuses_and_changes_nothing(
    tmp_path: Path, policies: Path
) -> None:
    data = tmp_path / "data"
    fill(data, versions=2)
    (data / "catalog.sqlite3").unlink()
    before = snapshot(data)

    served = serve_process(
        tmp_path, "--insecure", "--data-dir", str(data), "--policies", str(policies)
    )

    assert not served.started and served.returncode == 2
    assert "2 dataset file(s)" in served.stderr and "no catalog.sqlite3" in served.stderr
    assert "Restore catalog.sqlite3 from the backup" in served.stderr
    assert f"move {data / 'datasets'} elsewhere" in served.stderr
    assert snapshot(data) == before, "every dataset file is where it was, byte for byte"
    assert not (data / "catalog.sqlite3").exists() and not (data / "quarantine").exists()


def test_when_the_catalog_is_an_older_backup_then_newer_versions_are_quarantined_and_reported(
    tmp_path: Path, policies: Path
) -> None:
    data = tmp_path / "data"
    fill(data, versions=1)
    backup = tmp_path / "catalog-backup.sqlite3"
    shutil.copy2(data / "catalog.sqlite3", backup)
    fill(data, versions=2)  # versions 2 and 3, which the backup does not know
    newer = snapshot(data / "datasets")
    shutil.copy2(backup, data / "catalog.sqlite3")  # the restore

    served = serve_process(
        tmp_path, "--insecure", "--data-dir", str(data), "--policies", str(policies)
    )

    assert served.started and served.returncode == 0, served.stderr
    (folder,) = (data / "quarantine").iterdir()
    assert snapshot(folder) == {
        f"datasets/{DATASET}/2.parquet": newer[f"{DATASET}/2.parquet"],
        f"datasets/{DATASET}/3.parquet": newer[f"{DATASET}/3.parquet"],
    }, "moved with their bytes intact, not deleted"
    assert snapshot(data / "datasets") == {f"{DATASET}/1.parquet": newer[f"{DATASET}/1.parquet"]}
    log_lines = [line for line in served.stderr.splitlines() if " WARNING pseudogate.store" in line]
    assert len(log_lines) == 1 and "moved 2 file(s)" in log_lines[0] and str(folder) in log_lines[0]
    notice = [line for line in served.stderr.splitlines() if line.startswith("WARNING: moved 2")]
    assert len(notice) == 1 and f"datasets/{DATASET}/3.parquet" in notice[0]
    assert mode(data / "quarantine") == mode(folder) == 0o700
    # The catalog numbers the next version 2 again: it lands beside, never over, the old one.
    fill(data, versions=1)
    assert snapshot(folder)[f"datasets/{DATASET}/2.parquet"] == newer[f"{DATASET}/2.parquet"]
    assert (data / "datasets" / DATASET / "2.parquet").exists()


def test_when_foreign_and_staging_files_are_found_then_staging_is_removed_and_the_rest_quarantined(
    tmp_path: Path, policies: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    fill(data)
    staging = data / "tmp" / "submission-0123456789abcdef.parquet.tmp"
    staging.write_bytes(b"half a submission")
    foreign = {
        "tmp/notes.csv": b"someone's notes",
        "tmp/folder/inner.bin": b"inner",
        f"datasets/{DATASET}/README.txt": b"readme",
        "datasets/unlisted/1.parquet": b"not a catalogued version",
        f"datasets/{DATASET}/1.parquet.bak": b"a copy",
    }
    for relative, content in foreign.items():
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_bytes(content)
    kept = snapshot(data / "datasets" / DATASET)[("1.parquet")]
    notices: list[str] = []

    with caplog.at_level(logging.INFO, logger="pseudogate"):
        gateway = start_gateway(
            GatewaySettings(port=0, insecure=True, data_dir=data, policies=policies),
            notice=notices.append,
        )
        gateway.stop(grace=None)

    (folder,) = (data / "quarantine").iterdir()
    assert snapshot(folder) == {k: hashlib.sha256(v).hexdigest() for k, v in foreign.items()}
    assert not staging.exists() and not any(folder.rglob(staging.name)), "ours: removed"
    assert list((data / "tmp").iterdir()) == []
    assert snapshot(data / "datasets") == {f"{DATASET}/1.parquet": kept}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "moved 5 file(s)" in warnings[0].getMessage()
    assert str(folder) in warnings[0].getMessage()
    assert any("removed 1 unfinished submission" in r.getMessage() for r in caplog.records)
    assert notices == [f"WARNING: {warnings[0].getMessage()}"]


def test_when_an_audit_log_exists_without_a_catalog_then_the_gateway_refuses(
    tmp_path: Path, policies: Path
) -> None:
    data = tmp_path / "data"
    start_gateway(GatewaySettings(port=0, insecure=True, data_dir=data, policies=policies)).stop(
        grace=None
    )
    (data / "catalog.sqlite3").unlink()
    with pytest.raises(FailedPrecondition, match="audit log but no catalog.sqlite3"):
        start_gateway(GatewaySettings(port=0, insecure=True, data_dir=data, policies=policies))
    assert not (data / "catalog.sqlite3").exists()


# -- #7: private by default on disk ---------------------------------------------------------


def test_when_the_gateway_runs_under_umask_022_then_folders_are_0700_and_files_0600(
    tmp_path: Path, policies: Path
) -> None:
    data = tmp_path / "new" / "data"
    with umask(0o022):
        gateway = start_gateway(
            GatewaySettings(port=0, insecure=True, data_dir=data, policies=policies)
        )
        try:
            header = dataset_pb2.SubmissionHeader(
                dataset=DATASET, policy="gp", organisation="gp-org"
            )
            requests = [
                dataset_pb2.SubmitDatasetRequest(header=header),
                dataset_pb2.SubmitDatasetRequest(arrow_ipc=ipc(gp_columns(people(3)))),
            ]
            with grpc.insecure_channel(gateway.address) as ch:
                reply = dataset_pb2_grpc.DatasetServiceStub(ch).SubmitDataset(
                    iter(requests), timeout=30
                )
            assert reply.version == 1
            audit = data / AUDIT_DB_NAME
            present = [
                data / "catalog.sqlite3",
                audit,
                audit.with_name(audit.name + "-wal"),
                audit.with_name(audit.name + "-shm"),
                data / "store.lock",
                data / "datasets" / DATASET / "1.parquet",
            ]
            assert {p.name: mode(p) for p in present} == {p.name: 0o600 for p in present}
            folders = [
                tmp_path / "new",
                data,
                data / "datasets",
                data / "datasets" / DATASET,
                data / "tmp",
            ]
            assert {p.name: mode(p) for p in folders} == {p.name: 0o700 for p in folders}
            assert shared_entries(data) == []
        finally:
            gateway.stop(grace=None)


def test_when_serve_is_started_under_umask_022_then_everything_it_creates_is_private(
    tmp_path: Path, policies: Path
) -> None:
    data = tmp_path / "data"
    served = serve_process(
        tmp_path,
        "--insecure",
        "--data-dir",
        str(data),
        "--policies",
        str(policies),
        process_umask=0o022,
    )
    assert served.started and served.returncode == 0, served.stderr
    assert mode(data) == 0o700 and (data / AUDIT_DB_NAME).exists()
    assert shared_entries(data) == []
    assert mode(tmp_path / "ready") == 0o600, "the CLI's umask 077 covers its other outputs too"


@pytest.fixture
def wrapped_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(MASTER_KEY_ENV, str(tmp_path / "master.key"))
    ring = tmp_path / "keys" / "keyring.json"
    ring.parent.mkdir()
    assert main(["keys", "generate", "--wrap", "--out", str(ring)]) == 0
    return ring


def _serve_production(keyring: Path, data: Path, policies: Path) -> int:
    return main(
        [
            "serve",
            "--port",
            "0",
            "--production",
            "--keyring",
            str(keyring),
            "--ca",
            "ca.pem",
            "--cert",
            "server.pem",
            "--key",
            "server.key",
            "--data-dir",
            str(data),
            "--policies",
            str(policies),
        ]
    )


def test_when_production_meets_a_0755_data_directory_then_serve_refuses_saying_how_to_fix(
    tmp_path: Path, policies: Path, wrapped_keyring: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    assert _serve_production(wrapped_keyring, data, policies) == 2
    err = capsys.readouterr().err
    assert "--production refuses a data directory accessible by group or others" in err
    assert f"{data} (0755)" in err and f"chmod -R go-rwx {data}" in err
    assert list(data.iterdir()) == [] and mode(data) == 0o755, "refused before touching it"


def test_when_production_meets_a_shared_file_in_the_data_directory_then_serve_refuses_naming_it(
    tmp_path: Path, policies: Path, wrapped_keyring: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    catalog = data / "catalog.sqlite3"
    catalog.touch()
    catalog.chmod(0o644)
    assert _serve_production(wrapped_keyring, data, policies) == 2
    err = capsys.readouterr().err
    assert f"{catalog} (0644)" in err and str(data) + " (" not in err


@pytest.mark.parametrize("folder", ["keys", "keys_example"])
def test_when_production_meets_a_group_readable_keyring_then_serve_refuses(
    tmp_path: Path,
    policies: Path,
    wrapped_keyring: Path,
    folder: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ring = tmp_path / folder / "ring.json"  # keys_example/: exempt from the loader's own check
    ring.parent.mkdir(exist_ok=True)
    shutil.copy(wrapped_keyring, ring)
    ring.chmod(0o640)
    assert _serve_production(ring, tmp_path / "data", policies) == 2
    err = capsys.readouterr().err
    assert f"chmod 600 {ring}" in err and "group or others" in err
    assert not (tmp_path / "data").exists()


# -- #13: keys and store agree --------------------------------------------------------------


def test_when_the_keyring_lacks_keys_the_catalog_uses_then_serve_refuses_listing_them(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = generate_keyring(tmp_path / "old.json")
    new = generate_keyring(tmp_path / "new.json")
    data = tmp_path / "data"
    fill(data, versions=2, keyring=old, optouts=True)
    before = snapshot(data)
    old_link = Keyring.load(old).primary(Purpose.LINKAGE).id

    code = main(
        [
            "serve",
            "--port",
            "0",
            "--insecure",
            "--keyring",
            str(new),
            "--data-dir",
            str(data),
            "--policies",
            str(policies),
        ]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert f"missing from keyring {new}" in err
    assert f"{old_link} (2 dataset version(s), 1 opt-out snapshot(s))" in err
    assert all(info.id not in err for info in Keyring.load(new).infos())
    assert snapshot(data) == before


def test_when_a_key_the_catalog_uses_is_disabled_but_present_then_the_gateway_starts(
    tmp_path: Path, policies: Path
) -> None:
    ring_path = generate_keyring(tmp_path / "ring.json")
    data = tmp_path / "data"
    fill(data, keyring=ring_path)
    ring = Keyring.load(ring_path)
    old = ring.primary(Purpose.LINKAGE).id
    ring.promote(ring.add(Purpose.LINKAGE).id)
    ring.disable(old)
    ring.save(ring_path)

    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, keyring=ring_path, data_dir=data, policies=policies)
    )
    gateway.stop(grace=None)
