"""``bert finetune`` end to end on a tiny model (random init, small vocab, a separable task):
it learns, writes the original's files, resumes after kill -9, keeps the best checkpoint,
stops early, exports slim weights and fails early on bad input."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli.engine.checkpoint import list_checkpoint, read_checkpoint, resolve_checkpoint, save_model  # noqa: E402
from bert_cli import rundir  # noqa: E402
from bert_cli.errors import ConfigError, NotFoundError, UsageError  # noqa: E402
from bert_cli.modelconfig import BertConfig  # noqa: E402
from bert_cli.ops import finetune as ft  # noqa: E402
from bert_cli.ops import predict as pr  # noqa: E402
from bert_cli.text.predict_input import read_predict_input  # noqa: E402
from bert_cli.text.tasks import get_task  # noqa: E402

N_TRAIN, N_DEV, N_TEST = 256, 64, 32
BATCH, EPOCHS, LR, SEQ = 16, 4.0, 3e-3, 24
STEPS = int(N_TRAIN / BATCH * EPOCHS)  # the original's step count: 64


def config_for(root: Path, out: Path, **changes) -> ft.FinetuneConfig:
    values = dict(
        task="mrpc", output_dir=out, data_dir=root / "data", vocab_file=root / "vocab.txt",
        bert_config_file=root / "bert_config.json", do_train=True, do_eval=True, do_predict=True,
        max_seq_length=SEQ, train_batch_size=BATCH, eval_batch_size=8, predict_batch_size=8,
        learning_rate=LR, num_train_epochs=EPOCHS, seed=1, device="cpu", save_checkpoints_steps=20,
    )
    values.update(changes)
    return ft.FinetuneConfig(**values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, task_maker):
    root = task_maker(tmp_path_factory.mktemp("task"))
    out = root / "run"
    events: list[dict] = []
    summary = ft.run(config_for(root, out, export_slim=True), progress=events.append)
    return root, out, summary, events


# ----------------------------------------------------------------------------- learning & files


def test_learns_separable_task(trained):
    _, out, summary, events = trained
    assert summary["num_train_steps"] == STEPS
    assert summary["global_step"] == STEPS
    assert summary["eval"]["eval_accuracy"] >= 0.9
    assert summary["eval"]["eval_f1"] >= 0.9
    train = [e for e in events if e["phase"] == "train"]
    assert [e["step"] for e in train] == list(range(1, STEPS + 1))
    assert train[-1]["loss"] < 0.3 < train[0]["loss"]
    assert all(e["examples_per_s"] >= 0 and "eta_s" in e and "epoch" in e for e in train)
    assert math.isclose(train[-1]["epoch"], EPOCHS)


def test_eval_results_file_format(trained):
    _, out, summary, _ = trained
    lines = (out / rundir.EVAL_FILE).read_text(encoding="utf-8").splitlines()
    keys = [line.split(" = ")[0] for line in lines]
    assert keys == sorted(keys) == ["eval_accuracy", "eval_f1", "eval_loss", "global_step", "loss"]
    values = dict(line.split(" = ") for line in lines)
    assert values["global_step"] == str(STEPS)
    for key in ("eval_accuracy", "eval_f1", "eval_loss", "loss"):
        assert values[key] == str(np.float32(summary["eval"][key]))
    # eval_accuracy is a fraction of the 64 dev examples
    assert round(float(values["eval_accuracy"]) * N_DEV) == pytest.approx(float(values["eval_accuracy"]) * N_DEV, abs=1e-4)


def test_test_results_file_format(trained):
    _, out, _, _ = trained
    text = (out / rundir.TEST_FILE).read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == N_TEST + 1  # one line per test example, no header
    for line in lines[:-1]:
        fields = line.split("\t")
        assert len(fields) == 2
        probs = [float(f) for f in fields]
        assert all(f == str(np.float32(p)) for f, p in zip(fields, probs))
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_run_folder_and_checkpoints(trained):
    root, out, _, _ = trained
    info = json.loads((out / rundir.RUN_FILE).read_text())
    assert info["task"] == "mrpc" and info["labels"] == ["0", "1"] and info["max_seq_length"] == SEQ
    assert info["is_regression"] is False and info["do_lower_case"] is True
    assert (out / "vocab.txt").read_text() == (root / "vocab.txt").read_text()
    assert BertConfig.from_json_file(out / "bert_config.json").hidden_size == 32
    names = list_checkpoint(resolve_checkpoint(out))
    assert resolve_checkpoint(out).endswith(f"model.ckpt-{STEPS}")
    assert names["output_weights"] == (2, 32) and names["output_bias"] == (2,)
    assert "output_weights/adam_m" in names and "bert/encoder/layer_1/output/dense/kernel/adam_v" in names
    assert int(read_checkpoint(out, ["global_step"])["global_step"]) == STEPS
    # keep_checkpoint_max=5 of the saves at 20, 40, 60 and the final 64
    kept = sorted(p.name for p in out.glob("model.ckpt-*.index"))
    assert kept == ["model.ckpt-20.index", "model.ckpt-40.index", "model.ckpt-60.index", "model.ckpt-64.index"]


def test_slim_export_has_no_adam_slots_and_loads(trained):
    _, out, _, _ = trained
    export = out / rundir.EXPORT_DIR
    names = list_checkpoint(resolve_checkpoint(export))
    assert not [n for n in names if "adam" in n] and "global_step" not in names
    full = read_checkpoint(out)
    slim = read_checkpoint(export)
    assert set(slim) == {n for n in full if "adam" not in n and n != "global_step"}
    for name, value in slim.items():
        np.testing.assert_array_equal(value, full[name])
    # the export is a model folder bert predict takes
    rows = [f"{e.text_a} ||| {e.text_b}" for e in get_task("mrpc").read(out.parent / "data", "test")]
    inputs = out.parent / "pairs.txt"
    inputs.write_text("\n".join(rows) + "\n", encoding="utf-8")
    import io

    buf = io.StringIO()
    pr.run(pr.PredictConfig(model=str(export), output_format="tsv", batch_size=8, device="cpu"),
           read_predict_input(inputs), buf)
    # same weights, same batch size as --predict-batch-size: the very same lines
    assert buf.getvalue() == (out / rundir.TEST_FILE).read_text(encoding="utf-8")


def test_predict_reproduces_eval(trained):
    """bert predict on the dev texts gives the probabilities of the eval pass: its accuracy and
    mean -log p(gold) equal eval_results.txt."""
    import io

    root, out, summary, _ = trained
    dev = list(get_task("mrpc").read(root / "data", "dev"))
    inputs = root / "dev_pairs.txt"
    inputs.write_text("\n".join(f"{e.text_a} ||| {e.text_b}" for e in dev) + "\n", encoding="utf-8")
    buf = io.StringIO()
    result = pr.run(pr.PredictConfig(model=str(out), batch_size=5, device="cpu"), read_predict_input(inputs), buf)
    assert result["examples"] == N_DEV
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert len(rows) == N_DEV
    correct = sum(r["label"] == e.label for r, e in zip(rows, dev))
    assert correct / N_DEV == pytest.approx(summary["eval"]["eval_accuracy"])
    nll = np.mean([-math.log(r["probabilities"][e.label]) for r, e in zip(rows, dev)])
    assert nll == pytest.approx(summary["eval"]["eval_loss"], rel=1e-4, abs=1e-6)


# ----------------------------------------------------------------------------- keep-best, early stopping


def test_keep_best_and_early_stopping(trained, tmp_path):
    """Starting from the trained model, dev accuracy is already maximal (1.0 cannot improve):
    the first evaluation is the best, training stops `patience` evaluations later, and best/
    holds the step-4 weights, which the final evaluation uses."""
    root, out, summary, _ = trained
    assert summary["eval"]["eval_accuracy"] == 1.0
    run_dir = tmp_path / "es"
    result = ft.run(config_for(
        root, run_dir, model=str(out / rundir.EXPORT_DIR), vocab_file=None, bert_config_file=None,
        learning_rate=1e-5, eval_every_steps=4, keep_best="accuracy", early_stopping_patience=2,
        do_predict=False, save_checkpoints_steps=1000,
    ))
    assert result["stopped_early"] is True
    assert result["best"] == {"metric": "eval_accuracy", "value": 1.0, "step": 4}
    assert [h["global_step"] for h in result["history"]] == [4, 8, 12]
    assert int(read_checkpoint(run_dir, ["global_step"])["global_step"]) == 12 < STEPS
    best = run_dir / rundir.BEST_DIR
    assert int(read_checkpoint(best, ["global_step"])["global_step"]) == 4
    assert not [n for n in list_checkpoint(best) if "adam" in n]
    assert "global_step = 4" in (best / rundir.EVAL_FILE).read_text()
    assert "global_step = 4" in (run_dir / rundir.EVAL_FILE).read_text()  # the best weights were evaluated
    assert result["init"]["missing"] == []  # the export has the classifier head
    # rerunning a stopped run does not train again
    again = ft.run(config_for(
        root, run_dir, model=str(out / rundir.EXPORT_DIR), vocab_file=None, bert_config_file=None,
        learning_rate=1e-5, eval_every_steps=4, keep_best="accuracy", early_stopping_patience=2, do_predict=False,
    ))
    assert again["stopped_early"] is True and again["history"] == []


# ----------------------------------------------------------------------------- --repeat K


def test_repeat_runs_each_seed_and_reports_mean_and_spread(tmp_path, task_maker):
    """K complete runs with seeds s, s+1, ...; each is an ordinary run folder, and the summary
    (returned and in repeat_results.json) is the mean / sample std / min / max of their evals."""
    root = task_maker(tmp_path / "task")
    out = tmp_path / "rep"
    result = ft.run(config_for(root, out, repeat=3, seed=7, num_train_epochs=1.0, do_predict=False))
    assert result["seeds"] == [7, 8, 9]
    evals = []
    for seed in (7, 8, 9):
        run_dir = out / f"seed-{seed}"
        text = (run_dir / rundir.EVAL_FILE).read_text()
        evals.append({k: float(v) for k, v in re.findall(r"^(\w+) = (\S+)$", text, re.M)})
        assert evals[-1]["global_step"] == N_TRAIN // BATCH
    losses = [e["eval_loss"] for e in evals]
    assert len(set(losses)) == 3  # the seeds really differ (classifier init, dropout, shuffling)
    for key in ("eval_accuracy", "eval_loss"):
        xs = np.array([e[key] for e in evals])
        assert math.isclose(result["mean"][key], xs.mean(), rel_tol=1e-6)
        assert math.isclose(result["std"][key], xs.std(ddof=1), abs_tol=1e-6)  # the file rounds
        assert result["min"][key] == pytest.approx(xs.min()) and result["max"][key] == pytest.approx(xs.max())
    saved = json.loads((out / "repeat_results.json").read_text())
    assert saved["seeds"] == [7, 8, 9] and saved["mean"] == result["mean"]
    assert [r["output_dir"] for r in saved["runs"]] == [str(out / f"seed-{s}") for s in (7, 8, 9)]


# ----------------------------------------------------------------------------- init from a TF1 checkpoint


def test_init_from_pretraining_checkpoint(tmp_path, task_maker):
    from bert_cli.engine.heads import PretrainingHeads
    from bert_cli.engine.model import BertModel

    root = task_maker(tmp_path / "task")
    config = BertConfig.from_json_file(root / "bert_config.json")
    bert = BertModel(config, seed=7)
    heads = PretrainingHeads(config, bert.word_embeddings, seed=7)
    prefix = save_model([bert, heads], tmp_path / "pre" / "model.ckpt-7", global_step=7)
    # evaluating alone would score the random classifier head: refused, nothing written
    with pytest.raises(UsageError, match="nothing trained to evaluate"):
        ft.run(config_for(root, tmp_path / "eval-only", init_checkpoint=prefix, do_train=False, do_predict=False))
    assert not (tmp_path / "eval-only" / rundir.EVAL_FILE).exists()
    # training starts from the encoder weights (a vanishing learning rate keeps them as loaded)
    result = ft.run(config_for(root, tmp_path / "run", init_checkpoint=prefix, do_eval=False, do_predict=False,
                               max_steps=1, learning_rate=1e-12, export_slim=True))
    assert result["init"]["missing"] == ["output_bias", "output_weights"]
    assert sorted(n for n in result["init"]["unexpected"]) == sorted(n for n in list_checkpoint(prefix)
                                                                      if n.startswith("cls/"))
    assert result["init"]["loaded"] == len([n for n in list_checkpoint(prefix) if n.startswith("bert/")])
    loaded = read_checkpoint(tmp_path / "run" / rundir.EXPORT_DIR)
    original = read_checkpoint(prefix)
    for name in (n for n in original if n.startswith("bert/")):
        np.testing.assert_allclose(loaded[name], original[name], rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- errors before training


def test_missing_dev_file_fails_before_training(tmp_path, task_maker):
    root = task_maker(tmp_path / "task")
    (root / "data" / "dev.tsv").unlink()
    with pytest.raises(NotFoundError) as info:
        ft.run(config_for(root, tmp_path / "run"))
    assert "dev.tsv" in str(info.value) and info.value.exit_code == 3
    assert not list((tmp_path / "run").glob("model.ckpt-*"))


def test_seq_length_above_position_limit_fails_before_training(tmp_path, task_maker):
    root = task_maker(tmp_path / "task")
    with pytest.raises(ConfigError) as info:
        ft.run(config_for(root, tmp_path / "run", max_seq_length=100))
    assert "max_position_embeddings=64" in str(info.value)
    assert not (tmp_path / "run").exists()


def test_unknown_label_names_file_and_line(tmp_path, task_maker):
    from bert_cli.errors import InputError

    root = task_maker(tmp_path / "task")
    dev = root / "data" / "dev.tsv"
    lines = dev.read_text(encoding="utf-8").split("\n")
    lines[3] = "7" + lines[3][1:]
    dev.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as info:
        ft.run(config_for(root, tmp_path / "run"))
    assert f"{dev}:4:" in str(info.value)
    assert not (tmp_path / "run").exists()


def test_option_errors(tmp_path, task_maker):
    root = task_maker(tmp_path / "task")
    with pytest.raises(UsageError, match="nothing to do"):
        ft.run(config_for(root, tmp_path / "r", do_train=False, do_eval=False, do_predict=False))
    with pytest.raises(UsageError, match="keep-best"):
        ft.run(config_for(root, tmp_path / "r", keep_best="pearson"))


def test_cased_model_with_lower_casing_is_an_error(tmp_path, task_maker):
    root = task_maker(tmp_path / "task")
    model = tmp_path / "cased-model"
    model.mkdir()
    for name in ("vocab.txt", "bert_config.json"):
        (model / name).write_bytes((root / name).read_bytes())
    (model / "manifest.json").write_text(json.dumps({"name": "cased-model", "do_lower_case": False}))
    kwargs = dict(model=str(model), vocab_file=None, bert_config_file=None, do_lower_case=True)
    with pytest.raises(UsageError, match="cased") as info:
        ft.run(config_for(root, tmp_path / "run", **kwargs))
    assert "--force-casing" in info.value.hint
    source = ft.resolve_model_source(config_for(root, tmp_path / "run", force_casing=True, **kwargs))
    assert source.do_lower_case is True
    source = ft.resolve_model_source(config_for(root, tmp_path / "run", **dict(kwargs, do_lower_case=None)))
    assert source.do_lower_case is False


def test_format_helpers():
    assert rundir.format_eval_results({"loss": 0.5, "eval_accuracy": 0.84558825, "global_step": 345}) == (
        "eval_accuracy = 0.84558827\nglobal_step = 345\nloss = 0.5\n"
    )
    assert rundir.format_test_line(np.array([0.25, 0.75], np.float32)) == "0.25\t0.75\n"
    assert ft.metric_key("accuracy") == "eval_accuracy" and ft.metric_key("eval_f1") == "eval_f1"
    assert ft.metric_key("loss") == "loss"


def test_classifier_saved_model_serves_the_same_probabilities(tmp_path, task_maker):
    """The SavedModel export (encoder + classifier head) reloads and gives the model's outputs."""
    from bert_cli.engine.classifier import ClassifierModel, export_saved_model

    model = ClassifierModel(BertConfig.from_json_file(task_maker(tmp_path / "task") / "bert_config.json"), 3, seed=7)
    ids = tf.constant([[2, 5, 6, 7, 3, 0], [2, 8, 9, 3, 10, 3]], tf.int32)
    mask = tf.constant([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], tf.int32)
    seg = tf.constant([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]], tf.int32)
    expected = model.outputs(model.logits(ids, mask, seg)).numpy()
    path = export_saved_model(model, tmp_path / "saved")
    served = tf.saved_model.load(str(path)).signatures["serving_default"](
        input_ids=ids, input_mask=mask, segment_ids=seg
    )
    np.testing.assert_allclose(served["outputs"].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(served["outputs"].numpy().sum(axis=-1), 1.0, atol=1e-6)
