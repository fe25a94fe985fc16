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
FORCE_CASING = typer.Option(False, "--force-casing", help="Allow --do-lower-case/--no-do-lower-case to contradict the model's casing.")
MAX_SEQ_LENGTH = typer.Option(None, "--max-seq-length", min=3, help="Add [CLS]/[SEP], truncate pairs as the original, emit model inputs.")
JSON = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout.")


# --- model files -------------------------------------------------------------------------
BERT_CONFIG_FILE = typer.Option(None, "--bert-config-file", help="bert_config.json of the model.")
INIT_CHECKPOINT = typer.Option(None, "--init-checkpoint", help="Checkpoint to start from (TF1 prefix or folder; HF model.safetensors).")
DOWNLOAD = typer.Option(False, "--download", help="Download --model NAME first if it is not cached.")
OUTPUT_DIR = typer.Option(..., "--output-dir", "-o", help="Folder for checkpoints and results (rerun to resume).")

# --- the engine (device, precision, training) ----------------------------------------------
DEVICE = typer.Option("auto", "--device", help="auto | cpu | gpu | tpu (auto: TPU, several GPUs, TF_CONFIG workers, one GPU, else CPU).")
PRECISION = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16 (auto: bf16 on TPU, fp16 + loss scaling on GPU, fp32 on CPU).")
XLA = typer.Option(None, "--xla/--no-xla", help="Compile with XLA (default: on for GPU/TPU, off for CPU).")
# bert extract decides its own default (ops.extract.XLA_DEFAULT): on everywhere.
EXTRACT_XLA = typer.Option(
    None, "--xla/--no-xla", help="Compile with XLA (default: on, CPU included: one compile per batch shape, then faster)."
)
SEED = typer.Option(None, "--seed", min=0, help="Seed Python, NumPy and TensorFlow for repeatable runs.")
ACCUMULATION = typer.Option(
    1, "--gradient-accumulation-steps", min=1,
    help="K micro-batches per optimizer step, summed exactly. finetune: --train-batch-size is split into K "
    "(same result, less memory); pretrain: each step takes K batches of --train-batch-size (same result as "
    "a K x bigger batch).",
)
OPTIMIZER = typer.Option("adamw", "--optimizer", help="adamw (the original AdamWeightDecay, no bias correction) | lamb.")
KEEP_CHECKPOINTS = typer.Option(5, "--keep-checkpoints", min=1, help="How many recent checkpoints to keep.")

# --- the original scripts' TPU/Estimator flags (hidden; their meaning: original_flags.apply) --
_ORIGINAL = "The original's flag; see `bert_cli/cli/original_flags.py`."
USE_TPU = typer.Option(False, "--use-tpu", hidden=True, help="The original's flag: --device tpu.")
TPU_NAME = typer.Option(None, "--tpu-name", hidden=True, help="The original's flag: the TPU's name or grpc:// address (with --use-tpu).")
TPU_ZONE = typer.Option(None, "--tpu-zone", hidden=True, help=_ORIGINAL + " No effect.")
GCP_PROJECT = typer.Option(None, "--gcp-project", hidden=True, help=_ORIGINAL + " No effect.")
MASTER = typer.Option(None, "--master", hidden=True, help="The original's flag: the TPU's grpc:// address (with --use-tpu).")
NUM_TPU_CORES = typer.Option(None, "--num-tpu-cores", hidden=True, help=_ORIGINAL + " No effect.")
ITERATIONS_PER_LOOP = typer.Option(None, "--iterations-per-loop", hidden=True, help=_ORIGINAL + " No effect.")
USE_ONE_HOT_EMBEDDINGS = typer.Option(False, "--use-one-hot-embeddings", hidden=True, help=_ORIGINAL + " No effect.")
VERBOSE_LOGGING = typer.Option(False, "--verbose-logging", hidden=True, help="The original's flag: bert --verbose.")

# --- Hugging Face export (bert_cli.ops.export_hf) -------------------------------------------
EXPORT_HF = typer.Option(
    None, "--export-hf", metavar="DIR",
    help="Also write the model in the Hugging Face layout (model.safetensors, config.json, vocab.txt, "
    "tokenizer_config.json) to DIR, for transformers' from_pretrained.",
)
DOWNLOAD_EXPORT_HF = typer.Option(
    None, "--export-hf", metavar="SOURCE DIR",
    help="Write SOURCE (a cached model NAME, a model folder or a run folder) in the Hugging Face layout to DIR.",
)
