"""SQL text as the store writes it, read token by token: placeholders and statement boundaries.

The store's queries are written once, with ``?`` placeholders (SQLite's ``qmark`` style), and run
on SQLite as they are. psycopg wants ``%s`` and takes every ``%`` as the start of a placeholder,
so for Postgres the text is converted here: a ``?`` becomes ``%s`` and a ``%`` becomes ``%%`` —
but only where they are SQL, never inside a string literal (``'?'``), a quoted name (``"a?"``) or
a comment (``-- why?``). A blind ``sql.replace("?", "%s")`` turned ``WHERE note = 'why?'`` into
a query with one placeholder too many.

:func:`split_statements` cuts a script into statements at the ``;`` that end them, with the same
rules (a ``;`` inside a literal or a comment does not end a statement), for schema migrations.

Example::

    >>> to_pyformat("SELECT '?', x FROM t WHERE y LIKE '50%' AND z = ?")
    "SELECT '?', x FROM t WHERE y LIKE '50%%' AND z = %s"
    >>> split_statements("CREATE TABLE a (x TEXT DEFAULT ';'); -- done;\\n")
    ["CREATE TABLE a (x TEXT DEFAULT ';')"]
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

__all__ = ["skill_filter", "split_statements", "to_pyformat"]


def skill_filter(skill: str, column: str = "skill") -> tuple[str, list[object]]:
    """A WHERE condition and its parameters matching one skill: ``name@version`` exactly, or every
    version of ``name``. By prefix, not ``LIKE``: ``_`` in a skill's name is no wildcard there
    (``turn_intent`` must not match ``turnXintent@1.0.0``)."""
    if "@" in skill:
        return f"{column} = ?", [skill]
    return f"({column} = ? OR substr({column}, 1, ?) = ?)", [skill, len(skill) + 1, f"{skill}@"]


def _pieces(sql: str) -> Iterator[tuple[bool, str]]:
    """``(is_code, text)`` runs of ``sql``: code, or a literal / quoted name / comment whole."""
    i, start, n = 0, 0, len(sql)
    while i < n:
        char = sql[i]
        if char in "'\"":
            end = _quote_end(sql, i, char)
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            end = n if newline < 0 else newline + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            end = n if close < 0 else close + 2
        else:
            i += 1
            continue
        if start < i:
            yield True, sql[start:i]
        yield False, sql[i:end]
        i = start = end
    if start < n:
        yield True, sql[start:]


def _quote_end(sql: str, i: int, quote: str) -> int:
    """Index just past the literal opened at ``i`` (a doubled quote is an escaped one)."""
    j = i + 1
    while True:
        close = sql.find(quote, j)
        if close < 0:
            return len(sql)  # unterminated: the database will say so; nothing to convert
        if sql.startswith(quote * 2, close):
            j = close + 2
            continue
        return close + 1


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """``sql`` with ``?`` placeholders as psycopg's ``%s`` (and literal ``%`` as ``%%``).

    Cached: the store sends the same few dozen texts over and over."""
    out = []
    for is_code, text in _pieces(sql):
        text = text.replace("%", "%%")  # psycopg reads % everywhere, literals included
        out.append(text.replace("?", "%s") if is_code else text)
    return "".join(out)


def split_statements(script: str) -> list[str]:
    """The statements of ``script``, stripped, without empty ones (a comment alone is empty)."""
    statements: list[str] = []
    current: list[str] = []
    for is_code, text in _pieces(script):
        if not is_code:
            # a comment is dropped (it may hold a ';'), a literal kept
            current.append("\n" if text.startswith(("--", "/*")) else text)
            continue
        *ends, rest = text.split(";")
        for part in ends:
            current.append(part)
            statements.append("".join(current))
            current = []
        current.append(rest)
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]
