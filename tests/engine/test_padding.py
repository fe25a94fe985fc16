"""Cutting a batch's all-padding tail (bert_cli.engine.padding) changes no real output."""

from __future__ import annotations

import numpy as np
import pytest

from bert_cli.engine.padding import trim_arrays, trimmed_length

tf = pytest.importorskip("tensorflow")

from bert_cli.engine.model import BertModel  # noqa: E402
from bert_cli.engine.padding import trim_dataset  # noqa: E402
from bert_cli.modelconfig import BertConfig  # noqa: E402


def mask_of(lengths, seq):
    return (np.arange(seq)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)


@pytest.mark.parametrize(
    "lengths, multiple, expected",
    [
        ([5, 9, 3], 8, 16),  # longest 9 -> 16
        ([8, 2], 8, 8),  # exactly a multiple
        ([30, 31], 8, 32),  # rounding never exceeds S
        ([31, 2], 64, 32),  # a multiple above S keeps S
        ([0, 0], 8, 8),  # no real token at all: one block
    ],
)
def test_trimmed_length(lengths, multiple, expected):
    assert trimmed_length(mask_of(lengths, 32), multiple) == expected


def test_trimmed_length_follows_the_last_real_position_not_the_count():
    mask = np.zeros((2, 32), np.int32)
    mask[0, [0, 1, 20]] = 1  # a hole: 3 real tokens, the last at position 20
    assert trimmed_length(mask, 8) == 24


def test_dataset_and_numpy_cut_alike():
    rng = np.random.default_rng(0)
    seq = 40
    lengths = rng.integers(2, 30, size=12)
    arrays = {
        "input_ids": rng.integers(1, 99, (12, seq)).astype(np.int32) * mask_of(lengths, seq),
        "input_mask": mask_of(lengths, seq),
        "segment_ids": np.zeros((12, seq), np.int32),
        "labels": np.arange(12, dtype=np.int32),
    }
    ds = trim_dataset(tf.data.Dataset.from_tensor_slices(arrays).batch(4), 8)
    for i, batch in enumerate(ds):
        expected = trim_arrays({k: v[4 * i : 4 * i + 4] for k, v in arrays.items()}, 8)
        assert batch["input_ids"].shape[1] == expected["input_ids"].shape[1] < seq
        for key, value in expected.items():
            np.testing.assert_array_equal(batch[key].numpy(), value)
    assert trim_arrays(arrays, None)["input_ids"].shape == (12, seq)


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_real_tokens_get_the_same_outputs(compute_dtype):
    """The claim the whole module rests on: padded keys get exactly zero attention, so the
    pooled output and every real token's output are unchanged by dropping padding columns."""
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64,
    )
    model = BertModel(config, seed=3, compute_dtype=compute_dtype)
    rng = np.random.default_rng(1)
    lengths = np.array([7, 19, 3, 12])
    mask = mask_of(lengths, 64)
    ids = rng.integers(1, 99, mask.shape).astype(np.int32) * mask
    segments = (np.arange(64)[None, :] >= 3).astype(np.int32) * mask
    full = model(ids, mask, segments)
    cut = trim_arrays({"input_ids": ids, "input_mask": mask, "segment_ids": segments}, 8)
    assert cut["input_ids"].shape == (4, 24)
    short = model(cut["input_ids"], cut["input_mask"], cut["segment_ids"])
    np.testing.assert_allclose(short.pooled_output.numpy(), full.pooled_output.numpy(), atol=1e-5)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(
            short.sequence_output.numpy()[b, :n], full.sequence_output.numpy()[b, :n], atol=1e-5
        )
