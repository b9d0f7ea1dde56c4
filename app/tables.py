"""Tables people read: the app's st.dataframe calls go through :func:`show`, which takes its headers, value
labels, units and formats from ``mlpe_core.present`` (the same words as the workbook and the KML), shows the key
columns and keeps the others one click away (the table's column menu), so no code, None or snake_case header
reaches a page. A missing value is an empty cell (:data:`EMPTY` as the placeholder: the grid draws "None"
otherwise, on its canvas, where the DOM does not show it)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from app import common as c
from mlpe_core import present
from mlpe_core.export import to_csv_text

CC = st.column_config
EMPTY = ""  # st.dataframe's placeholder for a missing value
WIDTH = {"small": 80, "medium": 180, "large": 420}
# minimum widths that fit the longest value of a kind, so nothing is cut ("2026-09-" was a due date)
MIN_WIDTH = {"date": 110, "datetime": 150, "time": 150, "seconds": 170, "rate": 95, "pct": 90, "coord": 95,
             "int": 60, "km": 80}


def _header_px(head: str) -> int:
    """About the width a header needs in the grid's 14 px font (with its sort and menu padding)."""
    return int(7.3 * len(head) + 30)


def _config(col: present.Column, unit: str, table: str):
    head = present.header(col.name, unit, table)
    k = col.kind
    width = WIDTH.get(col.width or "") or (max(MIN_WIDTH[k], _header_px(head)) if k in MIN_WIDTH else None)
    # (a fixed width fits its header too; the others take the width of what they hold, header included)
    common = {"help": col.help, "width": width, "pinned": col.pinned or None}
    if k == "int":
        cfg = CC.NumberColumn(head, format="%d", **common)
    elif k in ("number", "km"):
        cfg = CC.NumberColumn(head, format="%.1f", **common)
    elif k == "p":
        cfg = CC.NumberColumn(head, format="%.3f", **common)
    elif k == "coord":
        cfg = CC.NumberColumn(head, format="%.4f", **common)
    elif k == "version":
        cfg = CC.NumberColumn(head, format="v%d", **common)
    elif k == "rate":
        d = present.UNIT_DIGITS[unit]
        cfg = CC.NumberColumn(head, format=f"%.{d}f", **common)
    elif k == "pct":
        cfg = CC.ProgressColumn(head, min_value=0, max_value=100, format="%.0f%%", **common)
    else:  # text, labels, and times as UTC text (present.display_frame): sortable, and read out as shown
        cfg = CC.TextColumn(head, **common)
    if not col.key:
        cfg = {**cfg, "hidden": True}  # the column menu (eye icon) shows it again
    return cfg


def config(df: pd.DataFrame, table: str, unit: str | None = None) -> tuple[list[str], dict]:
    """(column order, column config) of ``df`` as table ``table`` of ``mlpe_core.present``."""
    unit = unit or c.unit()
    cols = present.columns(table, df)
    return [x.name for x in cols], {x.name: _config(x, unit, table) for x in cols}


# what an empty table of these says instead of a bare grid (a caller may say it better with ``empty=``)
EMPTY_SAYS = {"audit": "No recorded action here yet: a note, a rank override, a mark for dispatch, a field visit or "
                       "a status change is recorded as it happens (the Audit trail page has every action)."}


def show(df: pd.DataFrame, table: str, key: str, where=st, unit: str | None = None, empty: str | None = None,
         **kw):
    """``df`` as a people-ready table (see the module): values labelled and converted by
    ``present.display_frame``, headers and formats from the table's specification. ``kw`` goes to st.dataframe
    (height, on_select, selection_mode ...). Returns what st.dataframe returns. An empty ``df`` of a table that
    has something to say (``empty``, else :data:`EMPTY_SAYS`; never one with row selection) is that sentence
    instead of a bare grid, and returns None."""
    says = empty or EMPTY_SAYS.get(table)
    if df.empty and says and "on_select" not in kw:
        where.info(says, icon=":material/info:")
        return None
    unit = unit or c.unit()
    order, cfg = config(df, table, unit)
    shown = present.display_frame(df[order], table, unit)  # only what the table shows or keeps one click away
    return where.dataframe(shown, hide_index=True, key=key, column_order=order, column_config=cfg, placeholder=EMPTY,
                           **kw)


PEOPLE_CSV_HELP = "this table as shown: headers in words, values labelled, rates in the unit chosen in the sidebar"


def people_csv(df: pd.DataFrame, table: str, unit: str | None = None) -> Callable[[], str]:
    """The CSV of ``df`` as table ``table`` shows it (``present.people_csv_frame``: its headers, labels, rates,
    percentages and UTC times as on the page), built only when its download button is clicked."""
    unit = unit or c.unit()
    return lambda: to_csv_text(present.people_csv_frame(df, table, unit))


def height(n: int, most: int = 560) -> int:
    """A table height that shows ``n`` rows without empty space, up to ``most`` pixels."""
    return min(38 + 35 * max(n, 1), most)
