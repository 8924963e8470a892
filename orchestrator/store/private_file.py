"""Store files are created readable by their owner only (0600): they hold customer data.

SQLite creates a database file with the process' umask (0644 on most systems: readable by every
local user), and its ``-wal`` and ``-shm`` files take the database file's mode. Creating the file
first with mode 0600, before SQLite opens it, makes all three private. An existing file keeps
its mode (an operator may have chosen it).

Example::

    create_private(data_dir / "orchestrator.db")   # then sqlite3.connect(...)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["create_private"]


def create_private(path: Path) -> None:
    """Create ``path`` (and its folder) empty with mode 0600, unless it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
