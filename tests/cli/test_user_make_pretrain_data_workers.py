"""`bert make-pretrain-data --num-workers-total N --worker-index I`: N machines (here processes)
each write their part of one shard set, with no coordinator; `bert pretrain` takes the set only
whole. Through the installed script, from a temporary working directory, relative paths."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from bert_cli.resources import path as resource_path
from conftest import error_line

SAMPLE = Path(resource_path("sample_text.txt")).read_text(encoding="utf-8")
# about 88 KB of text in shards of 10,000 characters: 8 shards, 2 per worker of 4
OPTIONS = ("--dupe-factor", "1", "--max-seq-length", "32", "--shard-size-mb", "0.01")
PARTS = [".out-%05d.tfrecord.part-0-of-4.json", ".out-%05d.tfrecord.part-1-of-4.json",
         ".out-%05d.tfrecord.part-2-of-4.json", ".out-%05d.tfrecord.part-3-of-4.json"]


def write_corpus(path: Path, copies: int = 20) -> Path:
    path.write_text((SAMPLE.rstrip() + "\n\n") * copies, encoding="utf-8")
    return path


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def contents(*folders: Path) -> dict[str, bytes]:
    """The visible files of the folders together, by name (a name in two folders fails)."""
    out: dict[str, bytes] = {}
    for folder in folders:
        for name in visible(folder):
            assert name not in out, f"{name} written twice"
            out[name] = (folder / name).read_bytes()
    return out


def worker(user, output: str, i: int, n: int = 4, *extra: str, corpus: str = "corpus.txt"):
    return user.popen("make-pretrain-data", "-i", corpus, "-o", output, *OPTIONS,
                      "--num-workers-total", str(n), "--worker-index", str(i), *extra, text=True)


def finish(procs) -> list[tuple[int, str, str]]:
    """``(exit code, stdout, stderr)`` of each process, once all have ended."""
    outs = [p.communicate(timeout=120) for p in procs]
    return [(p.returncode, *out) for p, out in zip(procs, outs)]


def pretrain_inputs(user, spec: str):
    """`bert pretrain` up to its input check: exit 3 about the missing config means the input
    files passed."""
    return user.run("pretrain", "-i", spec, "--output-dir", "run", "--do-train", "--bert-config-file", "missing.json",
                    timeout=120)


def inputs_pass(result) -> bool:
    return result.returncode == 3 and "missing.json" in error_line(result.stderr)


# ------------------------------------------------------------------ 1. the union is the set


@pytest.mark.parametrize("layout", ["shared-folder", "separate-folders"])
def test_four_machines_write_the_one_machine_set_byte_for_byte(user, layout):
    write_corpus(user.cwd / "corpus.txt")
    one = user.run("make-pretrain-data", "-i", "corpus.txt", "-o", "one/out-%05d.tfrecord", *OPTIONS)
    assert one.returncode == 0, one.stderr
    assert len(visible(user.cwd / "one")) == 8  # a few shards, two per machine

    outputs = [f"{'many' if layout == 'shared-folder' else f'm{i}'}/out-%05d.tfrecord" for i in range(4)]
    procs = [worker(user, outputs[i], i, 4, *(["-j", "2"] if i == 3 else [])) for i in range(4)]  # at once
    results = finish(procs)
    for i, (rc, out, err) in enumerate(results):
        assert rc == 0, err
        assert "Traceback" not in err
        numbers = sorted(int(Path(line).name[4:9]) for line in out.split())
        assert numbers == [k for k in range(8) if k % 4 == i], out  # shard k belongs to worker k % 4
        assert f"worker {i} of 4" in err

    folders = [user.cwd / "many"] if layout == "shared-folder" else [user.cwd / f"m{i}" for i in range(4)]
    assert contents(*folders) == contents(user.cwd / "one")  # same names, same bytes
    if layout == "shared-folder":
        assert hidden(user.cwd / "many") == PARTS
        spec = "many/out-*"
    else:
        assert [hidden(f) for f in folders] == [[p] for p in PARTS]
        spec = "m*/out-*"
    assert user.leftovers() == []
    assert inputs_pass(pretrain_inputs(user, spec))


# ------------------------------------------------------------------ 2. pretrain takes only whole sets


def test_pretrain_names_the_missing_or_stale_part_and_trains_on_the_whole_set(user):
    write_corpus(user.cwd / "corpus.txt")
    for rc, _, err in finish([worker(user, "o/out-%05d.tfrecord", i) for i in (0, 1, 3)]):
        assert rc == 0, err
    o = user.cwd / "o"
    assert visible(o) == ["out-00000.tfrecord", "out-00001.tfrecord", "out-00003.tfrecord",
                          "out-00004.tfrecord", "out-00005.tfrecord", "out-00007.tfrecord"]

    train = ("pretrain", "-i", "o/out-*", "-o", "run", "--do-train", "--num-train-steps", "2",
             "--num-warmup-steps", "0", "--train-batch-size", "4", "--max-seq-length", "32",
             "--save-checkpoints-steps", "2", "--device", "cpu", "--json")
    r = user.run(*train, timeout=300)
    assert r.returncode == 3, r.stderr
    line = error_line(r.stderr)
    assert "incomplete" in line and "worker 2 of 4" in line, line
    assert "--worker-index 2" in r.stderr  # the hint: the command that completes the set
    assert r.stdout == "" and not (user.cwd / "run").exists()

    # worker 2 written with another seed: its part does not belong
    for rc, _, err in finish([worker(user, "o/out-%05d.tfrecord", 2, 4, "--random-seed", "7")]):
        assert rc == 0, err
    r = pretrain_inputs(user, "o/out-*")
    assert r.returncode == 1, r.stderr
    line = error_line(r.stderr)
    assert "part-2-of-4" in line and "does not belong" in line and "--random-seed" in line, line

    # its rerun replaces only its own part
    others = {name: os.stat(o / name).st_ino for name in visible(o) if int(name[4:9]) % 4 != 2}
    for rc, _, err in finish([worker(user, "o/out-%05d.tfrecord", 2)]):
        assert rc == 0, err
    assert {name: os.stat(o / name).st_ino for name in visible(o) if int(name[4:9]) % 4 != 2} == others
    assert hidden(o) == PARTS and len(visible(o)) == 8

    r = user.run(*train, timeout=300)  # the bundled tiny demo BERT, two steps
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["global_step"] == 2
    assert user.leftovers() == []


# ------------------------------------------------------------------ 3. usage errors


@pytest.mark.parametrize(
    "flags,words",
    [
        (["--num-workers-total", "4", "--worker-index", "4"], ["--worker-index", "0..3"]),
        (["--worker-index", "1"], ["--worker-index", "needs", "--num-workers-total"]),
        (["--num-workers-total", "2"], ["--num-workers-total", "needs", "--worker-index"]),
        (["--num-workers-total", "2", "--worker-index", "0", "-o", "o/out.tfrecord"], ["pattern"]),
        (["--num-workers-total", "2", "--worker-index", "0", "--num-output-shards", "4"], ["pattern"]),
    ],
    ids=["index-too-big", "index-alone", "total-alone", "plain-output", "output-shard-count"],
)
def test_machine_options_are_checked_before_any_work(user, flags, words):
    write_corpus(user.cwd / "corpus.txt", copies=1)
    output = [] if "-o" in flags else ["-o", "o/out-%05d.tfrecord"]
    r = user.run("make-pretrain-data", "-i", "corpus.txt", *output, *flags, *OPTIONS)
    assert r.returncode == 2, r.stderr
    line = error_line(r.stderr)
    assert all(w in line for w in words), line
    assert r.stdout == ""
    assert not (user.cwd / "o").exists() and user.leftovers() == []


# ------------------------------------------------------------------ 4. kill -9


def test_a_killed_worker_leaves_no_visible_shard_and_its_rerun_completes_the_set(user):
    corpus = write_corpus(user.cwd / "corpus.txt")
    o = user.cwd / "o"
    for rc, _, err in finish([worker(user, "o/out-%05d.tfrecord", 0, 2)]):
        assert rc == 0, err
    mine = visible(o)

    # worker 1 reads the corpus from a pipe: give it half, wait until it has written a shard
    # (still under a hidden temporary name), then kill -9 it while it waits for the rest
    data = corpus.read_bytes()
    proc = user.popen("make-pretrain-data", "-i", "-", "-o", "o/out-%05d.tfrecord", *OPTIONS,
                      "--num-workers-total", "2", "--worker-index", "1", stdin=-1, start_new_session=True)
    proc.stdin.write(data[: len(data) // 2])
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not [n for n in hidden(o) if n.startswith(".out-00001.tfrecord.") and n.endswith(".tmp")]:
        assert proc.poll() is None and time.monotonic() < deadline, "worker 1 never wrote a shard"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdin.close()
    proc.stdout.close()
    proc.stderr.close()

    assert visible(o) == mine  # nothing of worker 1's part is visible
    r = pretrain_inputs(user, "o/out-*")
    assert r.returncode == 3 and "worker 1 of 2" in error_line(r.stderr), r.stderr

    r = user.run("make-pretrain-data", "-i", "corpus.txt", "-o", "o/out-%05d.tfrecord", *OPTIONS,
                 "--num-workers-total", "2", "--worker-index", "1")
    assert r.returncode == 0, r.stderr
    assert visible(o) == [f"out-{k:05d}.tfrecord" for k in range(8)]
    assert hidden(o) == [".out-%05d.tfrecord.part-0-of-2.json", ".out-%05d.tfrecord.part-1-of-2.json"]
    assert user.leftovers() == []  # the rerun removed what the killed run left
    assert inputs_pass(pretrain_inputs(user, "o/out-*"))
