"""Option declarations shared by several commands (one copy of each flag's name and help)."""

from __future__ import annotations

import typer


def _complete_model(incomplete: str) -> list[str]:
    try:
        from ..models.resolve import complete_model_name
    except ImportError:  # the cache module is optional at completion time
        return []
    return list(complete_model_name(incomplete))


MODEL = typer.Option(
    None,
    "--model",
    "-m",
    help="Model NAME from the cache (see `bert download --list`) or a model DIR; fills vocab, config, checkpoint and casing.",
    autocompletion=_complete_model,
)
VOCAB_FILE = typer.Option(None, "--vocab-file", help="WordPiece vocab.txt (one token per line).")
DO_LOWER_CASE = typer.Option(
    None,
    "--do-lower-case/--no-do-lower-case",
    help="Lower-case and strip accents (uncased models). Default: from the model, else lower-case.",
)
MAX_SEQ_LENGTH = typer.Option(None, "--max-seq-length", min=3, help="Add [CLS]/[SEP], truncate pairs as the original, emit model inputs.")
JSON = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout.")

