"""The test PostgreSQL server is real: two processes share an Optuna study on it, it wants the
password, and it is gone (port closed, files removed) once its block ends, also when the block fails."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import psycopg
import pytest
from conftest import POSTGRES_PASSWORD
from postgres import PostgresUnavailable, find_binaries, postgres_server

TRIALS_PER_WORKER = 8

# One Optuna worker. The URL comes through the environment, as lit-video passes it, never on the
# command line (where `ps` would show the password). Both workers wait at a file barrier after their
# (slow) imports, so that their trials really run at the same time.
WORKER = """
import os, sys, time, warnings
from pathlib import Path
import optuna

warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)
study_name, worker, barrier, n_trials = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
storage = optuna.storages.RDBStorage(os.environ["TEST_STORAGE_URL"], heartbeat_interval=1, grace_period=2)
study = optuna.load_study(study_name=study_name, storage=storage)
(barrier / worker).touch()
deadline = time.monotonic() + 60
while len(list(barrier.iterdir())) < 2:
    if time.monotonic() > deadline:
        sys.exit("the other worker never arrived")
    time.sleep(0.005)

def objective(trial):
    trial.set_user_attr("worker", worker)
    x = trial.suggest_float("x", -1.0, 1.0)
    time.sleep(0.05)
    return x * x

study.optimize(objective, n_trials=n_trials)
"""


def _storage(url: str) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
        return optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=2)


def test_two_processes_share_a_study(postgres_url, tmp_path):
    study_name = f"shared-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=study_name, storage=_storage(postgres_url))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = dict(os.environ, TEST_STORAGE_URL=postgres_url)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, study_name, name, str(barrier), str(TRIALS_PER_WORKER)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for name in ("a", "b")]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output

    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2 * TRIALS_PER_WORKER
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(2 * TRIALS_PER_WORKER))
    by_worker = {name: [t for t in trials if t.user_attrs["worker"] == name] for name in ("a", "b")}
    assert {name: len(ts) for name, ts in by_worker.items()} == {"a": TRIALS_PER_WORKER, "b": TRIALS_PER_WORKER}
    # the two workers' runs overlapped in time: the storage, not luck, kept the trial numbers apart
    spans = {name: (min(t.datetime_start for t in ts), max(t.datetime_complete for t in ts))
             for name, ts in by_worker.items()}
    assert spans["a"][0] < spans["b"][1] and spans["b"][0] < spans["a"][1], spans


def test_server_wants_the_password(postgres_url):
    url = urlsplit(postgres_url)
    assert url.scheme == "postgresql" and url.password == POSTGRES_PASSWORD
    assert url.hostname == "127.0.0.1" and url.path == "/optuna"
    address = dict(host=url.hostname, port=url.port, user=url.username, dbname="optuna", connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**address, password="wrong")
    connection = psycopg.connect(**address, password=url.password)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW listen_addresses")
            assert cursor.fetchone() == ("127.0.0.1",)
    finally:
        connection.close()


class BodyFailed(Exception):
    pass


def _process_gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for init to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_server_stops_and_leaves_nothing_when_the_block_fails():
    try:
        find_binaries()
    except PostgresUnavailable as reason:
        pytest.skip(str(reason))
    # a fresh parent that the `postgres` user can traverse, to see that the cluster leaves nothing in it
    base = Path(tempfile.mkdtemp(prefix="lit-video-pg-test-"))
    base.chmod(0o755)
    try:
        with pytest.raises(BodyFailed):
            with postgres_server(base, "short-lived-pw") as url:
                port = urlsplit(url).port
                (cluster,) = base.iterdir()
                assert (cluster / "data" / "PG_VERSION").is_file()
                postmaster = int((cluster / "data" / "postmaster.pid").read_text().split()[0])
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                raise BodyFailed
        assert list(base.iterdir()) == []
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        # pg_ctl -w returns once the pid file is gone; the postmaster exits right after
        deadline = time.monotonic() + 5
        while not _process_gone(postmaster) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _process_gone(postmaster)
    finally:
        shutil.rmtree(base, ignore_errors=True)
