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
from .predict import predict
from .pretrain import pretrain
from .root import app
from .squad_threshold import squad_threshold
from .tokenize import tokenize

app.command("download")(guarded(download))
app.command("extract")(guarded(extract))
app.command("finetune")(guarded(finetune))
app.command("make-pretrain-data")(guarded(make_pretrain_data))
app.command("predict")(guarded(predict))
app.command("pretrain")(guarded(pretrain))
app.command("squad-threshold")(guarded(squad_threshold))
app.command("tokenize")(guarded(tokenize))
