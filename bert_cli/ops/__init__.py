"""The work behind each ``bert`` command, separate from the Typer layer (no TensorFlow at import).

Each module takes a frozen config dataclass and plain inputs/outputs, so it can be used and
tested without the CLI: e.g. :func:`bert_cli.ops.tokenize.run_tokenize`.
"""
