"""One module per command group. Each exposes `register(app: typer.Typer) -> None`.

app.py imports every module here, in name order, so adding a command is adding one file.
"""
