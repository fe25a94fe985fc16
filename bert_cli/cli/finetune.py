"""``bert finetune TASK``: fine-tune on a GLUE/XNLI task or your own CSV/TSV/JSONL (run_classifier.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..text.task_names import FINETUNE_TASKS, NER, SQUAD
from . import options


def _complete_task(incomplete: str) -> list[str]:
    return [t for t in FINETUNE_TASKS if t.startswith(incomplete.lower())]


def finetune(
    task: Optional[str] = typer.Argument(None, help=f"Task: {', '.join(FINETUNE_TASKS)} (csv/tsv/jsonl: your own data).", autocompletion=_complete_task, show_default=False),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with train/dev/test files (default for GLUE tasks: the downloaded dataset)."),
    output_dir: Path = options.OUTPUT_DIR,
    model: Optional[str] = options.MODEL,
    download: bool = options.DOWNLOAD,
    vocab_file: Optional[Path] = options.VOCAB_FILE,
    bert_config_file: Optional[Path] = options.BERT_CONFIG_FILE,
    init_checkpoint: Optional[str] = options.INIT_CHECKPOINT,
    do_lower_case: Optional[bool] = options.DO_LOWER_CASE,
    force_casing: bool = options.FORCE_CASING,
    do_train: bool = typer.Option(False, "--do-train", help="Train on train split."),
    do_eval: bool = typer.Option(False, "--do-eval", help="Evaluate on dev; write eval_results.txt."),
    do_predict: bool = typer.Option(False, "--do-predict", help="Predict test; write test_results.tsv."),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", min=3, help="Default: 128 (squad: 384)."),
    train_batch_size: int = typer.Option(32, "--train-batch-size", min=1),
    eval_batch_size: int = typer.Option(8, "--eval-batch-size", min=1),
    predict_batch_size: int = typer.Option(8, "--predict-batch-size", min=1),
    learning_rate: float = typer.Option(5e-5, "--learning-rate", min=0.0),
    num_train_epochs: float = typer.Option(3.0, "--num-train-epochs", min=0.0),
    warmup_proportion: float = typer.Option(0.1, "--warmup-proportion", min=0.0, max=1.0),
    save_checkpoints_steps: int = typer.Option(1000, "--save-checkpoints-steps", min=1),
    keep_checkpoints: int = options.KEEP_CHECKPOINTS,
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after N optimizer steps (shortened runs)."),
    eval_every_steps: Optional[int] = typer.Option(None, "--eval-every-steps", min=1, help="Evaluate on dev every N steps."),
    eval_every_epoch: bool = typer.Option(False, "--eval-every-epoch", help="Evaluate on dev after each epoch."),
    keep_best: Optional[str] = typer.Option(None, "--keep-best", help="Keep the best checkpoint by this dev metric (accuracy, f1, mcc, eval_loss, ...) in best/."),
    early_stopping_patience: Optional[int] = typer.Option(None, "--early-stopping-patience", min=1, help="Stop after N evaluations without improvement."),
    export_slim: bool = typer.Option(False, "--export-slim", help="Also write weights-only export/ (no Adam slots, 3x smaller)."),
    export_saved_model: bool = typer.Option(False, "--export-saved-model", help="Also write a TensorFlow SavedModel."),
    repeat: int = typer.Option(1, "--repeat", min=1, help="Run K times with seeds seed, seed+1, ...; report mean and spread."),
    language: Optional[str] = typer.Option(None, "--language", help="xnli: the language (default zh)."),
    text_a_column: Optional[str] = typer.Option(None, "--text-a-column", help="csv/tsv/jsonl: column (name or 0-based index) of the text."),
    text_b_column: Optional[str] = typer.Option(None, "--text-b-column", help="csv/tsv/jsonl: column of the second text (pairs)."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="csv/tsv/jsonl: column of the label."),
    header: Optional[bool] = typer.Option(None, "--header/--no-header", help="csv/tsv: the first row is a header (default: yes)."),
    label_separator: Optional[str] = typer.Option(None, "--label-separator", help="csv/tsv: separator of several labels in one cell (multi-label)."),
    multilabel: Optional[bool] = typer.Option(None, "--multilabel/--no-multilabel", help="csv/tsv/jsonl: several labels per example."),
    regression: Optional[bool] = typer.Option(None, "--regression/--no-regression", help="csv/tsv/jsonl: the label is a number."),
    train_file: Optional[Path] = typer.Option(None, "--train-file", help="squad: SQuAD JSON to train on (train-v1.1.json)."),
    predict_file: Optional[Path] = typer.Option(None, "--predict-file", help="squad: SQuAD JSON to predict (dev-v1.1.json); scored when it has answers."),
    version_2_with_negative: bool = typer.Option(False, "--version-2-with-negative", help="squad: SQuAD 2.0 (unanswerable questions)."),
    doc_stride: Optional[int] = typer.Option(None, "--doc-stride", min=1, help="squad: stride of the sliding document windows (default 128); ner: of the windows over long sentences (default 64)."),
    max_query_length: int = typer.Option(64, "--max-query-length", min=1, help="squad: questions are cut to this many tokens."),
    n_best_size: int = typer.Option(20, "--n-best-size", min=1, help="squad: n-best answers per question."),
    max_answer_length: int = typer.Option(30, "--max-answer-length", min=1, help="squad: longest answer in tokens."),
    null_score_diff_threshold: float = typer.Option(0.0, "--null-score-diff-threshold", help="squad 2.0: predict no answer when null score - best > this."),
    first_answer_only: bool = typer.Option(False, "--first-answer-only", help="squad: train on the first of several gold answers (dev-style files)."),
    device: str = options.DEVICE,
    precision: str = options.PRECISION,
    xla: Optional[bool] = options.XLA,
    seed: Optional[int] = options.SEED,
    gradient_accumulation_steps: int = options.ACCUMULATION,
    optimizer: str = options.OPTIMIZER,
    json_output: bool = typer.Option(False, "--json", help="Print the final metrics as one JSON object on stdout."),
    task_name: Optional[str] = typer.Option(None, "--task-name", hidden=True, help="The original's flag: same as TASK."),
    use_tpu: bool = options.USE_TPU,
    tpu_name: Optional[str] = options.TPU_NAME,
    tpu_zone: Optional[str] = options.TPU_ZONE,
    gcp_project: Optional[str] = options.GCP_PROJECT,
    master: Optional[str] = options.MASTER,
    num_tpu_cores: Optional[int] = options.NUM_TPU_CORES,
    iterations_per_loop: Optional[int] = options.ITERATIONS_PER_LOOP,
    verbose_logging: bool = options.VERBOSE_LOGGING,
    tag_column: int = typer.Option(-1, "--tag-column", help="ner: 0-based column of the tag in CoNLL files (-1: the last)."),
    document_context: bool = typer.Option(False, "--document-context/--no-document-context", help="ner: pack the neighbouring sentences of the document around each sentence."),
) -> None:
    """Fine-tune BERT for sentence(-pair) classification or regression (run_classifier.py), or SQuAD (run_squad.py).

    Writes checkpoints (Google's TF1 layout), eval_results.txt and test_results.tsv into
    --output-dir, plus bert_run.json so that `bert predict --model OUTPUT_DIR` works.
    Rerun the same command to resume an interrupted run.
    """
    from . import original_flags
    from .render import print_metrics, training_progress

    task = original_flags.task(task, task_name)
    device = original_flags.apply(
        device, use_tpu=use_tpu, tpu_name=tpu_name, master=master, verbose_logging=verbose_logging,
        tpu_zone=tpu_zone, gcp_project=gcp_project, num_tpu_cores=num_tpu_cores, iterations_per_loop=iterations_per_loop,
    )
    if task.lower() == SQUAD:
        from ..ops.finetune_squad import SquadFinetuneConfig, run as run_squad

        result = run_squad(
            SquadFinetuneConfig(
                output_dir=output_dir, train_file=train_file, predict_file=predict_file, model=model,
                vocab_file=vocab_file, bert_config_file=bert_config_file, init_checkpoint=init_checkpoint,
                download=download, do_lower_case=do_lower_case, force_casing=force_casing, do_train=do_train,
                do_predict=do_predict, version_2_with_negative=version_2_with_negative,
                max_seq_length=max_seq_length or 384, doc_stride=doc_stride or SquadFinetuneConfig.doc_stride,
                max_query_length=max_query_length,
                n_best_size=n_best_size, max_answer_length=max_answer_length,
                null_score_diff_threshold=null_score_diff_threshold, train_batch_size=train_batch_size,
                predict_batch_size=predict_batch_size, learning_rate=learning_rate,
                num_train_epochs=num_train_epochs, warmup_proportion=warmup_proportion,
                save_checkpoints_steps=save_checkpoints_steps, keep_checkpoint_max=keep_checkpoints,
                max_steps=max_steps, first_answer_only=first_answer_only, seed=seed, device=device,
                precision=precision, xla=xla, gradient_accumulation_steps=gradient_accumulation_steps,
                optimizer=optimizer,
            ),
            progress=training_progress(),
        )
        print_metrics(result.get("metrics") or {"global_step": result.get("global_step")}, json_output)
        return

    from ..ops.finetune import FinetuneConfig, run

    config_class, extra = FinetuneConfig, {}
    if task.lower() == NER:
        from ..ops.finetune_ner import NerFinetuneConfig, run

        config_class = NerFinetuneConfig
        extra = dict(tag_column=tag_column, document_context=document_context,
                     doc_stride=doc_stride or NerFinetuneConfig.doc_stride)

    def column(value: Optional[str]):
        return int(value) if value is not None and value.isdigit() else value

    task_options = {
        "language": language,
        "text_a_column": column(text_a_column),
        "text_b_column": column(text_b_column),
        "label_column": column(label_column),
        "header": header,
        "label_separator": label_separator,
        "multilabel": multilabel,
        "regression": regression,
    }
    result = run(
        config_class(
            task=task.lower() if task.lower() == NER else task,
            output_dir=output_dir,
            data_dir=data_dir,
            task_options={k: v for k, v in task_options.items() if v is not None},
            model=model,
            vocab_file=vocab_file,
            bert_config_file=bert_config_file,
            init_checkpoint=init_checkpoint,
            download=download,
            do_lower_case=do_lower_case,
            force_casing=force_casing,
            do_train=do_train,
            do_eval=do_eval,
            do_predict=do_predict,
            max_seq_length=max_seq_length or 128,
            train_batch_size=train_batch_size,
            eval_batch_size=eval_batch_size,
            predict_batch_size=predict_batch_size,
            learning_rate=learning_rate,
            num_train_epochs=num_train_epochs,
            warmup_proportion=warmup_proportion,
            save_checkpoints_steps=save_checkpoints_steps,
            keep_checkpoint_max=keep_checkpoints,
            max_steps=max_steps,
            eval_every_steps=eval_every_steps,
            eval_every_epoch=eval_every_epoch,
            keep_best=keep_best,
            early_stopping_patience=early_stopping_patience,
            export_slim=export_slim,
            export_saved_model=export_saved_model,
            repeat=repeat,
            seed=seed,
            device=device,
            precision=precision,
            xla=xla,
            gradient_accumulation_steps=gradient_accumulation_steps,
            optimizer=optimizer,
            **extra,
        ),
        progress=training_progress(),
    )
    if "runs" in result:  # --repeat K: mean and spread over the seeds
        metrics = {k: result[k] for k in ("seeds", "mean", "std", "min", "max") if k in result}
    else:
        metrics = result.get("eval") or {"global_step": result.get("global_step")}
    if "runs" in result and not json_output:
        for key in sorted(metrics.get("mean", {})):
            typer.echo(f"{key} = {metrics['mean'][key]} +- {metrics.get('std', {}).get(key)}")
    else:
        print_metrics(metrics, json_output)

