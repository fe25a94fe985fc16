"""``bert pretrain``: masked-LM + next-sentence pretraining (the original run_pretraining.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options


def pretrain(
    input_file: str = typer.Option(..., "--input-file", "-i", help="TFRecords from `bert make-pretrain-data` (comma list and/or globs)."),
    output_dir: Path = options.OUTPUT_DIR,
    bert_config_file: Optional[Path] = options.BERT_CONFIG_FILE,
    init_checkpoint: Optional[str] = options.INIT_CHECKPOINT,
    model: Optional[str] = options.MODEL,
    download: bool = options.DOWNLOAD,
    do_train: bool = typer.Option(False, "--do-train", help="Train."),
    do_eval: bool = typer.Option(False, "--do-eval", help="Evaluate and write eval_results.txt."),
    train_batch_size: int = typer.Option(32, "--train-batch-size", min=1),
    eval_batch_size: int = typer.Option(8, "--eval-batch-size", min=1),
    learning_rate: float = typer.Option(5e-5, "--learning-rate", min=0.0),
    num_train_steps: int = typer.Option(100000, "--num-train-steps", min=0),
    num_warmup_steps: int = typer.Option(10000, "--num-warmup-steps", min=0),
    max_seq_length: int = typer.Option(128, "--max-seq-length", min=3, help="Must equal the data's."),
    max_predictions_per_seq: int = typer.Option(20, "--max-predictions-per-seq", min=1, help="Must equal the data's."),
    save_checkpoints_steps: int = typer.Option(1000, "--save-checkpoints-steps", min=1),
    max_eval_steps: int = typer.Option(100, "--max-eval-steps", min=1),
    keep_checkpoints: int = options.KEEP_CHECKPOINTS,
    log_every_steps: int = typer.Option(100, "--log-every-steps", min=1, help="Progress line every N steps (stderr)."),
    device: str = options.DEVICE,
    precision: str = options.PRECISION,
    xla: Optional[bool] = options.XLA,
    seed: Optional[int] = options.SEED,
    gradient_accumulation_steps: int = options.ACCUMULATION,
    optimizer: str = options.OPTIMIZER,
    json_output: bool = options.JSON,
    use_tpu: bool = options.USE_TPU,
    tpu_name: Optional[str] = options.TPU_NAME,
    tpu_zone: Optional[str] = options.TPU_ZONE,
    gcp_project: Optional[str] = options.GCP_PROJECT,
    master: Optional[str] = options.MASTER,
    num_tpu_cores: Optional[int] = options.NUM_TPU_CORES,
    iterations_per_loop: Optional[int] = options.ITERATIONS_PER_LOOP,
) -> None:
    """Pretrain BERT (MLM + NSP) from scratch or from a checkpoint; rerun the same command to resume.

    Writes model.ckpt-STEP checkpoints in Google's TF1 layout, eval_results.txt and TensorBoard
    scalars into --output-dir.
    """
    from ..ops.pretrain import PretrainConfig, run
    from . import original_flags
    from .render import print_metrics
    from .summary import training_run

    device = original_flags.apply(
        device, use_tpu=use_tpu, tpu_name=tpu_name, master=master,
        tpu_zone=tpu_zone, gcp_project=gcp_project, num_tpu_cores=num_tpu_cores, iterations_per_loop=iterations_per_loop,
    )

    if model is not None:
        from ..models.policy import resolve_model_files

        files = resolve_model_files(model, bert_config_file=bert_config_file, init_checkpoint=init_checkpoint,
                                    download=download, tokenizes=False)
        bert_config_file, init_checkpoint = files.config_file, files.checkpoint
    if bert_config_file is None:
        from .. import console
        from ..resources import path as resource_path

        bert_config_file = resource_path("demo_bert_config.json")
        console.info("no --bert-config-file or --model: pretraining the bundled tiny demo BERT (2 layers, hidden 64)")
    with training_run("pretrain", output_dir) as progress_run:
        result = run(
            PretrainConfig(
                input_file=input_file,
                output_dir=output_dir,
                bert_config_file=bert_config_file,
                init_checkpoint=init_checkpoint,
                do_train=do_train,
                do_eval=do_eval,
                train_batch_size=train_batch_size,
                eval_batch_size=eval_batch_size,
                learning_rate=learning_rate,
                num_train_steps=num_train_steps,
                num_warmup_steps=num_warmup_steps,
                max_seq_length=max_seq_length,
                max_predictions_per_seq=max_predictions_per_seq,
                save_checkpoints_steps=save_checkpoints_steps,
                max_eval_steps=max_eval_steps,
                keep_checkpoints=keep_checkpoints,
                device=device,
                precision=precision,
                xla=xla,
                seed=seed,
                gradient_accumulation_steps=gradient_accumulation_steps,
                optimizer=optimizer,
                log_every_steps=log_every_steps,
            ),
            progress=progress_run.progress,
        )
        progress_run.finish(result)
    print_metrics(result.get("eval") or {"global_step": result.get("global_step")}, json_output,
                  extra={"seed": result.get("seed")})
