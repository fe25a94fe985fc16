"""The one model-files policy: ``--model NAME|DIR`` plus explicit files -> what a command loads.

Every command that reads a model calls :func:`resolve_model_files` from its ``ops`` module
(``pretrain``, ``finetune``, ``finetune squad``, ``extract``; ``predict`` reads a run folder
through it too; ``tokenize`` and ``make-pretrain-data`` through :func:`tokenizer_files`). The rules, in one place:

* **Explicit files override the folder's**: ``--vocab-file``, ``--bert-config-file``,
  ``--init-checkpoint`` each replace the matching file of ``--model`` (and work without it).
* **A Hugging Face folder works as shipped**: vocabulary from ``vocab.txt``, else from
  ``tokenizer.json`` (:mod:`bert_cli.models.hf_vocab`); config ``bert_config.json`` or
  ``config.json``; weights from a TF1 checkpoint or ``model.safetensors``
  (:func:`weights_format_of` decides, for ``--init-checkpoint`` too).
* **Casing**: ``--do-lower-case/--no-do-lower-case`` when given, else the model's (manifest,
  ``tokenizer_config.json``, run folder, catalogue). A flag that contradicts a model whose casing
  is known is a usage error unless ``--force-casing``. When nothing tells, a vocabulary with
  upper-case entries means a cased model (said on stderr), else lower-case (the original's
  default).

Pure Python, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import console
from ..errors import NotFoundError, UsageError
from ..fileio import require_file

__all__ = ["ResolvedModel", "resolve_model_files", "weights_format_of"]


@dataclass(frozen=True)
class ResolvedModel:
    """What a command loads; any file may be None when neither the folder nor a flag gave it."""

    vocab_file: Path | None
    config_file: Path | None
    checkpoint: str | None  # TF1 prefix/folder or a .safetensors path
    weights_format: str  # "tf1" | "hf" | "none"
    do_lower_case: bool
    name: str
    directory: Path | None  # the --model folder

    def require(self, *what: str) -> "ResolvedModel":
        """NotFoundError naming the flag for each of ``vocab``/``config``/``checkpoint`` that is missing."""
        flags = {"vocab": ("vocab_file", "--vocab-file"), "config": ("config_file", "--bert-config-file"),
                 "checkpoint": ("checkpoint", "--init-checkpoint")}
        missing = [flags[w][1] for w in what if getattr(self, flags[w][0]) is None]
        if missing:
            where = f"model {self.name} has no" if self.directory is not None else "no"
            raise UsageError(
                f"{where} {', '.join(m.lstrip('-').replace('-', ' ') for m in missing)}: give --model NAME|DIR "
                f"or {' and '.join(missing)}",
                hint="bert download --list",
            )
        return self


def weights_format_of(path: str | Path) -> str:
    """``"hf"`` for safetensors (a file, a sharded ``.index.json``, or a folder with
    ``model.safetensors`` and no TF1 checkpoint), else ``"tf1"``."""
    p = Path(path)
    if p.name.endswith((".safetensors", ".safetensors.index.json")):
        return "hf"
    if p.is_dir() and not any(p.glob("*.index")):
        if (p / "model.safetensors").is_file() or (p / "model.safetensors.index.json").is_file():
            return "hf"
    return "tf1"


def resolve_model_files(
    model: str | None = None,
    *,
    vocab_file: str | Path | None = None,
    bert_config_file: str | Path | None = None,
    init_checkpoint: str | Path | None = None,
    do_lower_case: bool | None = None,
    force_casing: bool = False,
    download: bool = False,
    tokenizes: bool = True,
) -> ResolvedModel:
    """Apply the policy of the module doc. Explicit files must exist (NotFoundError, exit 3).

    ``tokenizes=False`` (pretraining, which reads ready TFRecords): no vocabulary is needed and
    casing is not decided.
    """
    directory, name, casing = None, "model", None
    vocab = config = checkpoint = None
    weights = "none"
    if model is not None:
        from .resolve import resolve_model

        files = resolve_model(model, download=download, need_vocab=tokenizes and vocab_file is None)
        directory, name, casing = files.directory, files.name, files.do_lower_case
        vocab, config, checkpoint, weights = files.vocab_file, files.config_file, files.checkpoint, files.weights_format
    if vocab_file is not None:
        vocab = require_file(vocab_file, "vocab file")
    if bert_config_file is not None:
        config = require_file(bert_config_file, "model config")
    if init_checkpoint is not None:
        checkpoint, weights = str(init_checkpoint), weights_format_of(init_checkpoint)
        if weights == "hf" and Path(checkpoint).is_dir():
            checkpoint = str(Path(checkpoint) / "model.safetensors")
        if weights == "hf" and not Path(checkpoint).exists():
            raise NotFoundError(f"checkpoint not found: {init_checkpoint}")
    lower = _casing(do_lower_case, casing, name, force_casing, vocab) if tokenizes else bool(casing in (None, True))
    return ResolvedModel(vocab, config, checkpoint, weights, lower, name, directory)


def tokenizer_files(model: str | None = None, *, vocab_file: str | Path | None = None,
                    do_lower_case: bool | None = None, force_casing: bool = False,
                    download: bool = False) -> tuple[Path, bool]:
    """The vocabulary and casing of a command that only tokenizes (``tokenize``,
    ``make-pretrain-data``): :func:`resolve_model_files` when ``--model`` or ``--vocab-file`` is
    given, else Google's uncased vocabulary shipped with ``bert`` (lower-cased unless
    ``--no-do-lower-case``), which works offline."""
    if model is None and vocab_file is None:
        from ..resources import UNCASED_VOCAB, path

        return path(UNCASED_VOCAB), True if do_lower_case is None else bool(do_lower_case)
    files = resolve_model_files(model, vocab_file=vocab_file, do_lower_case=do_lower_case,
                                force_casing=force_casing, download=download)
    return Path(files.vocab_file), files.do_lower_case


def _casing(flag: bool | None, model_casing: bool | None, name: str, force: bool, vocab: Path | None) -> bool:
    if flag is not None:
        if model_casing is not None and flag != model_casing and not force:
            kind = "uncased (lower-cased)" if model_casing else "cased"
            given = "--do-lower-case" if flag else "--no-do-lower-case"
            raise UsageError(
                f"model {name} is {kind} but {given} was given",
                hint="drop the casing flag (the model's casing is used), or pass --force-casing",
            )
        return flag
    if model_casing is not None:
        return model_casing
    if vocab is not None and _has_upper_case(vocab):
        console.info(f"casing unknown: {vocab} has upper-case entries, so the model is taken as cased "
                     "(pass --do-lower-case to lower-case)")
        return False
    return True


def _has_upper_case(vocab: Path) -> bool:
    """True when at least 5% of the vocabulary's alphabetic entries (``[CLS]``-style specials
    aside) have upper case: Google's cased vocabularies have 16-30%, the uncased 0, the Chinese
    one 2 entries in 19,298."""
    upper = alphabetic = 0
    try:
        with open(vocab, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                token = line.strip()
                if token.startswith("[") and token.endswith("]") or not any(c.isalpha() for c in token):
                    continue
                alphabetic += 1
                upper += token != token.lower()
    except OSError:
        return False
    return alphabetic > 0 and upper >= 0.05 * alphabetic
