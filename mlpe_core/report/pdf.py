"""The regulator's report as a PDF (reportlab), with its charts (matplotlib, drawn off-screen to PNG).

Layout, A4 landscape: the header (operator, period, clock, audit chain heads), totals by site type, two charts
(clocks met on time, late or open per section; estimated emissions by site type with their 90 % interval), one
table per section (notifications, LDAR findings, action-level exceedances), the emissions by site, the records
behind every row (notification rows, validation, lifecycle-event and audit-event ids) and the method. Every value
drawn comes from the :class:`~mlpe_core.report.model.Report`; the PDF computes nothing. The PDF is for people: its
values are the presentation layer's (``report.people``: labels, rule titles, UTC times, numbers), never the model's
codes or rule ids.
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

import pandas as pd

from .. import present
from . import people
from .model import Report

NOTICE_VIEW = [("notification_id", "Notice"), ("leak_id", "Leak"), ("site", "Site"), ("received_at", "Received"),
               ("investigate_due", "Investigate by"), ("investigated_at", "Investigated"), ("finding", "Finding"),
               ("repaired_at", "Repaired"), ("report_due", "Report by"), ("reported_at", "Reported"),
               ("status", "Status")]
LDAR_VIEW = [("leak_id", "Leak"), ("site", "Site"), ("rule", "Rule"), ("found_at", "Found"),
             ("attempt_due", "Attempt by"), ("attempted_at", "Attempted"), ("repair_due", "Repair by"),
             ("repaired_at", "Repaired"), ("delay_reason", "Delay of repair"), ("status", "Status")]
ACTION_VIEW = [("site", "Site"), ("rule", "Rule"), ("exceeded_on", "Exceeded on"), ("exceedance", "Exceedance"),
               ("investigate_due", "Investigate by"), ("responded_at", "Responded"), ("response", "Response"),
               ("status", "Status")]
TOTAL_VIEW = [("site_type", "Site type"), ("n_sites", "Sites"), ("n_leaks", "Leaks"), ("notifications", "Notices"),
              ("notifications_on_time", "on time"), ("notifications_late", "late"), ("notifications_open", "open"),
              ("ldar_findings", "LDAR finds"), ("ldar_on_time", "on time"), ("ldar_late", "late"),
              ("ldar_open", "open"), ("exceedances", "Exceedances"), ("exceedances_on_time", "on time"),
              ("exceedances_late", "late"), ("exceedances_open", "open"), ("tonnes", "t CH4"),
              ("tonnes_lo", "5 %"), ("tonnes_hi", "95 %")]
EMISSION_VIEW = [("name", "Site"), ("site_type", "Site type"), ("n_leaks", "Leaks"), ("tonnes", "t CH4"),
                 ("tonnes_lo", "5 %"), ("tonnes_hi", "95 %"), ("t_per_year", "t/yr"), ("t_per_year_lo", "5 %"),
                 ("t_per_year_hi", "95 %")]


def fmt(v) -> str:
    """A cell as text: times to the minute (UTC), numbers as the presentation layer writes them, blanks empty.
    Codes are labelled before (``people.shown``)."""
    if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return f"{v:%Y-%m-%d %H:%M}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return present.number(v)
    return str(v)


def _charts(report: Report) -> tuple[bytes, bytes]:
    """Two PNG charts: clock outcomes per section, emissions by site type with 90 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"on_time": "#2e7d32", "late": "#c62828", "overdue": "#8e0000", "open": "#9e9e9e"}
    fig, ax = plt.subplots(figsize=(5.2, 2.6), dpi=150)
    names = [("Notifications", report.notifications), ("LDAR findings", report.ldar),
             ("Action levels", report.action_levels)]
    left = [0.0] * len(names)
    for status in ("on_time", "late", "overdue", "open"):
        vals = [int((df["status"] == status).sum()) if len(df) else 0 for _, df in names]
        ax.barh([n for n, _ in names], vals, left=left, color=colours[status],
                label=present.label("ob_outcome", status).lower())
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlabel("clocks")
    ax.set_title("Compliance clocks started in the period", fontsize=9)
    ax.legend(fontsize=7, ncol=4, loc="lower right")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    a = io.BytesIO()
    fig.savefig(a, format="png")
    plt.close(fig)
    e = report.emissions[report.emissions["level"] == "site type"]
    fig, ax = plt.subplots(figsize=(5.2, 2.6), dpi=150)
    if len(e):
        lo = (e["tonnes"] - e["tonnes_lo"]).clip(lower=0)
        hi = (e["tonnes_hi"] - e["tonnes"]).clip(lower=0)
        ax.bar(e["name"].map(lambda c: present.label("asset_type", c)), e["tonnes"], yerr=[lo, hi], color="#1565c0",
               capsize=3)
    ax.set_ylabel("t CH4 in the period")
    ax.tick_params(axis="x", labelrotation=20)
    ax.set_title("Estimated emissions by site type (90 % interval)", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    b = io.BytesIO()
    fig.savefig(b, format="png")
    plt.close(fig)
    return a.getvalue(), b.getvalue()


def to_pdf(report: Report) -> bytes:
    """The PDF's bytes."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, LongTable, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    cell = styles["BodyText"].clone("cell", fontSize=6.5, leading=8)
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    m = report.meta

    def p(text: str, style=small) -> Paragraph:
        return Paragraph(escape(str(text)), style)

    def table(df: pd.DataFrame, view: list[tuple[str, str]], widths: list[float] | None = None):
        head = [Paragraph(f"<b>{escape(t)}</b>", cell) for _, t in view]
        rows = [[p(fmt(getattr(r, c) if c in df.columns else None), cell) for c, _ in view]
                for r in df.itertuples(index=False)]
        t = LongTable([head, *rows], repeatRows=1, colWidths=widths)
        t.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde5f0")),
                               ("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        return t

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(1.2 * cm, 0.7 * cm, f"{m['title']} · {m['period_start']:%Y-%m-%d} to "
                          f"{m['period_end']:%Y-%m-%d} · as of {m['as_of']:%Y-%m-%d %H:%M} UTC")
        canvas.drawRightString(landscape(A4)[0] - 1.2 * cm, 0.7 * cm, f"page {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=landscape(A4), leftMargin=1.2 * cm, rightMargin=1.2 * cm,
                            topMargin=1.2 * cm, bottomMargin=1.4 * cm, title=m["title"], author="MLPE",
                            subject=f"{m['operator']} {m['period_start']:%Y-%m-%d}..{m['period_end']:%Y-%m-%d}")
    heads = "; ".join(f"{k} {v['hash'][:16]}… ({v['n']} events)" for k, v in m["audit_chain_heads"].items())
    story = [Paragraph(escape(m["title"]), styles["Title"]),
             p(f"Period {m['period_start']:%Y-%m-%d} to {m['period_end']:%Y-%m-%d} (UTC), as of "
               f"{m['as_of']:%Y-%m-%d %H:%M} UTC; generated {m['generated_at']:%Y-%m-%d %H:%M} UTC by "
               f"{m['generated_by']}. {m['n_sites']} sites, {m['n_sites_with_leaks']} with leaks, {m['n_leaks']} "
               f"leaks. Audit chain heads: {heads}."),
             Spacer(1, 6), Paragraph("Totals by site type", styles["Heading2"]),
             table(people.shown(report, "totals"), TOTAL_VIEW)]
    chart_a, chart_b = _charts(report)
    story += [Spacer(1, 6), Table([[Image(io.BytesIO(chart_a), width=12.5 * cm, height=6.25 * cm),
                                    Image(io.BytesIO(chart_b), width=12.5 * cm, height=6.25 * cm)]])]
    tot = report.emissions_total
    story.append(p(f"Estimated emissions of the detected leaks in the period: {tot.get('tonnes', 0):,.2f} t CH4 "
                   f"(90 % interval {tot.get('tonnes_lo', 0):,.2f}–{tot.get('tonnes_hi', 0):,.2f}); "
                   f"{tot.get('t_per_year', 0):,.1f} t/yr annualised."))
    for title, key, view in (("Super-emitter and program notifications", "notifications", NOTICE_VIEW),
                             ("LDAR findings and repairs", "ldar", LDAR_VIEW),
                             ("Continuous-monitoring action-level exceedances and responses", "action_levels",
                              ACTION_VIEW)):
        df = people.shown(report, key)
        story += [PageBreak(), Paragraph(escape(title), styles["Heading2"])]
        story.append(table(df, view) if len(df) else p("None in the period."))
    e = people.shown(report, "emissions")
    story += [PageBreak(), Paragraph("Emissions by site", styles["Heading2"]), p(m["ogmp"]), Spacer(1, 4),
              table(e[e["level"] == "site"], EMISSION_VIEW)]
    story += [PageBreak(), Paragraph("Records behind each row", styles["Heading2"]),
              p("Ids in the store: the notification row, the validation rows (visits) that met the clocks, the "
                "lifecycle events (leakevent) and audit events (auditevent) that recorded them.")]
    n, f, a = report.notifications, report.ldar, report.action_levels
    trace = pd.concat([
        n.assign(row=list(n["notification_id"]), section="Notification"),
        f.assign(row=[f"{x} {present.rule_title(r)}" for x, r in zip(f["leak_id"], f["rule"], strict=True)],
                 section="LDAR"),
        a.assign(row=[f"{x} {fmt(t)}" for x, t in zip(a["site"], a["exceeded_on"], strict=True)],
                 section="Action level")], ignore_index=True)
    if len(trace):
        trace["notification_row"] = trace["notification_row"].map(lambda x: "" if pd.isna(x) else str(int(x))) \
            if "notification_row" in trace else ""
        story.append(table(trace, [("section", "Section"), ("row", "Row"), ("leak_id", "Leak"),
                                   ("notification_row", "Notification row"), ("validation_ids", "Validation ids"),
                                   ("leak_event_ids", "Leak event ids"), ("audit_event_ids", "Audit event ids")]))
    story += [Spacer(1, 6), Paragraph("Method", styles["Heading2"]), p(m["method"]), p(m["not_included"])]
    rules = "; ".join(f"{v['label']}: {v['citation']}{'' if v['verified'] else ' (not verified)'}"
                      for v in m["rules"].values())
    story.append(p(f"Rules: {rules}."))
    if m["unmatched_notifications_in_period"]:
        story.append(p("Notices in the period matched to no leak (no operator): "
                       + ", ".join(m["unmatched_notifications_in_period"])))
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
