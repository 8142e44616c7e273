"""Which devices cuagent top draws in full, which compact and which not at all, so that a
frame never takes more rows than the terminal has.

The rule, the same for every vendor: every device in full when all the full panels fit; else
the devices ``--device`` selects in full (compact if even that does not fit) and the others
compact, in order, until the rows run out; the rest are not drawn, and the caller says how
many. One form for all the unselected devices (never some full, some compact) keeps a
device's place and look steady from frame to frame.

Pure arithmetic on row counts: the caller measures each form (lazily: a device past the
rows is never measured, which matters for a relay's thousands).
"""

from __future__ import annotations

from typing import Callable, Collection, Optional

FULL, COMPACT, HIDDEN = "full", "compact", "hidden"


def fit(count: int, rows: Optional[int], full_rows: Callable[[int], int], compact_rows: Callable[[int], int],
        selected: Collection[int] = ()) -> list[str]:
    """The form of each of ``count`` devices for ``rows`` rows (None: no limit).

    When devices go compact, one row is kept for the line that says so; when some are not
    drawn, one more for the line that counts them."""
    if not selected:
        if rows is None:
            return [FULL] * count
        used = 0
        for i in range(count):
            used += full_rows(i)
            if used > rows:
                break
        else:
            return [FULL] * count
    if rows is None:
        return [FULL if i in selected else COMPACT for i in range(count)]
    forms = _allot(count, rows - 1, full_rows, compact_rows, selected)
    if HIDDEN in forms:
        forms = _allot(count, rows - 2, full_rows, compact_rows, selected)
    return forms


def _allot(count: int, rows: int, full_rows: Callable[[int], int], compact_rows: Callable[[int], int],
           selected: Collection[int]) -> list[str]:
    forms = [HIDDEN] * count
    left = rows
    for i in sorted(selected):
        for form, need in ((FULL, full_rows(i)), (COMPACT, compact_rows(i))):
            if need <= left:
                forms[i], left = form, left - need
                break
    for i in range(count):
        if i in selected:
            continue
        need = compact_rows(i)
        if need > left:
            break
        forms[i], left = COMPACT, left - need
    return forms
