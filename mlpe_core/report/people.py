"""The report's sections as people read them in the PDF and the workbook: the presentation layer's labels, rule
titles, headers and formats (``present.TABLES["report_*"]``). The JSON is for machines and keeps the model's codes
and column names (:meth:`~mlpe_core.report.model.Report.to_dict`)."""

from __future__ import annotations

import pandas as pd

from .. import present
from .model import Report

TABLES = {"notifications": "report_notifications", "ldar": "report_ldar", "action_levels": "report_actions",
          "totals": "report_totals", "emissions": "report_emissions"}


def section(report: Report, key: str) -> pd.DataFrame:
    """The section's frame, its column names kept; the emissions' site-type rows named by the type's label (their
    ``name`` is the type's code)."""
    df = report.frames()[key]
    if key == "emissions" and len(df):
        kind = df["level"] == "site type"
        df = df.assign(name=df["name"].where(~kind, df["name"].map(lambda c: present.label("asset_type", c))))
    return df


def shown(report: Report, key: str) -> pd.DataFrame:
    """The section with its values as text and numbers people read (labels, titles, UTC times as text, blanks)."""
    return present.display_frame(section(report, key), TABLES[key])


def sheet(report: Report, key: str) -> tuple[pd.DataFrame, list[str | None]]:
    """The section as a workbook sheet: human headers, labels, naive UTC times and each column's number format."""
    df = section(report, key)
    return present.people_frame(df, TABLES[key])


def header(key: str, column: str) -> str:
    return present.header(column, table=TABLES[key])
