"""``bert_cli.models.transfer.fetch`` against a real local HTTP server: resume, retries, errors,
checksums, atomic rename."""

from __future__ import annotations

import hashlib
import socket

import pytest
from download_server import Route

from bert_cli.errors import EXIT_FAILED, ChecksumError, DownloadError
from bert_cli.models.transfer import RemoteError, RetryPolicy, fetch, part_path

BODY = bytes((i * 7 + 3) % 251 for i in range(100_000))
SHA = hashlib.sha256(BODY).hexdigest()
FAST = dict(backoff=0.001)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_plain_download_is_renamed_only_when_complete(server, tmp_path):
    server.add("/a.bin", BODY)
    dest = tmp_path / "d" / "a.bin"
    result = fetch(server.url("/a.bin"), dest, SHA, **FAST)
    assert dest.read_bytes() == BODY
    assert result.sha256 == SHA and result.size == len(BODY) and result.resumed_from == 0 and result.attempts == 1
    assert not part_path(dest).exists()
    (get,) = server.requests_for("/a.bin")
    assert "range" not in get.headers and get.headers["accept-encoding"] == "identity"


def test_dropped_connection_then_a_second_run_resumes_with_range(server, tmp_path):
    """First run: the server drops the connection at 40,000 bytes and no retry is allowed; the
    partial file stays. Second run: it asks only for the remaining bytes."""
    server.add("/b.bin", Route(body=BODY, drop_first=1, drop_at=40_000))
    dest = tmp_path / "b.bin"
    with pytest.raises(DownloadError) as err:
        fetch(server.url("/b.bin"), dest, SHA, retries=0, **FAST)
    assert err.value.exit_code == EXIT_FAILED and "resume" in (err.value.hint or "")
    assert not dest.exists() and part_path(dest).stat().st_size == 40_000

    result = fetch(server.url("/b.bin"), dest, SHA, retries=0, **FAST)
    assert dest.read_bytes() == BODY and result.resumed_from == 40_000
    first, second = server.requests_for("/b.bin")
    assert "range" not in first.headers and first.sent == 40_000
    assert second.headers["range"] == "bytes=40000-"
    assert second.status == 206 and second.sent == len(BODY) - 40_000


def test_drop_is_resumed_within_one_run(server, tmp_path):
    server.add("/c.bin", Route(body=BODY, drop_first=2, drop_at=30_000))
    sleeps = Sleeps()
    result = fetch(server.url("/c.bin"), tmp_path / "c.bin", SHA, retries=3, backoff=0.001, sleep=sleeps)
    assert result.sha256 == SHA and result.attempts == 3
    ranges = [s.headers.get("range") for s in server.requests_for("/c.bin")]
    assert ranges == [None, "bytes=30000-", "bytes=30000-"]
    assert sum(s.sent for s in server.requests_for("/c.bin")) == len(BODY)  # no byte fetched twice


def test_500_is_retried_with_exponential_backoff(server, tmp_path):
    server.add("/d.bin", Route(body=BODY, fail_first=2))
    sleeps = Sleeps()
    result = fetch(server.url("/d.bin"), tmp_path / "d.bin", SHA, retries=3, backoff=0.5, sleep=sleeps)
    assert result.attempts == 3 and (tmp_path / "d.bin").read_bytes() == BODY
    assert sleeps == [0.5, 1.0]
    assert [s.status for s in server.requests_for("/d.bin")] == [500, 500, 200]


def test_persistent_500_fails_after_the_retries(server, tmp_path):
    server.add("/e.bin", Route(body=BODY, fail_first=100))
    with pytest.raises(DownloadError) as err:
        fetch(server.url("/e.bin"), tmp_path / "e.bin", retries=2, sleep=Sleeps(), **FAST)
    assert "after 3 attempts" in err.value.message and "HTTP 500" in err.value.message
    assert len(server.requests_for("/e.bin")) == 3
    assert not (tmp_path / "e.bin").exists() and not part_path(tmp_path / "e.bin").exists()


@pytest.mark.parametrize("status, words", [(404, "not found"), (403, "access denied"), (401, "authentication")])
def test_client_errors_fail_at_once_with_a_clear_message(server, tmp_path, status, words):
    server.add("/f.bin", Route(status=status))
    with pytest.raises(RemoteError) as err:
        fetch(server.url("/f.bin"), tmp_path / "f.bin", retries=5, sleep=Sleeps(), **FAST)
    assert err.value.status == status and words in err.value.message and f"HTTP {status}" in err.value.message
    assert err.value.exit_code == EXIT_FAILED
    assert len(server.requests_for("/f.bin")) == 1  # not retried
    assert list(tmp_path.iterdir()) == []


def test_wrong_checksum_is_refused_and_nothing_kept(server, tmp_path):
    server.add("/g.bin", BODY)
    dest = tmp_path / "g.bin"
    with pytest.raises(ChecksumError) as err:
        fetch(server.url("/g.bin"), dest, "0" * 64, **FAST)
    assert SHA in err.value.message
    assert not dest.exists() and not part_path(dest).exists()


def test_checksum_of_a_resumed_file_covers_the_whole_file(server, tmp_path):
    dest = tmp_path / "h.bin"
    part_path(dest).write_bytes(BODY[:12345])
    server.add("/h.bin", BODY)
    result = fetch(server.url("/h.bin"), dest, SHA, **FAST)
    assert result.sha256 == SHA and result.resumed_from == 12345


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    dest = tmp_path / "i.bin"
    part_path(dest).write_bytes(b"garbage that is not a prefix")
    server.add("/i.bin", Route(body=BODY, honor_range=False))
    fetch(server.url("/i.bin"), dest, SHA, **FAST)
    assert dest.read_bytes() == BODY


def test_complete_part_file_is_accepted_on_416(server, tmp_path):
    dest = tmp_path / "j.bin"
    part_path(dest).write_bytes(BODY)
    server.add("/j.bin", BODY)
    result = fetch(server.url("/j.bin"), dest, SHA, **FAST)
    assert dest.read_bytes() == BODY and result.size == len(BODY)
    assert server.requests_for("/j.bin")[0].status == 416


def test_connection_refused_is_retried_then_reported(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(DownloadError) as err:
        fetch(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", retries=2, backoff=0.25, sleep=sleeps)
    assert "after 3 attempts" in err.value.message and sleeps == [0.25, 0.5]


def test_retry_policy_from_env(monkeypatch):
    monkeypatch.setenv("BERT_DOWNLOAD_RETRIES", "7")
    monkeypatch.setenv("BERT_DOWNLOAD_BACKOFF", "0.1")
    policy = RetryPolicy.from_env(retries=2)
    assert policy.retries == 2 and policy.backoff == 0.1
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert RetryPolicy(backoff=10, max_backoff=30).delay(5) == 30
    assert RetryPolicy().delay(1, retry_after="3") == 3.0
