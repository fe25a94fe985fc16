#!/usr/bin/env python3
"""Regenerate the shell completion scripts from the app: ``python completions/generate.py``.

Each script is what ``_BERT_COMPLETE=source_<shell> bert`` prints; tests fail when the committed
files are stale.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = {"bash": "bert.bash", "zsh": "_bert", "fish": "bert.fish"}


def script(shell: str) -> str:
    env = dict(os.environ, _BERT_COMPLETE=f"source_{shell}")
    out = subprocess.run(
        [sys.executable, "-m", "bert_cli"], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout


def main() -> None:
    for shell, name in FILES.items():
        (HERE / name).write_text(script(shell))
        print(HERE / name)


if __name__ == "__main__":
    main()
