"""Live scanning logic shared by every backend: which pages to read, the comparison with the
mapped file, branch decoding and live-patch verdicts, Windows structures, output.

The backends and the driver's entry point are in hpforensics.live.space (select_backend,
scan_live); the command is `hpforensics live` (hpforensics/cli/commands/live.py).
"""
