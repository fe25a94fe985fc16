"""The TensorFlow engine (model, checkpoints, training, distribution): the only TF code.

Importing any engine module imports TensorFlow once, here, with its C++ start-up chatter on
stderr (CUDA probes, CPU-feature notes, which no environment variable silences in TF 2.21)
discarded, unless ``--verbose``/``BERT_VERBOSE`` is on or ``TF_CPP_MIN_LOG_LEVEL`` is set.
Python errors raised by the import are not affected.

oneDNN kernels are switched on (``TF_ENABLE_ONEDNN_OPTS=1``, unless the variable is already
set): TensorFlow enables them by itself only on CPUs with AVX-512/AMX, yet on plain AVX2 they
make a CPU fine-tune step ~15% faster (``bench/finetune_mrpc.py``). Results differ from the
Eigen kernels by float round-off only.
"""

import contextlib as _contextlib
import os as _os
import sys as _sys

from .. import settings as _settings


QUIET = False  # True when the C++ chatter is being discarded (see quiet_probe)


@_contextlib.contextmanager
def quiet_stderr_fd():
    """Discard what C++ code writes to file descriptor 2 inside the block."""
    try:
        fd = _sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured in tests)
        yield
        return
    _sys.stderr.flush()
    saved = _os.dup(fd)
    devnull = _os.open(_os.devnull, _os.O_WRONLY)
    try:
        _os.dup2(devnull, fd)
        yield
    finally:
        _os.dup2(saved, fd)
        _os.close(saved)
        _os.close(devnull)


_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
_verbose = _settings.current().verbose or _settings.env_flag("BERT_VERBOSE")
# TF_CPP_MIN_LOG_LEVEL set by the user means "show me TensorFlow's logs at that level"; set by
# us (marked with _OURS, which child processes inherit with it: shard workers, a `bert` run
# from a program that imported the engine) it means nothing of the kind.
_OURS = "BERT_QUIETED_TF"
_user_level = "TF_CPP_MIN_LOG_LEVEL" in _os.environ and _os.environ.get(_OURS) != "1"
if _verbose or _user_level:
    import tensorflow  # noqa: F401
else:
    QUIET = True
    _os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    _os.environ[_OURS] = "1"
    with quiet_stderr_fd():
        import tensorflow  # noqa: F401


def quiet_probe():
    """Context for device probing: discards the C++ CUDA-probe errors when not verbose."""
    return quiet_stderr_fd() if QUIET else _contextlib.nullcontext()
