"""``bert download`` when the network or the user gets in the way, as a user runs it: the
installed script, a temporary working directory, ``--cache-dir cache``, and a local server that
can stall (accept the request and then say nothing, before or in the middle of the body).

* a stalled server: the client gives up after ``BERT_DOWNLOAD_TIMEOUT`` seconds of silence,
  retries (resuming what it has) and, if the server never answers, fails with a clear error;
* a ``bert download`` killed (SIGKILL) mid-transfer: nothing half-installed is visible, and the
  next run resumes and installs files that verify;
* two ``bert download`` processes for the same model: the second waits for the first (the
  cache lock), and both end with the one good install, also when the first is killed.
"""

from __future__ import annotations

import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import error_line
from download_server import build_zip, model_files

TINY = "uncased-L-2-H-128"
ZIP_PATH = "/bert_models/2020_02_20/uncased_L-2_H-128_A-2.zip"
CUT = 20_000  # bytes sent before a stall


class StallingServer:
    """Serves one zip at :data:`ZIP_PATH` (Range honoured). Each GET takes the next plan:

    * ``"full"``: the whole (remaining) body; also what every request gets once the plans run out;
    * ``"silent"``: read the request, then answer nothing until released;
    * ``"stall"``: headers and the first :data:`CUT` bytes, then nothing until released, then close;
    * ``"pause"``: the first :data:`CUT` bytes, wait until released, then the rest.

    ``ranges`` records each GET's ``Range`` header (None without one); ``release()`` lets every
    waiting answer go on.
    """

    def __init__(self, body: bytes, plans: list[str]) -> None:
        self.body = body
        self.plans = list(plans)
        self.ranges: list[str | None] = []
        self.stalled = threading.Event()  # set when an answer starts waiting
        self._release = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner._answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _wait(self) -> None:
        self.stalled.set()
        self._release.wait(60)

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        if h.path != ZIP_PATH:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        rng = h.headers.get("Range")
        with self._lock:
            self.ranges.append(rng)
            plan = self.plans.pop(0) if self.plans else "full"
        if plan == "silent":
            self._wait()
            h.close_connection = True
            return
        start = int(rng[len("bytes="):-1]) if rng else 0
        payload = self.body[start:]
        h.send_response(206 if start else 200)
        h.send_header("Content-Length", str(len(payload)))
        h.send_header("Accept-Ranges", "bytes")
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(self.body) - 1}/{len(self.body)}")
        h.end_headers()
        try:
            if plan == "full":
                h.wfile.write(payload)
                return
            h.wfile.write(payload[:CUT])
            h.wfile.flush()
            self._wait()
            if plan == "pause":
                h.wfile.write(payload[CUT:])
            else:
                h.close_connection = True
        except OSError:  # the client went away (timed out, killed)
            h.close_connection = True


@pytest.fixture
def stalling():
    servers: list[StallingServer] = []

    def make(plans: list[str]) -> StallingServer:
        srv = StallingServer(build_zip(model_files()), plans)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.close()


def mirror(srv: StallingServer, timeout: float = 60, retries: int = 2) -> dict[str, str]:
    return {
        "BERT_GOOGLE_BASE_URL": srv.base + "/bert_models",
        "BERT_DOWNLOAD_TIMEOUT": str(timeout),
        "BERT_DOWNLOAD_RETRIES": str(retries),
        "BERT_DOWNLOAD_BACKOFF": "0.01",
    }


DOWNLOAD = ("--cache-dir", "cache", "download", "tiny", "--source", "google")


def installed_ok(user) -> None:
    """The model folder is complete, its files are the served ones, ``--verify`` agrees, and no
    transfer or staging leftovers remain."""
    folder = user.cwd / "cache" / "models" / TINY
    for name, data in model_files().items():
        assert (folder / name).read_bytes() == data, name
    check = user.run("--cache-dir", "cache", "download", "--verify", "tiny")
    assert check.returncode == 0, check.stderr
    root = user.cwd / "cache"
    assert sorted(p.name for p in root.iterdir()) == [".locks", "models"]
    assert sorted(p.name for p in (root / "models").iterdir()) == [TINY]
    assert user.leftovers() == []


def part_file(user) -> Path:
    return user.cwd / "cache" / ".downloads" / f"models-{TINY}" / "uncased_L-2_H-128_A-2.zip.part"


def wait_for(predicate, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- a server that stops talking ---------------------------------------------------------------


def test_a_stall_mid_body_times_out_and_the_retry_resumes(user, stalling):
    srv = stalling(["stall"])
    start = time.monotonic()
    run = user.run(*DOWNLOAD, env=mirror(srv, timeout=1), timeout=120)
    elapsed = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"cache/models/{TINY}\n"
    assert srv.ranges == [None, f"bytes={CUT}-"]  # the retry asked only for the rest
    assert 1 <= elapsed < 30, f"{elapsed:.1f} s"  # gave up after about the timeout, not the default 60 s
    installed_ok(user)


def test_a_server_that_never_answers_fails_within_the_timeout(user, stalling):
    srv = stalling(["silent"] * 5)
    start = time.monotonic()
    run = user.run(*DOWNLOAD, env=mirror(srv, timeout=0.5, retries=1), timeout=120)
    elapsed = time.monotonic() - start
    assert run.returncode == 1
    line = error_line(run.stderr)
    assert line == f"error: download failed after 2 attempts: {srv.base}{ZIP_PATH}: the server did not answer in time"
    assert len(srv.ranges) == 2 and 1.0 <= elapsed < 30, f"{elapsed:.1f} s"
    assert run.stdout == ""
    assert not (user.cwd / "cache" / "models").exists() and not (user.cwd / "cache" / ".downloads").exists()


def test_a_stall_with_retries_used_up_keeps_the_part_for_the_next_run(user, stalling):
    srv = stalling(["stall"])
    first = user.run(*DOWNLOAD, env=mirror(srv, timeout=0.5, retries=0), timeout=120)
    assert first.returncode == 1
    line = error_line(first.stderr)
    assert f"connection lost after {CUT} bytes: the server did not answer in time" in line
    assert "hint: run the same command again to resume the partial download" in first.stderr.splitlines()
    assert part_file(user).stat().st_size == CUT and not (user.cwd / "cache" / "models").exists()
    again = user.run(*DOWNLOAD, env=mirror(srv), timeout=120)
    assert again.returncode == 0, again.stderr
    assert srv.ranges == [None, f"bytes={CUT}-"]
    installed_ok(user)


# -- a client killed mid-transfer -------------------------------------------------------------------


def test_a_killed_download_leaves_no_install_and_the_next_run_resumes(user, stalling):
    srv = stalling(["stall"])
    proc = user.popen(*DOWNLOAD, env=mirror(srv))
    try:
        wait_for(lambda: part_file(user).is_file() and part_file(user).stat().st_size == CUT, what="the first bytes")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (user.cwd / "cache" / "models").exists()  # nothing half-installed is visible
    listed = user.run("--cache-dir", "cache", "download", "--list", "--json")
    assert listed.returncode == 0 and f'"name": "{TINY}"' in listed.stdout and '"cached": true' not in listed.stdout

    again = user.run(*DOWNLOAD, env=mirror(srv), timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"cache/models/{TINY}\n"
    assert srv.ranges == [None, f"bytes={CUT}-"]  # resumed where the killed run stopped
    installed_ok(user)


# -- two processes, one model ---------------------------------------------------------------------


def _stderr_file(user, name: str):
    return open(user.cwd / name, "w+b")


def test_a_second_process_waits_for_the_first_and_finds_the_model(user, stalling):
    srv = stalling(["pause"])
    with _stderr_file(user, "1.err") as err1, _stderr_file(user, "2.err") as err2:
        first = user.popen(*DOWNLOAD, env=mirror(srv), stderr=err1)
        second = None
        try:
            wait_for(srv.stalled.is_set, what="the first transfer")
            second = user.popen(*DOWNLOAD, env=mirror(srv), stderr=err2)
            wait_for(lambda: b"waiting for it" in (user.cwd / "2.err").read_bytes(), what="the second to wait")
            assert second.poll() is None and first.poll() is None
            srv.release()
            out1, _ = first.communicate(timeout=120)
            out2, _ = second.communicate(timeout=120)
        finally:
            srv.release()
            for p in (first, second):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.communicate()
    assert first.returncode == 0 and second.returncode == 0
    assert out1 == out2 == f"cache/models/{TINY}\n".encode()
    said = (user.cwd / "2.err").read_text().splitlines()
    assert said == [f"{TINY}: another download is running; waiting for it", f"{TINY}: already in the cache"]
    assert srv.ranges == [None]  # one transfer for the two commands
    (user.cwd / "1.err").unlink()
    (user.cwd / "2.err").unlink()
    installed_ok(user)


def test_when_the_first_process_is_killed_the_waiting_one_takes_over(user, stalling):
    srv = stalling(["stall"])
    with _stderr_file(user, "2.err") as err2:
        first = user.popen(*DOWNLOAD, env=mirror(srv))
        second = None
        try:
            wait_for(lambda: part_file(user).is_file() and part_file(user).stat().st_size == CUT, what="the first bytes")
            second = user.popen(*DOWNLOAD, env=mirror(srv), stderr=err2)
            wait_for(lambda: b"waiting for it" in (user.cwd / "2.err").read_bytes(), what="the second to wait")
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=60)
            out2, _ = second.communicate(timeout=120)
        finally:
            srv.release()
            for p in (first, second):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.communicate()
    assert first.returncode == -signal.SIGKILL and second.returncode == 0, (user.cwd / "2.err").read_text()
    assert out2 == f"cache/models/{TINY}\n".encode()
    assert srv.ranges == [None, f"bytes={CUT}-"]  # the survivor resumed the killed one's bytes
    (user.cwd / "2.err").unlink()
    installed_ok(user)


# -- the transfer settings themselves ------------------------------------------------------------


@pytest.mark.parametrize(
    "var, value, rule",
    [
        ("BERT_DOWNLOAD_TIMEOUT", "abc", "a number of seconds above 0"),
        ("BERT_DOWNLOAD_TIMEOUT", "0", "a number of seconds above 0"),
        ("BERT_DOWNLOAD_TIMEOUT", "-5", "a number of seconds above 0"),
        ("BERT_DOWNLOAD_TIMEOUT", "nan", "a number of seconds above 0"),
        ("BERT_DOWNLOAD_RETRIES", "1.5", "a whole number of retries, 0 or more"),
        ("BERT_DOWNLOAD_BACKOFF", "soon", "a number of seconds, 0 or more"),
    ],
)
def test_a_malformed_transfer_setting_is_a_usage_error_before_any_transfer(user, stalling, var, value, rule):
    srv = stalling([])
    run = user.run(*DOWNLOAD, env={**mirror(srv), var: value}, timeout=120)
    assert run.returncode == 2, run.stderr
    assert error_line(run.stderr) == f"error: {var} must be {rule}, not {value!r}"
    assert f"hint: unset {var} for the default, or set e.g. {var}=" in run.stderr
    assert run.stdout == "" and srv.ranges == [] and not (user.cwd / "cache").exists()
