"""Running the real `lit-video` entry point on bad input and checking how it fails.

Every test of a bad input asserts the same contract: the command exits with the expected status (2
for a mistake in the input), stderr holds exactly one line starting `lit-video: error:` that names
what to fix, and no Python traceback appears anywhere in the output.
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from forked_cli import FORK_SAFE_ENV

ERROR_PREFIX = "lit-video: error:"
LAUNCHER = Path(__file__).with_name("forked_cli.py")
LAUNCHER_START_TIMEOUT = 300  # seconds: the launcher's imports, on a loaded 2-core machine


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith(ERROR_PREFIX)]


class ForkedCli:
    """This test process's `forked_cli` launcher: `python -m lit_video.cli` with its imports done once."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        request_read, self.request_write = os.pipe()
        self.reply_read, reply_write = os.pipe()
        self.launcher = subprocess.Popen([sys.executable, str(LAUNCHER), str(request_read), str(reply_write)],
                                         pass_fds=(request_read, reply_write), stdin=subprocess.DEVNULL, env=env)
        os.close(request_read)
        os.close(reply_write)
        self.pending = b""
        self.lock = threading.Lock()
        self.commands = 0  # run so far

    def run(self, argv: list[str], cwd: str, env: dict[str, str], input: str | None, timeout: float) -> Result:
        with self.lock, tempfile.TemporaryDirectory(prefix="lit-video-cli-") as streams:
            stdin, stdout, stderr = (os.path.join(streams, name) for name in ("stdin", "stdout", "stderr"))
            Path(stdin).write_text(input or "")
            request = {"argv": argv, "cwd": cwd, "env": env, "stdin": stdin, "stdout": stdout, "stderr": stderr}
            os.write(self.request_write, (json.dumps(request) + "\n").encode())
            # the first reply waits for the launcher's imports; the command's own time starts after it
            pid = self._reply(LAUNCHER_START_TIMEOUT)["pid"]
            self.commands += 1
            try:
                status = self._reply(timeout)["status"]
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self._reply(LAUNCHER_START_TIMEOUT)
                raise subprocess.TimeoutExpired(["lit-video", *argv], timeout) from None
            return Result(status, _read_text(stdout), _read_text(stderr))

    def _reply(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            ready, _, _ = select.select([self.reply_read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise subprocess.TimeoutExpired("lit-video", timeout)
            chunk = os.read(self.reply_read, 65536)
            if not chunk:
                raise RuntimeError(f"the {LAUNCHER.name} launcher exited with {self.launcher.wait()}")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        os.close(self.request_write)
        self.launcher.wait(timeout=60)
        os.close(self.reply_read)


def _read_text(path: str) -> str:
    """A stream's text as `subprocess.run(text=True)` decodes it (locale encoding, universal newlines)."""
    if not os.path.exists(path):
        return ""
    with open(path, encoding=locale.getpreferredencoding(False)) as stream:
        return stream.read()


def _cli_env(env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "WANDB_SILENT": "true",
            **(env or {})}


_forked_cli: ForkedCli | None = None


def _launcher() -> ForkedCli:
    global _forked_cli
    if _forked_cli is None:
        _forked_cli = ForkedCli(_cli_env(None))
        atexit.register(_forked_cli.close)
    return _forked_cli


def _forkable(env: dict[str, str], launcher_env: dict[str, str]) -> bool:
    """Whether a child forked from a launcher started with `launcher_env` sees `env` as a fresh process
    would: every variable that differs is one the command reads when it runs."""
    changed = {key for key in env.keys() | launcher_env.keys() if env.get(key) != launcher_env.get(key)}
    return all(key.startswith(FORK_SAFE_ENV) for key in changed)


def run_lit_video(*args: str | os.PathLike, cwd: str | Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 300, input: str | None = None, fresh: bool = False) -> Result:
    """`python -m lit_video.cli ARGS` (what the `lit-video` script runs) in a new process.

    On Linux the process is forked from a launcher that has imported torch and Lightning (`forked_cli`),
    unless `fresh` or the environment differs from the launcher's in a variable read at start-up: then it
    is a new interpreter.

    Args:
        args: the command line after `lit-video`.
        cwd: the working folder (default: the current one).
        env: variables set on top of this process's environment.
        timeout: seconds before the test fails as hung.
        input: text fed to stdin (default: an empty stdin).
        fresh: start a new interpreter, as the `lit-video` script does.
    """
    argv = list(map(str, args))
    full_env = _cli_env(env)
    # forking a process that has imported torch is safe on Linux; macOS's system libraries may not allow it
    if not fresh and sys.platform == "linux":
        launcher = _launcher()
        if _forkable(full_env, launcher.env):
            return launcher.run(argv, os.path.abspath(cwd or os.getcwd()), full_env, input, timeout)
    completed = subprocess.run([sys.executable, "-m", "lit_video.cli", *argv], cwd=cwd, env=full_env,
                               capture_output=True, text=True, timeout=timeout, input=input)
    return Result(completed.returncode, completed.stdout, completed.stderr)


def assert_one_line_error(result: Result, *fragments: str, status: int = 2) -> str:
    """Assert `result` is a clean failure: exit `status`, one `lit-video: error:` line holding every one
    of `fragments` (case-insensitive), no traceback. Returns the error line."""
    context = f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert "Traceback (most recent call last)" not in result.output, context
    assert result.returncode == status, context
    assert len(result.error_lines) == 1, context
    line = result.error_lines[0]
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}\n{context}"
    return line
