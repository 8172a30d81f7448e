"""A throwaway PostgreSQL server for the tests: `with postgres_server(base, password) as url: ...`.

The server is a fresh cluster (initdb) on 127.0.0.1 and a free port, tuned for speed rather than
durability (no fsync), with one password-protected superuser. It is always stopped and its files
removed when the block ends, also when the block raises; an atexit hook covers sessions that end
without unwinding (Ctrl-C between fixtures, sys.exit in a plugin).
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

USER = "lit"
DATABASE = "optuna"
# What users write: SQLAlchemy >= 2.1 reads a bare postgresql:// with psycopg 3, lit-video's driver.
SCHEME = "postgresql"
# initdb refuses to run as root; as root we run the server as this system user.
SYSTEM_USER = "postgres"
MISSING_BINARIES = "PostgreSQL server binaries (initdb, pg_ctl) not found"
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux, including the NUL).
MAX_SOCKET_PATH = 100
# Postgres settings for a test server: losing data on a crash is fine, waiting for disks is not.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "100"}


class PostgresUnavailable(RuntimeError):
    """This machine cannot run a PostgreSQL server (no binaries, or root without a `postgres` user):
    tests skip."""


class PostgresError(RuntimeError):
    """The server could not be set up or started."""


@dataclass(frozen=True)
class Binaries:
    initdb: Path
    pg_ctl: Path


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: compare 9.6 < 15 < 16 numerically, not as strings
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def find_binaries() -> Binaries:
    """initdb and pg_ctl of the newest /usr/lib/postgresql/<version>/bin, else from PATH.

    Raises:
        PostgresUnavailable: when either is missing.
    """
    bin_dirs = sorted((d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()),
                      key=_version_key, reverse=True)
    for bin_dir in bin_dirs:
        if os.access(bin_dir / "initdb", os.X_OK) and os.access(bin_dir / "pg_ctl", os.X_OK):
            return Binaries(bin_dir / "initdb", bin_dir / "pg_ctl")
    # Debian's /usr/bin/pg_ctl* are wrappers that want a configured cluster: only bare binaries on PATH
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Binaries(Path(initdb), Path(pg_ctl))
    raise PostgresUnavailable(MISSING_BINARIES)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (another process may still take it
    before the server binds; `postgres_server` retries then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> pwd.struct_passwd | None:
    """The account to run initdb/postgres as: None for ourselves, the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresUnavailable(f"running as root and there is no '{SYSTEM_USER}' user to run the server as") from None


def _as_user(command: list[str], user: pwd.struct_passwd | None) -> list[str]:
    if user is None:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", user.pw_name, "--", *command]
    # su needs a shell; the postgres account's own may be nologin
    import shlex

    return ["su", "-s", "/bin/sh", user.pw_name, "-c", shlex.join(command)]


def _traversable_by(path: Path, user: pwd.struct_passwd | None) -> bool:
    """Whether `user` can reach entries of `path` (pytest's /tmp/pytest-of-root is mode 700)."""
    if user is None:
        return True
    for folder in (path, *path.parents):
        info = folder.stat()
        if not (info.st_mode & stat.S_IXOTH or info.st_uid == user.pw_uid):
            return False
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty server log)"


def _run(command: list[str], what: str, log: Path, cwd: Path, timeout: float) -> None:
    """Run `command`; on failure raise one line saying `what` failed, then its output and the server log."""
    try:
        # stdin closed and output captured: the server that pg_ctl forks writes to its -l log file
        # only, so it holds none of our pipes open and run() returns once pg_ctl has.
        done = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise PostgresError(f"{what} timed out after {timeout:.0f} s\nserver log:\n{_tail(log)}") from error
    if done.returncode != 0:
        # pg_ctl ends with "Examine the log output." (the log comes below): keep the line before it
        output = [line for line in (done.stderr or done.stdout).strip().splitlines() if "Examine the log" not in line]
        raise PostgresError(f"{what} failed (exit {done.returncode}): {output[-1] if output else 'no output'}\n"
                            f"server log:\n{_tail(log)}")


def _stop(pg_ctl: Path, data_dir: Path, user: pwd.struct_passwd | None) -> None:
    """Stop the server at `data_dir` now (immediate: no checkpoint, the files are deleted anyway).
    Falls back to SIGKILL of the postmaster's pid when pg_ctl cannot stop it."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    command = _as_user([str(pg_ctl), "-D", str(data_dir), "-m", "immediate", "-w", "-t", "30", "stop"], user)
    try:
        if subprocess.run(command, cwd=data_dir.parent, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=40).returncode == 0:
            return
    except subprocess.TimeoutExpired:
        pass
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass  # already gone


def _create_database(password: str, port: int, log: Path) -> None:
    """CREATE DATABASE optuna, connecting over TCP with the password: also proves that the URL works."""
    import psycopg

    try:
        # CREATE DATABASE cannot run inside a transaction block
        connection = psycopg.connect(host="127.0.0.1", port=port, user=USER, password=password,
                                      dbname="postgres", connect_timeout=10)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            connection.close()
    except psycopg.Error as error:
        message = str(error).strip().splitlines()
        raise PostgresError(f"creating database {DATABASE!r} on 127.0.0.1:{port} failed: "
                            f"{message[0] if message else type(error).__name__}\nserver log:\n{_tail(log)}") from error


@contextmanager
def postgres_server(base_dir: Path, password: str, start_attempts: int = 3) -> Iterator[str]:
    """Run a fresh PostgreSQL server for the duration of the block.

    Args:
        base_dir: where the cluster's folder (data directory, server log) is created. When the
            server must run as the `postgres` user (we are root) and cannot reach `base_dir`, the
            system temp folder is used instead.
        password: the password of the superuser `lit` (scram-sha-256 for all connections).
        start_attempts: how many free ports to try when another process takes the chosen one first.

    Yields:
        postgresql://lit:<password>@127.0.0.1:<port>/optuna (password URL-quoted), a
        database that exists and is empty.

    Raises:
        PostgresUnavailable: no server binaries, or root without a `postgres` user (skip the test).
        PostgresError: initdb, the start or creating the database failed; says which, with the
            tail of the server log.
    """
    binaries = find_binaries()
    user = _server_user()
    base_dir = Path(base_dir)
    parent = base_dir if base_dir.is_dir() and _traversable_by(base_dir, user) else None
    cluster_dir = Path(tempfile.mkdtemp(prefix="lit-video-pg-", dir=parent))
    data_dir, log = cluster_dir / "data", cluster_dir / "server.log"

    def cleanup() -> None:
        _stop(binaries.pg_ctl, data_dir, user)
        shutil.rmtree(cluster_dir, ignore_errors=True)

    # the fallback when the with block never unwinds; unregistered after a normal stop
    atexit.register(cleanup)
    try:
        # initdb reads the password from a file so that it never shows up in `ps`; written while
        # mkdtemp's folder is still 0700, then opened up for the `postgres` user
        pwfile = cluster_dir / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        cluster_dir.chmod(0o755)
        if user is not None:
            os.chown(cluster_dir, user.pw_uid, user.pw_gid)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        _run(_as_user([str(binaries.initdb), "-D", str(data_dir), "--username", USER, "--pwfile", str(pwfile),
                       "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"], user),
             "initdb", log, cluster_dir, timeout=120)
        pwfile.unlink()

        # settings go into postgresql.conf (last one wins) rather than `pg_ctl -o`: no shell quoting of
        # paths, and a test that restarts the server with pg_ctl keeps them
        socket_dir = str(data_dir) if len(f"{data_dir}/.s.PGSQL.65535") <= MAX_SOCKET_PATH else ""
        settings = dict(FAST_SETTINGS, listen_addresses="'127.0.0.1'",
                        # a socket of our own, not /var/run/postgresql; none (TCP only) if the path is too long
                        unix_socket_directories=f"'{socket_dir}'")
        for attempt in range(start_attempts):
            port = free_port()
            with open(data_dir / "postgresql.conf", "a") as conf:
                conf.write("".join(f"{key} = {value}\n" for key, value in {**settings, "port": port}.items()))
            try:
                _run(_as_user([str(binaries.pg_ctl), "-D", str(data_dir), "-l", str(log), "-w", "-t", "60",
                               "start"], user), f"starting the server on port {port}", log, cluster_dir, timeout=90)
                break
            except PostgresError:
                # another process took the port between free_port() and the server's bind: try another
                if attempt + 1 < start_attempts and "could not bind" in _tail(log, 50):
                    _stop(binaries.pg_ctl, data_dir, user)
                    continue
                raise
        _create_database(password, port, log)
        yield f"{SCHEME}://{USER}:{quote(password, safe='')}@127.0.0.1:{port}/{DATABASE}"
    finally:
        cleanup()
        atexit.unregister(cleanup)
