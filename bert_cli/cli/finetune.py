"""``bert finetune TASK``: fine-tune on a GLUE/XNLI task or your own CSV/TSV/JSONL (run_classifier.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..ops import option_specs as S
from ..text.task_names import FINETUNE_TASKS, NER, SQUAD
from . import options


def _complete_task(incomplete: str) -> list[str]:
    return [t for t in FINETUNE_TASKS if t.startswith(incomplete.lower())]


EPILOG = """Examples:

  bert finetune mrpc --model uncased-base --do-train --do-eval -o runs/mrpc

  bert finetune squad -m uncased-base --do-train --do-predict --train-file train-v1.1.json --predict-file dev-v1.1.json -o runs/squad

  bert finetune ner -m cased-base --data-dir conll2003 --do-train --do-eval --keep-best f1 -o runs/ner
"""

_TASK_DATA = "Data (csv/tsv/jsonl tasks)"
_SQUAD = "SQuAD (finetune squad)"
_NER = "NER (finetune ner)"
_WINDOWS = "Long inputs (finetune squad, finetune ner)"


def finetune(
    task: Optional[str] = typer.Argument(None, metavar="TASK", help=f"Task: {', '.join(FINETUNE_TASKS)} (csv/tsv/jsonl: your own data).", autocompletion=_complete_task, show_default=False),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", metavar="DIR", rich_help_panel=options.DATA_PANEL, help="Folder with train/dev/test files (default for GLUE tasks: the downloaded dataset)."),
    output_dir: Path = options.OUTPUT_DIR,
    model: Optional[str] = options.MODEL,
    download: bool = options.DOWNLOAD,
    vocab_file: Optional[Path] = options.VOCAB_FILE,
    bert_config_file: Optional[Path] = options.BERT_CONFIG_FILE,
    init_checkpoint: Optional[str] = options.INIT_CHECKPOINT,
    do_lower_case: Optional[bool] = options.DO_LOWER_CASE,
    force_casing: bool = options.FORCE_CASING,
    do_train: bool = options.DO_TRAIN,
    do_eval: bool = options.flag("--do-eval", panel=options.TRAINING_PANEL, help="Evaluate on dev; write eval_results.txt."),
    do_predict: bool = options.flag("--do-predict", panel=options.TRAINING_PANEL, help="Predict test; write test_results.tsv (squad: predictions.json; ner: test_predictions.txt)."),
    max_seq_length: Optional[int] = options.option(S.MAX_SEQ_LENGTH, default=None, panel=options.DATA_PANEL, help=f"Default: {S.MAX_SEQ_LENGTH.default} (squad: {S.SQUAD_MAX_SEQ_LENGTH.default})."),
    train_batch_size: int = options.TRAIN_BATCH_SIZE,
    eval_batch_size: int = options.EVAL_BATCH_SIZE,
    predict_batch_size: int = options.PREDICT_BATCH_SIZE,
    learning_rate: float = options.LEARNING_RATE,
    num_train_epochs: float = options.option(S.NUM_TRAIN_EPOCHS, panel=options.OPTIMIZER_PANEL, help="Epochs over the training data."),
    warmup_proportion: float = options.option(S.WARMUP_PROPORTION, panel=options.OPTIMIZER_PANEL, help="Share of the steps with a linear warmup."),
    save_checkpoints_steps: int = options.SAVE_CHECKPOINTS_STEPS,
    keep_checkpoints: int = options.KEEP_CHECKPOINTS,
    max_steps: Optional[int] = options.MAX_STEPS,
    eval_every_steps: Optional[int] = options.option(S.EVAL_EVERY_STEPS, panel=options.TRAINING_PANEL, help="Evaluate on dev every N steps."),
    eval_every_epoch: bool = options.flag("--eval-every-epoch", panel=options.TRAINING_PANEL, help="Evaluate on dev after each epoch."),
    keep_best: Optional[str] = typer.Option(None, "--keep-best", metavar="METRIC", rich_help_panel=options.TRAINING_PANEL, help="Keep the best checkpoint by this dev metric (accuracy, f1, mcc, eval_loss, ...) in best/."),
    early_stopping_patience: Optional[int] = options.option(S.EARLY_STOPPING_PATIENCE, panel=options.TRAINING_PANEL, help="Stop after N evaluations without improvement."),
    repeat: int = options.option(S.REPEAT, panel=options.TRAINING_PANEL, help="Run N times with seeds seed, seed+1, ...; report mean and spread."),
    seed: Optional[int] = options.SEED,
    gradient_accumulation_steps: int = options.ACCUMULATION,
    optimizer: str = options.OPTIMIZER,
    export_slim: bool = options.flag("--export-slim", panel=options.OUTPUT_PANEL, help="Also write weights-only export/ (no Adam slots, 3x smaller)."),
    export_saved_model: bool = options.flag("--export-saved-model", panel=options.OUTPUT_PANEL, help="Also write a TensorFlow SavedModel."),
    export_hf: Optional[Path] = options.EXPORT_HF,
    json_output: bool = options.flag("--json", panel=options.OUTPUT_PANEL, help="Print the final metrics as one JSON object on stdout."),
    language: Optional[str] = typer.Option(None, "--language", metavar="CODE", rich_help_panel=_TASK_DATA, help="xnli: the language (default zh)."),
    text_a_column: Optional[str] = typer.Option(None, "--text-a-column", metavar="COLUMN", rich_help_panel=_TASK_DATA, help="Column (name or 0-based index) of the text."),
    text_b_column: Optional[str] = typer.Option(None, "--text-b-column", metavar="COLUMN", rich_help_panel=_TASK_DATA, help="Column of the second text (pairs)."),
    label_column: Optional[str] = typer.Option(None, "--label-column", metavar="COLUMN", rich_help_panel=_TASK_DATA, help="Column of the label."),
    header: Optional[bool] = options.flag("--header/--no-header", default=None, panel=_TASK_DATA, help="csv/tsv: the first row is a header (default: yes)."),
    label_separator: Optional[str] = typer.Option(None, "--label-separator", metavar="TEXT", rich_help_panel=_TASK_DATA, help="Separator of several labels in one cell (multi-label)."),
    multilabel: Optional[bool] = options.flag("--multilabel/--no-multilabel", default=None, panel=_TASK_DATA, help="Several labels per example."),
    regression: Optional[bool] = options.flag("--regression/--no-regression", default=None, panel=_TASK_DATA, help="The label is a number."),
    train_file: Optional[Path] = typer.Option(None, "--train-file", metavar="FILE", rich_help_panel=_SQUAD, help="SQuAD JSON to train on (train-v1.1.json)."),
    predict_file: Optional[Path] = typer.Option(None, "--predict-file", metavar="FILE", rich_help_panel=_SQUAD, help="SQuAD JSON to predict (dev-v1.1.json); scored when it has answers."),
    version_2_with_negative: bool = options.flag("--version-2-with-negative", panel=_SQUAD, help="SQuAD 2.0 (unanswerable questions)."),
    doc_stride: Optional[int] = options.option(S.DOC_STRIDE, default=None, panel=_WINDOWS, help=f"Stride of the sliding windows over long inputs (default: squad {S.DOC_STRIDE.default}, ner {S.NER_DOC_STRIDE.default})."),
    max_query_length: int = options.option(S.MAX_QUERY_LENGTH, panel=_SQUAD, help="Questions are cut to this many tokens."),
    n_best_size: int = options.option(S.N_BEST_SIZE, panel=_SQUAD, help="N-best answers per question."),
    max_answer_length: int = options.option(S.MAX_ANSWER_LENGTH, panel=_SQUAD, help="Longest answer in tokens."),
    null_score_diff_threshold: float = options.option(S.NULL_SCORE_DIFF_THRESHOLD, panel=_SQUAD, help="SQuAD 2.0: predict no answer when null score - best > this."),
    first_answer_only: bool = options.flag("--first-answer-only", panel=_SQUAD, help="Train on the first of several gold answers (dev-style files)."),
    device: str = options.DEVICE,
    precision: str = options.PRECISION,
    xla: Optional[bool] = options.XLA,
    task_name: Optional[str] = typer.Option(None, "--task-name", hidden=True, help="The original's flag: same as TASK."),
    tag_column: int = options.option(S.TAG_COLUMN, panel=_NER, help="0-based column of the tag in CoNLL files (-1: the last)."),
    document_context: bool = options.flag("--document-context/--no-document-context", panel=_NER, help="Pack the neighbouring sentences of the document around each sentence (BERT paper)."),
) -> None:
    """Fine-tune BERT: sentence(-pair) classification or regression (run_classifier.py), SQuAD (run_squad.py) or NER (token classification).

    Writes checkpoints (Google's TF1 layout), eval_results.txt and test results into --output-dir, plus bert_run.json so that `bert predict --model OUTPUT_DIR` works. Rerun the same command to resume an interrupted run.
    """
    from . import original_flags
    from .render import print_metrics
    from .summary import training_run

    task = original_flags.task(task, task_name)
    common = dict(
        output_dir=output_dir, model=model, vocab_file=vocab_file, bert_config_file=bert_config_file,
        init_checkpoint=init_checkpoint, download=download, do_lower_case=do_lower_case, force_casing=force_casing,
        do_train=do_train, do_predict=do_predict, train_batch_size=train_batch_size,
        predict_batch_size=predict_batch_size, learning_rate=learning_rate, num_train_epochs=num_train_epochs,
        warmup_proportion=warmup_proportion, save_checkpoints_steps=save_checkpoints_steps,
        keep_checkpoint_max=keep_checkpoints, max_steps=max_steps, seed=seed, device=device, precision=precision,
        xla=xla, gradient_accumulation_steps=gradient_accumulation_steps, optimizer=optimizer, export_hf=export_hf,
    )
    if max_seq_length is not None:  # else the config's default (128; squad 384)
        common["max_seq_length"] = max_seq_length
    if task.lower() == SQUAD:
        from ..ops.finetune_squad import SquadFinetuneConfig, run as run_squad

        with training_run("finetune squad", output_dir) as progress_run:
            result = run_squad(
                SquadFinetuneConfig(
                    **common, train_file=train_file, predict_file=predict_file,
                    version_2_with_negative=version_2_with_negative,
                    **({} if doc_stride is None else {"doc_stride": doc_stride}),
                    max_query_length=max_query_length, n_best_size=n_best_size, max_answer_length=max_answer_length,
                    null_score_diff_threshold=null_score_diff_threshold, first_answer_only=first_answer_only,
                ),
                progress=progress_run.progress,
            )
            progress_run.finish(result)
        print_metrics(result.get("metrics") or {"global_step": result.get("global_step")}, json_output,
                      extra={"seed": result.get("seed")})
        return

    from ..ops.finetune import FinetuneConfig, run

    config_class, extra = FinetuneConfig, {}
    if task.lower() == NER:
        from ..ops.finetune_ner import NerFinetuneConfig, run

        config_class = NerFinetuneConfig
        extra = dict(tag_column=tag_column, document_context=document_context,
                     **({} if doc_stride is None else {"doc_stride": doc_stride}))

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
    with training_run("finetune", output_dir) as progress_run:
        result = run(
            config_class(
                **common, **extra, task=task.lower() if task.lower() == NER else task, data_dir=data_dir,
                task_options={k: v for k, v in task_options.items() if v is not None},
                do_eval=do_eval, eval_batch_size=eval_batch_size, eval_every_steps=eval_every_steps,
                eval_every_epoch=eval_every_epoch, keep_best=keep_best, early_stopping_patience=early_stopping_patience,
                export_slim=export_slim, export_saved_model=export_saved_model, repeat=repeat,
            ),
            progress=progress_run.progress,
        )
        progress_run.finish(result)
    if "runs" in result:  # --repeat K: mean and spread over the seeds
        metrics = {k: result[k] for k in ("seeds", "mean", "std", "min", "max") if k in result}
    else:
        metrics = result.get("eval") or {"global_step": result.get("global_step")}
    if "runs" in result and not json_output:
        for key in sorted(metrics.get("mean", {})):
            typer.echo(f"{key} = {metrics['mean'][key]} +- {metrics.get('std', {}).get(key)}")
    else:
        print_metrics(metrics, json_output, extra={"seed": result.get("seed")})

