"""Models out of `bert`, as users take them: `--export-hf DIR` (finetune, finetune squad,
pretrain), `bert download --export-hf SOURCE DIR` (a cached/TF1 model folder or a run folder),
and the SavedModel's serving signature.

The installed `bert` runs from a temporary folder with relative paths; what it wrote is loaded
by transformers (`BertFor...from_pretrained`, `BertTokenizer.from_pretrained`) or, for the
SavedModel, by plain TensorFlow in a fresh process without `bert_cli`, and compared with what
`bert predict` / the engine compute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SQUAD_TINY_CONFIG, TASK_VOCAB, User, error_line, make_task_dir

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
HF_FILES = ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt"]
PAIRS = [("the great cat sat on a mat", "red house near the tree"), ("awful old dog runs", "big blue house"),
         ("a small great tree", "the cat jumps over the dog"), ("awful", "far")]


def finetune_args(out: str, *extra: str, task: str = "task") -> list[str]:
    return ["finetune", "mrpc", "--data-dir", f"{task}/data", "--vocab-file", f"{task}/vocab.txt",
            "--bert-config-file", f"{task}/bert_config.json", "-o", out, "--max-seq-length", "24",
            "--train-batch-size", "16", "--learning-rate", "3e-3", "--seed", "1", "--device", "cpu", *extra]


def torch_inputs(encoded: dict) -> dict:
    import torch

    return {k: torch.tensor(np.asarray(v), dtype=torch.long) for k, v in encoded.items()}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> User:
    """A 2-step fine-tune of the tiny task (weights initialised wide, so that examples get
    clearly different answers) with `--export-hf hf --export-saved-model`, and `bert predict`'s
    probabilities for PAIRS in ``predicted.jsonl``."""
    pytest.importorskip("transformers")
    user = User(tmp_path_factory.mktemp("export"))
    make_task_dir(user.cwd / "task", initializer_range=0.5, **NO_DROPOUT)
    run = user.run(*finetune_args("run", "--do-train", "--max-steps", "2", "--export-hf", "hf", "--export-saved-model"))
    assert run.returncode == 0, run.stderr
    assert "wrote the Hugging Face model folder hf (BertForSequenceClassification" in run.stderr
    (user.cwd / "pairs.txt").write_text("".join(f"{a} ||| {b}\n" for a, b in PAIRS), encoding="utf-8")
    predicted = user.run("predict", "pairs.txt", "--model", "run")
    assert predicted.returncode == 0, predicted.stderr
    (user.cwd / "predicted.jsonl").write_text(predicted.stdout, encoding="utf-8")
    return user


def predicted_probabilities(user: User) -> np.ndarray:
    rows = [json.loads(line) for line in (user.cwd / "predicted.jsonl").read_text(encoding="utf-8").splitlines()]
    return np.array([[row["probabilities"][k] for k in ("0", "1")] for row in rows])


# ----------------------------------------------------------------------------- the name table


def test_the_writing_direction_inverts_the_reading_table():
    """Every HF_TABLE row maps back to itself, so export and import cannot drift apart."""
    from bert_cli.engine.hf_export import tf1_to_hf
    from bert_cli.engine.hf_weights import HF_TABLE, hf_to_tf1

    for hf, tf1, transpose in HF_TABLE:
        for i in ((0, 11) if "{i}" in hf else (None,)):
            name, tf1_name = (hf.format(i=i), tf1.format(i=i)) if i is not None else (hf, tf1)
            assert hf_to_tf1(name) == (tf1_name, transpose)
            assert tf1_to_hf(tf1_name) == (name, transpose)
    assert tf1_to_hf("bert/encoder/layer_0/attention/self/query/adam_m") is None


# ----------------------------------------------------------------------------- finetune --export-hf


def test_finetune_export_hf_loads_in_transformers_with_the_probabilities_bert_predicts(tuned):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    user = tuned
    assert sorted(p.name for p in (user.cwd / "hf").iterdir()) == HF_FILES
    assert user.leftovers() == []
    config = json.loads((user.cwd / "hf" / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "0", "1": "1"} and config["problem_type"] == "single_label_classification"
    assert json.loads((user.cwd / "hf" / "tokenizer_config.json").read_text())["do_lower_case"] is True

    model, info = transformers.BertForSequenceClassification.from_pretrained(
        str(user.cwd / "hf"), attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    tokenizer = transformers.BertTokenizer.from_pretrained(str(user.cwd / "hf"))
    # transformers' tokenizer gives the ids `bert tokenize` gives (our own export read back as --model)
    ours = user.run("tokenize", "--model", "hf", "--pairs", "--max-seq-length", "24", "-f", "jsonl", "pairs.txt")
    assert ours.returncode == 0, ours.stderr
    encoded = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding="max_length", max_length=24)
    for line, ids, segments in zip(ours.stdout.splitlines(), encoded["input_ids"], encoded["token_type_ids"]):
        row = json.loads(line)
        assert (row["input_ids"], row["segment_ids"]) == (ids, segments)
    with torch.no_grad():
        logits = model.eval()(**torch_inputs(encoded)).logits.numpy()
    theirs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    probs = predicted_probabilities(user)
    assert np.abs(theirs - probs).max() <= 1e-4, (theirs, probs)
    assert np.ptp(probs[:, 1]) > 0.01, probs  # the examples really get different answers


def test_download_export_hf_of_the_run_folder_writes_the_same_model(tuned):
    """After the fact: `bert download --export-hf RUN DIR` exports the run's newest checkpoint,
    with the labels and casing the run recorded: the same tensors and config as --export-hf."""
    from safetensors.numpy import load_file

    user = tuned
    out = user.run("download", "--export-hf", "run", "later/hf")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "later/hf"
    assert sorted(p.name for p in (user.cwd / "later" / "hf").iterdir()) == HF_FILES
    for name in ("config.json", "tokenizer_config.json", "vocab.txt"):
        assert (user.cwd / "later" / "hf" / name).read_bytes() == (user.cwd / "hf" / name).read_bytes(), name
    now, then = load_file(str(user.cwd / "later/hf/model.safetensors")), load_file(str(user.cwd / "hf/model.safetensors"))
    assert now.keys() == then.keys() and "classifier.weight" in now and "bert.pooler.dense.weight" in now
    for key in now:
        np.testing.assert_array_equal(now[key], then[key], err_msg=key)


def test_export_hf_refuses_a_folder_of_other_files_and_leaves_it_alone(tuned):
    user = tuned
    (user.cwd / "notes").mkdir(exist_ok=True)
    (user.cwd / "notes" / "todo.txt").write_text("keep me\n")
    out = user.run("download", "--export-hf", "run", "notes")
    assert out.returncode == 2, out.stderr
    assert "notes: the folder holds other files (todo.txt)" in error_line(out.stderr)
    assert sorted(p.name for p in (user.cwd / "notes").iterdir()) == ["todo.txt"]
    # the run's own folder (and the working folder) are never replaced by an export
    for target in ("run", "."):
        out = user.run("download", "--export-hf", "run", target)
        assert out.returncode == 2 and "the export would replace" in error_line(out.stderr), out.stderr
    out = user.run(*finetune_args("again", "--do-train", "--max-steps", "1", "--export-hf", "again-hf", "--repeat", "2"))
    assert out.returncode == 2 and "--repeat makes several" in error_line(out.stderr), out.stderr
    assert not (user.cwd / "again").exists() and not (user.cwd / "again-hf").exists()
    out = user.run("download", "--export-hf", "no-such-model", "x")
    assert out.returncode == 3 and "unknown model 'no-such-model'" in error_line(out.stderr), out.stderr
    assert not (user.cwd / "x").exists() and user.leftovers() == []


def test_a_config_that_does_not_fit_the_weights_leaves_no_export(tuned):
    """A damaged source fails with a clear message naming the mismatch; nothing half-written."""
    user = tuned
    bad = user.cwd / "bad"
    bad.mkdir()
    for name in ("checkpoint", "model.ckpt-2.index", "model.ckpt-2.data-00000-of-00001", "vocab.txt"):
        (bad / name).write_bytes((user.cwd / "run" / name).read_bytes())
    config = json.loads((user.cwd / "run" / "bert_config.json").read_text())
    (bad / "bert_config.json").write_text(json.dumps({**config, "vocab_size": config["vocab_size"] + 1}))
    out = user.run("download", "--export-hf", "bad", "bad-hf")
    assert out.returncode == 1, out.stderr
    assert "the word embeddings are [28, 32] but the config says [29, 32]" in error_line(out.stderr)
    assert not (user.cwd / "bad-hf").exists() and user.leftovers() == []


# ----------------------------------------------------------------------------- the SavedModel


SERVE = r"""
import json, sys
import tensorflow as tf
rows = [json.loads(line) for line in open("features.jsonl")]
loaded = tf.saved_model.load("run/saved_model")
serve = loaded.signatures["serving_default"]
out = serve(**{k: tf.constant([r[k] for r in rows], tf.int32) for k in ("input_ids", "input_mask", "segment_ids")})
labels = open(loaded.labels_file.asset_path.numpy().decode()).read().splitlines()
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(), "logits": out["logits"].numpy().tolist(),
                  "outputs": sorted(out), "labels": labels, "bert_cli": any(m.startswith("bert_cli") for m in sys.modules)}))
"""


def test_saved_model_serves_predict_probabilities_in_plain_tensorflow(tuned):
    """The SavedModel, loaded with plain `tf.saved_model.load` in a fresh process (no bert_cli),
    fed `bert tokenize`'s features, gives `bert predict`'s probabilities; its labels are in
    assets/labels.txt and signature.json describes inputs and outputs."""
    user = tuned
    saved = user.cwd / "run" / "saved_model"
    assert (saved / "assets" / "labels.txt").read_text(encoding="utf-8") == "0\n1\n"
    signature = json.loads((saved / "signature.json").read_text(encoding="utf-8"))
    assert signature["signature"] == "serving_default" and signature["labels"] == ["0", "1"]
    assert {k: v["dtype"] for k, v in signature["inputs"].items()} == dict.fromkeys(
        ("input_ids", "input_mask", "segment_ids"), "int32")
    assert signature["outputs"]["probabilities"]["shape"] == [None, 2]
    assert signature["outputs"]["logits"]["shape"] == [None, 2]
    features = user.run("tokenize", "--vocab-file", "task/vocab.txt", "--pairs", "--max-seq-length", "24", "-f", "jsonl",
                        "pairs.txt")
    assert features.returncode == 0, features.stderr
    (user.cwd / "features.jsonl").write_text(features.stdout, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    served = subprocess.run([sys.executable, "-c", SERVE], cwd=user.cwd, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    result = json.loads(served.stdout.strip().splitlines()[-1])
    assert result["bert_cli"] is False
    assert result["labels"] == ["0", "1"]
    assert {"logits", "probabilities"} <= set(result["outputs"])
    probs = predicted_probabilities(user)
    np.testing.assert_allclose(np.array(result["probabilities"]), probs, rtol=0, atol=1e-5 * max(1.0, np.abs(probs).max()))


# ----------------------------------------------------------------------------- TF1 checkpoints -> HF


def test_download_export_hf_of_a_tf1_minilm_gives_transformers_our_hidden_states(minilm_model, uncased_vocab, tmp_path):
    """The real MiniLM weights as a TF1 checkpoint folder (what Google's zips hold) ->
    `bert download --export-hf` -> transformers' BertModel: the hidden states and pooled output
    of our engine within 1e-4, and BertTokenizer tokenizes as `bert tokenize`."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from bert_cli.engine.checkpoint import save_model

    config, ours, _ = minilm_model
    user = User(tmp_path)
    folder = user.cwd / "minilm-tf1"
    folder.mkdir()
    save_model(ours, folder / "bert_model.ckpt")
    (folder / "bert_config.json").write_text(config.to_json(), encoding="utf-8")
    (folder / "vocab.txt").write_bytes(uncased_vocab.read_bytes())
    out = user.run("download", "--export-hf", "minilm-tf1", "hf")
    assert out.returncode == 0, out.stderr
    assert "(BertModel," in out.stderr
    assert json.loads((user.cwd / "hf" / "config.json").read_text())["hidden_act"] == "gelu"  # exact erf, as MiniLM's

    theirs, info = transformers.BertModel.from_pretrained(str(user.cwd / "hf"), attn_implementation="eager",
                                                         output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    tokenizer = transformers.BertTokenizer.from_pretrained(str(user.cwd / "hf"))
    lines = ["Héllo, WORLD! A naïve café in Zürich.", "unaffable tokenizers don't stop—now 東京 2024",
             "The quick brown fox ||| jumps over the lazy dog"]
    (user.cwd / "lines.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokens = user.run("tokenize", "--model", "hf", "lines.txt")
    assert tokens.returncode == 0, tokens.stderr
    assert tokens.stdout.splitlines() == [" ".join(tokenizer.tokenize(line)) for line in lines]

    encoded = tokenizer(lines[:2], padding=True)
    ids, mask = np.array(encoded["input_ids"]), np.array(encoded["attention_mask"])
    segments = np.array(encoded["token_type_ids"])
    with torch.no_grad():
        hf_out = theirs.eval()(**torch_inputs(encoded))
    our_out = ours(ids.astype(np.int32), mask.astype(np.int32), segments.astype(np.int32), training=False)
    real = mask.astype(bool)
    assert np.abs(hf_out.last_hidden_state.numpy()[real] - our_out.sequence_output.numpy()[real]).max() <= 1e-4
    assert np.abs(hf_out.pooler_output.numpy() - our_out.pooled_output.numpy()).max() <= 1e-4


def test_download_export_hf_of_google_pretraining_checkpoint_keeps_both_heads(shared_data, tmp_path):
    """The original run_pretraining.py's checkpoint -> BertForPreTraining: masked-LM (transform,
    bias, tied decoder) and next-sentence logits equal the engine's within 1e-4."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from bert_cli.engine.checkpoint import load_into
    from bert_cli.engine.heads import PretrainingHeads
    from bert_cli.engine.model import BertModel
    from bert_cli.modelconfig import BertConfig

    source = shared_data / "checkpoints" / "tf1-tiny-random"
    user = User(tmp_path)
    out = user.run("download", "--export-hf", user.rel(source), "hf")
    assert out.returncode == 0, out.stderr
    assert json.loads((user.cwd / "hf" / "config.json").read_text())["architectures"] == ["BertForPreTraining"]
    from safetensors import safe_open

    with safe_open(str(user.cwd / "hf" / "model.safetensors"), "np") as f:  # tied copies are not written,
        written = set(f.keys())  # as save_pretrained leaves them out; from_pretrained ties them
    assert "cls.predictions.bias" in written and not {n for n in written if n.startswith("cls.predictions.decoder")}
    theirs, info = transformers.BertForPreTraining.from_pretrained(str(user.cwd / "hf"), attn_implementation="eager",
                                                                   output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info

    config = BertConfig.from_json_file(source / "bert_config.json")
    model = BertModel(config, random_init=False)
    heads = PretrainingHeads(config, model.word_embeddings, random_init=False)
    load_into([model, heads], str(source / "bert_model.ckpt"))
    ids = np.array([[2, 5, 6, 7, 3, 0], [2, 8, 9, 3, 10, 3]], np.int32)
    mask = np.array([[1, 1, 1, 1, 1, 0], [1] * 6], np.int32)
    segments = np.array([[0] * 6, [0, 0, 0, 0, 1, 1]], np.int32)
    ours = model(ids, mask, segments, training=False)
    with torch.no_grad():
        hf_out = theirs.eval()(**torch_inputs({"input_ids": ids, "attention_mask": mask, "token_type_ids": segments}))
    assert np.abs(hf_out.prediction_logits.numpy() - heads.mlm_logits(ours.sequence_output).numpy()).max() <= 1e-4
    assert np.abs(hf_out.seq_relationship_logits.numpy() - heads.nsp_logits(ours.pooled_output).numpy()).max() <= 1e-4


# ----------------------------------------------------------------------------- SQuAD and pretraining runs


def test_finetune_squad_export_hf_is_a_question_answering_model(shared_data, uncased_vocab, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from bert_cli.engine.squad_model import SquadModel, load_weights
    from bert_cli.modelconfig import BertConfig

    user = User(tmp_path)
    (user.cwd / "bert_config.json").write_text(json.dumps(SQUAD_TINY_CONFIG))
    data = user.rel(shared_data / "squad" / "subsets" / "allennlp-models_squad.json")
    out = user.run("finetune", "squad", "--train-file", data, "--output-dir", "run", "--bert-config-file",
                   "bert_config.json", "--vocab-file", user.rel(uncased_vocab), "--do-train", "--max-seq-length", "64", "--doc-stride", "32",
                   "--max-query-length", "16", "--train-batch-size", "4", "--max-steps", "2", "--learning-rate", "1e-2",
                   "--first-answer-only", "--seed", "1", "--device", "cpu", "--export-hf", "hf")
    assert out.returncode == 0, out.stderr
    config = json.loads((user.cwd / "hf" / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"] and "id2label" not in config
    theirs, info = transformers.BertForQuestionAnswering.from_pretrained(
        str(user.cwd / "hf"), attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    tokenizer = transformers.BertTokenizer.from_pretrained(str(user.cwd / "hf"))
    encoded = tokenizer(["Who wrote it?", "When?"], ["Ada Lovelace wrote the first program.", "In 1843."],
                        padding=True)
    with torch.no_grad():
        hf_out = theirs.eval()(**torch_inputs(encoded))
    ours = SquadModel(BertConfig.from_json_file(user.cwd / "bert_config.json"), random_init=False)
    load_weights(ours, str(user.cwd / "run"))
    start, end = ours.start_end_logits(*(np.array(encoded[k], np.int32) for k in
                                         ("input_ids", "attention_mask", "token_type_ids")))
    assert np.abs(hf_out.start_logits.numpy() - start.numpy()).max() <= 1e-4
    assert np.abs(hf_out.end_logits.numpy() - end.numpy()).max() <= 1e-4
    assert np.ptp(start.numpy()) > 1e-3  # a trained head, not zeros


def test_pretrain_export_hf_holds_the_final_checkpoint(golden_tfrecord, uncased_vocab, tmp_path):
    """`bert pretrain --model DIR --export-hf hf`: BertForPreTraining with the final checkpoint's
    weights (read back through the reading table), the model's vocabulary and casing."""
    transformers = pytest.importorskip("transformers")
    from bert_cli.engine.checkpoint import (
        is_optimizer_name,
        read_checkpoint,
        resolve_checkpoint,
    )
    from bert_cli.engine.hf_weights import read_hf_weights

    user = User(tmp_path)
    model = user.cwd / "tiny"
    model.mkdir()
    (model / "bert_config.json").write_text(json.dumps({**SQUAD_TINY_CONFIG, "hidden_size": 16, "num_hidden_layers": 1,
                                                        "num_attention_heads": 2, "intermediate_size": 32}))
    (model / "vocab.txt").write_bytes(uncased_vocab.read_bytes())
    out = user.run("pretrain", "--input-file", user.rel(golden_tfrecord), "--model", "tiny", "-o", "run",
                   "--do-train", "--num-train-steps", "2", "--num-warmup-steps", "0", "--train-batch-size", "4",
                   "--seed", "1", "--device", "cpu", "--export-hf", "hf")
    assert out.returncode == 0, out.stderr
    assert "wrote the Hugging Face model folder hf (BertForPreTraining" in out.stderr
    assert sorted(p.name for p in (user.cwd / "hf").iterdir()) == HF_FILES
    checkpoint = read_checkpoint(resolve_checkpoint(user.cwd / "run"))
    weights = {k: v for k, v in checkpoint.items() if not is_optimizer_name(k)}
    exported = read_hf_weights(user.cwd / "hf")
    assert exported.keys() == weights.keys()
    for name, value in weights.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)
    _, info = transformers.BertForPreTraining.from_pretrained(str(user.cwd / "hf"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info


def test_task_vocab_is_what_the_tiny_run_exports(tuned):
    """The export's vocab.txt is the run's vocabulary, byte for byte."""
    assert (tuned.cwd / "hf" / "vocab.txt").read_text(encoding="utf-8").split() == TASK_VOCAB
    assert Path(tuned.cwd / "hf" / "vocab.txt").read_bytes() == (tuned.cwd / "task" / "vocab.txt").read_bytes()


def test_a_token_classifier_exports_as_bert_for_token_classification(tmp_path):
    """The NER head (top-level output_weights [num_tags, H] / output_bias, applied to every
    token) maps to transformers' BertForTokenClassification with the run's tags as labels."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from bert_cli.engine.checkpoint import model_tensors
    from bert_cli.engine.hf_export import write_hf_model
    from bert_cli.engine.model import BertModel
    from bert_cli.modelconfig import BertConfig
    from bert_cli.models.hf_files import HfExportSpec

    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=32, type_vocab_size=2, initializer_range=0.5)
    encoder = BertModel(config, seed=3)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rng = np.random.default_rng(0)
    tensors = {**model_tensors(encoder), "output_weights": rng.normal(size=(5, 16)).astype(np.float32),
               "output_bias": rng.normal(size=5).astype(np.float32)}
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                                  + [f"w{i}" for i in range(25)]) + "\n")
    result = write_hf_model(tensors, tmp_path / "ner-hf", config, HfExportSpec(tmp_path / "vocab.txt", True, tuple(tags), "ner"))
    assert result["architecture"] == "BertForTokenClassification"
    theirs, info = transformers.BertForTokenClassification.from_pretrained(
        str(tmp_path / "ner-hf"), attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert theirs.config.id2label == dict(enumerate(tags))
    ids = np.array([[2, 7, 8, 9, 3, 0]], np.int32)
    mask = np.array([[1, 1, 1, 1, 1, 0]], np.int32)
    segments = np.zeros_like(ids)
    sequence = encoder(ids, mask, segments, training=False).sequence_output.numpy()
    ours = sequence @ tensors["output_weights"].T + tensors["output_bias"]
    with torch.no_grad():
        logits = theirs.eval()(**torch_inputs({"input_ids": ids, "attention_mask": mask, "token_type_ids": segments})).logits
    assert np.abs(logits.numpy()[mask == 1] - ours[mask == 1]).max() <= 1e-4
