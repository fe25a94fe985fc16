"""What the benches share on the data side: where the reference data is, and the checks and
settings every side-by-side run starts with.

* :data:`SHARED` -- the reference data (``../shared/data``, or ``$BERT_SHARED_DATA``);
* :data:`HF_DIR` -- the pretrained peer model both sides start from (all-MiniLM-L6-v2: L=6,
  H=384, uncased) and :data:`VOCAB`, its vocabulary;
* :func:`require_data` -- exit with a clear line when a reference file is missing;
* :func:`tf_threads` -- TensorFlow imported the way ``bert`` does it, on ``threads`` threads.

Imported as ``bench.common`` (the repository root is on ``sys.path``; ``bench/`` itself is kept
off it because ``bench/tokenize.py`` would shadow the stdlib module).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
HF_DIR = SHARED / "hf" / "all-MiniLM-L6-v2"
VOCAB = SHARED / "vocab" / "uncased" / "vocab.txt"  # == MiniLM's tokenizer.json vocabulary (README)


def require_data(*paths: Path) -> None:
    """Exit (status 1, one line on stderr) at the first of ``paths`` that does not exist."""
    for p in paths:
        if not p.exists():
            sys.exit(f"missing reference data: {p} (set BERT_SHARED_DATA)")


def tf_threads(threads: int):
    """Import TensorFlow the way ``bert`` does (oneDNN kernels on), give it ``threads`` intra-op
    and inter-op threads (``TF_NUM_INTEROP_THREADS``, when set, decides the inter-op pool, as it
    does for ``bert``), and return the ``tensorflow`` module."""
    import bert_cli.engine  # noqa: F401
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    if not os.environ.get("TF_NUM_INTEROP_THREADS"):
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf
