"""hpforensics: forensics and audit toolkit for hotpatched Windows systems."""

__version__ = "0.1.0"
