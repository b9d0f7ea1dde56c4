"""The regulator's report as an Excel workbook: a summary sheet, then one sheet per section with bold frozen
headers, filters, dates as dates and widths that fit, every text cell made safe to open (``export.neutralise``).
The workbook is for people: headers, labels and rule titles come from the presentation layer (``report.people``),
never the model's column names or codes."""

from __future__ import annotations

import io

import pandas as pd

from . import people
from .model import Report

SHEETS = {"notifications": "Notifications", "ldar": "LDAR findings", "action_levels": "Action levels",
          "totals": "Totals by site type", "emissions": "Emissions"}


def _cell(v):
    from ..export import neutralise

    if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and pd.isna(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return (v.tz_convert("UTC").tz_localize(None) if v.tzinfo else v).to_pydatetime()
    if hasattr(v, "item"):
        return v.item()
    return neutralise(v) if isinstance(v, str) else v


def to_xlsx(report: Report) -> bytes:
    """The workbook's bytes (openpyxl). Times are UTC, shown as YYYY-MM-DD HH:MM."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    bold = Font(bold=True)
    m = report.meta
    lines = [("Report", m["title"]), ("Operator", m["operator"]),
             ("Period (UTC)", f"{m['period_start']:%Y-%m-%d} to {m['period_end']:%Y-%m-%d}"),
             ("As of (scores' clock)", m["as_of"]), ("Generated", m["generated_at"]), ("By", m["generated_by"]),
             ("Sites / with leaks / leaks", f"{m['n_sites']} / {m['n_sites_with_leaks']} / {m['n_leaks']}"),
             ("Estimated emissions in the period (t CH4, 90% interval)",
              f"{report.emissions_total.get('tonnes', 0):.2f} ({report.emissions_total.get('tonnes_lo', 0):.2f}–"
              f"{report.emissions_total.get('tonnes_hi', 0):.2f})")]
    lines += [(f"Audit chain head: {k}", f"{v['hash']} ({v['n']} events)") for k, v in m["audit_chain_heads"].items()]
    lines += [("Unmatched notices in the period (no operator)", ", ".join(m["unmatched_notifications_in_period"])
               or "none"), ("Method", m["method"]), ("Not included", m["not_included"]), ("OGMP 2.0", m["ogmp"])]
    for i, (k, v) in enumerate(lines, start=1):
        ws.cell(i, 1, k).font = bold
        c = ws.cell(i, 2, _cell(v))
        c.alignment = Alignment(wrap_text=True, vertical="top")
        if isinstance(v, pd.Timestamp):
            c.number_format = "yyyy-mm-dd hh:mm"
    ws.column_dimensions["A"].width = 44
    ws.column_dimensions["B"].width = 110
    head = PatternFill("solid", fgColor="DDE5F0")
    for key, title in SHEETS.items():
        df, fmts = people.sheet(report, key)
        sh = wb.create_sheet(title)
        for j, col in enumerate(df.columns, start=1):
            c = sh.cell(1, j, col)
            c.font, c.fill = bold, head
        for i, row in enumerate(df.itertuples(index=False), start=2):
            for j, v in enumerate(row, start=1):
                c = sh.cell(i, j, _cell(v))
                if isinstance(v, pd.Timestamp):
                    c.number_format = "yyyy-mm-dd hh:mm"
                elif fmts[j - 1] and c.value is not None:
                    c.number_format = fmts[j - 1]
        sh.freeze_panes = "A2"
        if len(df.columns):
            sh.auto_filter.ref = f"A1:{get_column_letter(len(df.columns))}{max(len(df) + 1, 1)}"
        for j, col in enumerate(df.columns, start=1):
            vals = [len(str(col))] + [len(str(x)) for x in df[col].head(200) if _cell(x) is not None]
            sh.column_dimensions[get_column_letter(j)].width = min(max(vals) + 2, 60)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
