"""A storage URL's password never shows: not in any output of `sweep`, `report` or `dashboard`, nor in a
report, a W&B run, a submitit folder or an error message, whatever form the URL takes (percent-encoded
or raw special characters, libpq's ?password=, a driver, a host list, typos SQLAlchemy cannot parse)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import pytest
from cli_errors import assert_one_line_error, run_lit_video
from conftest import POSTGRES_PASSWORD, write_spec

from lit_video.sweep.storage import STORAGE_ENV, check_storage, redact, remember_storage, show_storage

# Each password holds a token of its own at both ends: a leak of any part of it shows one of them.
# (url, password, what the URL shows instead)
FORMS = [
    ("postgresql://lit:Aq1x spaced Bq1x@127.0.0.1:9/optuna", "Aq1x spaced Bq1x", "postgresql://lit:***@127.0.0.1:9/optuna"),
    ("postgresql//lit:Aq2x-nocolon-Bq2x@127.0.0.1:9/optuna", "Aq2x-nocolon-Bq2x", "postgresql//***"),
    ("postgresql:/lit:Aq3x-oneslash-Bq3x@127.0.0.1:9/optuna", "Aq3x-oneslash-Bq3x", "postgresql:/***"),
    ("postgresql://lit@127.0.0.1:9/optuna?password=Aq4x-libpq-Bq4x", "Aq4x-libpq-Bq4x",
     "postgresql://lit@127.0.0.1:9/optuna?password=***"),
    ("postgresql://lit:Aq5x-port-Bq5x@127.0.0.1:9/optuna", "Aq5x-port-Bq5x", "postgresql://lit:***@127.0.0.1:9/optuna"),
    ("postgresql+psycopg2://lit:Aq6x-driver-Bq6x@127.0.0.1:9/optuna", "Aq6x-driver-Bq6x",
     "postgresql+psycopg2://lit:***@127.0.0.1:9/optuna"),
    ("mysql+pymysql://lit:Aq7x-mysql-Bq7x@127.0.0.1:9/optuna", "Aq7x-mysql-Bq7x",
     "mysql+pymysql://lit:***@127.0.0.1:9/optuna"),
    ("postgresql://lit:Aq8x%40p%3Ae%2Fr%23c%3Fent%25Bq8x@127.0.0.1:9/optuna", "Aq8x@p:e/r#c?ent%Bq8x",
     "postgresql://lit:***@127.0.0.1:9/optuna"),
    # raw : / # ? parse (SQLAlchemy's password runs to the first @); a raw @ is ambiguous: masked whole
    ("postgresql://lit:Aq9x:sl/ha#sh?qu Bq9x@127.0.0.1:9/optuna", "Aq9x:sl/ha#sh?qu Bq9x",
     "postgresql://lit:***@127.0.0.1:9/optuna"),
    ("postgresql://lit:Aq10x@t:9/d#Bq10x@127.0.0.1:9/optuna", "Aq10x@t:9/d#Bq10x", "postgresql://***"),
    ("postgresql://lit@127.0.0.1:9/optuna?sslmode=disable&password=Aq11x%20q%26Bq11x", "Aq11x q&Bq11x",
     "postgresql://lit@127.0.0.1:9/optuna?password=***&sslmode=disable"),
    ("postgresql://lit:Aq12x-hostlist-Bq12x@127.0.0.1:9,127.0.0.2:9/optuna", "Aq12x-hostlist-Bq12x",
     "postgresql://***"),
    ("postgresql://lit:Aq13x-hostquery-Bq13x@/optuna?host=127.0.0.1:9&host=127.0.0.2:9", "Aq13x-hostquery-Bq13x",
     "postgresql://lit:***@/optuna?host=127.0.0.1%3A9&host=127.0.0.2%3A9"),
    ("sqlite:////nonexistent/Aq14x.db?mode=ro&uri=true", None, "sqlite:////nonexistent/Aq14x.db?mode=ro&uri=true"),
    ("postgresql://lit:Aq15x-no-database-Bq15x@127.0.0.1:9", "Aq15x-no-database-Bq15x", "postgresql://lit:***@127.0.0.1:9"),
]


def markers(password: str) -> list[str]:
    """What must not appear: the password in its raw and URL-encoded forms, and its end tokens."""
    return [password, quote(password, safe=""), quote_plus(password), *re.findall(r"[A-Z][a-z]\d+[a-z]", password)]


def leaks(texts: list[str], files: list[Path], password: str) -> list[str]:
    found = [f"output holds {m!r}" for m in markers(password) for text in texts if m in text]
    for path in files:
        data = path.read_bytes()
        found += [f"{path} holds {m!r}" for m in markers(password) if m.encode() in data]
    return found


@pytest.mark.parametrize("url, password, shown", FORMS, ids=[f"form{i}" for i in range(len(FORMS))])
def test_every_url_form_is_shown_without_its_password(url, password, shown):
    assert show_storage(url) == shown
    assert redact(url) == shown  # a URL on its own, as the commands print it
    if password is None:
        return
    remember_storage(url)
    # free text, e.g. an exception that quotes the URL, or a driver's message that quotes the password
    text = redact(f"cannot connect to {url}: password {password!r} or {quote(password, safe='')} was refused")
    assert leaks([text], [], password) == [], text
    try:
        check_storage(url)
    except Exception as err:  # a URL SQLAlchemy cannot parse entirely: one line, masked
        assert leaks([str(err), redact(str(err))], [], password) == [], err


def test_free_text_of_an_unknown_url_is_cleaned_by_pattern():
    # URLs this process never saw: a space, or a raw @, in a password; a DSN; query parameters
    text = ("psycopg: connection to postgresql://bob:Zz9u raw:pw Yy8u@db.example.org:5432/x failed; "
            "retry postgresql://bob:Uu4u@raw#Tt3u@db.example.org:5432/x; "
            "dsn: host=h password=Xx7u-dsn user=bob; url: mysql://u:Ww6u@h/d?passwd=Vv5u&ssl=1")
    cleaned = redact(text)
    for token in ("Zz9u", "Yy8u", "Uu4u", "Tt3u", "Xx7u", "Ww6u", "Vv5u"):
        assert token not in cleaned, cleaned
    assert "db.example.org:5432/x failed" in cleaned and "ssl=1" in cleaned


# Commands that each form runs through the real entry point: `report` for all, plus `sweep` (the URL in
# $LIT_VIDEO_STORAGE) and `dashboard` for a few: each process costs seconds.
SWEEP_FORMS = {0, 1, 9, 10}
DASHBOARD_FORMS = {0, 2, 3, 11}


@pytest.mark.parametrize("index", [i for i, form in enumerate(FORMS) if form[1] is not None])
def test_unreachable_and_malformed_urls_fail_in_one_line_without_the_password(index, tmp_path, ucf101_root):
    url, password, shown = FORMS[index]
    runs = [run_lit_video("report", "--storage", url, "--out", tmp_path / "report", cwd=tmp_path)]
    if index in DASHBOARD_FORMS:
        runs.append(run_lit_video("dashboard", "--storage", url, "--port", str(free_port()), cwd=tmp_path))
    if index in SWEEP_FORMS:
        runs.append(run_lit_video("sweep", write_spec(tmp_path, ucf101_root), cwd=tmp_path, env={STORAGE_ENV: url}))
    for result in runs:
        assert shown in assert_one_line_error(result)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leaks([r.output for r in runs], files, password) == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A password with a space and every character a URL gives a meaning to but @ (which must be encoded)
SWEEP_PASSWORD = "Kx7q pa:ss/wo#rd?x Wv9m"


@pytest.fixture
def password_user(postgres_url) -> tuple[str, int, str]:
    """(user, port, database) of a fresh role with SWEEP_PASSWORD that owns a fresh database."""
    import psycopg
    from psycopg import sql

    admin = urlsplit(postgres_url)
    name = f"h{uuid.uuid4().hex[:8]}"
    address = dict(host=admin.hostname, port=admin.port, user=admin.username, password=POSTGRES_PASSWORD,
                   dbname="postgres", connect_timeout=10)
    with psycopg.connect(**address, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name),
                                                                              sql.Literal(SWEEP_PASSWORD)))
        connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
    return name, admin.port, name


def fake_slurm(folder: Path) -> dict[str, str]:
    """srun and sbatch stand-ins on PATH: sbatch accepts any job as 4242."""
    folder.mkdir()
    (folder / "srun").write_text("#!/bin/sh\nexit 0\n")
    (folder / "sbatch").write_text("#!/bin/sh\necho 'Submitted batch job 4242'\n")
    for tool in ("srun", "sbatch"):
        (folder / tool).chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


def test_a_real_sweep_report_dashboard_and_slurm_submission_never_show_the_password(
        tmp_path, ucf101_root, password_user):
    user, port, database = password_user
    raw = f"postgresql://{user}:{SWEEP_PASSWORD}@127.0.0.1:{port}/{database}"  # raw space, : / # ?
    encoded = f"postgresql+psycopg://{user}:{quote(SWEEP_PASSWORD, safe='')}@127.0.0.1:{port}/{database}"
    libpq = f"postgresql://{user}@127.0.0.1:{port}/{database}?password={quote(SWEEP_PASSWORD, safe='')}"
    host_query = f"postgresql://{user}:{quote(SWEEP_PASSWORD)}@/{database}?host=127.0.0.1:{port}"
    spec = write_spec(tmp_path, ucf101_root, study_name="secret", search_space={
        "data.init_args.clip_len": {"type": "categorical", "choices": [4]},
        "data.init_args.stride": {"type": "categorical", "choices": [1]}})
    outputs = []

    # the password on the command line: W&B records the command line in its run
    sweep = run_lit_video("sweep", spec, "--storage", raw, cwd=tmp_path, env={"WANDB_MODE": "offline"})
    outputs.append(sweep.output)
    assert sweep.returncode == 0, sweep.output[-3000:]
    assert f"postgresql://{user}:***@127.0.0.1:{port}/{database}" in sweep.stdout
    runs = list((tmp_path / "out" / "secret" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))

    report = run_lit_video("report", "--storage", encoded, "--out", tmp_path / "report", cwd=tmp_path)
    outputs.append(report.output)
    assert report.returncode == 0, report.output[-3000:]
    assert (tmp_path / "report" / "index.html").is_file() and "1 complete" in report.stdout

    outputs.append(serve_once(libpq, tmp_path))

    submit = run_lit_video("sweep", spec, "--launcher", "slurm", "--storage", host_query, "--submitit-folder",
                           tmp_path / "submitit", cwd=tmp_path, env=fake_slurm(tmp_path / "bin"))
    outputs.append(submit.output)
    assert submit.returncode == 0 and "4242" in submit.stdout, submit.output[-3000:]
    assert any((tmp_path / "submitit").rglob("*.pkl"))

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leaks(outputs, files, SWEEP_PASSWORD) == []
    assert [p for p in files if POSTGRES_PASSWORD.encode() in p.read_bytes()] == []


def serve_once(storage: str, cwd: Path) -> str:
    """Start `dashboard` on `storage`, read its study list once, stop it; returns its output."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lit_video.cli", "dashboard", "--storage", storage, "--port",
                              str(port)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        answer = wait_for_json(server, f"http://127.0.0.1:{port}/api/studies")
        assert [s["study_name"] for s in answer["study_summaries"]] == ["secret"]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    return output


def wait_for_json(server: subprocess.Popen, url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            assert server.poll() is None, server.communicate()[0]
            time.sleep(0.3)
    raise AssertionError(f"the dashboard did not answer within {timeout} s")


def test_redact_imports_neither_torch_lightning_nor_optuna():
    # redact stays cheap: it must import neither torch nor Lightning
    done = subprocess.run([sys.executable, "-c", "import sys; from lit_video.sweep.storage import redact; "
                           "redact('postgresql://u:Pp9z@h/d'); print(sorted(m for m in ('torch', 'lightning', "
                           "'optuna') if m in sys.modules))"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
