"""Where things live: the data dir, and the store a location names (a SQLite file or Postgres).

The data dir is ``$ORCHESTRATOR_DATA_DIR``, else ``$XDG_DATA_HOME/orchestrator``, else
``~/.local/share/orchestrator``. The store is ``<data dir>/orchestrator.db`` unless a location
says otherwise: a path, a ``sqlite:///PATH`` URL, or a ``postgresql://`` URL.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["db_location", "default_db_path", "is_postgres", "sqlite_path"]

_SQLITE_URL = "sqlite:///"


def default_db_path() -> Path:
    """``<data dir>/orchestrator.db`` (see the module docstring for the data dir)."""
    data_dir = os.environ.get("ORCHESTRATOR_DATA_DIR")
    if data_dir:
        return Path(data_dir) / "orchestrator.db"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "orchestrator" / "orchestrator.db"


def is_postgres(location: Path | str) -> bool:
    """Whether a store location is a Postgres URL (else a SQLite file)."""
    return str(location).startswith(("postgresql://", "postgres://"))


def sqlite_path(location: Path | str) -> Path:
    """The file of a SQLite location: a path, or a ``sqlite:///PATH`` URL."""
    return Path(str(location).removeprefix(_SQLITE_URL))


def db_location(path: str | Path | None) -> Path | str:
    """A store location: a path (``sqlite:///PATH`` too), a ``postgresql://`` URL kept as text,
    or the default file."""
    if path is None:
        return default_db_path()
    return str(path) if is_postgres(path) else sqlite_path(path)
