"""Bad input to `lit-video report`, `dashboard` and a sweep's storage ends in one line, and the dashboard
is read-only unless asked otherwise: a request that would delete or change a study is refused, and the
study survives. Every case runs the real entry point."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import optuna
from cli_errors import assert_one_line_error, run_lit_video
from conftest import write_spec


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def small_study(path: Path, name: str = "s") -> str:
    """A SQLite study of three finished trials; returns its URL."""
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name=name, storage=storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1) ** 2, n_trials=3)
    return storage


def test_report_out_that_is_a_file_and_bad_dashboard_ports_fail_in_one_line(tmp_path):
    storage = small_study(tmp_path / "s.db")
    out = tmp_path / "summary.txt"
    out.write_text("mine\n")
    assert_one_line_error(run_lit_video("report", "--storage", storage, "--out", out), "--out", "summary.txt",
                          "existing file", "folder")
    assert out.read_text() == "mine\n"
    for port in ("-1", "99999", "0"):
        assert_one_line_error(run_lit_video("dashboard", "--storage", storage, "--port", port),
                              "--port", "1 to 65535", port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert_one_line_error(run_lit_video("dashboard", "--storage", storage, "--port", port),
                              f"--port {port}", "already in use")


def recorded_study(storage: str, name: str, metric: str = "val/acc", direction: str = "maximize",
                   failed: bool = False) -> None:
    """A study of two recorded trials (no training) of `metric`, or of one failed trial."""
    study = optuna.create_study(study_name=name, storage=storage, direction=direction)
    with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
        study.set_metric_names([metric])
    clip = optuna.distributions.CategoricalDistribution([4, 8])
    for clip_len in [4] if failed else [4, 8]:
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
            value=None if failed else clip_len / 10, params={"clip_len": clip_len}, distributions={"clip_len": clip}))


def test_a_cross_study_report_of_studies_that_cannot_be_compared_fails_in_one_line(tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    recorded_study(storage, "a")
    recorded_study(storage, "loss", metric="val/loss")
    recorded_study(storage, "min", direction="minimize")
    recorded_study(storage, "failed", failed=True)
    recorded_study(other, "b")
    out = tmp_path / "report"
    cases = [
        (("--storage", storage, "--study", "a", "--study", "nope"), ("no study 'nope'", "studies: a, loss, min, failed")),
        (("--storage", storage, "--study", "a", "--study", "loss"),
         ("study 'loss'", "val/loss (maximize)", "val/acc (maximize)", "one objective")),
        (("--storage", storage, "--study", "a", "--study", "min"), ("study 'min'", "val/acc (minimize)", "study 'a'")),
        (("--storage", storage, "--study", "a", "--study", "failed"),
         ("study 'failed'", "no complete trial", "1 fail")),
        (("--storage", storage, "--storage", other, "--study", "a", "--study", "b", "--study", "loss"),
         ("--storage given twice", "--study 3 times", "one --storage per --study")),
        (("--storage", storage, "--storage", other), ("--storage given twice", "--study")),
        (("--storage", storage, "--study", "a", "--study-name", "a"), ("--study-name", "--study")),
        (("--storage", storage, "--study", "a", "--study", "a"), ("--study a", "twice")),
    ]
    for args, fragments in cases:
        assert_one_line_error(run_lit_video("report", *args, "--out", out), *fragments)
        assert not out.exists()  # nothing written


def test_a_sweep_on_a_read_only_sqlite_file_says_so(tmp_path, ucf101_root):
    path = tmp_path / "study.db"
    small_study(path, name="test")
    before = path.read_bytes()
    spec = write_spec(tmp_path, ucf101_root)
    urls = [f"sqlite:///file:{path}?mode=ro&uri=true"]  # read-only for anyone, root included
    if os.geteuid() != 0:  # file permissions do not stop root
        path.chmod(0o444)
        urls.append(f"sqlite:///{path}")
    for url in urls:
        result = run_lit_video("sweep", spec, "--storage", url)
        line = assert_one_line_error(result, "read-only", str(path))
        assert "max length" not in line
    assert path.read_bytes() == before  # nothing written, the study intact
    assert len(optuna.load_study(study_name="test", storage=f"sqlite:///{path}").trials) == 3


def request(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def start_dashboard(storage: str, port: int, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lit_video.cli", "dashboard", "--storage", storage, "--port",
                             str(port), *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_until_serving(server: subprocess.Popen, base: str, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return request(f"{base}/api/studies")[1]["study_summaries"]
        except OSError:
            assert server.poll() is None, server.communicate()[0]
            time.sleep(0.3)
    raise AssertionError(f"the dashboard did not answer within {timeout} s")


def stop(server: subprocess.Popen) -> str:
    server.terminate()
    return server.communicate(timeout=30)[0]


def test_the_dashboard_is_read_only_by_default(tmp_path):
    storage = small_study(tmp_path / "s.db")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_dashboard(storage, port)
    try:
        (summary,) = wait_until_serving(server, base)
        study_id = summary["study_id"]
        for method, path, body in (("DELETE", f"/api/studies/{study_id}", None),
                                   ("POST", "/api/studies", {"study_name": "new", "directions": ["minimize"]}),
                                   ("POST", f"/api/studies/{study_id}/rename", {"study_name": "renamed"}),
                                   ("PUT", f"/api/studies/{study_id}/note", {"version": 1, "body": "x"})):
            status, answer = request(base + path, method, body)
            assert status == 403 and "read-only" in answer["reason"], (method, path, status, answer)
        assert request(f"{base}/api/studies/{study_id}")[0] == 200  # viewing still works
        assert request(f"{base}/csv/{study_id}", "HEAD")[0] == 200
    finally:
        output = stop(server)
    assert "read-only" in output and "warning" not in output  # 127.0.0.1: nothing to warn about
    assert optuna.get_all_study_names(storage) == ["s"]
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 3


def test_a_dashboard_on_every_interface_warns_first_and_allow_writes_lets_it_delete(tmp_path):
    storage = small_study(tmp_path / "s.db")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_dashboard(storage, port, "--host", "0.0.0.0", "--allow-writes")
    try:
        (summary,) = wait_until_serving(server, base)
        status, _ = request(f"{base}/api/studies/{summary['study_id']}", "DELETE")
    finally:
        output = stop(server)
    assert status == 204 or status == 200, output
    assert optuna.get_all_study_names(storage) == []
    lines = output.splitlines()
    serving = next(i for i, line in enumerate(lines) if line.startswith("optuna-dashboard (read and write)"))
    warnings = [line for line in lines[:serving] if line.startswith("warning:")]
    text = " ".join(warnings)
    assert "--host 0.0.0.0" in text and "ssh -N -L" in text and "delete studies" in text, output
