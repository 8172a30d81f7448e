"""Where a study lives: an RDB URL (SQLite, PostgreSQL, MySQL) or an Optuna journal file.

- SQLite: one machine (its file lock serialises writers; on NFS it can corrupt).
- journal file (a path ending in .journal or .log): many workers on one shared filesystem; no
  heartbeats, so a killed worker's trial stays RUNNING.
- PostgreSQL / MySQL: many workers on many nodes, with heartbeats: a trial whose worker stopped
  beating for `grace_period` seconds is marked failed and queued again with the same parameters.

Storage URLs may carry a password (postgresql://user:secret@host/db, ?password=...). A URL is shown
only through `show_storage` (SQLAlchemy's parse, password as ***; a URL that does not parse entirely as
its scheme and ***), and any other text that may quote one through `redact`, which also replaces the
passwords of every storage URL this process has seen wherever they appear. Workers receive the URL
through the LIT_VIDEO_STORAGE environment variable, never on a command line or in a pickled job. Kept
free of torch, Lightning and Optuna at import time so that `lit-video report` and `lit-video dashboard`
start fast.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lit_video.errors import LitVideoError
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
    check_storage(url)
    if is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    if heartbeat is not None:  # a sweep, which writes to the study
        check_sqlite_writable(url)
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


def check_sqlite_writable(url: str) -> None:
    """Fail in one line when `url` is an existing SQLite database that cannot be written (file
    permissions, a read-only filesystem, ?mode=ro): Optuna would only say that a commit failed,
    "e.g. exceeding max length"."""
    parsed = parse_storage_url(url)
    if parsed is None or parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database.removeprefix("file:").split("?")[0])
    if not path.is_file():
        return  # SQLite creates it (or says it cannot)
    from sqlalchemy import create_engine

    engine = create_engine(parsed)
    try:
        connection = engine.raw_connection()
        try:
            database = connection.driver_connection
            database.isolation_level = None  # our own BEGIN and ROLLBACK, nothing left behind
            database.execute("BEGIN IMMEDIATE")
            try:
                database.execute("CREATE TABLE lit_video_write_check (x INTEGER)")
            finally:
                database.execute("ROLLBACK")
        finally:
            connection.close()
    except Exception as err:  # anything but a read-only file is left to Optuna to report
        if "readonly" in str(err).lower() or "read-only" in str(err).lower():
            raise LitVideoError(f"Optuna storage {show_storage(url)}: the SQLite file {path} is read-only; a sweep "
                                "writes its trials there: make it writable, or pass another --storage") from None
    finally:
        engine.dispose()


def storage_error(err: BaseException) -> str:
    """A one-line description of an error from a storage, without a password: Optuna's commit error
    ("e.g. exceeding max length") replaced by its cause (e.g. a read-only database)."""
    import optuna

    while isinstance(err, optuna.exceptions.StorageInternalError) and err.__cause__ is not None:
        err = err.__cause__
    message = " ".join(str(err).split())
    if "readonly database" in message:
        message = f"the database is read-only ({message})"
    return redact(message)


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
    """The storage a command uses: --storage, else $LIT_VIDEO_STORAGE, else the spec's, else `default`.

    Raises:
        LitVideoError: when it is neither a journal file nor a URL that SQLAlchemy parses unambiguously
            (the message shows it without its password).
    """
    return check_storage(given or os.environ.get(STORAGE_ENV) or spec_storage or default)


# Query parameters that carry a secret (libpq's password= and sslpassword=, MySQL drivers' passwd=, ...)
_SECRET_KEY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
# Free text: URL-like userinfo (scheme://user:PASSWORD@, also scheme:/ and scheme// typos). The password
# runs to the last @ of its word, so a raw @ in it does not leave its end behind.
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*(?::/{0,2}|//)[^\s:/@*]*:)(?P<password>[^\n]*?)"
                       r"(?P<tail>@)(?=[^@\s]*(?:\s|$))")
# Free text: password query parameters and libpq keyword/value strings (password=... host=...). Only
# these names: every error message goes through `redact`, and e.g. tokenizer=... must stay readable.
_SECRET_PARAM = re.compile(r"(?P<head>\b(?:ssl)?(?:password|passwd|pwd)\s*=\s*)(?P<value>'[^']*'|[^&\s;,)]*)",
                           re.IGNORECASE)
_URL_HEAD = re.compile(r"^[a-zA-Z][\w+.-]*(?::/{0,2}|//)")  # what a masked URL keeps: its scheme
_URL_START = re.compile(r"^[a-zA-Z][\w+.-]*(?::/{1,2}|//)")  # text that is a URL (typos included)
MASK = "***"
# Secrets shorter than this are only hidden inside URLs: replacing two letters everywhere would garble the
# text and hide nothing (a two-letter password is guessed at once anyway).
MIN_SECRET_LENGTH = 4

_known_urls: dict[str, str] = {}  # each storage URL seen -> how it is shown
_secrets: set[str] = set()  # the passwords of those URLs, in every form they may be written


def parse_storage_url(url: str):
    """The SQLAlchemy URL of `url`, or None when it is not one that parses entirely and unambiguously.

    A raw @ in a password makes SQLAlchemy split the URL at the wrong @ (part of the password then reads
    as the host or the database): such a URL counts as unparsable, as does a host list with ports
    (postgresql://u:p@h1:5432,h2:5432/db) or a typo in the scheme (postgresql//..., postgresql:/...).
    """
    if is_journal(url):
        return None
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # ArgumentError, or ValueError for a port that is not a number
        return None
    if parsed.password is not None:
        rest = url.split("://", 1)[1]
        end_of_userinfo = rest.find("@", rest.find(":"))
        if "@" in rest[end_of_userinfo + 1:]:
            return None
    return parsed


def _masked_query(parsed) -> dict:
    return {key: MASK if _SECRET_KEY.search(key) else value for key, value in parsed.query.items()}


def show_storage(url: str) -> str:
    """How a storage is shown in messages: a URL with its password (and secret query parameters) as ***,
    a journal file as it is, anything that cannot be parsed entirely as its scheme followed by ***."""
    remember_storage(url)
    return _known_urls.get(url, url)


def _render(url: str) -> str:
    from urllib.parse import quote

    if is_journal(url):
        return url
    parsed = parse_storage_url(url)
    if parsed is not None:
        if parsed.password is None and not any(_SECRET_KEY.search(key) for key in parsed.query):
            return url  # nothing to hide: shown as the user wrote it
        shown = parsed.set(query=_masked_query(parsed)).render_as_string(hide_password=True)
        return shown.replace(quote(MASK, safe=""), MASK)  # password=*** rather than password=%2A%2A%2A
    if "@" not in url and not _SECRET_PARAM.search(url):
        return url  # a path, or a URL without credentials: nothing to hide
    head = _URL_HEAD.match(url)
    return f"{head.group(0) if head else ''}{MASK}"


def _password_forms(secret: str) -> set[str]:
    """`secret` as it may be written: raw, URL-decoded, percent-encoded (path or query style)."""
    from urllib.parse import quote, quote_plus, unquote, unquote_plus

    forms = set()
    for base in {secret, unquote(secret), unquote_plus(secret)}:
        forms |= {base, quote(base, safe=""), quote(base), quote_plus(base)}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def remember_storage(url: str) -> str:
    """Record a storage URL so that `redact` hides its password in any text from now on; returns `url`."""
    if not url or url in _known_urls:
        return url
    _known_urls[url] = _render(url)
    parsed = parse_storage_url(url)
    candidates: set[str] = set()
    if parsed is not None:
        if parsed.password:
            candidates.add(parsed.password)
        for key, value in parsed.query.items():
            if _SECRET_KEY.search(key):
                candidates.update([value] if isinstance(value, str) else value)
    # What a reader might take for the password, whether or not the URL parses: all between the user
    # name's colon and the last @, and the values of secret query parameters as written.
    head = _URL_START.match(url)
    rest = url[head.end():] if head else url
    if "@" in rest:
        userinfo = rest[:rest.rfind("@")]
        if ":" in userinfo:
            candidates.add(userinfo.split(":", 1)[1])
            candidates.add(userinfo.rsplit(":", 1)[1])
    candidates.update(match.group("value").strip("'") for match in _SECRET_PARAM.finditer(url))
    for candidate in candidates:
        _secrets.update(_password_forms(candidate))
    return url


def check_storage(url: str) -> str:
    """`url` itself when it is a journal file or a database URL that parses entirely; else a one-line
    error that shows it without its password. Recorded for `redact` either way."""
    remember_storage(url)
    if is_journal(url) or parse_storage_url(url) is not None:
        return url
    if "://" not in url and "@" not in url:
        raise LitVideoError(f"Optuna storage {url}: expected a database URL (sqlite:///x.db, "
                            "postgresql://user:password@host/db, mysql+pymysql://...) or a journal file "
                            "(a path ending in .journal or .log)")
    raise LitVideoError(f"Optuna storage {show_storage(url)} is not a database URL that SQLAlchemy can parse "
                        "entirely (expected dialect[+driver]://user:password@host[:port]/database; percent-encode "
                        "@ : / # ? % and spaces in a password, e.g. @ as %40; several hosts as "
                        "?host=h1:5432&host=h2:5432)")


def redact(text: str) -> str:
    """`text` without any password: every storage URL seen (see `remember_storage`, and
    $LIT_VIDEO_STORAGE) shown as `show_storage` shows it, its password replaced wherever else it
    appears (raw or URL-encoded), and URL passwords and secret parameters of any other URL as ***.
    For log lines, error messages and tracebacks."""
    text = str(text)
    remember_storage(os.environ.get(STORAGE_ENV, ""))
    if "\n" not in text and _URL_START.match(text):
        remember_storage(text)  # a URL on its own, e.g. a storage given on the command line
    for url in sorted(_known_urls, key=len, reverse=True):
        if url and url in text:
            text = text.replace(url, _known_urls[url])
    # the known passwords whole, before the patterns below cut a text into pieces
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: m.group("head") + MASK + m.group("tail"), text)
    return _SECRET_PARAM.sub(lambda m: m.group("head") + MASK, text)
