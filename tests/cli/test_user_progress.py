"""What a run shows, as a user sees it: the installed ``bert`` from a temporary folder with
relative paths, stderr on a pseudo-terminal (stdout a pipe, as in ``x=$(bert ...)``) or on a
pipe (logs, cron).

On a terminal: one rich bar per long phase with count, rate and ETA; stdout exactly the data.
Elsewhere (and with ``--no-progress`` / ``--quiet``): no bars, no control characters, one plain
summary line per phase. Training runs end with a table (seed, metrics, files), ``report.html``
and ``seed.json``; a run without ``--seed`` records the seed it drew and reuses it on resume.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import subprocess
import time

import numpy as np

BAR = "━".encode()  # rich's bar
RATE_OR_ETA = re.compile(rb"ETA \d+:\d\d:\d\d|in \d+:\d\d:\d\d|/s\b")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
WORDS = "the quick brown fox jumps over a lazy dog unaffable hello world tokenization running".split()


def in_terminal(user, *args: str, env: dict | None = None, timeout: float = 300) -> tuple[int, bytes, bytes]:
    """Run ``bert`` with stderr on a pseudo-terminal and stdout a pipe, both read as they come
    (a big stdout never blocks the run); returns ``(exit code, stdout, terminal bytes)``."""
    full = dict(user._env(env))
    full.setdefault("TERM", "xterm-256color")
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([user.exe, *args], cwd=user.cwd, env=full, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=slave)
    finally:
        os.close(slave)
    out, tty = bytearray(), bytearray()
    open_fds = {proc.stdout.fileno(): out, master: tty}
    deadline = time.monotonic() + timeout
    try:
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 0.2)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    chunk = b""
                if chunk:
                    open_fds[fd] += chunk
                else:
                    del open_fds[fd]
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        os.close(master)
    return code, bytes(out), bytes(tty)


def assert_bar(tty: bytes) -> None:
    assert BAR in tty, tty[-2000:]
    assert RATE_OR_ETA.search(tty), tty[-2000:]


def assert_plain(stderr: str) -> None:
    assert "━" not in stderr and not CONTROL.search(stderr), stderr[-2000:]


def big_text(lines: int) -> str:
    rng = random.Random(0)
    return "".join(" ".join(rng.choice(WORDS) for _ in range(12)) + "\n" for _ in range(lines))


# -- tokenize: a filter -----------------------------------------------------------------------------


def test_tokenize_big_input_bar_on_a_terminal_summary_line_in_a_log(user):
    (user.cwd / "in").mkdir()
    (user.cwd / "in" / "big.txt").write_text(big_text(200_000), encoding="utf-8")
    piped = user.run("tokenize", "-j", "1", "in/big.txt")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.count("\n") == 200_000 and piped.stdout.startswith(piped.stdout.split("\n", 1)[0])
    assert_plain(piped.stderr)
    summary = [ln for ln in piped.stderr.splitlines() if ln.startswith("tokenize: ")]
    assert len(summary) == 1 and re.fullmatch(r"tokenize: 200000 lines \([0-9.]+ MB\) in [0-9.]+s \([0-9.]+ MB/s\)",
                                              summary[0]), piped.stderr

    code, out, tty = in_terminal(user, "tokenize", "-j", "1", "in/big.txt")
    assert code == 0, tty[-2000:]
    assert out.decode() == piped.stdout  # the bar never touches stdout
    assert_bar(tty)
    assert b"MB" in tty  # counted in bytes of the input: the bar has a total, hence an ETA

    for args, env in ((("--no-progress",), None), (("--quiet",), None), ((), {"BERT_NO_PROGRESS": "1"})):
        code, out, tty = in_terminal(user, *args, "tokenize", "-j", "1", "in/big.txt", env=env)
        assert code == 0 and out.decode() == piped.stdout
        assert BAR not in tty and b"\x1b[" not in tty.replace(b"\x1b[?25h", b""), (args, tty[-500:])
        if "--quiet" in args:
            assert tty == b""


def test_tokenize_small_input_stays_silent_in_a_pipeline(user):
    out = user.run("tokenize", input="hello world\n")
    assert out.returncode == 0 and out.stdout == "hello world\n" and out.stderr == ""


# -- extract ---------------------------------------------------------------------------------------


def test_extract_bar_on_a_terminal_and_the_same_data_on_stdout(user, shared_data):
    ckpt = user.rel(shared_data / "checkpoints" / "tf1-tiny-random")
    (user.cwd / "lines.txt").write_text("unk unk\nunk ||| unk\n" * 40, encoding="utf-8")
    args = ("extract", "--model", ckpt, "--max-seq-length", "8", "--batch-size", "4", "--layers", "-1", "lines.txt")
    piped = user.run(*args)
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.splitlines()) == 80
    assert_plain(piped.stderr)
    code, out, tty = in_terminal(user, *args)
    assert code == 0, tty[-2000:]
    assert out.decode() == piped.stdout
    assert_bar(tty)
    assert b"80/80 lines" in tty  # the total comes from the file: count and ETA
    code, out, tty = in_terminal(user, "--no-progress", *args)
    assert code == 0 and out.decode() == piped.stdout and BAR not in tty


# -- finetune, then predict --------------------------------------------------------------------------


def finetune_args(*extra: str) -> list[str]:
    return ["finetune", "mrpc", "--data-dir", "task/data", "--vocab-file", "task/vocab.txt",
            "--bert-config-file", "task/bert_config.json", "--max-seq-length", "32", "--train-batch-size", "16",
            "--learning-rate", "3e-3", "--device", "cpu", "--json", *extra]


def test_finetune_and_predict_on_a_terminal(user, task_maker):
    task_maker(user.cwd / "task", n_train=128, n_dev=32, n_test=40)
    code, out, tty = in_terminal(user, *finetune_args("-o", "run", "--do-train", "--do-eval", "--max-steps", "6",
                                                      "--seed", "7"))
    assert code == 0, tty[-3000:]
    metrics = json.loads(out)  # stdout: the one JSON object, nothing else
    assert metrics["global_step"] == 6 and metrics["seed"] == 7 and "eval_accuracy" in metrics
    assert_bar(tty)
    text = tty.decode()
    assert re.search(r"train\s+━+\s+6/6 steps", text), text[-3000:]
    assert re.search(r"eval\s+━+\s+32/32 examples", text), text[-3000:]
    assert "seed" in text and "7 (repeat with --seed 7)" in text and "run/report.html" in text  # the table

    (user.cwd / "texts.txt").write_text("the great cat sat\nawful dog runs\n" * 50, encoding="utf-8")
    piped = user.run("predict", "--model", "run", "--batch-size", "8", "texts.txt")
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.splitlines()) == 100
    assert_plain(piped.stderr)
    code, out, tty = in_terminal(user, "predict", "--model", "run", "--batch-size", "8", "texts.txt")
    assert code == 0, tty[-2000:]
    assert out.decode() == piped.stdout
    assert_bar(tty)
    assert b"100 examples" in tty


def test_finetune_in_a_log_summary_lines_table_report_and_seed(user, task_maker):
    task_maker(user.cwd / "task", n_train=128, n_dev=32, n_test=40, **NO_DROPOUT)
    first = user.run(*finetune_args("-o", "run", "--do-train", "--do-eval", "--do-predict", "--max-steps", "4",
                                    "--save-checkpoints-steps", "2"))
    assert first.returncode == 0, first.stderr
    assert_plain(first.stderr)
    seed = json.loads(first.stdout)["seed"]  # drawn, since no --seed was given
    assert isinstance(seed, int) and seed >= 0
    assert json.loads((user.cwd / "run" / "seed.json").read_text()) == {"seed": seed}
    lines = first.stderr.splitlines()
    for phase in ("train", "eval", "predict"):  # one summary line per phase
        assert len([ln for ln in lines if re.match(rf"{phase}: \d+ (steps|examples) in [0-9.]+s", ln)]) == 1, lines
    assert re.search(r"^step 4/4\s+loss", first.stderr, re.M)  # the periodic training lines stay
    assert re.search(rf"^seed\s+{seed} \(repeat with --seed {seed}\)", first.stderr, re.M), first.stderr
    for name in ("checkpoint\\s+run/model.ckpt-4", "eval results\\s+run/eval_results.txt",
                 "test predictions\\s+run/test_results.tsv", "report\\s+run/report.html"):
        assert re.search(rf"^{name}\s*$", first.stderr, re.M), (name, first.stderr)
    report = (user.cwd / "run" / "report.html").read_text()
    assert report.count("<svg") >= 3 and "training loss" in report and "eval_accuracy" in report and str(seed) in report
    assert user.leftovers() == []

    # a rerun with more steps resumes: the recorded seed, not a new one
    again = user.run(*finetune_args("-o", "run", "--do-train", "--max-steps", "8", "--save-checkpoints-steps", "2"))
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr
    # its summary line counts the 4 steps it ran, not the 8 since the start of the run
    assert re.search(r"^train: 4 steps \(5-8 of 8\) in [0-9.]+s \([0-9.]+ steps/s\)", again.stderr, re.M), again.stderr
    assert json.loads(again.stdout)["seed"] == seed
    assert json.loads((user.cwd / "run" / "seed.json").read_text()) == {"seed": seed}
    history = [json.loads(ln) for ln in (user.cwd / "run" / "history.jsonl").read_text().splitlines()]
    assert sorted({p["step"] for p in history if p["kind"] == "train"}) == list(range(1, 9))

    # --seed N repeats it: the first run again, seeded by hand, ends with the same weights
    ref = user.run(*finetune_args("-o", "ref", "--do-train", "--max-steps", "4", "--save-checkpoints-steps", "2",
                                  "--seed", str(seed)))
    assert ref.returncode == 0, ref.stderr
    import tensorflow as tf

    ours = tf.train.load_checkpoint(str(user.cwd / "run" / "model.ckpt-4"))
    theirs = tf.train.load_checkpoint(str(user.cwd / "ref" / "model.ckpt-4"))
    for name in theirs.get_variable_to_shape_map():
        np.testing.assert_array_equal(ours.get_tensor(name), theirs.get_tensor(name), err_msg=name)



# -- download: the same bars for bytes ----------------------------------------------------------------


def test_download_bar_on_a_terminal_nothing_extra_in_a_log(user, server):
    """Transfers draw through the one renderer (bert_cli.progress.transfers): a bar on a terminal,
    only the data (the installed path) on stdout, no control characters in a log."""
    from download_server import Route, build_zip, model_files

    server.add("/bert_models/2020_02_20/uncased_L-2_H-128_A-2.zip", Route(body=build_zip(model_files())))
    env = {"BERT_GOOGLE_BASE_URL": server.url("/bert_models"), "BERT_DOWNLOAD_BACKOFF": "0.01"}
    code, out, tty = in_terminal(user, "--cache-dir", "cache", "download", "uncased-L-2-H-128", "--source", "google",
                                 env=env)
    assert code == 0, tty[-2000:]
    assert out.decode() == "cache/models/uncased-L-2-H-128\n"
    assert_bar(tty)
    plain = user.run("--cache-dir", "cache2", "download", "uncased-L-2-H-128", "--source", "google", env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "cache2/models/uncased-L-2-H-128\n"
    assert_plain(plain.stderr)


def test_repeat_writes_a_report_and_history_for_each_seed(user, task_maker):
    """`--repeat 2`: each seed's folder gets its own history.jsonl and report.html (its curves and
    its own table), the top folder the mean and spread, and stdout the aggregate only."""
    task_maker(user.cwd / "task", n_train=64, n_dev=16, n_test=8)
    args = [a for a in finetune_args("-o", "run", "--do-train", "--do-eval", "--max-steps", "3", "--seed", "5",
                                     "--repeat", "2") if a != "--json"]
    out = user.run(*args)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^eval_accuracy = [0-9.]+ \+- [0-9.]+$", out.stdout, re.M), out.stdout
    assert_plain(out.stderr)
    for seed in (5, 6):
        folder = user.cwd / "run" / f"seed-{seed}"
        history = [json.loads(ln) for ln in (folder / "history.jsonl").read_text().splitlines()]
        assert [p["step"] for p in history if p["kind"] == "train"] == [1, 2, 3], history
        assert [p["step"] for p in history if p["kind"] == "eval"] == [3], history
        report = (folder / "report.html").read_text()
        assert "training loss" in report and "eval_accuracy" in report
        assert f"{seed} (repeat with --seed {seed})" in report  # this seed's own table
    assert not (user.cwd / "run" / "report.html").exists() and not (user.cwd / "run" / "history.jsonl").exists()
    assert json.loads((user.cwd / "run" / "repeat_results.json").read_text())["seeds"] == [5, 6]
    assert user.leftovers() == []
