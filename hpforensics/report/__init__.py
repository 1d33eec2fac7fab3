"""Renderers: turn result records (dataclasses) into table, CSV, JSON/JSONL. No analysis here."""
from hpforensics.report.render import FORMATS, render, to_row

__all__ = ["FORMATS", "render", "to_row"]
