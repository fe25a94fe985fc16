"""Command registry: each subcommand lives in its own module; this module only registers them
(wrapped by :func:`~bert_cli.cli.handling.guarded` for the error-to-exit-code mapping).

A command is registered only once it works (no placeholders).
"""

from __future__ import annotations

from .download import download
from .extract import extract
from .finetune import finetune
from .handling import guarded
from .make_pretrain_data import make_pretrain_data
from .original_flags import OriginalFlagsCommand
from .predict import predict
from .pretrain import pretrain
from .root import app
from .squad_threshold import squad_threshold
from .tokenize import tokenize

app.command("download", cls=OriginalFlagsCommand)(guarded(download))
app.command("extract", cls=OriginalFlagsCommand)(guarded(extract))
app.command("finetune", cls=OriginalFlagsCommand)(guarded(finetune))
app.command("make-pretrain-data", cls=OriginalFlagsCommand)(guarded(make_pretrain_data))
app.command("predict", cls=OriginalFlagsCommand)(guarded(predict))
app.command("pretrain", cls=OriginalFlagsCommand)(guarded(pretrain))
app.command("squad-threshold", cls=OriginalFlagsCommand)(guarded(squad_threshold))
app.command("tokenize", cls=OriginalFlagsCommand)(guarded(tokenize))
