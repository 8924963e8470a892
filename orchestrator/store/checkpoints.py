"""Step checkpoints: each chunk's LangGraph run saved after every step, in SQLite.

The job service commits results per chunk; a chunk caught by a crash used to run again from its
first step. With step checkpoints (``Settings.step_checkpoints``, on by default in the service)
the chunk's graph runs under a LangGraph checkpointer, one thread per chunk
(``<job id>:<first item index>``): on resume, a chunk whose run had started continues after its
last finished step (``ainvoke(None)``), and one that had finished but not yet committed gets its
final state back without running anything. A chunk's thread is deleted once its
results are committed, so the file holds only the chunks in flight.

The state saved is the chunk's columns (a few hundred kB for 2,048 turns); ``bench/run_all.py``
and the closing notes give the cost. The file is ``<data dir>/step_checkpoints.db``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.store.private_file import create_private

if TYPE_CHECKING:
    from orchestrator.config import Settings

__all__ = ["chunk_thread", "open_checkpointer", "open_step_checkpoints"]

#: the one custom type in a chunk's state (besides builtins), allowed through the checkpoint
#: deserializer explicitly; checkpoints written before the package was split name its old module
_STATE_TYPES = [
    ("orchestrator.accounting.ledger", "StepStats"),
    ("orchestrator.state", "StepStats"),
]


def chunk_thread(job_id: str, first_index: int) -> str:
    """The checkpoint thread of the chunk of ``job_id`` that starts at item ``first_index``."""
    return f"{job_id}:{first_index}"


def open_step_checkpoints(settings: Settings) -> contextlib.AbstractAsyncContextManager[Any]:
    """The step checkpointer of a job run (see :func:`open_checkpointer`)."""
    return open_checkpointer(settings, "step_checkpoints.db")


def open_checkpointer(
    settings: Settings, sqlite_file: str
) -> contextlib.AbstractAsyncContextManager[Any]:
    """A LangGraph checkpointer where the store is: the Postgres database of a ``postgresql://``
    store (``langgraph-checkpoint-postgres``), else ``<data dir>/<sqlite_file>``. One connection,
    for one job run or one review answer."""
    if settings.postgres_store:
        return _postgres(settings.store_location)
    return _sqlite(settings.data_dir / sqlite_file)


def _serde() -> Any:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=_STATE_TYPES)


@contextlib.asynccontextmanager
async def _postgres(url: str) -> AsyncIterator[Any]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    conn = await AsyncConnection.connect(
        url, autocommit=True, prepare_threshold=0, row_factory=dict_row
    )
    async with conn:
        saver = AsyncPostgresSaver(conn, serde=_serde())
        await saver.setup()
        yield saver


@contextlib.asynccontextmanager
async def _sqlite(path: Path) -> AsyncIterator[Any]:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    create_private(path)
    async with aiosqlite.connect(str(path)) as conn:
        saver = AsyncSqliteSaver(conn, serde=_serde())
        await saver.setup()
        yield saver
