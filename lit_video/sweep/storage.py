"""Where a study lives: an RDB URL (SQLite, PostgreSQL, MySQL) or an Optuna journal file.

- SQLite: one machine (its file lock serialises writers; on NFS it can corrupt).
- journal file (a path ending in .journal or .log): many workers on one shared filesystem; no
  heartbeats, so a killed worker's trial stays RUNNING.
- PostgreSQL / MySQL: many workers on many nodes, with heartbeats: a trial whose worker stopped
  beating for `grace_period` seconds is marked failed and queued again with the same parameters.

Storage URLs may carry a password (postgresql://user:secret@host/db). It is only ever shown through
`redact`; workers receive the URL through the LIT_VIDEO_STORAGE environment variable, never on a
command line or in a pickled job. Kept free of torch and Lightning so that `lit-video report` and
`lit-video dashboard` start fast.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lit_video.sweep.settings import HeartbeatSettings

JOURNAL_SUFFIXES = (".log", ".journal")
STORAGE_ENV = "LIT_VIDEO_STORAGE"


def is_journal(url: str) -> bool:
    return url.endswith(JOURNAL_SUFFIXES) and "://" not in url


def open_storage(url: str, heartbeat: HeartbeatSettings | None = None):
    """An Optuna storage for `url`: a journal file, or an RDB URL (with heartbeats when given).

    Args:
        url: a SQLAlchemy URL (sqlite:///x.db, postgresql://user@host/db, mysql+pymysql://...) or
            a path ending in .journal / .log.
        heartbeat: heartbeat settings for an RDB storage; None for a plain URL (read-only uses:
            reports, dashboard).
    """
    if is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    if heartbeat is None or heartbeat.interval is None:
        return url
    import random
    import time

    from sqlalchemy.exc import IntegrityError, ProgrammingError

    attempts = 5
    for attempt in range(1, attempts + 1):
        try:
            return _rdb_storage(url, heartbeat)
        except (IntegrityError, ProgrammingError):
            # Workers starting together on an empty database all create Optuna's tables; PostgreSQL lets
            # one CREATE TYPE win and fails the others. The tables exist now: open them again.
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0.2, 1.0))


def _rdb_storage(url: str, heartbeat: HeartbeatSettings):
    import warnings

    import optuna

    # heartbeats and the retry callback are "experimental" in Optuna since 2.x, and unchanged since
    with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
        return optuna.storages.RDBStorage(
            url,
            # a dropped connection (database restart, idle timeout on a long trial) is reopened, not fatal
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=heartbeat.interval,
            grace_period=heartbeat.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(heartbeat.max_retry),
        )


def resolve_storage(given: str | None, spec_storage: str | None, default: str) -> str:
    """The storage a command uses: --storage, else $LIT_VIDEO_STORAGE, else the spec's, else `default`."""
    return given or os.environ.get(STORAGE_ENV) or spec_storage or default


# A regular expression rather than SQLAlchemy's URL parser: it must also clean free text (error messages
# and tracebacks that quote a URL), not only a URL on its own.
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<tail>@)")


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***, e.g. for logs and error messages."""
    return _PASSWORD.sub(r"\g<head>***\g<tail>", str(text))
