"""``bert download`` as a user runs it: the installed script, a temporary working directory,
relative paths (``--cache-dir cache``), a local HTTP server (or an unresolvable ``.invalid``
host) in place of the internet. Each test checks the exit code, the ``error:`` line, stdout and
what is left on disk."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from conftest import error_line
from download_server import TINY_CONFIG, Route, build_zip, model_files

from bert_cli.errors import DownloadError, UsageError
from bert_cli.models import catalogue, checks, transfer
from bert_cli.models.cache import Cache

TINY = "uncased-L-2-H-128"
TINY_ZIP_PATH = "/bert_models/2020_02_20/uncased_L-2_H-128_A-2.zip"
HUB_REPO = "google/bert_uncased_L-2_H-128_A-2"
NOWHERE = "http://bert-cli-test.invalid"  # RFC 6761: never resolves
OFFLINE_HINT = "hint: check your network, or use --offline with a cached model"


def mirrors(server) -> dict[str, str]:
    """Every download URL pointed at the local server; fast retries."""
    return {
        "BERT_GOOGLE_BASE_URL": server.url("/bert_models"),
        "BERT_DATASET_BASE_URL": server.url("/data"),
        "HF_ENDPOINT": server.base,
        "BERT_DOWNLOAD_BACKOFF": "0.01",
        "BERT_DOWNLOAD_RETRIES": "2",
    }


def tree(root: Path) -> list[str]:
    """Everything under ``root`` but lock files, relative to it."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".locks" not in p.parts)


def serve_hub(server, config: dict, repo: str = HUB_REPO) -> None:
    import numpy as np
    from safetensors.numpy import save

    files = {
        "config.json": json.dumps({"model_type": "bert", **config}).encode(),
        "vocab.txt": model_files()["vocab.txt"],
        "model.safetensors": save({"bert.pooler.dense.bias": np.zeros(4, dtype=np.float32)}),
    }
    for name, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        server.add(f"/{repo}/resolve/main/{name}", Route(body=data, headers={"X-Repo-Commit": "c" * 40, "ETag": f'"{sha}"'}))


def hub_config(**changes) -> dict:
    return {**TINY_CONFIG, **changes}


# -- 1. no network: fail fast, complete message, offline hint ---------------------------------------


def test_unresolvable_host_fails_at_once_with_the_whole_message(user):
    start = time.monotonic()
    run = user.run(
        "--cache-dir", "cache", "download", "tiny",
        env={"BERT_GOOGLE_BASE_URL": f"{NOWHERE}/bert_models", "HF_ENDPOINT": NOWHERE}, timeout=120,
    )
    elapsed = time.monotonic() - start
    assert run.returncode == 1, run.stderr
    line = error_line(run.stderr)
    assert "Google: cannot resolve host 'bert-cli-test.invalid'" in line
    assert "Hub: cannot resolve host 'bert-cli-test.invalid'" in line
    assert line.endswith(f"{NOWHERE}/{HUB_REPO}/resolve/main/config.json") and "..." not in line  # not cut
    assert OFFLINE_HINT in run.stderr.splitlines()
    assert "Retrying" not in run.stderr and "thrown while requesting" not in run.stderr  # the Hub client's own lines
    assert elapsed < 15, f"took {elapsed:.1f} s (no retries expected for an unknown host)"
    assert run.stdout == "" and tree(user.cwd / "cache") == []


def test_unresolvable_hub_says_so_instead_of_a_missing_file(user):
    start = time.monotonic()
    run = user.run("--cache-dir", "cache", "download", "tiny", "--source", "hf", env={"HF_ENDPOINT": NOWHERE}, timeout=120)
    assert run.returncode == 1
    line = error_line(run.stderr)
    assert line == f"error: cannot resolve host 'bert-cli-test.invalid' ({_gai_reason()}): {NOWHERE}/{HUB_REPO}/resolve/main/config.json"
    assert "has no file" not in run.stderr and "Retrying" not in run.stderr
    assert OFFLINE_HINT in run.stderr.splitlines()
    assert time.monotonic() - start < 15
    assert run.stdout == "" and tree(user.cwd / "cache") == []


def _gai_reason() -> str:
    try:
        socket.getaddrinfo("bert-cli-test.invalid", 80)
    except socket.gaierror as err:
        return err.strerror
    pytest.skip("this machine's resolver answers for .invalid names")


def test_server_errors_and_dropped_connections_are_still_retried(user, server):
    data = build_zip(model_files())
    server.add(TINY_ZIP_PATH, Route(body=data, fail_first=1, drop_first=1, drop_at=10_000))
    run = user.run("--cache-dir", "cache", "download", "tiny", "--source", "google", env=mirrors(server))
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"cache/models/{TINY}\n"
    assert [s.status for s in server.requests_for(TINY_ZIP_PATH)] == [500, 200, 206]


def test_hub_client_log_lines_stay_off_stderr(user, server):
    serve_hub(server, hub_config())
    server.routes[f"/{HUB_REPO}/resolve/main/vocab.txt"].fail_first = 1  # the Hub client retries it itself
    run = user.run("--cache-dir", "cache", "download", "tiny", "--source", "hf", env=mirrors(server))
    assert run.returncode == 0, run.stderr
    assert "thrown while requesting" not in run.stderr and "Retrying in" not in run.stderr, run.stderr
    assert run.stdout == f"cache/models/{TINY}\n"


# -- 2. early validation: --sha256, what a dataset URL served, which model a mirror served ----------


@pytest.mark.parametrize("value", ["xyz", "0" * 63, "g" * 64])
def test_malformed_sha256_is_a_usage_error_before_any_transfer(user, server, value):
    server.add("/files/custom.zip", build_zip(model_files(), top=None))
    run = user.run("--cache-dir", "cache", "download", server.url("/files/custom.zip"), "--sha256", value, env=mirrors(server))
    assert run.returncode == 2
    assert "--sha256" in error_line(run.stderr) and repr(value) in error_line(run.stderr)
    assert server.seen == [] and not (user.cwd / "cache").exists() and run.stdout == ""


@pytest.mark.parametrize(
    "body, content_type, words",
    [
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html; charset=utf-8", "HTML page"),
        (b"\n  <html><head><title>Moved</title></head></html>", "application/octet-stream", "HTML page"),
        (b'{"version": "v2.0", "data": [', "application/json", "valid JSON"),
    ],
)
def test_a_dataset_url_serving_something_else_is_not_installed(user, server, body, content_type, words):
    good = json.dumps({"version": "v2.0", "data": []}).encode()
    server.add("/data/squad-v2.0/train-v2.0.json", Route(body=body, headers={"Content-Type": content_type}))
    server.add("/data/squad-v2.0/dev-v2.0.json", Route(body=good, headers={"Content-Type": "application/json"}))
    run = user.run("--cache-dir", "cache", "download", "squad-v2.0", env=mirrors(server))
    assert run.returncode == 1, run.stderr
    line = error_line(run.stderr)
    assert words in line and server.url("/data/squad-v2.0/train-v2.0.json") in line and "train-v2.0.json" in line
    assert run.stdout == "" and tree(user.cwd / "cache") == []  # nothing installed, nothing kept to resume

    server.add("/data/squad-v2.0/train-v2.0.json", Route(body=good, headers={"Content-Type": "application/json"}))
    again = user.run("--cache-dir", "cache", "download", "squad-v2.0", env=mirrors(server))
    assert again.returncode == 0, again.stderr
    assert (user.cwd / "cache/datasets/squad-v2.0/train-v2.0.json").read_bytes() == good


def test_a_google_mirror_serving_another_model_is_refused(user, server):
    server.add(TINY_ZIP_PATH, build_zip(model_files(hidden_size=256, num_attention_heads=4, vocab_size=28996)))
    run = user.run("--cache-dir", "cache", "download", "tiny", "--source", "google", env=mirrors(server))
    assert run.returncode == 1
    line = error_line(run.stderr)
    assert f"is not {TINY}" in line and server.url(TINY_ZIP_PATH) in line
    assert "hidden_size 256 (catalogue: 128)" in line and "num_attention_heads 4 (catalogue: 2)" in line
    assert "vocab_size 28996 (catalogue: 30522)" in line and "num_hidden_layers" not in line
    assert run.stdout == "" and tree(user.cwd / "cache") == []


def test_a_hub_mirror_serving_another_model_is_refused(user, server):
    serve_hub(server, hub_config(num_hidden_layers=6, hidden_size=384, num_attention_heads=12))
    run = user.run("--cache-dir", "cache", "download", "tiny", "--source", "hf", env=mirrors(server))
    assert run.returncode == 1
    line = error_line(run.stderr)
    assert f"the Hub repo {HUB_REPO} is not {TINY}" in line and "num_hidden_layers 6 (catalogue: 2)" in line
    assert run.stdout == "" and tree(user.cwd / "cache") == []


def test_a_local_zip_named_like_a_catalogue_model_must_be_that_model(user):
    (user.cwd / "uncased_L-2_H-128_A-2.zip").write_bytes(build_zip(model_files(num_hidden_layers=12)))
    run = user.run("--cache-dir", "cache", "download", "./uncased_L-2_H-128_A-2.zip")
    assert run.returncode == 1 and "num_hidden_layers 12 (catalogue: 2)" in error_line(run.stderr)
    assert tree(user.cwd / "cache") == []
    ok = user.run("--cache-dir", "cache", "download", "./uncased_L-2_H-128_A-2.zip", "--name", "my-tiny")
    assert ok.returncode == 0 and ok.stdout == "cache/models/my-tiny\n"  # under a name of its own it is fine


# -- 3. a name installed with --name resolves ----------------------------------------------------


def test_a_model_installed_under_its_own_name_is_found_by_that_name(user):
    folder = user.cwd / "mymodel"
    folder.mkdir()
    for name, data in model_files().items():
        (folder / name).write_bytes(data)
    first = user.run("--cache-dir", "cache", "download", "./mymodel", "--name", "minilm", "--do-lower-case")
    assert first.returncode == 0 and first.stdout == "cache/models/minilm\n", first.stderr
    manifest = (user.cwd / "cache/models/minilm/manifest.json").read_bytes()

    again = user.run("--cache-dir", "cache", "download", "minilm")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "cache/models/minilm\n" and "minilm: already in the cache" in again.stderr
    assert (user.cwd / "cache/models/minilm/manifest.json").read_bytes() == manifest

    forced = user.run("--cache-dir", "cache", "download", "minilm", "--force")
    assert forced.returncode == 2 and "minilm" in error_line(forced.stderr)
    assert f"hint: bert download {folder.resolve()} --name minilm --force" in forced.stderr.splitlines()
    assert (user.cwd / "cache/models/minilm/manifest.json").read_bytes() == manifest


# -- 4. permissions follow the umask ---------------------------------------------------------------


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_cache_folders_and_files_honour_the_umask(user, server):
    server.add(TINY_ZIP_PATH, build_zip(model_files()))
    with umask(0o002):
        run = user.run("--cache-dir", "cache", "download", "tiny", "--source", "google", env=mirrors(server))
    assert run.returncode == 0, run.stderr
    folder = user.cwd / "cache" / "models" / TINY
    assert stat.S_IMODE(folder.stat().st_mode) == 0o775
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path.name
    assert stat.S_IMODE((user.cwd / "cache" / "models").stat().st_mode) == 0o775


def test_make_temp_dir_uses_the_umask(tmp_path):
    from bert_cli.fileio import make_temp_dir

    with umask(0o027):
        path = make_temp_dir(tmp_path, prefix="x.")
    assert path.parent == tmp_path and path.name.startswith("x.") and stat.S_IMODE(path.stat().st_mode) == 0o750


# -- 5. a cache folder that cannot be one ----------------------------------------------------------


@pytest.mark.parametrize("cache_dir", ["afile", "afile/sub"])
def test_a_file_as_cache_dir_is_a_usage_error_before_any_transfer(user, server, cache_dir):
    server.add(TINY_ZIP_PATH, build_zip(model_files()))
    (user.cwd / "afile").write_text("not a folder\n")
    run = user.run("--cache-dir", cache_dir, "download", "tiny", env=mirrors(server))
    assert run.returncode == 2, run.stderr
    line = error_line(run.stderr)
    assert f"the cache folder {cache_dir} is not a folder" in line
    assert "hint: pass --cache-dir DIR (or set BERT_CACHE) naming a folder you can write to" in run.stderr
    assert run.stdout == "" and server.seen == [] and (user.cwd / "afile").read_text() == "not a folder\n"
    gone = user.run("--cache-dir", cache_dir, "download", "--remove", "tiny")  # nothing to remove: says so
    assert gone.returncode == 3 and f"'tiny' is not in the cache ({cache_dir})" in error_line(gone.stderr)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into any folder")
def test_a_read_only_cache_dir_is_a_usage_error(user, server):
    server.add(TINY_ZIP_PATH, build_zip(model_files()))
    (user.cwd / "ro").mkdir(mode=0o555)
    try:
        run = user.run("--cache-dir", "ro", "download", "tiny", env=mirrors(server))
        assert run.returncode == 2 and "the cache folder ro is not writable" in error_line(run.stderr)
        assert server.seen == []
    finally:
        (user.cwd / "ro").chmod(0o755)


def test_check_writable_in_process(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        Cache(tmp_path / "f" / "deeper").check_writable()
    Cache(tmp_path / "new" / "cache").check_writable()
    assert (tmp_path / "new" / "cache").is_dir()
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # what a read-only folder answers (root never sees it)
    with pytest.raises(UsageError, match="is not writable"):
        Cache(tmp_path / "new" / "cache").check_writable()


# -- in-process pieces ---------------------------------------------------------------------------


def test_name_resolution_failure_is_found_behind_requests_errors():
    import requests

    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"{NOWHERE}/x", timeout=5)
    gai = transfer.name_resolution_failure(caught.value)
    assert isinstance(gai, socket.gaierror)
    err = transfer.unresolved_error(f"{NOWHERE}/x", gai)
    assert err.message.startswith("cannot resolve host 'bert-cli-test.invalid' (") and err.hint == transfer.OFFLINE_HINT
    with pytest.raises(DownloadError, match="cannot resolve host"):
        transfer.check_resolvable(f"{NOWHERE}/y")
    assert transfer.name_resolution_failure(requests.ConnectionError("refused")) is None


def test_catalogue_config_mismatches():
    from bert_cli.modelconfig import BertConfig

    entry = catalogue.find_model("uncased-base")
    assert entry.config_mismatches(BertConfig(vocab_size=30522)) == []
    assert entry.config_mismatches(BertConfig(vocab_size=30522, num_hidden_layers=6)) == ["num_hidden_layers 6 (catalogue: 12)"]


def test_looks_like_html(tmp_path):
    page, data = tmp_path / "a.json", tmp_path / "b.json"
    page.write_bytes(b"\xef\xbb\xbf <!doctype HTML>")
    data.write_bytes(b'{"a": "<html>"}')
    assert checks.looks_like_html(page) and not checks.looks_like_html(data)
    assert checks.looks_like_html(data, "text/html") and not checks.looks_like_html(data, "application/json")
