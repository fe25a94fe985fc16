"""``--model NAME|DIR``: find a model's vocab, config, checkpoint and casing.

Every command that takes ``--model`` calls :func:`resolve_model`. A NAME is looked up in the
catalogue (short names, aliases, original directory names, Hub ids) and in the cache (models
installed under a name of their own with ``bert download ./x.zip --name mine``); a folder path
works without a manifest. Pure Python, no TensorFlow.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..errors import NotFoundError, UsageError
from . import catalogue
from .cache import MANIFEST, MODELS, Cache
from .folder import find_checkpoint, model_casing, read_json_or_empty
from .hf_vocab import vocab_file_for


@dataclass(frozen=True)
class ModelFiles:
    """The files of one model, as the engine and the tokenizer need them."""

    directory: Path
    name: str
    vocab_file: Path | None  # vocab.txt, or derived from tokenizer.json; None only when not needed
    config_file: Path  # bert_config.json, or the Hugging Face config.json
    checkpoint: str | None  # TF checkpoint prefix (".../bert_model.ckpt", ".../model.ckpt-123") or a .safetensors path
    weights_format: str  # "tf1" | "hf" | "none"
    do_lower_case: bool | None  # from manifest.json / tokenizer_config.json / the catalogue; None if unknown


def current_cache() -> Cache:
    return Cache(settings.current().resolved_cache_dir)


def resolve_model(name_or_dir: str, *, download: bool = False, need_vocab: bool = True) -> ModelFiles:
    """Resolve ``--model``: a folder path, or a NAME from the cache (downloading it on request).

    Raises NotFoundError (exit 3): unknown name (with close matches and the hint
    ``bert download --list``), a catalogue model that is not cached (hint ``bert download NAME``;
    with ``download=True`` it is fetched instead, unless offline), a missing folder, or a folder
    lacking a vocabulary (``need_vocab``: vocab.txt or tokenizer.json) or its config. Commands
    go through :func:`bert_cli.models.policy.resolve_model_files`, which adds the explicit files.
    """
    text = str(name_or_dir).strip()
    if not text:
        raise UsageError("--model needs a model name or a folder", hint="bert download --list")
    path = Path(text).expanduser()
    if path.is_dir():
        return inspect_directory(path, need_vocab=need_vocab)
    if path.is_file():
        raise UsageError(
            f"--model takes a model NAME or a model folder, not a file: {text}",
            hint=f"bert download {text} --name NAME   (to install an archive)" if text.endswith(".zip") else None,
        )
    entry = catalogue.find_model(text)
    if entry is None and _looks_like_path(text):
        raise NotFoundError(f"model folder not found: {text}", hint="bert download --list")
    cache = current_cache()
    key = entry.name if entry is not None else text
    if cache.is_cached(MODELS, key):
        return inspect_directory(cache.model_dir(key), name=key, need_vocab=need_vocab)
    if entry is None:
        candidates = catalogue.model_names() + cache.entries(MODELS)
        close = catalogue.close_matches(text, candidates)
        suggestion = f"; did you mean {', '.join(close)}?" if close else ""
        raise NotFoundError(f"unknown model '{text}'{suggestion}", hint="bert download --list")
    if settings.current().offline:
        raise NotFoundError(
            f"model '{key}' is not in the cache ({cache.root}) and offline mode is on",
            hint=f"bert download {key}   (without --offline)",
        )
    if download or _offer_download(entry):
        from .install import download_model

        folder = download_model(entry, cache=cache)
        return inspect_directory(folder, name=key, need_vocab=need_vocab)
    raise NotFoundError(
        f"model '{key}' is not downloaded yet (cache: {cache.root})",
        hint=f"bert download {key}   (or pass --download)",
    )


def inspect_directory(directory: str | Path, name: str | None = None, *, need_vocab: bool = True) -> ModelFiles:
    """The files of a model folder (manifest optional); NotFoundError naming a missing piece."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotFoundError(f"model folder not found: {directory}", hint="bert download --list")
    manifest = read_json_or_empty(directory / MANIFEST)
    vocab = vocab_file_for(directory, current_cache().root)  # vocab.txt, else from tokenizer.json
    if vocab is None and need_vocab:
        raise NotFoundError(
            f"model folder {directory} has no vocab.txt (nor a Hugging Face tokenizer.json)",
            hint=f"bert download --force {name}" if name else "pass the model's vocab.txt with --vocab-file",
        )
    config = next((directory / c for c in ("bert_config.json", "config.json") if (directory / c).is_file()), None)
    if config is None:
        raise NotFoundError(
            f"model folder {directory} has no bert_config.json (or Hugging Face config.json)",
            hint=f"bert download --force {name}" if name else "copy the model's bert_config.json into the folder",
        )
    checkpoint, weights_format = find_checkpoint(directory)
    if weights_format == "hf" and (directory / "config.json").is_file():
        config = directory / "config.json"  # HF weights go with the HF config
    return ModelFiles(
        directory=directory,
        name=name or str(manifest.get("name") or directory.name),
        vocab_file=vocab,
        config_file=config,
        checkpoint=checkpoint,
        weights_format=weights_format,
        do_lower_case=model_casing(directory, manifest),
    )


def complete_model_name(incomplete: str) -> list[str]:
    """Shell completion for ``--model``: catalogue names and aliases, then cached names."""
    names = catalogue.model_names()
    try:
        names += [n for n in current_cache().entries(MODELS) if n not in names]
    except OSError:
        pass
    low = incomplete.lower()
    return [n for n in names if n.lower().startswith(low)]


def complete_download_name(incomplete: str) -> list[str]:
    """Shell completion for ``bert download NAME``: models, then datasets."""
    low = incomplete.lower()
    return complete_model_name(incomplete) + [d for d in catalogue.dataset_names() if d.startswith(low)]


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "~", "/")) or "/" in text or "\\" in text


def _offer_download(entry: catalogue.ModelEntry) -> bool:
    """On a terminal, ask whether to download a catalogue model now (never in scripts)."""
    s = settings.current()
    if s.quiet or not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    from rich.prompt import Confirm

    from .. import console

    return Confirm.ask(
        f"Model '{entry.name}' ({catalogue.human_count(entry.parameters)} parameters) is not downloaded. Download it now?",
        console=console.stderr(),
        default=False,
    )
