"""The original scripts' flags, so that their command lines translate one to one.

Every flag of run_classifier.py, run_squad.py, run_pretraining.py, create_pretraining_data.py
and extract_features.py is accepted by its command under its hyphenated name
(``--vocab_file`` -> ``--vocab-file``). Most are ordinary options; this module holds the rest:

* :class:`OriginalFlagsCommand` accepts the original's boolean spelling ``--do-train=true`` /
  ``--do-lower-case=False`` (absl flags take a value; Click flags do not) by rewriting it, before
  parsing, to ``--do-train`` / ``--no-do-lower-case``.
* :class:`TpuFlagsCommand` (extract, finetune, pretrain) adds the TPU and Estimator flags, hidden
  and declared once here (:func:`_tpu_flags`), to its command and hands only ``--device`` on: the
  command functions never see them. :func:`apply` gives them their meaning:

  - ``--use_tpu``: ``--device tpu`` (refused with another ``--device``);
  - ``--tpu_name``, ``--master``: the TPU's name or grpc:// address, handed to the engine as
    ``TPU_NAME``; ignored (with a warning) without a TPU, as in the original;
  - ``--tpu_zone``, ``--gcp_project``, ``--num_tpu_cores``, ``--iterations_per_loop``,
    ``--use_one_hot_embeddings``: no effect here; each one given draws a warning saying why
    (:data:`NO_EFFECT`);
  - ``--verbose_logging``: ``bert --verbose`` (the same debug lines on stderr).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Optional

import typer
from typer.core import TyperCommand

from ..errors import UsageError

TRUE_WORDS = frozenset({"true", "t", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "f", "0", "no", "n", "off"})

NO_EFFECT = {
    "--tpu-zone": "the TPU is found by its name or grpc:// address (--tpu-name or TPU_NAME)",
    "--gcp-project": "the TPU is found by its name or grpc:// address (--tpu-name or TPU_NAME)",
    "--num-tpu-cores": "every core of the TPU is used",
    "--iterations-per-loop": "there is no Estimator loop; checkpoints follow --save-checkpoints-steps",
    "--use-one-hot-embeddings": "the engine chooses the embedding lookup",
}


class OriginalFlagsCommand(TyperCommand):
    """A command that also takes ``--flag=true`` / ``--flag=false`` for its boolean flags."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalise_bool_values(self.params, args, strict=not ctx.resilient_parsing))

    def get_params(self, ctx) -> list:
        from .options import without_flag_metavars

        return without_flag_metavars(super().get_params(ctx))


_ORIGINAL = "The original's flag; see `bert_cli/cli/original_flags.py`."


def _tpu_flags(
    use_tpu: bool = typer.Option(False, "--use-tpu", hidden=True, help="The original's flag: --device tpu."),
    tpu_name: Optional[str] = typer.Option(None, "--tpu-name", hidden=True, help="The original's flag: the TPU's name or grpc:// address (with --use-tpu)."),
    tpu_zone: Optional[str] = typer.Option(None, "--tpu-zone", hidden=True, help=_ORIGINAL + " No effect."),
    gcp_project: Optional[str] = typer.Option(None, "--gcp-project", hidden=True, help=_ORIGINAL + " No effect."),
    master: Optional[str] = typer.Option(None, "--master", hidden=True, help="The original's flag: the TPU's grpc:// address (with --use-tpu)."),
    num_tpu_cores: Optional[int] = typer.Option(None, "--num-tpu-cores", hidden=True, help=_ORIGINAL + " No effect."),
    iterations_per_loop: Optional[int] = typer.Option(None, "--iterations-per-loop", hidden=True, help=_ORIGINAL + " No effect."),
    use_one_hot_embeddings: bool = typer.Option(False, "--use-one-hot-embeddings", hidden=True, help=_ORIGINAL + " No effect."),
    verbose_logging: bool = typer.Option(False, "--verbose-logging", hidden=True, help="The original's flag: bert --verbose."),
) -> None:
    """The original scripts' TPU/Estimator flags: one declaration for every command that has them."""


def _declared(function) -> list:
    """The Click parameters Typer makes of ``function``'s options (Typer's public get_command)."""
    holder = typer.Typer(add_completion=False)
    holder.command()(function)
    names = set(inspect.signature(function).parameters)
    return [p for p in typer.main.get_command(holder).params if p.name in names]


class TpuFlagsCommand(OriginalFlagsCommand):
    """A command with ``--device`` that also takes the original's TPU/Estimator flags (hidden);
    they are turned into its ``--device`` by :func:`apply` before the command runs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tpu_params = _declared(_tpu_flags)
        self.params.extend(self.tpu_params)

    def invoke(self, ctx):
        from .handling import guarded

        original = {p.name: ctx.params.pop(p.name, None) for p in self.tpu_params}
        ctx.params["device"] = guarded(apply)(ctx.params.get("device") or "auto", **original)
        return super().invoke(ctx)


def normalise_bool_values(params, args: list[str], *, strict: bool = True) -> list[str]:
    """``--flag=VALUE`` of a boolean flag -> ``--flag``, its ``--no-...`` form, or nothing.

    VALUE is one of :data:`TRUE_WORDS` / :data:`FALSE_WORDS` (any case). ``--flag=false`` of a
    flag without a ``--no-`` form is dropped (false is its default). Anything after ``--`` and
    any other token is left alone; a wrong VALUE is a usage error naming the flag (left to the
    parser when not ``strict``, as while completing a command line).
    """
    flags = {}
    for param in params:
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            for opt in param.opts:
                flags[opt] = param
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + list(args[i:])
        name, sep, value = arg.partition("=")
        param = flags.get(name) if sep and name.startswith("--") else None
        if param is None:
            out.append(arg)
            continue
        word = value.strip().lower()
        if word in TRUE_WORDS:
            out.append(name)
        elif word in FALSE_WORDS:
            if param.secondary_opts:
                out.append(param.secondary_opts[0])
            elif param.default not in (False, None):
                out.append(arg)  # no way to say false: let the parser refuse it
        elif not strict:
            out.append(arg)
        else:
            raise UsageError(f"{name} takes true or false, not {value!r}", hint=f"write {name} or leave it out")
    return out


def task(argument: Optional[str], task_name: Optional[str]) -> str:
    """``bert finetune TASK`` or the original's ``--task-name TASK`` (one of them)."""
    if argument and task_name and argument.strip().lower() != task_name.strip().lower():
        raise UsageError(f"TASK {argument!r} and --task-name {task_name!r} disagree", hint="give the task once")
    chosen = argument or task_name
    if not chosen:
        raise UsageError("missing TASK", hint="bert finetune mrpc --data-dir DIR --output-dir DIR (or --task-name mrpc)")
    return chosen


def apply(
    device: str,
    *,
    use_tpu: bool = False,
    tpu_name: Optional[str] = None,
    master: Optional[str] = None,
    verbose_logging: bool = False,
    **no_effect,
) -> str:
    """The ``--device`` to use once the original's TPU/Estimator flags are taken into account.

    ``no_effect`` takes the flags of :data:`NO_EFFECT` by their Python names (``tpu_zone=...``);
    each one given draws a warning saying why it does nothing.
    """
    from .. import console, settings

    if verbose_logging and not settings.current().quiet:
        settings.configure(dataclasses.replace(settings.current(), verbose=True))
    for key, value in no_effect.items():
        flag = "--" + key.replace("_", "-")
        if flag not in NO_EFFECT:
            raise TypeError(f"not an original flag without effect: {key}")
        if value not in (None, False):
            console.warn(f"{flag} has no effect here: {NO_EFFECT[flag]}")
    if use_tpu:
        if device.lower() not in ("auto", "tpu"):
            raise UsageError(f"--use-tpu contradicts --device {device}", hint="--use-tpu means --device tpu: give one of them")
        device = "tpu"
    address = tpu_name or master
    if address:
        if device.lower() == "tpu":
            os.environ["TPU_NAME"] = address
        else:
            flag = "--tpu-name" if tpu_name else "--master"
            console.warn(f"{flag} is ignored without --use-tpu or --device tpu (as in the original)")
    return device
