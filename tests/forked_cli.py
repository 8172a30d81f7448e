"""A launcher that runs `python -m lit_video.cli ARGS` in forked processes, with the imports already done.

A fresh `lit-video` process spends 7-8 s of CPU importing torch, torchvision and Lightning before it
reads its first argument; the tests start a few hundred of them. This launcher imports those once, then
forks one child per command. Each child is a real, separate process: it gets the command's working
folder, environment, stdin, stdout and stderr (as file descriptors, so every stream object inherited from
the imports writes where a fresh process's would), runs `lit_video.cli` as `__main__` exactly as `-m`
does, and exits as the interpreter does: an uncaught exception prints its traceback and exits 1,
`sys.exit` codes mean what they mean to Python, non-daemon threads are joined, `atexit` handlers run and
the standard streams are flushed. Only the last step of a fresh interpreter's exit is left out: tearing
down every module of torch and Lightning one object at a time, which in a forked child copies most of the
launcher's memory page by page and takes 2 s.

What a forked child cannot reproduce is what the interpreter reads once at start-up or at import:
PYTHONPATH, PYTHONHASHSEED, OpenMP's thread count and the like. `cli_errors.run_lit_video` starts a
fresh interpreter for any command whose environment changes a variable outside `FORK_SAFE_ENV`.

Protocol, one JSON object per line on the two pipes whose descriptors are argv[1] (requests) and argv[2]
(replies): {"argv", "cwd", "env", "stdin", "stdout", "stderr"} (the last three are file paths) is
answered with {"pid"} when the child starts and {"status"} (a `subprocess` return code) when it ends.
"""

from __future__ import annotations

import json
import os
import sys

# read by the command at run time (or, pytest's name of the running test, by nobody), not by the
# interpreter or by an import: a forked child that sets them behaves as a fresh process would (any other
# change makes `run_lit_video` start a fresh interpreter)
FORK_SAFE_ENV = ("WANDB_", "LIT_VIDEO_", "TORCH_HOME", "PYTEST_CURRENT_TEST")

# what the commands import; `lit_video.cli` itself imports none of it until a command runs. Not wandb:
# its import makes temporary folders that each child's exit would delete from under the next child.
PRELOAD = ("torch", "torchvision", "lightning", "jsonargparse", "optuna", "lit_video.cli",
           "lit_video.training", "lit_video.tasks", "lit_video.data", "lit_video.models", "lit_video.sweep")


def serve(requests: int, replies: int) -> dict | None:
    """Fork a child per request until the request pipe closes; returns the request in a child, None in
    the launcher once the client is gone."""
    with os.fdopen(requests, "r") as incoming, os.fdopen(replies, "w", buffering=1) as outgoing:
        for line in incoming:
            request = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                return request
            outgoing.write(json.dumps({"pid": pid}) + "\n")
            _, wait_status = os.waitpid(pid, 0)
            outgoing.write(json.dumps({"status": _return_code(wait_status)}) + "\n")
    return None


def _return_code(wait_status: int) -> int:
    """`subprocess`'s return code for a `waitpid` status: the exit code, or -N for death by signal N."""
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def become_command(request: dict) -> int:
    """In the forked child: take on the command's folder, environment and streams, run it as `-m` does and
    return the exit status the interpreter would give it."""
    import runpy
    import traceback

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in ((0, request["stdin"], os.O_RDONLY),
                            (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    # `-m` puts the working folder first on sys.path; this script's own folder must not be there
    sys.path[0] = os.getcwd()
    sys.argv = ["-m", *request["argv"]]
    try:
        runpy.run_module("lit_video.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            return exit.code or 0
        print(exit.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def exit_as_the_interpreter(status: int) -> None:
    """Finish a forked child: join its threads, run its `atexit` handlers, flush its streams, exit."""
    import atexit
    import threading

    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


if __name__ == "__main__":
    import gc
    import importlib
    import warnings

    with warnings.catch_warnings():
        # a command's own warnings reach its stderr; these were raised before any command ran
        warnings.simplefilter("ignore")
        for module in PRELOAD:
            importlib.import_module(module)
    # the children's garbage collections then leave the imported objects (and their memory pages) alone
    gc.freeze()
    request = serve(int(sys.argv[1]), int(sys.argv[2]))
    if request is not None:
        exit_as_the_interpreter(become_command(request))
