"""Whole runs as the CLI and the fleet runner start them: open the evidence, analyse, write
the outputs. Above every layer but the front ends, so it may call readers and renderers alike."""
