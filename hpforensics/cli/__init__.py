"""The `hpforensics` command line: app.py plus one module per command in commands/."""
