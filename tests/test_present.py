"""The presentation layer (mlpe_core.present): what a table for people holds, column by column, on tiny frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpe_core import present


def _leaks() -> pd.DataFrame:
    return pd.DataFrame({
        "rank": pd.array([1, None], dtype="Int64"), "leak_id": ["L000001", "L000002"],
        "risk_band": ["HIGH", None], "p_real": [0.8, np.nan], "est_rate_kg_h": [10.0, np.nan],
        "top_reasons": ["seen by 2 independent sensors", None], "asset_type": ["well_pad", "tank_battery"],
        "rate_lo_kg_h": [5.0, np.nan], "rate_hi_kg_h": [20.0, np.nan], "override_reason": [np.nan, np.nan],
        "contributions": ['{"base": -1.0986, "aerial": 4.04}', None],
        "asset_candidates": ['[{"asset_id": "A1", "p": 1.0}]', None], "band_reason": ["HIGH: 10", None],
        "extra_kg_h": [1.0, 2.0], "notes_json": ['{"note": "gate locked"}', ""], "marked": [True, False]})


def test_internal_columns_are_not_for_people():
    names = [c.name for c in present.columns("leaks", _leaks())]
    assert not set(names) & {"contributions", "asset_candidates", "band_reason"}
    assert names[:6] == ["rank", "leak_id", "risk_band", "p_real", "est_rate_kg_h", "top_reasons"]  # key ones first


@pytest.mark.parametrize(("column", "kind", "header"), [
    ("rate_lo_kg_h", "rate", "Rate, low (scf/h)"),  # specified: a rate, in the reader's unit
    ("extra_kg_h", "rate", "Extra (scf/h)"),  # not specified: a *_kg_h number is a rate all the same
    ("notes_json", "detail", "Notes json"),  # JSON text is said in words
    ("asset_type", "label:asset_type", "Asset type"),
    ("marked", "bool", "Marked for dispatch"),
])
def test_every_column_has_a_kind_that_matches_its_header(column, kind, header):
    col = next(c for c in present.columns("leaks", _leaks()) if c.name == column)
    assert (col.kind, present.header(column, "scf/h", "leaks")) == (kind, header)


def test_display_frame_values_in_words_and_units():
    df = _leaks()
    before = df.copy()
    out = present.display_frame(df, "leaks", "scf/h")
    pd.testing.assert_frame_equal(df, before)  # input not modified
    assert out["rate_lo_kg_h"].tolist()[0] == round(5.0 / present.SCF_KG)  # the unit its header names (0 decimals)
    assert out["extra_kg_h"].tolist() == [round(1.0 / present.SCF_KG), round(2.0 / present.SCF_KG)]
    assert out["asset_type"].tolist() == ["Well pad", "Tank battery"]
    assert out["risk_band"].tolist() == ["High", ""]
    assert out["override_reason"].tolist() == ["", ""]  # an all-missing text column reads empty, not nan
    assert out["notes_json"].tolist() == ["gate locked", ""]
    assert out["marked"].tolist() == ["Yes", "No"]
    assert out["top_reasons"].tolist() == ["seen by 2 independent sensors", ""]


@pytest.mark.parametrize("values", [["a", None, "a", np.nan, "b"], [True, False, None, True, True], [1.5, 1.5, None]])
def test_each_is_map_once_per_value(values):
    s = pd.Series(values, index=range(10, 10 + len(values)), dtype=object)
    seen = []

    def f(v):
        seen.append(v)
        return "" if present._missing(v) else f"<{v}>"

    out = present._each(s, f)
    assert out.tolist() == s.map(lambda v: "" if present._missing(v) else f"<{v}>").tolist()
    assert out.index.tolist() == s.index.tolist()
    assert len(seen) == len(pd.unique(s.dropna())) + 1  # once per distinct value, once for missing


@pytest.mark.parametrize(("name", "header"), [
    ("wind_speed_m_s", "Wind speed (m/s)"), ("gust_m_s", "Gust (m/s)"), ("drive_km", "Drive (km)"),
    ("spread_m", "Spread (m)"), ("flux_g_s", "Flux (g/s)"), ("other_kg_h", "Other (kg/h)"), ("crew", "Crew")])
def test_a_header_says_its_unit_in_words_never_a_snake_case_leftover(name, header):
    """Before: a column no table specified read "Wind speed m s"."""
    assert present.header(name, "kg/h", "detections") == header


def test_an_unspecified_latitude_or_longitude_is_a_coordinate_with_six_decimals_in_a_workbook():
    df = pd.DataFrame({"yard_lat": [32.0626751], "yard_lon": [-102.4871593], "latitude": [31.894601],
                       "flat": [1.25], "confidence": [0.8457]})
    kinds = {c.name: c.kind for c in present.columns("rejects", df)}
    assert kinds == {"yard_lat": "coord", "yard_lon": "coord", "latitude": "coord", "flat": "number",
                     "confidence": "number"}
    frame, fmts = present.people_frame(df, "rejects")
    assert frame.iloc[0].tolist()[:3] == [32.0626751, -102.4871593, 31.894601]  # not rounded: the format rounds
    assert fmts[:3] == ["0.000000"] * 3


def test_a_fusion_detail_reads_re_fused_not_refused():
    """A fusion's ``refused`` counts detections fused again; "fuse refused: 9,024" on the Runs page read as if every
    detection had been turned away (the run's own table said Refused 0)."""
    said = present.detail_text({"fuse_refused": 9024, "refused": 12, "n_holdout": 22})
    assert said == "fuse: detections re-fused: 9,024; detections re-fused: 12; visits held out: 22"
    assert present.label("face", "cli") == "the command line"


def test_text_table_for_a_terminal_has_words_dates_and_blanks():
    df = pd.DataFrame({"rank": [1, None], "leak_id": ["L1", "L2"], "risk_band": ["HIGH", None],
                       "p_real": [0.8333, np.nan], "due_by": [pd.Timestamp("2026-09-08T00:00Z"), pd.NaT],
                       "due_rule": ["ooooB_super_emitter:investigate", None], "override_reason": [None, None]})
    text = present.text_table(df, "leaks", ["rank", "leak_id", "risk_band", "p_real", "due_by", "due_rule",
                                            "override_reason"])
    head, first, second = text.splitlines()
    assert head.split()[:3] == ["Rank", "Leak", "Risk"] and "Due by (UTC)" in head and "Deadline rule" in head
    assert "High" in first and "83%" in first and "2026-09-08" in first and "OOOOb super-emitter investigation" in first
    assert second.split() == ["L2"]  # every missing value blank
    for raw in ("NaT", "NaN", "nan", "None", "<NA>", "+00:00", "00:00:00", "ooooB_"):
        assert raw not in text


@pytest.mark.parametrize(("target", "said"), [("model:2", "Model v2"), ("dispatch_list:1", "Dispatch list 1"),
                                               ("user:ana", "User ana"), ("alert:7", "Alert 7"), ("L000012", "L000012"),
                                               (None, ""), ("odd:thing", "odd:thing")])
def test_an_audit_target_reads_as_words(target, said):
    """The Audit trail's Target column read "model:2" and "dispatch_list:1"."""
    assert present.target_text(target) == said
    shown = present.display_frame(pd.DataFrame({"target": [target], "detail": [None]}), "audit")
    assert shown["target"].iloc[0] == said


@pytest.mark.parametrize(("v", "u", "said"), [(12.54, 3.0, "12.5 ± 3.0 kg/h"), (0.043, 0.011, "0.043 ± 0.011 kg/h"),
                                              (0.0, 0.0, "0 kg/h"), (1234.5, None, "1,234.5 kg/h"),
                                              (None, None, "rate not quantified")])
def test_a_story_reading_keeps_its_precision(v, u, said):
    """The Story tab read "0.0 ± 0.0 kg/h" for a small monitor reading."""
    from mlpe_core.lineage import _rate

    assert _rate(v, u) == said
