"""The regulator's report as an Excel workbook: a summary sheet, then one sheet per section, written as every
workbook's tables are (``export.add_sheets``: bold frozen headers, filters, dates as dates, widths that fit, every
text cell made safe to open). The workbook is for people: headers, labels and rule titles come from the
presentation layer (``report.people``), never the model's column names or codes."""

from __future__ import annotations

import io

import pandas as pd

from ..export import add_sheets, xl_value
from . import people
from .model import Report

SHEETS = {"notifications": "Notifications", "ldar": "LDAR findings", "action_levels": "Action levels",
          "totals": "Totals by site type", "emissions": "Emissions"}


def to_xlsx(report: Report) -> bytes:
    """The workbook's bytes (openpyxl). Times are UTC, shown as YYYY-MM-DD HH:MM."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

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
        c = ws.cell(i, 2, xl_value(v))
        c.alignment = Alignment(wrap_text=True, vertical="top")
        if isinstance(v, pd.Timestamp):
            c.number_format = "yyyy-mm-dd hh:mm"
    ws.column_dimensions["A"].width = 44
    ws.column_dimensions["B"].width = 110
    add_sheets(wb, {title: people.sheet(report, key) for key, title in SHEETS.items()})  # as every workbook's tables
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
