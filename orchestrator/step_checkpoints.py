"""Step checkpoints: each chunk's LangGraph run saved after every step, in SQLite.

The job service commits results per chunk; a chunk caught by a crash used to run again from its
first step. With step checkpoints (``Settings.step_checkpoints``, on by default in the service)
the chunk's graph runs under a LangGraph checkpointer, one thread per chunk
(``<job id>:<first item index>``): on resume, a chunk whose run had started continues after its
last finished step (``ainvoke(None)``), and one that had finished but not yet committed is
committed from its saved state without running anything. A chunk's thread is deleted once its
results are committed, so the file holds only the chunks in flight.

The state saved is the chunk's columns (a few hundred kB for 2,048 turns); ``bench/run_all.py``
and the closing notes give the cost. The file is ``<data dir>/step_checkpoints.db``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

__all__ = ["chunk_thread", "open_step_checkpoints"]

#: the one custom type in a chunk's state (besides builtins), allowed through the checkpoint
#: deserializer explicitly
_STATE_TYPES = [("orchestrator.state", "StepStats")]


def chunk_thread(job_id: str, first_index: int) -> str:
    """The checkpoint thread of the chunk of ``job_id`` that starts at item ``first_index``."""
    return f"{job_id}:{first_index}"


@contextlib.asynccontextmanager
async def open_step_checkpoints(path: Path) -> AsyncIterator[Any]:
    """A LangGraph ``AsyncSqliteSaver`` on ``path`` (one connection, for one job run)."""
    import aiosqlite
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(path)) as conn:
        serde = JsonPlusSerializer(allowed_msgpack_modules=_STATE_TYPES)
        saver = AsyncSqliteSaver(conn, serde=serde)
        await saver.setup()
        yield saver
