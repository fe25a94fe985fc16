"""`bert make-pretrain-data` (and `bert pretrain`'s reading of its output) as a user runs it:
the installed script, from a temporary working directory, with relative paths."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bert_cli.resources import path as resource_path
from bert_cli.text import tfrecord as tfr
from conftest import error_line

SMALL = ("--dupe-factor", "1", "--max-seq-length", "32")
SAMPLE = Path(resource_path("sample_text.txt")).read_text(encoding="utf-8")


def write_corpus(path: Path, copies: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((SAMPLE.rstrip() + "\n\n") * copies, encoding="utf-8")
    return path


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def children(pid: int) -> list[int]:
    """Living (not zombie) processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                out.append(pid)
        except OSError:
            pass
    return out


def pretrain_inputs(user, spec: str):
    """`bert pretrain` up to its input check: with a missing config, exit 3 about the config
    means the input files passed."""
    return user.run("pretrain", "-i", spec, "--output-dir", "run", "--do-train", "--bert-config-file", "missing.json", timeout=120)


# ------------------------------------------------------------------ 1. inputs that are outputs


def test_output_that_is_the_input_is_refused(user):
    corpus = write_corpus(user.cwd / "corpus.txt")
    before = corpus.read_bytes()
    for out in ("corpus.txt", "../work/corpus.txt", "corpus.txt,other.tfrecord"):
        r = user.run("make-pretrain-data", "-i", "corpus.txt", "-o", out, *SMALL)
        assert r.returncode == 2, r.stderr
        assert "corpus.txt" in error_line(r.stderr) and "also an output" in error_line(r.stderr)
        assert r.stdout == ""
    assert corpus.read_bytes() == before
    assert visible(user.cwd) == ["corpus.txt"] and user.leftovers() == []


@pytest.mark.parametrize("shards", [[], ["--num-output-shards", "2"]], ids=["exact", "sharded"])
def test_rerun_with_a_glob_over_the_output_folder_is_refused(user, shards):
    write_corpus(user.cwd / "dir" / "corpus.txt")
    args = ("make-pretrain-data", "-i", "dir/*", "-o", "dir/out.tfrecord", *shards, *SMALL)
    first = user.run(*args)
    assert first.returncode == 0, first.stderr
    made = {name: (user.cwd / "dir" / name).read_bytes() for name in visible(user.cwd / "dir")}
    second = user.run(*args)
    assert second.returncode == 2, second.stderr
    assert "dir/out" in error_line(second.stderr) and "also an output" in error_line(second.stderr)
    assert {name: (user.cwd / "dir" / name).read_bytes() for name in visible(user.cwd / "dir")} == made
    assert user.leftovers() == []


@pytest.mark.parametrize("kind", ["tfrecord", "nul", "not-utf8", "stdin-tfrecord"])
def test_tfrecord_or_binary_input_is_refused(user, kind):
    write_corpus(user.cwd / "corpus.txt")
    assert user.run("make-pretrain-data", "-i", "corpus.txt", "-o", "old/data.tfrecord", *SMALL).returncode == 0
    record = (user.cwd / "old" / "data.tfrecord").read_bytes()
    inputs, stdin, named = {
        "tfrecord": (["old/data.tfrecord"], None, "old/data.tfrecord"),
        "nul": (["blob.bin"], None, "blob.bin"),
        "not-utf8": (["latin.txt"], None, "latin.txt"),
        "stdin-tfrecord": (["-"], record, "<stdin>"),
    }[kind]
    (user.cwd / "blob.bin").write_bytes(b"some text\n" + bytes(range(256)) * 40)
    (user.cwd / "latin.txt").write_bytes(bytes(range(128, 256)) * 50)
    args = ["make-pretrain-data", *sum((["-i", i] for i in inputs), []), "-o", "new/out.tfrecord", *SMALL]
    r = user.run(*args, input=stdin) if stdin is not None else user.run(*args)
    assert r.returncode == 1, r.stderr
    line = error_line(r.stderr if isinstance(r.stderr, str) else r.stderr.decode())
    assert named in line and "not" in line and "text" in line
    assert not (user.cwd / "new").exists() or os.listdir(user.cwd / "new") == []
    assert user.leftovers() == []


# ------------------------------------------------------------------ 2. shard sets


@pytest.mark.parametrize(
    "output,more,fewer",
    [
        ("o/out-%03d.tfrecord", ["--num-output-shards", "4"], ["--num-output-shards", "2"]),
        ("o/out.tfrecord", ["--num-output-shards", "4"], ["--num-output-shards", "2"]),
    ],
    ids=["pattern", "numbered"],
)
def test_rerun_with_fewer_shards_leaves_only_the_new_set(user, output, more, fewer):
    write_corpus(user.cwd / "corpus.txt")
    assert user.run("make-pretrain-data", "-i", "corpus.txt", "-o", output, *more, *SMALL).returncode == 0
    assert len(visible(user.cwd / "o")) == 4
    r = user.run("make-pretrain-data", "-i", "corpus.txt", "-o", output, *fewer, *SMALL, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert sorted(Path(f).name for f in summary["files"]) == visible(user.cwd / "o")
    assert len(visible(user.cwd / "o")) == 2
    manifest = json.loads(Path(user.cwd / summary["manifest"]).read_text())
    assert manifest["complete"] is True and [e["name"] for e in manifest["files"]] == visible(user.cwd / "o")
    assert sum(e["records"] for e in manifest["files"]) == summary["instances"] == manifest["records"]
    assert hidden(user.cwd / "o") == [Path(summary["manifest"]).name]
    p = pretrain_inputs(user, "o/out-*")
    assert p.returncode == 3 and "missing.json" in error_line(p.stderr), p.stderr  # the inputs passed


def test_pretrain_refuses_a_mixed_missing_or_incomplete_shard_set(user):
    write_corpus(user.cwd / "corpus.txt")
    for folder, seed in (("o", "1"), ("other", "2")):
        r = user.run("make-pretrain-data", "-i", "corpus.txt", "-o", f"{folder}/out-%03d.tfrecord",
                     "--num-output-shards", "3", "--random-seed", seed, *SMALL)
        assert r.returncode == 0, r.stderr
    o = user.cwd / "o"
    saved = {name: (o / name).read_bytes() for name in os.listdir(o)}

    def restore():
        for name in os.listdir(o):
            os.unlink(o / name)
        for name, data in saved.items():
            (o / name).write_bytes(data)

    assert pretrain_inputs(user, "o/out-*").returncode == 3  # whole: only the config is missing

    shutil.copy(user.cwd / "other" / "out-001.tfrecord", o / "out-001.tfrecord")  # a shard of another run
    r = pretrain_inputs(user, "o/out-*")
    assert r.returncode == 1 and "o/out-001.tfrecord" in error_line(r.stderr) and "another run" in r.stderr

    restore()
    os.unlink(o / "out-002.tfrecord")  # a missing shard
    r = pretrain_inputs(user, "o/out-*")
    assert r.returncode == 3 and "o/out-002.tfrecord" in error_line(r.stderr) and "missing" in r.stderr

    restore()
    shutil.copy(o / "out-000.tfrecord", o / "out-007.tfrecord")  # a left-over shard
    r = pretrain_inputs(user, "o/out-*")
    assert r.returncode == 1 and "o/out-007.tfrecord" in error_line(r.stderr)

    restore()
    manifest = o / ".out-%03d.tfrecord.manifest.json"
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(doc, complete=False)))  # cut while publishing
    r = pretrain_inputs(user, "o/out-000.tfrecord")
    assert r.returncode == 1 and "manifest" in error_line(r.stderr) and "incomplete" in r.stderr


# ------------------------------------------------------------------ 3. disk full


@pytest.fixture
def full_disk(user):
    """A 64 KiB tmpfs at ``full/`` in the user's cwd (skips when it cannot be mounted)."""
    folder = user.cwd / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.mark.parametrize(
    "output,extra",
    [("full/out.tfrecord", []), ("full/out-%03d.tfrecord", ["-j", "2"]), ("full/k.tfrecord", ["--num-output-shards", "2"])],
    ids=["exact", "workers", "numbered"],
)
def test_disk_full_is_a_clear_error_and_leaves_nothing(user, full_disk, output, extra):
    write_corpus(user.cwd / "big.txt", copies=150)
    r = user.run("make-pretrain-data", "-i", "big.txt", "-o", output, *extra, *SMALL, timeout=120)
    assert r.returncode == 1, r.stderr
    line = error_line(r.stderr)
    assert "full/" in line and "No space left on device" in line
    assert r.stdout == "" and os.listdir(full_disk) == []


def test_writer_abort_removes_the_temporary_file_when_close_fails(tmp_path, monkeypatch):
    writer = tfr.TFRecordWriter(tmp_path / "out.tfrecord")
    writer.write(b"x" * 100)

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.fh.close()
            raise OSError(errno.ENOSPC, "No space left on device")

        def fileno(self):
            return self.fh.fileno()

    writer._fh = Full(writer._fh)
    with pytest.raises(Exception, match="No space left") as caught:
        writer.close()
    assert type(caught.value).__name__ == "OutputError" and "out.tfrecord" in str(caught.value)
    assert os.listdir(tmp_path) == []
    writer = tfr.TFRecordWriter(tmp_path / "out.tfrecord")
    writer._fh = Full(writer._fh)
    writer.abort()  # must not raise, must unlink
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ 4. interrupts


def _start(user, *args):
    return user.popen("make-pretrain-data", "-i", "big.txt", *args, "--dupe-factor", "2", "--max-seq-length", "64",
                      start_new_session=True, text=True)


def _wait_busy(user, proc, workers: int) -> list[int]:
    """Wait until the run has temporary files (and its workers): it is in its work."""
    deadline = time.monotonic() + 60
    kids: list[int] = []
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        kids = children(proc.pid) or kids
        if user.leftovers() and len(kids) >= workers:
            time.sleep(0.3)
            return children(proc.pid) or kids
        time.sleep(0.05)
    raise AssertionError("the run never got busy")


def _assert_nothing_left(user, proc, kids: list[int], stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    deadline = time.monotonic() + 10
    while alive(kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(kids) == [], "worker processes outlived the run"
    out = user.cwd / "o"
    assert user.leftovers() == []
    assert not out.exists() or os.listdir(out) == []


@pytest.mark.parametrize(
    "output,extra,workers",
    [("o/out.tfrecord", [], 0), ("o/out.tfrecord", ["-j", "2", "--num-output-shards", "2"], 2), ("o/out-%03d.tfrecord", ["-j", "2"], 2)],
    ids=["exact", "numbered-workers", "pattern-workers"],
)
def test_ctrl_c_leaves_no_temporary_file_no_shard_and_no_worker(user, output, extra, workers):
    write_corpus(user.cwd / "big.txt", copies=800)
    proc = _start(user, "-o", output, *extra)
    kids = _wait_busy(user, proc, workers)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    _assert_nothing_left(user, proc, kids, stderr)


@pytest.mark.parametrize("extra,workers", [([], 0), (["-j", "2", "--num-output-shards", "2"], 2)], ids=["exact", "workers"])
def test_sigterm_leaves_no_temporary_file_and_no_worker(user, extra, workers):
    write_corpus(user.cwd / "big.txt", copies=800)
    proc = _start(user, "-o", "o/out.tfrecord", *extra)
    kids = _wait_busy(user, proc, workers)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    _assert_nothing_left(user, proc, kids, stderr)


def test_kill_9_leaves_no_worker_and_no_visible_shard(user):
    write_corpus(user.cwd / "big.txt", copies=800)
    proc = _start(user, "-o", "o/out.tfrecord", "-j", "2", "--num-output-shards", "2")
    kids = _wait_busy(user, proc, 2)
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while alive(kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(kids) == [], "worker processes outlived a killed parent"
    assert visible(user.cwd / "o") == []  # only hidden temporary files: no complete-looking shard
    # the next run publishes a whole set and clears what the killed run left
    r = user.run("make-pretrain-data", "-i", "big.txt", "-o", "o/out.tfrecord", "--num-output-shards", "2", *SMALL)
    assert r.returncode == 0, r.stderr
    assert visible(user.cwd / "o") == ["out-00000-of-00002.tfrecord", "out-00001-of-00002.tfrecord"]
    assert user.leftovers() == []


# ------------------------------------------------------------------ 5. permissions, 6. progress


def test_files_get_the_usual_permissions(user):
    write_corpus(user.cwd / "corpus.txt")
    old = os.umask(0o027)
    try:
        r = user.run("make-pretrain-data", "-i", "corpus.txt", "-o", "o/out.tfrecord", "-j", "2", *SMALL, "--json")
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    for name in ("o/out.tfrecord", json.loads(r.stdout)["manifest"]):
        assert (user.cwd / name).stat().st_mode & 0o777 == 0o640, name


@pytest.mark.parametrize("extra", [[], ["--num-output-shards", "2"]], ids=["exact", "sharded"])
def test_progress_lines_tell_the_truth(user, extra):
    docs = [f"sentence number {i} is here.\nand another one {i}." for i in range(2500)]
    (user.cwd / "many.txt").write_text("\n\n".join(docs) + "\n")
    r = user.run("make-pretrain-data", "-i", "many.txt", "-o", "out.tfrecord", *extra, *SMALL)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert not [line for line in lines if " 0 instances" in line], r.stderr
    final = int(next(line for line in lines if line.startswith("wrote ")).split()[1])
    if extra:
        assert any("instances written" in line for line in lines), r.stderr
    else:
        assert any(line.startswith("reading: 1000 documents") for line in lines), r.stderr
    for line in lines:  # no line counts more instances than were made
        words = line.replace(",", "").split()
        for i, word in enumerate(words[1:], 1):
            if word == "instances" and words[i - 1].split("/")[0].isdigit():
                assert int(words[i - 1].split("/")[0]) <= final, line
