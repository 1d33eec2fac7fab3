"""Event logs to update timelines and hotpatch compliance.

ingest (files, folders, zips, triage collections) -> readers / exports (EVTX via the Rust
`evtx` package or python-evtx, wevtutil XML, Get-WinEvent JSON, ETL) with chunks (header
integrity) -> records (parser-neutral RawRecord) -> normalise (typed Event; classify against the
release calendar) -> lifecycle (per update) -> compliance (per device and month) -> rows /
outputs (CSV, JSONL, Timesketch timeline) and report.html; pipeline runs it all, correlate joins
a timeline with memory findings. See docs/timeline.md.
"""
