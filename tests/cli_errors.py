"""Running the real `lit-video` entry point on bad input and checking how it fails.

Every test of a bad input asserts the same contract: the command exits with the expected status (2
for a mistake in the input), stderr holds exactly one line starting `lit-video: error:` that names
what to fix, and no Python traceback appears anywhere in the output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ERROR_PREFIX = "lit-video: error:"


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


def run_lit_video(*args: str | os.PathLike, cwd: str | Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 300, input: str | None = None) -> Result:
    """`python -m lit_video.cli ARGS` (what the `lit-video` script runs) in a fresh process.

    Args:
        args: the command line after `lit-video`.
        cwd: the working folder (default: the current one).
        env: variables set on top of this process's environment.
        timeout: seconds before the test fails as hung.
        input: text fed to stdin.
    """
    full_env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "WANDB_SILENT": "true",
                **(env or {})}
    completed = subprocess.run([sys.executable, "-m", "lit_video.cli", *map(str, args)], cwd=cwd, env=full_env,
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
