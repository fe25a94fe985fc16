"""Command registry: each subcommand lives in its own module; this module only registers them.

A command is registered only once it works (no placeholders).
"""

from __future__ import annotations

from .download import download
from .root import app
from .tokenize import tokenize

app.command("download")(download)
app.command("tokenize")(tokenize)
