"""Report: the regulator's report for an operator and a period, as data (:class:`Report`, the JSON) and as PDF and
XLSX files. The desk builds it (``desk.report``) from its own answers; :func:`render` writes it."""

from __future__ import annotations

import json

from .model import ACTION_COLUMNS, LDAR_COLUMNS, NOTICE_COLUMNS, TOTAL_COLUMNS, Report, build

FORMATS = ("pdf", "xlsx", "json")

__all__ = ["ACTION_COLUMNS", "build", "FORMATS", "LDAR_COLUMNS", "NOTICE_COLUMNS", "render", "Report",
           "TOTAL_COLUMNS"]


def render(report: Report, fmt: str) -> bytes:
    """The report as ``pdf``, ``xlsx`` or ``json`` bytes."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=1, allow_nan=False).encode("utf-8")
    if fmt == "xlsx":
        from .xlsx import to_xlsx

        return to_xlsx(report)
    if fmt == "pdf":
        from .pdf import to_pdf

        return to_pdf(report)
    raise ValueError(f"unknown report format '{fmt}' (pdf, xlsx or json)")
