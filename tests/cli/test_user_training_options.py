"""Training options as users type them: the installed `bert`, a temporary working directory,
relative paths, tiny models.

--export-saved-model (served by plain TensorFlow in a fresh process, as `bert predict`),
--eval-every-epoch (once per epoch, at the step that completes it), --precision bf16/fp16 on
CPU (finetune and pretrain), --optimizer lamb (its slots, and no silent switch on resume), and
--gradient-accumulation-steps K ("same result as a K x bigger batch", for both commands).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TASK_VOCAB, User, error_line, make_task_dir

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
TINY_PRETRAIN_CONFIG = {
    "vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 32, "max_position_embeddings": 64, "type_vocab_size": 2, **NO_DROPOUT,
}
STEP_LINE = re.compile(r"^step (\d+)/\d+\s+loss (\S+)", re.M)


def step_losses(stderr: str) -> list[float]:
    """The training loss of every progress line (``step N/T  loss X ...``), in order."""
    return [float(m.group(2)) for m in STEP_LINE.finditer(stderr)]


def read_tensors(prefix: Path) -> dict[str, np.ndarray]:
    tf = pytest.importorskip("tensorflow")
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assert_same_tensors(ours: dict, reference: dict, rtol: float = 1e-5, atol: float = 1e-9) -> None:
    """Every tensor within ``rtol`` of its own largest value (fp32 summation-order noise after
    a few Adam steps is ~1e-7 of it); ``atol`` for tensors whose gradient is zero in exact
    arithmetic (attention key biases: ~1e-12 noise)."""
    assert ours.keys() == reference.keys()
    for name, want in reference.items():
        if want.dtype.kind != "f":
            np.testing.assert_array_equal(ours[name], want, err_msg=name)
            continue
        worst = float(np.abs(ours[name] - want).max())
        assert worst <= rtol * float(np.abs(want).max()) + atol, (name, worst, float(np.abs(want).max()))


# ----------------------------------------------------------------------------- fine-tuning


@pytest.fixture(scope="module")
def trainer(tmp_path_factory) -> User:
    """A working directory with the tiny classification task (dropout 0) in ``task/``."""
    user = User(tmp_path_factory.mktemp("train"))
    make_task_dir(user.cwd / "task", **NO_DROPOUT)
    return user


def finetune_args(out: str, *extra: str, task: str = "task") -> list[str]:
    return ["finetune", "mrpc", "--data-dir", f"{task}/data", "--vocab-file", f"{task}/vocab.txt",
            "--bert-config-file", f"{task}/bert_config.json", "-o", out, "--max-seq-length", "24",
            "--train-batch-size", "16", "--learning-rate", "3e-3", "--seed", "1", "--device", "cpu", *extra]


REFERENCE = ("--do-train", "--do-eval", "--max-steps", "6", "--json")


@pytest.fixture(scope="module")
def fp32_run(trainer) -> subprocess.CompletedProcess:
    """The reference run: fp32, AdamW, K=1, batch 16, 6 steps."""
    out = trainer.run(*finetune_args("fp32", *REFERENCE))
    assert out.returncode == 0, out.stderr
    return out


SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
inputs = json.load(open("inputs.json"))
model = tf.saved_model.load("exported/saved_model")
out = model.signatures["serving_default"](**{k: tf.constant(v, tf.int32) for k, v in inputs.items()})
print(json.dumps({"outputs": out["outputs"].numpy().tolist(), "bert_cli": "bert_cli" in sys.modules}))
"""


def test_export_saved_model_serves_what_predict_prints(trainer):
    """The exported SavedModel, loaded by plain TensorFlow in a fresh process, gives the
    probabilities `bert predict --model RUN` prints. Weights initialised wide (range 0.5) so
    that examples get clearly different answers after 2 steps (at 0.02 they agree to 1e-5)."""
    user = trainer
    make_task_dir(user.cwd / "wide", initializer_range=0.5, **NO_DROPOUT)
    run = user.run(*finetune_args("exported", "--do-train", "--max-steps", "2", "--export-saved-model", task="wide"))
    assert run.returncode == 0, run.stderr
    assert "wrote the SavedModel exported/saved_model" in run.stderr
    assert (user.cwd / "exported" / "saved_model" / "saved_model.pb").is_file()
    assert user.leftovers("exported") == []
    # four dev pairs, as a user types them for `bert predict`
    rows = [line.split("\t") for line in (user.cwd / "wide" / "data" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:5]]
    (user.cwd / "pairs.txt").write_text("".join(f"{r[3]} ||| {r[4]}\n" for r in rows), encoding="utf-8")
    predicted = user.run("predict", "pairs.txt", "--model", "exported")
    assert predicted.returncode == 0, predicted.stderr
    probs = np.array([[json.loads(line)["probabilities"][k] for k in ("0", "1")] for line in predicted.stdout.splitlines()])
    assert probs.shape == (4, 2)
    # the same pairs laid out as the original does ([CLS] A [SEP] B [SEP], segments 0/1), padded
    # to the longest with mask 0, served by plain TensorFlow in a fresh process (no bert_cli)
    vocab = {w: i for i, w in enumerate(TASK_VOCAB)}
    ids = [[vocab["[CLS]"], *(vocab[w] for w in a.split()), vocab["[SEP]"], *(vocab[w] for w in b.split()), vocab["[SEP]"]]
           for *_, a, b in rows]
    seg = [[0] * (len(a.split()) + 2) + [1] * (len(b.split()) + 1) for *_, a, b in rows]
    width = max(map(len, ids))
    inputs = {"input_ids": [x + [0] * (width - len(x)) for x in ids],
              "input_mask": [[1] * len(x) + [0] * (width - len(x)) for x in ids],
              "segment_ids": [s + [0] * (width - len(s)) for s in seg]}
    (user.cwd / "inputs.json").write_text(json.dumps(inputs))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    served = subprocess.run([sys.executable, "-c", SERVE], cwd=user.cwd, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    result = json.loads(served.stdout.strip().splitlines()[-1])
    assert result["bert_cli"] is False
    np.testing.assert_allclose(np.array(result["outputs"]), probs, rtol=0, atol=1e-5)
    assert np.ptp(probs[:, 1]) > 0.01, probs  # the examples really get different answers


def test_eval_every_epoch_evaluates_once_at_the_end_of_each_epoch(trainer):
    """256 examples in batches of 24: an epoch is 10.67 steps, 3 epochs are int(32) = 32 steps.
    Epochs are complete after steps 11, 22 and 32: three evaluations, there and nowhere else."""
    out = trainer.run(*finetune_args("epochs", "--do-train", "--train-batch-size", "24", "--num-train-epochs", "3",
                                     "--eval-every-epoch"))
    assert out.returncode == 0, out.stderr
    assert "3 epochs -> 32 steps" in out.stderr
    evaluated = [int(s) for s in re.findall(r"^step (\d+): eval_accuracy ", out.stderr, re.M)]
    assert evaluated == [11, 22, 32], out.stderr
    assert not (trainer.cwd / "epochs" / "eval_results.txt").exists()  # no --do-eval: no final eval file


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_finetune_low_precision_on_cpu_trains_the_fp32_model_up_to_rounding(trainer, fp32_run, precision):
    """The README: auto is fp32 on CPU, bf16 and fp16 (+ loss scaling) can be asked for. They
    run, say so, keep float32 weights, and follow the fp32 run: the same batches on the same
    initial weights, so the step losses differ only by rounding (measured <= 0.008 over 6 steps
    of a loss ~0.69; 0.03 is 4x that and far below a run that does not train, e.g. 0.07 at step 6)."""
    out = trainer.run(*finetune_args(precision, *REFERENCE, "--precision", precision))
    assert out.returncode == 0, out.stderr
    banner = {"bf16": "(bf16, XLA off)", "fp16": "(fp16 + loss scaling, XLA off)"}[precision]
    assert f"bert: training on 1 CPU {banner}" in out.stderr
    if precision == "fp16":
        assert "warning: fp16 on CPU is slow and gains nothing" in out.stderr
    ours, ref = step_losses(out.stderr), step_losses(fp32_run.stderr)
    assert len(ours) == len(ref) == 6 and all(math.isfinite(x) for x in ours)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=0.03)
    got, want = json.loads(out.stdout), json.loads(fp32_run.stdout)
    assert got["global_step"] == want["global_step"] == 6
    assert abs(got["eval_loss"] - want["eval_loss"]) <= 0.01, (got, want)
    tensors = read_tensors(trainer.cwd / precision / "model.ckpt-6")
    floats = {k: v for k, v in tensors.items() if v.dtype.kind == "f"}
    assert floats and all(v.dtype == np.float32 and np.isfinite(v).all() for v in floats.values())


def test_gradient_accumulation_is_one_k_times_bigger_batch_in_finetune(trainer, fp32_run):
    """finetune: --train-batch-size is the batch of one optimizer step; K=2 splits it into two
    micro-batches of 8. Dropout 0: the weights and slots after 6 steps are the K=1 run's."""
    out = trainer.run(*finetune_args("accum", *REFERENCE, "--gradient-accumulation-steps", "2"))
    assert out.returncode == 0, out.stderr
    assert_same_tensors(read_tensors(trainer.cwd / "accum" / "model.ckpt-6"),
                        read_tensors(trainer.cwd / "fp32" / "model.ckpt-6"))
    np.testing.assert_allclose(step_losses(out.stderr), step_losses(fp32_run.stderr), rtol=1e-4)


def test_lamb_through_the_cli_and_no_silent_switch_on_resume(trainer, fp32_run):
    """--optimizer lamb trains and checkpoints LAMB's moments as ``<var>/lamb_m``/``lamb_v``
    for every weight (no Adam slots); rerunning an AdamW folder with lamb is a clear error that
    leaves the folder as it was."""
    out = trainer.run(*finetune_args("lamb", *REFERENCE, "--optimizer", "lamb"))
    assert out.returncode == 0, out.stderr
    tensors = read_tensors(trainer.cwd / "lamb" / "model.ckpt-6")
    weights = {n for n in tensors if not n.endswith(("/lamb_m", "/lamb_v")) and n != "global_step"}
    assert "output_weights" in weights and "bert/embeddings/word_embeddings" in weights
    assert set(tensors) == weights | {f"{n}/{s}" for n in weights for s in ("lamb_m", "lamb_v")} | {"global_step"}
    assert not any("adam" in n for n in tensors)
    assert all(np.abs(tensors[f"{n}/lamb_v"]).max() > 0 for n in weights)  # every weight got gradients
    adamw = read_tensors(trainer.cwd / "fp32" / "model.ckpt-6")  # same init, same batches: not AdamW renamed
    assert max(np.abs(tensors[n] - adamw[n]).max() for n in weights) > 1e-4
    losses = step_losses(out.stderr)
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert json.loads(out.stdout)["global_step"] == 6

    before = sorted(p.name for p in (trainer.cwd / "fp32").iterdir())
    switched = trainer.run(*finetune_args("fp32", "--do-train", "--max-steps", "8", "--optimizer", "lamb"))
    assert switched.returncode == 1
    line = error_line(switched.stderr)
    assert "fp32/model.ckpt-6" in line and "lamb_m" in line, line
    assert "hint: " in switched.stderr and "--optimizer" in switched.stderr
    assert sorted(p.name for p in (trainer.cwd / "fp32").iterdir()) == before
    assert trainer.leftovers("fp32") == []


# ----------------------------------------------------------------------------- pretraining


@pytest.fixture(scope="module")
def pretrainer(tmp_path_factory) -> User:
    """A working directory with ``d.tfrecord`` (bundled sample text, seq 64, 10 predictions,
    dupe factor 1: 17 instances) and ``tiny.json`` (hidden 16, 1 layer, 2 heads, dropout 0)."""
    user = User(tmp_path_factory.mktemp("pretrain"))
    out = user.run("make-pretrain-data", "-o", "d.tfrecord", "--max-seq-length", "64",
                   "--max-predictions-per-seq", "10", "--dupe-factor", "1")
    assert out.returncode == 0, out.stderr
    (user.cwd / "tiny.json").write_text(json.dumps(TINY_PRETRAIN_CONFIG))
    return user


def pretrain_args(out: str, steps: int, *extra: str) -> list[str]:
    return ["pretrain", "-i", "d.tfrecord", "-o", out, "--bert-config-file", "tiny.json", "--max-seq-length", "64",
            "--max-predictions-per-seq", "10", "--num-warmup-steps", "1", "--num-train-steps", str(steps),
            "--seed", "1", "--device", "cpu", "--do-train", "--log-every-steps", "1", *extra]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_pretrain_low_precision_on_cpu_learns(pretrainer, precision):
    """From ln(30522) + ln(2) = 11.02 (a fresh model guesses uniformly) the loss falls below
    70% of it in 12 steps at lr 1e-2 (measured 5.6 in both precisions); float32 checkpoint."""
    out = pretrainer.run(*pretrain_args(precision, 12, "--train-batch-size", "8", "--learning-rate", "1e-2",
                                        "--precision", precision))
    assert out.returncode == 0, out.stderr
    banner = {"bf16": "(bf16, XLA off)", "fp16": "(fp16 + loss scaling, XLA off)"}[precision]
    assert f"bert: training on 1 CPU {banner}" in out.stderr
    losses = step_losses(out.stderr)
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    start = math.log(30522) + math.log(2)
    assert abs(losses[0] - start) < 0.1, losses
    assert losses[-1] < 0.7 * start, losses
    tensors = read_tensors(pretrainer.cwd / precision / "model.ckpt-12")
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in tensors.values() if v.dtype.kind == "f")


def test_gradient_accumulation_is_one_k_times_bigger_batch_in_pretrain(pretrainer):
    """pretrain: each step takes K batches of --train-batch-size, so K=2 x 8 must equal 1 x 16.
    The masked-LM loss is normalized by the masked-token count of the whole step's batch; the
    two micro-batches hold different counts, so normalizing each on its own (the old code)
    gave another gradient (position embeddings off by 4e-3 of their size after 3 steps)."""
    big = pretrainer.run(*pretrain_args("k1", 3, "--train-batch-size", "16", "--learning-rate", "1e-3"))
    assert big.returncode == 0, big.stderr
    accumulated = pretrainer.run(*pretrain_args("k2", 3, "--train-batch-size", "8", "--learning-rate", "1e-3",
                                                "--gradient-accumulation-steps", "2"))
    assert accumulated.returncode == 0, accumulated.stderr
    assert_same_tensors(read_tensors(pretrainer.cwd / "k2" / "model.ckpt-3"),
                        read_tensors(pretrainer.cwd / "k1" / "model.ckpt-3"))
    np.testing.assert_allclose(step_losses(accumulated.stderr), step_losses(big.stderr), rtol=1e-5)
