"""Command registry: each subcommand lives in its own module; this module only registers them.

A command is registered only once it works (no placeholders).
"""

from __future__ import annotations

from .root import app
from .tokenize import tokenize

app.command("tokenize", no_args_is_help=False)(tokenize)
