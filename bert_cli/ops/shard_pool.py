"""The process pool of ``bert make-pretrain-data``'s sharded mode (no TensorFlow).

:func:`shard_results` yields :class:`~bert_cli.text.pretraining.ShardResult` s in shard order,
processing them in worker processes when ``workers > 1`` (at most ``2 x workers`` shards in
flight, so memory stays flat). It takes the numbered shards to process (all of them, or one
machine's part of them: :mod:`bert_cli.text.shardparts`); a shard's number seeds its rng.

Workers die with the parent and ignore Ctrl-C (:mod:`bert_cli.workers`). A worker leaves its
shard's records in a scratch folder (``.NAME.XXXX.tmp/`` beside the outputs, removed on every
exit) and sends back only a small message: a pipe message under ``PIPE_BUF`` is written at
once, so killing the workers on an error or an interrupt can never leave the pool waiting on
half a message, and the run ends at once instead of waiting for running shards.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from array import array
from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import BertError
from ..fileio import write_error
from ..text import pretraining as pt
from ..workers import init_worker_process, kill_pool_workers, sigint_held

__all__ = ["shard_results"]


def shard_results(
    config, shards: Iterable[tuple[int, list[list[str]]]], tokenizer, vocab, folder: Path, name: str,
    scratch_name: str | None = None,
) -> Iterator[pt.ShardResult]:
    """Results of the ``(number, documents)`` shards, in their order (``config``: a
    MakePretrainDataConfig).

    ``folder`` holds the scratch folder (``.NAME[.SCRATCH_NAME].XXXX.tmp``); ``name`` is the
    output named in a disk-full error. Leaving early (an error, Ctrl-C, the consumer closing
    the generator) kills the workers.
    """
    options, seed = config.options, config.random_seed
    if config.workers == 1:
        for index, shard in shards:
            yield pt.process_shard(index, shard, seed, options, tokenizer, vocab)
        return

    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    folder.mkdir(parents=True, exist_ok=True)
    try:
        prefix = f".{Path(name).name}." + (f"{scratch_name}." if scratch_name else "")
        scratch = tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=folder)
    except OSError as exc:
        raise write_error(name, exc) from None
    with sigint_held():
        pool = ProcessPoolExecutor(
            config.workers,
            mp_context=_mp_context(),
            initializer=_init_worker,
            initargs=(os.getpid(), str(config.vocab_file), config.do_lower_case, options),
        )
    pending: deque = deque()
    finished = False
    try:
        max_in_flight = 2 * config.workers  # bounds memory: raw shards in, records out
        for index, shard in shards:
            with sigint_held():  # a submit may start a worker
                pending.append(pool.submit(_worker_shard, (index, shard, seed, scratch)))
            del shard
            while len(pending) >= max_in_flight:
                yield _load(pending.popleft().result())
        while pending:
            yield _load(pending.popleft().result())
        finished = True
    except BrokenProcessPool as exc:
        raise BertError(
            f"a worker process died ({exc}); out of memory?",
            hint="retry with fewer --workers or a smaller --shard-size-mb",
        ) from None
    except OSError as exc:  # raised in a worker: its scratch file could not be written
        raise write_error(name, exc) from None
    finally:
        for future in pending:
            future.cancel()
        if not finished:
            kill_pool_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _init_worker(parent_pid: int, *args) -> None:
    """Pool initializer: die with the parent, ignore Ctrl-C, then load the tokenizer."""
    init_worker_process(parent_pid)
    pt.init_worker(*args)


def _worker_shard(args: tuple) -> tuple[pt.ShardResult, str, int]:
    """Pool task: process a shard, write its sizes and records to a scratch file, and return
    the result without them (a small message), the file and the number of records."""
    index, documents, seed, scratch = args
    result = pt.worker_process_shard((index, documents, seed))
    path = os.path.join(scratch, f"shard-{index:07d}")
    with open(path, "wb") as fh:
        fh.write(result.sizes.tobytes())
        fh.write(result.data)
    count = len(result.sizes)
    result.data, result.sizes = b"", array(result.sizes.typecode)
    return result, path, count


def _load(message: tuple[pt.ShardResult, str, int]) -> pt.ShardResult:
    """The full result of :func:`_worker_shard`, read back from its scratch file (then removed)."""
    result, path, count = message
    with open(path, "rb") as fh:
        result.sizes.frombytes(fh.read(count * result.sizes.itemsize))
        result.data = fh.read()
    os.unlink(path)
    return result


def _mp_context():
    """``spawn`` (safe with threads), unless ``__main__`` cannot be re-imported by a child
    (a script read from stdin), where ``fork`` is the only start method that works."""
    import multiprocessing

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file and not os.path.isfile(main_file) and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")
