"""What a user meets at the edges, through the installed `bert` script, from a temporary working
directory with relative paths: empty input, a closed stdout pipe (`| head -1` under pipefail),
SIGTERM / Ctrl-C mid-run (exit 130, temporary files gone, no worker left), and ordinary OS
errors (an output that is a directory or a file, a read-only folder, a full disk)."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import error_line
from typer.testing import CliRunner

WORDS = "the quick brown fox jumps over a lazy dog hello world tokenization unbelievable great awful".split()


# --- helpers -------------------------------------------------------------------------------------


def write_lines(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            fh.write(" ".join(rng.choice(WORDS) for _ in range(12)) + "\n")
    return path


def no_error(stderr: str) -> bool:
    """No ``error:`` line and no traceback (TensorFlow's own log lines are fine)."""
    return "Traceback" not in stderr and not any(line.startswith("error:") for line in stderr.splitlines())


def session_members(sid: int) -> list[str]:
    """Live processes (not zombies) of session ``sid``: what a run left behind."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found.append(f"{entry} {stat[:stat.rindex(')') + 1]}")
    return found


def pipeline(user, command: str, timeout: float = 120):
    """``bash -o pipefail -c COMMAND`` (``bert`` is the installed script) in a session of its own;
    fails the test when a process of that session outlives it."""
    proc = subprocess.Popen(
        ["bash", "-o", "pipefail", "-c", command.replace("bert ", f"{user.exe} ", 1)],
        cwd=user.cwd, env=user.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"`{command}` hung (more than {timeout}s)")
    assert_none_left(proc.pid)
    return proc.returncode, out, err


def interrupt_when(user, args: list[str], ready, sig: int, settle: float = 0.5, timeout: float = 180):
    """Start ``bert ARGS``, wait until ``ready()`` is true (the run is in its work) and ``settle``
    seconds more, send ``sig``; return (returncode, stderr) once it has exited, and check no
    process of it is left."""
    log = user.cwd / f".stderr-{sig}.log"
    with open(log, "wb") as err:
        proc = user.popen(*args, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while not ready():
                assert proc.poll() is None, f"bert exited ({proc.returncode}) before the test could interrupt it: " + \
                    log.read_text(errors="replace")[-2000:]
                assert time.monotonic() < deadline, "the run never got to its work"
                time.sleep(0.05)
            time.sleep(settle)
            proc.send_signal(sig)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    stderr = log.read_text(errors="replace")
    log.unlink()
    assert_none_left(proc.pid)
    return rc, stderr


def assert_none_left(sid: int, wait: float = 10) -> None:
    """No process of session ``sid`` outlives the run (killed, then the test fails, if one does)."""
    deadline = time.monotonic() + wait
    while session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = session_members(sid)
    if left:
        os.killpg(sid, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"


@pytest.fixture
def tmpfs(user):
    """``tmpfs(name, size="64k", ro=False)``: a tiny tmpfs mounted at ``cwd/name`` (skips when
    mounting is not allowed); unmounted after the test."""
    mounted = []

    def mount(name: str, size: str = "64k", ro: bool = False) -> Path:
        path = user.cwd / name
        path.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(scope="module")
def tiny_ckpt(shared_data) -> Path:
    """The original's tiny TF1 checkpoint (H=4, L=2, 16 positions, vocab.txt included)."""
    return shared_data / "checkpoints" / "tf1-tiny-random"


def extract_args(user, ckpt: Path, *more: str) -> list[str]:
    return ["extract", "--model", user.rel(ckpt), "--layers", "-1", "--max-seq-length", "8", "--device", "cpu", *more]


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, task_maker) -> Path:
    """A tiny fine-tuned MRPC-format run folder (2 steps; enough for `bert predict`)."""
    pytest.importorskip("tensorflow")
    from bert_cli.cli.app import app

    root = task_maker(tmp_path_factory.mktemp("task"))
    out = root / "run"
    result = CliRunner().invoke(app, [
        "finetune", "mrpc", "--data-dir", str(root / "data"), "--output-dir", str(out),
        "--vocab-file", str(root / "vocab.txt"), "--bert-config-file", str(root / "bert_config.json"),
        "--do-train", "--max-seq-length", "24", "--train-batch-size", "16", "--max-steps", "2", "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    return out


# --- 1. empty input: exit 0, no output -------------------------------------------------------------


def test_tokenize_empty_input_is_no_output(user):
    (user.cwd / "empty.txt").write_text("")
    for args, stdin in ((["tokenize", "empty.txt"], None), (["tokenize", "-j", "2", "-"], "")):
        done = user.run(*args, input=stdin, timeout=120)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), args


def test_predict_empty_input_is_no_output(user, classifier_run):
    (user.cwd / "empty.txt").write_text("")
    done = user.run("predict", "--model", user.rel(classifier_run), "--device", "cpu", "empty.txt", timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert no_error(done.stderr), done.stderr


def test_extract_empty_input_is_no_output(user, tiny_ckpt):
    np = pytest.importorskip("numpy")
    (user.cwd / "empty.txt").write_text("")
    done = user.run(*extract_args(user, tiny_ckpt), input="", timeout=300)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    done = user.run(*extract_args(user, tiny_ckpt, "-o", "out/feats.jsonl", "empty.txt"), timeout=300)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert (user.cwd / "out" / "feats.jsonl").read_bytes() == b""
    done = user.run(*extract_args(user, tiny_ckpt, "-f", "npz", "-o", "feats.npz", "empty.txt"), timeout=300)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    z = np.load(user.cwd / "feats.npz")
    assert z["values"].shape == (0, 1, 4) and z["offsets"].tolist() == [0] and z["tokens"].shape == (0,)
    assert user.leftovers() == []


# --- 2. a closed stdout pipe: exit 0 at once, nothing left running -------------------------------


def test_tokenize_into_head_exits_0(user):
    write_lines(user.cwd / "big.txt", 40_000)  # ~3 MB
    rc, out, err = pipeline(user, "bert tokenize big.txt | head -1")
    assert rc == 0, err
    assert len(out.splitlines()) == 1 and err == ""


def test_tokenize_workers_into_head_exits_0_every_time(user):
    """With workers it used to hang in some runs (Pool.terminate deadlocked): run it 5 times."""
    write_lines(user.cwd / "big.txt", 40_000)
    for attempt in range(5):
        rc, out, err = pipeline(user, "bert tokenize --workers 3 big.txt | head -1", timeout=90)
        assert rc == 0, f"attempt {attempt}: {err}"
        assert len(out.splitlines()) == 1 and err == "", f"attempt {attempt}: {err}"


def test_extract_into_head_exits_0(user, tiny_ckpt):
    write_lines(user.cwd / "in.txt", 3000)  # ~1.5 MB of JSON lines: more than a pipe holds
    rc, out, err = pipeline(user, " ".join(["bert", *extract_args(user, tiny_ckpt, "in.txt"), "| head -1"]), timeout=300)
    assert rc == 0, err
    assert json.loads(out.splitlines()[0])["linex_index"] == 0 and len(out.splitlines()) == 1
    assert no_error(err), err


def test_predict_into_head_exits_0(user, classifier_run):
    write_lines(user.cwd / "in.txt", 4000)  # ~250 KB of results
    rc, out, err = pipeline(user, f"bert predict --model {user.rel(classifier_run)} --device cpu in.txt | head -1",
                            timeout=300)
    assert rc == 0, err
    assert "label" in json.loads(out.splitlines()[0]) and len(out.splitlines()) == 1
    assert no_error(err), err


# --- 3. SIGTERM is Ctrl-C: exit 130, every cleanup runs --------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_squad_predict_interrupted_leaves_no_temp_file(user, shared_data, sig):
    """`bert finetune squad --do-predict` streams raw_logits.jsonl through a temporary file."""
    (user.cwd / "tiny.json").write_text(json.dumps(dict(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=128, type_vocab_size=2,
    )))
    vocab = Path(__file__).resolve().parents[2] / "bert_cli" / "resources" / "uncased_vocab.txt"
    common = ["--vocab-file", user.rel(vocab), "--bert-config-file", "tiny.json", "--output-dir", "run",
              "--max-seq-length", "128", "--device", "cpu"]
    # one training step first: predicting alone needs a trained SQuAD head
    train = user.run("finetune", "squad", "--do-train", "--max-steps", "1", "--train-batch-size", "2",
                     "--first-answer-only", "--train-file",
                     user.rel(shared_data / "squad" / "subsets" / "allennlp-models_squad.json"), *common)
    assert train.returncode == 0, train.stderr
    args = ["finetune", "squad", "--do-predict", "--predict-file", user.rel(shared_data / "squad" / "dev-v1.1.json"),
            *common]
    rc, err = interrupt_when(user, args, lambda: any(".raw_logits" in p for p in user.leftovers("run")), sig)
    assert rc == 130, err
    assert "Traceback" not in err
    assert user.leftovers() == []
    assert not (user.cwd / "run" / "raw_logits.jsonl").exists()


def test_extract_sigterm_leaves_no_output_or_temp_file(user, tiny_ckpt):
    write_lines(user.cwd / "in.txt", 200_000)
    args = extract_args(user, tiny_ckpt, "-o", "feats.jsonl", "in.txt")
    rc, err = interrupt_when(user, args, lambda: bool(user.leftovers()), signal.SIGTERM, settle=0.3)
    assert rc == 130, err
    assert "Traceback" not in err
    assert user.leftovers() == [] and not (user.cwd / "feats.jsonl").exists()


def test_tokenize_workers_sigterm_exits_130_and_stops_the_workers(user):
    write_lines(user.cwd / "big.txt", 40_000)
    # stdout is a FIFO this test never reads: the run blocks in its work, workers started.
    os.mkfifo(user.cwd / "fifo")
    reader = os.open(user.cwd / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    try:
        log = user.cwd / "err.log"
        with open(user.cwd / "fifo", "wb") as out, open(log, "wb") as err:
            proc = user.popen("tokenize", "--workers", "2", "big.txt", stdout=out, stderr=err, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while len(session_members(proc.pid)) < 3:  # bert and its 2 workers (and a resource tracker)
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        os.close(reader)
    assert_none_left(proc.pid)
    assert rc == 130, log.read_text()
    assert "Traceback" not in log.read_text()


# --- 4. ordinary OS errors: one clear line naming the file, before the work ------------------------


def test_os_error_messages():
    from bert_cli.fileio import os_error

    assert os_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "out.jsonl")).message == \
        "cannot write out.jsonl: No space left on device"
    assert os_error(IsADirectoryError(errno.EISDIR, "Is a directory", "out")).message == "out: Is a directory"
    assert os_error(OSError(errno.EROFS, os.strerror(errno.EROFS))).message == "cannot write: Read-only file system"
    assert os_error(PermissionError(errno.EACCES, "Permission denied", "a", None, "b")).message == \
        "a -> b: Permission denied"


def test_output_that_is_a_directory_fails_before_the_work(user, tiny_ckpt):
    (user.cwd / "feats").mkdir()
    (user.cwd / "in.txt").write_text("hello world\n")
    done = user.run(*extract_args(user, tiny_ckpt, "-o", "feats", "in.txt"), timeout=300)
    assert done.returncode == 1
    assert error_line(done.stderr) == "error: cannot write feats: it is a directory"
    assert "extracting" not in done.stderr  # checked before the model is loaded
    assert list((user.cwd / "feats").iterdir()) == [] and user.leftovers() == []


def test_output_under_a_file_fails_before_the_work(user, tiny_ckpt):
    (user.cwd / "in.txt").write_text("hello world\n")
    done = user.run(*extract_args(user, tiny_ckpt, "-o", "in.txt/feats.jsonl", "in.txt"), timeout=300)
    assert done.returncode == 1
    assert error_line(done.stderr) == "error: cannot write in.txt/feats.jsonl: in.txt is not a directory"


@pytest.mark.parametrize("command", [
    ["finetune", "mrpc", "--data-dir", "data", "--vocab-file", "vocab.txt", "--bert-config-file", "cfg.json",
     "--do-train", "--output-dir"],
    ["finetune", "squad", "--do-predict", "--predict-file", "dev.json", "--vocab-file", "vocab.txt",
     "--bert-config-file", "cfg.json", "--output-dir"],
    ["pretrain", "-i", "in.tfrecord", "--bert-config-file", "cfg.json", "--do-train", "--output-dir"],
    ["squad-threshold", "--predict-file", "dev.json", "--apply", "--output-dir"],
], ids=["finetune", "finetune-squad", "pretrain", "squad-threshold"])
def test_output_dir_that_is_a_file(user, command):
    (user.cwd / "taken").write_text("a file\n")
    done = user.run(*command, "taken", timeout=120)
    assert done.returncode == 1, done.stderr
    assert error_line(done.stderr) == "error: cannot use taken as the output folder: it is a file"
    assert (user.cwd / "taken").read_text() == "a file\n"


def test_make_pretrain_data_output_that_is_a_directory(user):
    (user.cwd / "out").mkdir()
    (user.cwd / "in.txt").write_text("one sentence.\nanother one.\n")
    done = user.run("make-pretrain-data", "-i", "in.txt", "-o", "out", timeout=120)
    assert done.returncode == 1
    assert error_line(done.stderr) == "error: cannot write out: it is a directory"


def test_read_only_folder_fails_before_the_work(user, tmpfs, tiny_ckpt):
    tmpfs("ro", ro=True)
    (user.cwd / "in.txt").write_text("hello world\n")
    done = user.run(*extract_args(user, tiny_ckpt, "-o", "ro/feats.jsonl", "in.txt"), timeout=300)
    assert done.returncode == 1
    assert error_line(done.stderr) == "error: cannot write ro/feats.jsonl: ro: Read-only file system"
    done = user.run("pretrain", "-i", "in.tfrecord", "--bert-config-file", "cfg.json", "--do-train",
                    "--output-dir", "ro/run", timeout=120)
    assert done.returncode == 1
    assert error_line(done.stderr) == "error: cannot write ro/run: ro: Read-only file system"


@pytest.mark.parametrize("fmt", ["jsonl", "npz"])
def test_extract_on_a_full_disk(user, tmpfs, tiny_ckpt, fmt):
    tmpfs("full", size="64k")
    write_lines(user.cwd / "in.txt", 2000)  # ~1 MB of output
    done = user.run(*extract_args(user, tiny_ckpt, "-f", fmt, "-o", f"full/feats.{fmt}", "in.txt"), timeout=300)
    assert done.returncode == 1
    assert error_line(done.stderr) == f"error: cannot write full/feats.{fmt}: No space left on device"
    assert os.listdir(user.cwd / "full") == []  # no partial output, no temp or spool file


def test_tokenize_to_a_full_disk(user, tmpfs):
    tmpfs("full", size="64k")
    write_lines(user.cwd / "big.txt", 20_000)
    rc, _, err = pipeline(user, "bert tokenize big.txt > full/tokens.txt")
    assert rc == 1
    assert error_line(err) == "error: cannot write <stdout>: No space left on device"
