"""Option declarations shared by several commands (one copy of each flag's name, help, panel).

Defaults and ranges come from :mod:`bert_cli.ops.option_specs`, the same specs the configs
check when they are built (:func:`option`): what ``--help`` shows, what Click enforces and what
the configs accept cannot disagree. Options are grouped into help panels (:data:`MODEL_PANEL`,
:data:`DATA_PANEL`, ...) so that option names fit an
80-column terminal, and every option has a real metavar (``N``, ``FLOAT``, ``PATH``, ...).
"""

from __future__ import annotations

from typing import Any

import typer

from ..ops import option_specs as S
from ..ops.option_specs import Spec

# --- help panels -------------------------------------------------------------------------------
MODEL_PANEL = "Model"
DATA_PANEL = "Data"
TRAINING_PANEL = "Training"
OPTIMIZER_PANEL = "Optimizer"
OUTPUT_PANEL = "Output"
DEVICE_PANEL = "Device"

_FROM_SPEC: Any = object()


def option(spec: Spec, *names: str, help: str, panel: str, default: Any = _FROM_SPEC,
           metavar: str | None = None, **kwargs: Any) -> Any:
    """A Typer option for ``spec``: its flag, default and closed range (``min=``/``max=``); an
    open bound (> 0, < 1) is said in the help (the config checks it)."""
    if metavar is None:
        metavar = "N" if spec.integer else "FLOAT" if spec.numeric else "TEXT"
    if spec.numeric and (spec.low_open or spec.high_open):
        help = f"{help} Must be {spec.rule()}."
    return typer.Option(
        spec.default if default is _FROM_SPEC else default, spec.flag, *names, help=help, metavar=metavar,
        rich_help_panel=panel, **spec.cli_range(), **kwargs,
    )


def flag(decls: str, *names: str, help: str, panel: str | None = None, default: Any = False, **kwargs: Any) -> Any:
    """A boolean flag (shown without a metavar: :func:`without_flag_metavars`)."""
    return typer.Option(default, decls, *names, help=help, rich_help_panel=panel, **kwargs)


def _no_type(ctx: Any) -> None:
    return None


def without_flag_metavars(params: list) -> list:
    """``params`` as the help shows them: no metavar on flags (Typer would show ``<bool>`` for a
    flag, which takes no value: ``--help``, ``--install-completion``, ...) and no type label on
    arguments (``<list[str]>``: the argument's name, FILE or NAME, says what it takes)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif getattr(param, "param_type_name", "") == "argument":
            param.display_type_rich = _no_type  # this parameter only
    return params


def _complete_model(incomplete: str) -> list[str]:
    try:
        from ..models.resolve import complete_model_name
    except ImportError:  # the cache module is optional at completion time
        return []
    return list(complete_model_name(incomplete))


# --- model files -------------------------------------------------------------------------------
MODEL = typer.Option(
    None,
    "--model",
    "-m",
    metavar="NAME|DIR",
    help="Model NAME from the cache (see `bert download --list`) or a model DIR; fills vocab, config, "
    "checkpoint and casing.",
    autocompletion=_complete_model,
    rich_help_panel=MODEL_PANEL,
)
DOWNLOAD = flag("--download", help="Download --model NAME first if it is not cached.", panel=MODEL_PANEL)
VOCAB_FILE = typer.Option(None, "--vocab-file", metavar="FILE", help="WordPiece vocab.txt (one token per line).",
                          rich_help_panel=MODEL_PANEL)
BERT_CONFIG_FILE = typer.Option(None, "--bert-config-file", metavar="FILE", help="bert_config.json of the model.",
                                rich_help_panel=MODEL_PANEL)
INIT_CHECKPOINT = typer.Option(
    None, "--init-checkpoint", metavar="PATH",
    help="Checkpoint to start from (TF1 prefix or folder; HF model.safetensors).", rich_help_panel=MODEL_PANEL,
)
DO_LOWER_CASE = flag(
    "--do-lower-case/--no-do-lower-case", default=None, panel=MODEL_PANEL,
    help="Lower-case and strip accents (uncased models). Default: from the model, else lower-case.",
)
FORCE_CASING = flag("--force-casing", panel=MODEL_PANEL,
                    help="Allow --do-lower-case or --no-do-lower-case to contradict the model's casing.")
MAX_SEQ_LENGTH = option(S.MAX_SEQ_LENGTH, default=None, panel=DATA_PANEL,
                        help="Add [CLS]/[SEP], truncate pairs as the original, emit model inputs.")

# --- output ------------------------------------------------------------------------------------
JSON = flag("--json", help="Print the summary as one JSON object on stdout.", panel=OUTPUT_PANEL)
OUTPUT_DIR = typer.Option(..., "--output-dir", "-o", metavar="DIR", rich_help_panel=OUTPUT_PANEL,
                          help="Folder for checkpoints and results (rerun to resume).")

# --- what to do --------------------------------------------------------------------------------
DO_TRAIN = flag("--do-train", help="Train on the train split.", panel=TRAINING_PANEL)
DO_EVAL = flag("--do-eval", help="Evaluate; write eval_results.txt.", panel=TRAINING_PANEL)

# --- training ----------------------------------------------------------------------------------
TRAIN_BATCH_SIZE = option(S.TRAIN_BATCH_SIZE, help="Examples per optimizer step.", panel=TRAINING_PANEL)
EVAL_BATCH_SIZE = option(S.EVAL_BATCH_SIZE, help="Examples per evaluation batch.", panel=TRAINING_PANEL)
PREDICT_BATCH_SIZE = option(S.PREDICT_BATCH_SIZE, help="Examples per prediction batch.", panel=TRAINING_PANEL)
LEARNING_RATE = option(S.LEARNING_RATE, help="Peak learning rate (linear warmup, then linear decay).",
                       panel=OPTIMIZER_PANEL)
SAVE_CHECKPOINTS_STEPS = option(S.SAVE_CHECKPOINTS_STEPS, help="Write a checkpoint every N steps.",
                                panel=TRAINING_PANEL)
KEEP_CHECKPOINTS = option(S.KEEP_CHECKPOINTS, help="How many recent checkpoints to keep.", panel=TRAINING_PANEL)
MAX_STEPS = option(S.MAX_STEPS, help="Stop after N optimizer steps (shortened runs).", panel=TRAINING_PANEL)
ACCUMULATION = option(
    S.GRADIENT_ACCUMULATION_STEPS, panel=TRAINING_PANEL,
    help="K micro-batches per optimizer step, summed exactly. finetune: --train-batch-size is split into K "
    "(same result, less memory); pretrain: each step takes K batches of --train-batch-size (same result as "
    "a K x bigger batch).",
)
OPTIMIZER = option(S.OPTIMIZER, metavar="NAME", panel=OPTIMIZER_PANEL,
                   help="adamw (the original AdamWeightDecay, no bias correction) | lamb.")
SEED = option(S.SEED, panel=TRAINING_PANEL, help="Seed Python, NumPy and TensorFlow for repeatable runs.")

# --- the engine (device, precision, XLA) -------------------------------------------------------
DEVICE = option(S.DEVICE, metavar="NAME", panel=DEVICE_PANEL,
                help="auto | cpu | gpu | tpu (auto: TPU, several GPUs, TF_CONFIG workers, one GPU, else CPU).")
PRECISION = option(S.PRECISION, metavar="NAME", panel=DEVICE_PANEL,
                   help="auto | fp32 | bf16 | fp16 (auto: bf16 on TPU, fp16 + loss scaling on GPU, fp32 on CPU).")
XLA = flag("--xla/--no-xla", default=None, panel=DEVICE_PANEL,
           help="Compile with XLA (default: on for GPU/TPU, off for CPU, where it measured slower).")

# --- Hugging Face export (bert_cli.ops.export_hf) -------------------------------------------
EXPORT_HF = typer.Option(
    None, "--export-hf", metavar="DIR", rich_help_panel=OUTPUT_PANEL,
    help="Also write the model in the Hugging Face layout (model.safetensors, config.json, vocab.txt, "
    "tokenizer_config.json) to DIR, for transformers' from_pretrained.",
)
DOWNLOAD_EXPORT_HF = typer.Option(
    None, "--export-hf", metavar="SOURCE DIR",
    help="Write SOURCE (a cached model NAME, a model folder or a run folder) in the Hugging Face layout to DIR.",
)
