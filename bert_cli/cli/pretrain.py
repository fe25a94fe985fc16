"""``bert pretrain``: masked-LM + next-sentence pretraining (the original run_pretraining.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..ops import option_specs as S
from . import options


EPILOG = """Examples:

  bert make-pretrain-data -o data.tfrecord && bert pretrain -i data.tfrecord -o runs/demo --do-train --do-eval --num-train-steps 20

  bert pretrain -i 'shards/*.tfrecord' -m uncased-base -o runs/more --do-train --num-train-steps 10000
"""


def pretrain(
    input_file: str = typer.Option(..., "--input-file", "-i", metavar="FILES", rich_help_panel=options.DATA_PANEL, help="TFRecords from `bert make-pretrain-data` (comma list and/or globs)."),
    max_seq_length: int = options.option(S.MAX_SEQ_LENGTH, panel=options.DATA_PANEL, help="Must equal the data's."),
    max_predictions_per_seq: int = options.option(S.MAX_PREDICTIONS_PER_SEQ, panel=options.DATA_PANEL, help="Must equal the data's."),
    model: Optional[str] = options.MODEL,
    download: bool = options.DOWNLOAD,
    bert_config_file: Optional[Path] = options.BERT_CONFIG_FILE,
    init_checkpoint: Optional[str] = options.INIT_CHECKPOINT,
    do_train: bool = options.flag("--do-train", panel=options.TRAINING_PANEL, help="Train."),
    do_eval: bool = options.DO_EVAL,
    train_batch_size: int = options.TRAIN_BATCH_SIZE,
    eval_batch_size: int = options.EVAL_BATCH_SIZE,
    learning_rate: float = options.LEARNING_RATE,
    num_train_steps: int = options.option(S.NUM_TRAIN_STEPS, panel=options.OPTIMIZER_PANEL, help="Train until this global step."),
    num_warmup_steps: int = options.option(S.NUM_WARMUP_STEPS, panel=options.OPTIMIZER_PANEL, help="Steps of linear warmup."),
    save_checkpoints_steps: int = options.SAVE_CHECKPOINTS_STEPS,
    keep_checkpoints: int = options.KEEP_CHECKPOINTS,
    max_eval_steps: int = options.option(S.MAX_EVAL_STEPS, panel=options.TRAINING_PANEL, help="Batches to evaluate."),
    seed: Optional[int] = options.SEED,
    gradient_accumulation_steps: int = options.ACCUMULATION,
    optimizer: str = options.OPTIMIZER,
    output_dir: Path = options.OUTPUT_DIR,
    log_every_steps: int = options.option(S.LOG_EVERY_STEPS, panel=options.OUTPUT_PANEL, help="Progress line every N steps (stderr)."),
    json_output: bool = options.JSON,
    export_hf: Optional[Path] = options.EXPORT_HF,
    device: str = options.DEVICE,
    precision: str = options.PRECISION,
    xla: Optional[bool] = options.XLA,
) -> None:
    """Pretrain BERT (MLM + NSP) from scratch or from a checkpoint; rerun the same command to resume.

    Writes model.ckpt-STEP checkpoints in Google's TF1 layout, eval_results.txt and TensorBoard
    scalars into --output-dir. Without --model or --bert-config-file: the bundled tiny demo BERT.
    """
    from ..ops.pretrain import PretrainConfig, run
    from .render import print_metrics
    from .summary import training_run

    with training_run("pretrain", output_dir) as progress_run:
        result = run(
            PretrainConfig(
                input_file=input_file, output_dir=output_dir, model=model, download=download,
                bert_config_file=bert_config_file, init_checkpoint=init_checkpoint, do_train=do_train,
                do_eval=do_eval, train_batch_size=train_batch_size, eval_batch_size=eval_batch_size,
                learning_rate=learning_rate, num_train_steps=num_train_steps, num_warmup_steps=num_warmup_steps,
                max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
                save_checkpoints_steps=save_checkpoints_steps, max_eval_steps=max_eval_steps,
                keep_checkpoints=keep_checkpoints, device=device, precision=precision, xla=xla, seed=seed,
                gradient_accumulation_steps=gradient_accumulation_steps, optimizer=optimizer,
                log_every_steps=log_every_steps, export_hf=export_hf,
            ),
            progress=progress_run.progress,
        )
        progress_run.finish(result)
    print_metrics(result.get("eval") or {"global_step": result.get("global_step")}, json_output,
                  extra={"seed": result.get("seed")})
