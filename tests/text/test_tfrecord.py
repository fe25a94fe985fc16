"""The pure-Python TFRecord / tf.train.Example codec against TensorFlow and the golden file."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from bert_cli.errors import InputError
from bert_cli.text import example_proto as ep
from bert_cli.text import tfrecord as tfr


# Values chosen to hit every varint length, negatives (10-byte two's complement) and the limits.
INTS = [0, 1, 127, 128, 300, 16383, 16384, 30521, 119546, 2**21, 2**35 + 7, 2**63 - 1, -1, -2**63]
FLOATS = [0.0, 1.0, -2.5, 0.15, 3.4e38, 1e-45, float("inf")]
BYTES = [b"", b"abc", "héllo".encode(), bytes(range(256)), b"x" * 300]


def _example() -> dict:
    return {
        "ints": ep.int64_feature(INTS),
        "small": ep.int64_feature([1, 0, 1, 1]),
        "floats": ep.float_feature(FLOATS),
        "bytes": ep.bytes_feature(BYTES),
        "empty_ints": ep.int64_feature([]),
        "empty_floats": ep.float_feature([]),
        "empty_bytes": ep.bytes_feature([]),
        "long_name_" + "k" * 200: ep.int64_feature(range(1000)),
    }


def _f32(x: float) -> float:
    import struct

    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_crc32c_known_vector_and_fallback_agree():
    assert tfr.crc32c(b"123456789") == 0xE3069283  # the standard check value
    data = os.urandom(3000)
    assert tfr._crc32c_pure(data) == tfr.crc32c(data)
    assert tfr._crc32c_pure(b"") == tfr.crc32c(b"") == 0


def test_round_trip_in_python():
    decoded = ep.decode_example(ep.encode_example(_example()))
    assert list(decoded) == list(_example())  # order kept
    assert decoded["ints"] == INTS
    assert decoded["small"] == [1, 0, 1, 1]
    assert decoded["floats"] == [_f32(x) for x in FLOATS]
    assert decoded["bytes"] == BYTES
    assert decoded["empty_ints"] == decoded["empty_floats"] == decoded["empty_bytes"] == []
    assert decoded["long_name_" + "k" * 200] == list(range(1000))


def test_protobuf_parses_our_bytes_and_we_parse_protobufs():
    """tf.train.Example (the real protobuf) agrees with the hand encoding both ways."""
    example_pb2 = pytest.importorskip("tensorflow.core.example.example_pb2")
    ours = ep.encode_example(_example())
    pb = example_pb2.Example.FromString(ours)
    feats = pb.features.feature
    assert list(feats["ints"].int64_list.value) == INTS
    assert [x for x in feats["floats"].float_list.value] == [_f32(x) for x in FLOATS]
    assert list(feats["bytes"].bytes_list.value) == BYTES
    assert feats["empty_ints"].WhichOneof("kind") == "int64_list"
    assert feats["empty_floats"].WhichOneof("kind") == "float_list"
    assert feats["empty_bytes"].WhichOneof("kind") == "bytes_list"
    # protobuf's own serialization (map order may differ) decodes to the same values
    assert ep.decode_example(pb.SerializeToString()) == ep.decode_example(ours)
    # and for single features the bytes are identical
    for name in ("ints", "floats", "bytes", "small"):
        assert feats[name].SerializeToString() == bytes(_example()[name])


def test_unpacked_repeated_fields_are_read():
    # Int64List with two unpacked values 5, 300 and FloatList with one fixed32 value 1.0
    int_list = b"\x08\x05\x08\xac\x02"
    float_list = b"\x0d\x00\x00\x80\x3f"
    feature_i = b"\x1a" + bytes([len(int_list)]) + int_list
    feature_f = b"\x12" + bytes([len(float_list)]) + float_list
    entries = b""
    for key, feat in ((b"i", feature_i), (b"f", feature_f)):
        entry = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(feat)]) + feat
        entries += b"\x0a" + bytes([len(entry)]) + entry
    data = b"\x0a" + bytes([len(entries)]) + entries
    assert ep.decode_example(data) == {"i": [5, 300], "f": [1.0]}


def test_tensorflow_reads_our_file_and_we_read_tensorflows(tmp_path):
    """TFRecordDataset + parse_single_example on our file; our reader on TF's file.

    Runs in a subprocess so that importing TensorFlow does not slow other tests' imports.
    """
    pytest.importorskip("tensorflow")
    ours = tmp_path / "ours.tfrecord"
    with tfr.TFRecordWriter(ours) as writer:
        for i in range(3):
            writer.write(
                ep.encode_example(
                    {
                        "ids": ep.int64_feature([i, 128 + i, -i, 2**40]),
                        "w": ep.float_feature([0.5 * i, 0.15]),
                        "s": ep.bytes_feature([b"rec%d" % i]),
                    }
                )
            )
    theirs = tmp_path / "theirs.tfrecord"
    script = f"""
import tensorflow as tf
spec = {{"ids": tf.io.FixedLenFeature([4], tf.int64), "w": tf.io.FixedLenFeature([2], tf.float32),
        "s": tf.io.FixedLenFeature([], tf.string)}}
for i, rec in enumerate(tf.data.TFRecordDataset({str(ours)!r})):
    ex = tf.io.parse_single_example(rec, spec)
    assert ex["ids"].numpy().tolist() == [i, 128 + i, -i, 2**40], ex
    assert ex["w"].numpy().tolist() == [0.5 * i, float(tf.constant(0.15, tf.float32))], ex
    assert ex["s"].numpy() == b"rec%d" % i
    n = i + 1
assert n == 3
with tf.io.TFRecordWriter({str(theirs)!r}) as w:
    for i in range(4):
        f = {{"a": tf.train.Feature(int64_list=tf.train.Int64List(value=[i, -7, 99999])),
             "b": tf.train.Feature(float_list=tf.train.FloatList(value=[1.5, i])),
             "c": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"z" * i]))}}
        w.write(tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString())
print("ok")
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    decoded = [ep.decode_example(r) for r in tfr.read_records(theirs)]
    assert decoded == [{"a": [i, -7, 99999], "b": [1.5, float(i)], "c": [b"z" * i]} for i in range(4)]


def test_golden_file_reads_like_protobuf(golden_tfrecord):
    example_pb2 = pytest.importorskip("tensorflow.core.example.example_pb2")
    records = list(tfr.read_records(golden_tfrecord))
    assert len(records) == 60
    for record in records:
        ours = ep.decode_example(record)
        feats = example_pb2.Example.FromString(record).features.feature
        assert set(ours) == set(feats)
        for name, values in ours.items():
            kind = feats[name].WhichOneof("kind")
            assert values == list(getattr(feats[name], kind).value), name
        assert len(ours["input_ids"]) == 128 and len(ours["masked_lm_ids"]) == 20
        assert all(not math.isnan(x) for x in ours["masked_lm_weights"])


def _write(path, records):
    with tfr.TFRecordWriter(path) as writer:
        for r in records:
            writer.write(r)


def test_corruption_is_detected(tmp_path):
    path = tmp_path / "a.tfrecord"
    _write(path, [b"first record", b"second record"])
    good = path.read_bytes()
    assert list(tfr.read_records(path)) == [b"first record", b"second record"]

    # a flipped data byte in the second record
    bad = bytearray(good)
    bad[len(good) - 6] ^= 0x01
    path.write_bytes(bytes(bad))
    with pytest.raises(InputError, match=r"data checksum mismatch \(record 1 at byte 28\)"):
        list(tfr.read_records(path))

    # a flipped length byte
    bad = bytearray(good)
    bad[0] ^= 0x04
    path.write_bytes(bytes(bad))
    with pytest.raises(InputError, match="length checksum mismatch"):
        list(tfr.read_records(path))

    # truncated
    path.write_bytes(good[:-3])
    with pytest.raises(InputError, match="truncated"):
        list(tfr.read_records(path))
    path.write_bytes(good[:5])
    with pytest.raises(InputError, match="truncated TFRecord header"):
        list(tfr.read_records(path))


def test_decode_garbage_is_an_input_error():
    with pytest.raises(InputError, match="not a serialized tf.train.Example"):
        ep.decode_example(b"\x0a\x50abc")  # length past the end
    with pytest.raises(InputError):
        ep.decode_example(b"\x0f\x01")  # wire type 7


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "sub" / "out.tfrecord"
    with pytest.raises(RuntimeError):
        with tfr.TFRecordWriter(path) as writer:
            writer.write(b"x")
            raise RuntimeError("boom")
    assert not path.exists()
    assert list((tmp_path / "sub").iterdir()) == []  # no temporary file left either

    writer = tfr.TFRecordWriter(path)
    writer.write(b"y")
    assert not path.exists()  # nothing visible before close
    writer.close()
    assert list(tfr.read_records(path)) == [b"y"]
    assert writer.records == 1

    writer = tfr.TFRecordWriter(path)
    writer.write(b"z")
    writer.abort()
    assert list(tfr.read_records(path)) == [b"y"]  # the old file is untouched
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.tfrecord"]


def test_frame_record_matches_writer(tmp_path):
    path = tmp_path / "f.tfrecord"
    with tfr.TFRecordWriter(path) as writer:
        writer.write_framed(tfr.frame_record(b"a") + tfr.frame_record(b"bc"), count=2)
    assert writer.records == 2
    assert list(tfr.read_records(path)) == [b"a", b"bc"]


def test_no_tensorflow_import():
    code = "import sys, bert_cli.text.tfrecord, bert_cli.text.pretraining; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
