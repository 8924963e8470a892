"""The inline items of a JSON job body, counted and measured before the body is parsed.

A 16 MiB body of ``{"items": [{}, {}, ...]}`` holds ~5.6M items: parsing it takes seconds and
hundreds of MB before any item cap could be checked. :func:`check_inline_items` finds the items'
boundaries with a few vectorised passes over the bytes (~0.5 s and no Python object per item at
16 MiB) and rejects a body over ``max_inline_items`` or with an item over ``max_item_bytes``
(413, naming the limit) before anything is built.

How: escaped backslashes and quotes are blanked (same length), so every remaining ``"`` opens or
closes a string; brackets outside strings give each byte's nesting depth; the items are the
elements of the arrays one level inside the top-level object (``items`` is the only array there
in a valid body), separated by the commas at that depth. A malformed body is measured roughly
and then rejected by the parser anyway.

Example::

    check_inline_items(b'{"graph": "g", "items": [{"id": 1}]}', max_items=10, max_item_bytes=64)
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import ItemTooLarge, TooManyItems

__all__ = ["check_inline_items", "inline_item_sizes"]

_OPEN_ARRAY, _OPEN_OBJECT, _CLOSE_ARRAY, _CLOSE_OBJECT = 0x5B, 0x7B, 0x5D, 0x7D
_QUOTE, _COMMA = 0x22, 0x2C
_BLANK = [0x20, 0x09, 0x0A, 0x0D]


def check_inline_items(body: bytes, *, max_items: int, max_item_bytes: int) -> None:
    """TooManyItems past ``max_items`` items, ItemTooLarge for an item over ``max_item_bytes``."""
    import numpy as np

    sizes = inline_item_sizes(body)
    if len(sizes) > max_items:
        raise TooManyItems(
            f"an inline job holds at most {max_items} items (the max_inline_items setting), "
            f"this one has {len(sizes)}; send bigger jobs as a JSONL upload"
        )
    over = np.flatnonzero(sizes > max_item_bytes)
    if len(over):
        index = int(over[0])
        raise ItemTooLarge(
            f"item {index + 1} is {int(sizes[index])} bytes, over the {max_item_bytes} bytes an "
            "item may have (the max_item_bytes setting); keep large data out of the items"
        )


def inline_item_sizes(body: bytes) -> Any:
    """The byte size of each element of the arrays at depth 2 (the ``items``), in order, as a
    numpy array (one Python int per item would cost more than the body)."""
    import numpy as np

    text = body.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    raw = np.frombuffer(text, dtype=np.uint8)
    inside = np.bitwise_xor.accumulate((raw == _QUOTE).view(np.uint8)).view(bool)
    opens = (raw == _OPEN_ARRAY) | (raw == _OPEN_OBJECT)
    closes = (raw == _CLOSE_ARRAY) | (raw == _CLOSE_OBJECT)
    step = opens.view(np.int8) - closes.view(np.int8)
    step[inside] = 0  # brackets inside strings are text
    depth = np.cumsum(step, dtype=np.int32)
    nonblank = np.cumsum(~np.isin(raw, _BLANK), dtype=np.int32)
    openers = np.flatnonzero((step == 1) & (depth == 2))
    arrays = openers[raw[openers] == _OPEN_ARRAY]
    closers = np.append(np.flatnonzero((step == -1) & (depth == 1)), len(raw))  # or unclosed
    commas = np.flatnonzero((raw == _COMMA) & ~inside & (depth == 2))
    del opens, closes, step, inside, depth
    # a comma separates items when the container it sits in (the last opener before it) is an array
    within = raw[openers[np.searchsorted(openers, commas) - 1]] == _OPEN_ARRAY
    ends = closers[np.searchsorted(closers, arrays)]
    bounds = np.sort(np.concatenate((arrays, commas[within], ends)))
    starts, stops = bounds[:-1], bounds[1:]
    element = ~np.isin(starts, ends)  # from an opener or a comma to the next comma or closer
    starts, stops = starts[element], stops[element]
    # an empty array, "[ ]", holds no element
    element = (nonblank[stops - 1] - nonblank[starts]) > 0
    element |= np.isin(stops, commas)
    return (stops - starts - 1)[element]
