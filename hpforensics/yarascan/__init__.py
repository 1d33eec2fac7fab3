"""YARA over files and memory regions: rules compiled once per run, cached by content hash."""
from hpforensics.yarascan.compile import RuleSet, load_rules
from hpforensics.yarascan.memory import scan_changed, scan_images
from hpforensics.yarascan.scan import scan_paths, scan_region

__all__ = ["RuleSet", "load_rules", "scan_changed", "scan_images", "scan_paths", "scan_region"]
