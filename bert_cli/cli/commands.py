"""Command registry: each subcommand lives in its own module; this module only registers them
(wrapped by :func:`~bert_cli.cli.handling.guarded` for the error-to-exit-code mapping), with
their examples (each module's ``EPILOG``) at the end of their help.

A command is registered only once it works (no placeholders).
"""

from __future__ import annotations

from . import download, extract, finetune, make_pretrain_data, predict, pretrain, squad_threshold, tokenize
from .handling import guarded
from .original_flags import OriginalFlagsCommand, TpuFlagsCommand
from .root import app

for name, module, cls in (
    ("download", download, OriginalFlagsCommand),
    ("extract", extract, TpuFlagsCommand),
    ("finetune", finetune, TpuFlagsCommand),
    ("make-pretrain-data", make_pretrain_data, OriginalFlagsCommand),
    ("predict", predict, OriginalFlagsCommand),
    ("pretrain", pretrain, TpuFlagsCommand),
    ("squad-threshold", squad_threshold, OriginalFlagsCommand),
    ("tokenize", tokenize, OriginalFlagsCommand),
):
    app.command(name, cls=cls, epilog=module.EPILOG)(guarded(getattr(module, name.replace("-", "_")), f"bert {name}"))
