"""The global options as a user meets them: the installed ``bert`` in a temporary working
directory, relative paths, a local HTTP server in place of the internet, and a pseudo-terminal
where a terminal matters (progress bars, colours).

``--quiet``/``BERT_QUIET``, ``-v``/``BERT_VERBOSE``, ``--no-progress``/``BERT_NO_PROGRESS``,
``NO_COLOR`` and ``--cache-dir`` > ``BERT_CACHE`` > the user cache dir.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time

import pytest
from conftest import error_line
from download_server import Route, build_zip, model_files

TINY = "uncased-L-2-H-128"
TINY_ZIP_PATH = "/bert_models/2020_02_20/uncased_L-2_H-128_A-2.zip"
SGR = re.compile(rb"\x1b\[[0-9;]*m")  # colour / bold / dim: "select graphic rendition"
BAR = "━".encode()  # rich's progress bar


def google_mirror(server) -> dict[str, str]:
    """The Google zips from the local server; no Hub fallback, fast retries."""
    return {
        "BERT_GOOGLE_BASE_URL": server.url("/bert_models"),
        "HF_ENDPOINT": server.base,
        "BERT_DOWNLOAD_BACKOFF": "0.01",
        "BERT_DOWNLOAD_RETRIES": "1",
    }


def serve_tiny(server) -> bytes:
    data = build_zip(model_files())
    server.add(TINY_ZIP_PATH, Route(body=data))
    return data


def vocab(user) -> str:
    from conftest import SHARED_DATA

    path = SHARED_DATA / "vocab" / "uncased" / "vocab.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return user.rel(path)


def in_terminal(user, *args: str, env: dict | None = None, drop: tuple[str, ...] = (), timeout: float = 120):
    """Run ``bert`` with stderr on a pseudo-terminal (stdout stays a pipe, as in ``x=$(bert ...)``).

    ``drop`` removes variables from the user's environment (e.g. ``NO_COLOR``).
    Returns ``(exit code, stdout bytes, terminal bytes)``.
    """
    full = {k: v for k, v in user._env(env).items() if k not in drop}
    full.setdefault("TERM", "xterm-256color")
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [user.exe, *args], cwd=user.cwd, env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave
        )
    finally:
        os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed (the process ended)
                break
            if not chunk:
                break
            seen += chunk
        out = proc.stdout.read()
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        os.close(master)
    return code, out, seen


# -- --quiet / BERT_QUIET ------------------------------------------------------------------------


def test_quiet_prints_only_data_on_stdout(user, server):
    serve_tiny(server)
    loud = user.run("--cache-dir", "a", "download", "tiny", env=google_mirror(server))
    assert loud.returncode == 0, loud.stderr
    assert f"{TINY}: downloaded to a/models/{TINY}" in loud.stderr  # what --quiet must hide

    quiet = user.run("--quiet", "--cache-dir", "b", "download", "tiny", env=google_mirror(server))
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout == f"b/models/{TINY}\n"
    env_quiet = user.run("--cache-dir", "b", "download", "tiny", env={**google_mirror(server), "BERT_QUIET": "1"})
    assert env_quiet.returncode == 0 and env_quiet.stderr == ""  # "already in the cache" is not said either
    assert env_quiet.stdout == f"b/models/{TINY}\n"
    assert len(server.requests_for(TINY_ZIP_PATH)) == 2
    assert (user.cwd / "b" / "models" / TINY / "manifest.json").is_file()


def test_quiet_still_prints_errors(user):
    for run in (user.run("-q", "tokenize", "missing.txt"), user.run("tokenize", "missing.txt", env={"BERT_QUIET": "1"})):
        assert run.returncode == 3
        assert error_line(run.stderr) == "error: input file not found: missing.txt"
        assert run.stdout == ""


# -- -v / --verbose / BERT_VERBOSE -----------------------------------------------------------------


def test_verbose_adds_detail_on_stderr_only(user):
    text = "Hello, world!\nThe quick brown fox.\nunaffable\n"
    plain = user.run("tokenize", "--vocab-file", vocab(user), input=text)
    assert plain.returncode == 0 and plain.stderr == ""
    assert plain.stdout == "hello , world !\nthe quick brown fox .\nuna ##ffa ##ble\n"
    for args, env in ((("-v",), None), (("--verbose",), None), ((), {"BERT_VERBOSE": "1"})):
        run = user.run(*args, "tokenize", "--vocab-file", vocab(user), input=text, env=env)
        assert run.returncode == 0 and run.stdout == plain.stdout
        assert run.stderr == "tokenized 3 lines\n", (args, env)
    both = user.run("-q", "-v", "tokenize", "--vocab-file", vocab(user), input=text)
    assert both.returncode == 0 and both.stdout == plain.stdout and both.stderr == ""  # --quiet wins


# -- progress bars: on a terminal by default, never with --no-progress / BERT_NO_PROGRESS ----------


def test_progress_bar_shows_on_a_terminal_unless_turned_off(user, server):
    serve_tiny(server)
    code, out, tty = in_terminal(user, "--cache-dir", "a", "download", "tiny", env=google_mirror(server))
    assert code == 0, tty
    assert out == f"a/models/{TINY}\n".encode()  # stdout (a pipe) carries the folder only
    assert BAR in tty and tty.count(b"\n") >= 2, tty  # the bar, then the "downloaded to" line

    piped = user.run("--cache-dir", "p", "download", "tiny", env=google_mirror(server))  # stderr not a terminal
    assert piped.returncode == 0 and "━" not in piped.stderr and "\x1b" not in piped.stderr

    for args, env in ((("--no-progress",), {}), ((), {"BERT_NO_PROGRESS": "1"})):
        folder = f"n{len(args)}"
        code, out, tty = in_terminal(user, *args, "--cache-dir", folder, "download", "tiny", env={**google_mirror(server), **env})
        assert code == 0, tty
        assert out == f"{folder}/models/{TINY}\n".encode()
        assert BAR not in tty and b"\x1b" not in tty, tty  # NO_COLOR is set: nothing but text
        assert tty.replace(b"\r\n", b"\n") == f"{TINY}: downloaded to {folder}/models/{TINY}\n".encode()
    assert len(server.requests_for(TINY_ZIP_PATH)) == 4


# -- NO_COLOR ------------------------------------------------------------------------------------


def test_no_color_means_no_escape_sequences_on_a_terminal(user):
    code, out, coloured = in_terminal(user, "tokenize", "missing.txt", drop=("NO_COLOR",))
    assert code == 3 and out == b""
    assert SGR.search(coloured), coloured  # by default errors are styled on a terminal

    code, out, plain = in_terminal(user, "tokenize", "missing.txt", env={"NO_COLOR": "1"})
    assert code == 3 and out == b""
    assert b"\x1b" not in plain, plain  # not even bold
    assert error_line(plain.decode().replace("\r\n", "\n")) == "error: input file not found: missing.txt"


def test_no_color_keeps_the_bar_but_drops_its_colours(user, server):
    serve_tiny(server)
    code, out, tty = in_terminal(user, "--cache-dir", "c", "download", "tiny", env={**google_mirror(server), "NO_COLOR": "1"})
    assert code == 0 and out == f"c/models/{TINY}\n".encode()
    assert BAR in tty and not SGR.search(tty), tty


# -- --cache-dir > BERT_CACHE > the user cache dir -------------------------------------------------


def test_cache_dir_flag_beats_env_beats_default(user, server):
    serve_tiny(server)
    del user.env["BERT_CACHE"]
    xdg = user.cwd / "xdg"
    base = {**google_mirror(server), "XDG_CACHE_HOME": str(xdg)}

    default = user.run("download", "tiny", env=base)
    assert default.returncode == 0, default.stderr
    assert default.stdout == f"{xdg}/bert/models/{TINY}\n"
    assert (xdg / "bert" / "models" / TINY / "manifest.json").is_file()

    from_env = user.run("download", "tiny", env={**base, "BERT_CACHE": "envcache"})
    assert from_env.returncode == 0 and from_env.stdout == f"envcache/models/{TINY}\n", from_env.stderr
    assert (user.cwd / "envcache" / "models" / TINY / "manifest.json").is_file()

    flag = user.run("--cache-dir", "flagcache", "download", "tiny", env={**base, "BERT_CACHE": "envcache"})
    assert flag.returncode == 0 and flag.stdout == f"flagcache/models/{TINY}\n", flag.stderr
    assert (user.cwd / "flagcache" / "models" / TINY / "manifest.json").is_file()

    assert len(server.requests_for(TINY_ZIP_PATH)) == 3  # each landed in its own cache, none found another's
    assert sorted(p.name for p in user.cwd.iterdir()) == ["envcache", "flagcache", "xdg"]
    listed = user.run("download", "--list", env={**base, "BERT_CACHE": "envcache"})
    assert listed.returncode == 0 and "cache: envcache" in listed.stderr.splitlines()
