"""Where a study lives: a storage URL (SQLite, PostgreSQL, MySQL) or an Optuna journal file.

Kept free of torch and Lightning so that `lit-video report` and `lit-video dashboard` start fast.
"""

from __future__ import annotations

from pathlib import Path

JOURNAL_SUFFIXES = (".log", ".journal")


def open_storage(url: str):
    """A storage URL, or a path ending in .log / .journal for Optuna's journal file on a shared disk."""
    if url.endswith(JOURNAL_SUFFIXES) and "://" not in url:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    return url
