"""Ingest: read the files analysts really get, check every cell, and load only what is sound.

Two kinds of failure are kept apart on purpose:

* a structural problem (file unreadable, format unknown, required column missing, empty file)
  raises :class:`IngestError` before anything is written, so a wrong file never half-loads;
* a row problem (bad coordinate, time, rate, unknown asset, ...) rejects that row alone, with its
  row number, column and reason, and the good rows load in one transaction.

Every accepted detection keeps its lineage: batch, file hash, source row and original values.

The package's modules name their jobs: ``readers`` (files into frames of text), ``formats`` (which kind
of file, mapped to canonical columns), ``validate`` (row checks), ``instruments`` (the instrument
table), ``load`` (structure first, then one transaction through the store). Speed: ``docs/ingest.md``.
"""

from .errors import IngestError, IngestReport
from .formats import FORMATS, detect_format, to_canonical
from .formats.common import RATE_UNITS, SCF_KG
from .instruments import instrument_defaults, load_instruments, registry_sigma_m
from .load import PreparedFile, ingest_file, ingest_frame, load_prepared, prepare_file
from .readers import file_sha256, read_table
from .validate import parse_times, validate_detections

__all__ = ["detect_format", "file_sha256", "FORMATS", "ingest_file", "ingest_frame", "IngestError", "IngestReport",
           "instrument_defaults", "load_instruments", "load_prepared", "parse_times", "prepare_file", "PreparedFile",
           "RATE_UNITS", "read_table", "registry_sigma_m", "SCF_KG", "to_canonical", "validate_detections"]
