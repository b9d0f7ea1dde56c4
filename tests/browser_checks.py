"""What the browser tests look for on a rendered page (imported by tests/test_browser.py, not a test module): text a
person should never read (raw codes, None/nan/NaT, JSON, rule ids, +00:00, long floats, snake_case headers) and text
cut off by its container. Both read the DOM as Chromium rendered it, including the data grids' cells, which the grid
keeps in an accessible table inside its canvas."""

from __future__ import annotations

import json
import re

import pandas as pd

# rule ids as the compliance rules file spells them: a word with an underscore, a colon, an action
RAW = {
    "None": re.compile(r"(?<![\w-])None(?![\w-])"),
    "nan": re.compile(r"(?<![\w-])(nan|NaN)(?![\w-])"),
    "NaT": re.compile(r"(?<![\w-])NaT(?![\w-])"),
    "JSON": re.compile(r"\{\""),
    "rule id": re.compile(r"\b[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+:[a-z_]+\b"),
    "+00:00": re.compile(r"\+00:00"),
    "long float": re.compile(r"(?<![\w.])-?\d+\.\d{5,}(?![\d])"),
}
SNAKE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")

# Visible text of the main area and the sidebar, the grids' cells and headers, metric labels and values, tab labels;
# with the element each came from, so a failure says where.
TEXTS_JS = r"""() => {
  const out = [];
  const vis = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  for (const root of document.querySelectorAll('[data-testid=stMain], [data-testid=stSidebar]')) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    let n;
    while ((n = walker.nextNode())) {
      const p = n.parentElement;
      const skip = 'canvas, script, style, code, [data-testid=stCode], [data-testid=stElementToolbar]';
      if (!p || p.closest(skip)) continue;
      const t = n.textContent.trim();
      if (t && vis(p)) out.push({kind: 'text', text: t});
    }
  }
  for (const th of document.querySelectorAll('canvas[data-testid=data-grid-canvas] th'))
    out.push({kind: 'header', text: th.textContent.trim()});
  for (const td of document.querySelectorAll('canvas[data-testid=data-grid-canvas] td'))
    out.push({kind: 'cell', text: td.textContent.trim()});
  for (const e of document.querySelectorAll('[data-testid=stMetricLabel], [role=tab], label, h1, h2, h3, h4'))
    if (vis(e)) out.push({kind: 'header', text: e.textContent.trim()});
  return out;
}"""

# Elements whose text is wider than the box that shows it (ellipsis or hidden overflow), and grid cells whose text
# does not fit their column: measured with the grid's own font; free text longer than 40 characters may be cut in a
# grid cell (the whole text is one click away), a date, number, id or label may not.
CLIPPED_JS = r"""() => {
  const out = [];
  const ctx = document.createElement('canvas').getContext('2d');
  for (const e of document.querySelectorAll('[data-testid=stMain] *, [data-testid=stSidebar] *')) {
    const skip = 'canvas, [data-testid=stDeckGlJsonChart], .js-plotly-plot, textarea, input, [data-baseweb=select]';
    if (e.closest(skip)) continue;
    if (!e.textContent.trim() || e.clientWidth <= 0 || e.scrollWidth <= e.clientWidth + 1) continue;
    const s = getComputedStyle(e);
    // a leaf cut by its own overflow, or a box that ends its text in an ellipsis (a metric's label: the text sits
    // in an inline child, which has no width of its own)
    if ((!e.childElementCount && (s.overflowX === 'hidden' || s.overflowX === 'clip' || s.textOverflow === 'ellipsis'))
        || (s.textOverflow === 'ellipsis' && s.overflowX !== 'visible' && s.whiteSpace === 'nowrap'))
      out.push({where: e.getAttribute('data-testid') || e.tagName, text: e.textContent.trim().slice(0, 80)});
  }
  for (const canvas of document.querySelectorAll('canvas[data-testid=data-grid-canvas]')) {
    const key = Object.keys(canvas).find(k => k.startsWith('__reactFiber'));
    let f = key && canvas[key], cols = null, depth = 0;
    while (f && depth++ < 80) {
      const p = f.memoizedProps;
      if (p && Array.isArray(p.columns) && p.columns.length && p.columns[0].width !== undefined) {
        cols = p.columns;
        break;
      }
      f = f.return;
    }
    if (!cols) continue;
    const host = canvas.closest('.stDataFrameGlideDataEditor') || canvas;
    const fam = getComputedStyle(host).getPropertyValue('--gdg-font-family') || 'sans-serif';
    ctx.font = '400 14px ' + fam;
    const byTitle = new Map(cols.map((c) => [c.title, c]));
    const heads = new Map([...canvas.querySelectorAll('thead th')].map((th) => [th.getAttribute('aria-colindex'),
                                                                                th.textContent.trim()]));
    for (const td of canvas.querySelectorAll('td')) {
      const c = byTitle.get(heads.get(td.getAttribute('aria-colindex'))), t = td.textContent.trim();
      if (!c || !t || t.length > 40) continue;
      const need = ctx.measureText(t).width + 16;
      if (need > c.width + 1)
        out.push({where: 'grid column ' + (c.title || c.id), text: t, need: Math.round(need), width: c.width});
    }
  }
  return out;
}"""


def raw_values(items: list[dict]) -> list[str]:
    """Every raw value in the texts (``TEXTS_JS``), as "what: the text"."""
    bad = []
    for it in items:
        t = it["text"]
        for name, rx in RAW.items():
            if rx.search(t):
                bad.append(f"{name}: {t[:120]!r}")
        if it["kind"] == "header" and SNAKE.search(t):
            bad.append(f"snake_case header: {t[:120]!r}")
    return sorted(set(bad))


def table_texts(dataframes) -> list[dict]:
    """The headers and every text cell of AppTest's ``at.dataframe`` elements, as ``TEXTS_JS`` gives them, *all* of
    them: the browser only has the rows and columns in view (the grid draws the rest when scrolled to, and a hidden
    column when the column menu shows it)."""
    out = []
    for d in dataframes:
        cfg = json.loads(d.proto.columns or "{}")
        for col in d.value.columns:
            c = cfg.get(f"col:{col}") or cfg.get(str(col)) or {}
            out.append({"kind": "header", "text": str(c.get("label") or col)})
            s = d.value[col]
            if s.dtype == object or str(s.dtype).startswith(("str", "string")):
                out += [{"kind": "cell", "text": v} for v in pd.unique(s.dropna().astype(str))]
    return out
