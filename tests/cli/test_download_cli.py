"""``bert download`` end to end: the real Typer app, a real local HTTP server standing in for
storage.googleapis.com, the Hugging Face Hub (via HF_ENDPOINT) and the dataset hosts."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from download_server import Route, build_zip, model_files
from typer.testing import CliRunner

from bert_cli import settings
from bert_cli.errors import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, ChecksumError
from bert_cli.models import catalogue
from bert_cli.models.cache import Cache
from bert_cli.models.resolve import resolve_model
from bert_cli.models.install import download_model
from bert_cli.ops.download import format_mrpc

TINY_ZIP_PATH = "/bert_models/2020_02_20/uncased_L-2_H-128_A-2.zip"
TINY = "uncased-L-2-H-128"
HUB_REPO = "google/bert_uncased_L-2_H-128_A-2"


def cli_app():
    """The real root app (``bert download`` is registered by ``bert_cli.cli.commands``)."""
    from bert_cli.cli.app import app

    return app


@dataclasses.dataclass
class Reported:
    """An error as the user sees it: ``error: MESSAGE`` and ``hint: HINT`` lines on stderr."""

    message: str
    hint: str | None


@dataclasses.dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    error: Reported | None


def _reported(stderr: str) -> Reported | None:
    lines = stderr.splitlines()
    message = next((line[len("error: "):] for line in lines if line.startswith("error: ")), None)
    hint = next((line[len("hint: "):] for line in lines if line.startswith("hint: ")), None)
    return None if message is None else Reported(message, hint)


def bert(*args: str) -> Run:
    """Invoke the real app in-process; typed errors are mapped to exit codes by the app itself."""
    result = CliRunner().invoke(cli_app(), list(args))
    err = result.exception
    if err is not None and not isinstance(err, SystemExit):
        raise err
    return Run(result.exit_code, result.stdout, result.stderr, _reported(result.stderr))


@pytest.fixture
def env(server, tmp_path, monkeypatch):
    """Every URL pointed at the local server, a fresh cache, fast retries."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("BERT_CACHE", str(cache))
    monkeypatch.setenv("BERT_GOOGLE_BASE_URL", server.url("/bert_models"))
    monkeypatch.setenv("BERT_DATASET_BASE_URL", server.url("/data"))
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    monkeypatch.setenv("BERT_DOWNLOAD_BACKOFF", "0.001")
    monkeypatch.setenv("BERT_DOWNLOAD_RETRIES", "2")
    for var in ("BERT_OFFLINE", "HF_HUB_OFFLINE", "BERT_QUIET", "HF_TOKEN", "BERT_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    before = settings.current()
    settings.configure(settings.Settings(cache_dir=cache))
    yield Cache(cache)
    settings.configure(before)


def leftovers(cache: Cache) -> list[str]:
    """Everything in the cache but the lock files."""
    if not cache.root.exists():
        return []
    return sorted(str(p.relative_to(cache.root)) for p in cache.root.rglob("*") if ".locks" not in p.parts)


def serve_tiny(server, **route) -> bytes:
    data = build_zip(model_files())
    server.add(TINY_ZIP_PATH, Route(body=data, **route))
    return data


# -- Google zips -----------------------------------------------------------------------------------


def test_download_prints_only_the_folder_and_writes_a_manifest(env, server):
    serve_tiny(server)
    run = bert("download", "tiny")
    assert run.code == EXIT_OK, run.stderr
    folder = env.model_dir(TINY)
    assert run.stdout == f"{folder}\n"
    expected = model_files()
    assert sorted(p.name for p in folder.iterdir()) == sorted([*expected, "manifest.json"])
    for name, data in expected.items():
        assert (folder / name).read_bytes() == data
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["name"] == TINY and manifest["source"] == "google" and manifest["do_lower_case"] is True
    assert manifest["url"] == server.url(TINY_ZIP_PATH)
    assert manifest["files"]["vocab.txt"]["sha256"] == hashlib.sha256(expected["vocab.txt"]).hexdigest()
    assert manifest["size"] == sum(len(d) for d in expected.values()) and manifest["downloaded_at"]
    assert leftovers(env) == sorted(["models", f"models/{TINY}", *(f"models/{TINY}/{n}" for n in [*expected, "manifest.json"])])

    files = resolve_model("tiny")
    assert files.checkpoint == str(folder / "bert_model.ckpt") and files.weights_format == "tf1" and files.do_lower_case is True

    again = bert("download", "uncased_L-2_H-128_A-2")  # cached: no transfer
    assert again.code == EXIT_OK and again.stdout == f"{folder}\n"
    assert len(server.requests_for(TINY_ZIP_PATH)) == 1


def test_dropped_download_resumes_on_the_next_run(env, server, monkeypatch):
    data = serve_tiny(server, drop_first=1, drop_at=20_000)
    monkeypatch.setenv("BERT_DOWNLOAD_RETRIES", "0")
    first = bert("download", "tiny", "--source", "google")
    assert first.code == EXIT_FAILED and "resume" in first.error.hint
    assert not env.model_dir(TINY).exists()
    second = bert("download", "tiny", "--source", "google")
    assert second.code == EXIT_OK, second.error
    one, two = server.requests_for(TINY_ZIP_PATH)
    assert one.sent == 20_000 and two.headers["range"] == "bytes=20000-" and two.sent == len(data) - 20_000
    assert json.loads((env.model_dir(TINY) / "manifest.json").read_text())["archive_sha256"] == hashlib.sha256(data).hexdigest()


def test_server_error_then_success(env, server):
    serve_tiny(server, fail_first=2)
    run = bert("download", "tiny", "--source", "google")
    assert run.code == EXIT_OK and [s.status for s in server.requests_for(TINY_ZIP_PATH)] == [500, 500, 200]


def test_404_is_a_download_error_and_leaves_nothing(env, server):
    """A 404 exits 1 (DownloadError), not 3: the NAME is valid (it is in the catalogue), the
    remote failed; exit 3 is kept for names and files the user got wrong."""
    run = bert("download", "tiny", "--source", "google")
    assert run.code == EXIT_FAILED
    assert "not found on the server (HTTP 404)" in run.error.message and TINY_ZIP_PATH in run.error.message
    assert leftovers(env) == []
    assert len(server.requests_for(TINY_ZIP_PATH)) == 1  # a 404 is not retried


def test_auto_falls_back_to_the_hub_and_reports_both_failures(env, server):
    run = bert("download", "tiny")  # Google 404, Hub 404
    assert run.code == EXIT_FAILED
    assert "Google:" in run.error.message and "Hub:" in run.error.message
    assert server.requests_for(f"/{HUB_REPO}/resolve/main/config.json", "HEAD")
    assert leftovers(env) == []


def test_wrong_checksum_is_refused_and_nothing_installed(env, server):
    data = serve_tiny(server)
    entry = dataclasses.replace(catalogue.find_model("tiny"), zip_sha256="ab" * 32)
    with pytest.raises(ChecksumError) as err:
        download_model(entry, source="auto", cache=env)  # no fallback over a checksum failure
    assert hashlib.sha256(data).hexdigest() in err.value.message
    assert leftovers(env) == []
    good = dataclasses.replace(entry, zip_sha256=hashlib.sha256(data).hexdigest())
    assert download_model(good, cache=env) == env.model_dir(TINY)


def test_truncated_zip_is_refused(env, server):
    data = build_zip(model_files())
    server.add(TINY_ZIP_PATH, data[: len(data) - 200])
    run = bert("download", "tiny", "--source", "google")
    assert run.code == EXIT_FAILED and "not a valid zip archive" in run.error.message
    assert leftovers(env) == []


@pytest.mark.parametrize("member", ["../../evil.txt", "/tmp/bert-evil.txt", "uncased_L-2_H-128_A-2/../../evil.txt"])
def test_zip_slip_member_is_refused(env, server, tmp_path, member):
    server.add(TINY_ZIP_PATH, build_zip(model_files(), extra={member: b"pwned"}))
    run = bert("download", "tiny", "--source", "google")
    assert run.code == EXIT_FAILED and "escape" in run.error.message
    assert leftovers(env) == []
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/tmp/bert-evil.txt").exists()


def test_symlink_member_is_refused(env, server):
    buf = io.BytesIO(build_zip(model_files()))
    with zipfile.ZipFile(buf, "a") as zf:
        link = zipfile.ZipInfo("uncased_L-2_H-128_A-2/link")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    server.add(TINY_ZIP_PATH, buf.getvalue())
    run = bert("download", "tiny", "--source", "google")
    assert run.code == EXIT_FAILED and "escape" in run.error.message


def test_archive_without_vocab_is_refused(env, server):
    files = model_files()
    del files["vocab.txt"]
    server.add(TINY_ZIP_PATH, build_zip(files))
    run = bert("download", "tiny", "--source", "google")
    assert run.code == EXIT_FAILED and "no vocab.txt" in run.error.message
    assert leftovers(env) == []


def test_two_concurrent_downloads_transfer_once(env, server):
    serve_tiny(server, delay_s=0.4)
    results, errors = [], []

    def worker():
        try:
            results.append(download_model("tiny", source="google", cache=Cache(env.root)))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and results == [env.model_dir(TINY)] * 2
    gets = server.requests_for(TINY_ZIP_PATH)
    assert len(gets) == 1 and gets[0].status == 200
    assert (env.model_dir(TINY) / "vocab.txt").is_file()


def test_force_downloads_again_and_replaces(env, server):
    serve_tiny(server)
    assert bert("download", "tiny").code == EXIT_OK
    (env.model_dir(TINY) / "stray.txt").write_text("x")
    assert bert("download", "tiny", "--force").code == EXIT_OK
    assert len(server.requests_for(TINY_ZIP_PATH)) == 2
    assert not (env.model_dir(TINY) / "stray.txt").exists()


def test_several_names_print_one_folder_each(env, server):
    serve_tiny(server)
    server.add("/bert_models/2020_02_20/uncased_L-4_H-128_A-2.zip", build_zip(model_files(num_hidden_layers=4), top="uncased_L-4_H-128_A-2"))
    run = bert("download", "tiny", "uncased-L-4-H-128")
    assert run.code == EXIT_OK
    assert run.stdout.splitlines() == [str(env.model_dir(TINY)), str(env.model_dir("uncased-L-4-H-128"))]


def test_resolve_with_download_fetches(env, server):
    serve_tiny(server)
    files = resolve_model("tiny", download=True)
    assert files.directory == env.model_dir(TINY) and files.vocab_file.is_file()


# -- Hugging Face Hub (HF_ENDPOINT -> the local server) -------------------------------------------


def serve_hub(server, repo=HUB_REPO, with_safetensors=True):
    from safetensors.numpy import save

    config = {"model_type": "bert", "hidden_act": "gelu", "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 512, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
    files = {
        "config.json": json.dumps(config).encode(),
        "vocab.txt": model_files()["vocab.txt"],
        "tokenizer_config.json": json.dumps({"do_lower_case": True}).encode(),
    }
    if with_safetensors:
        files["model.safetensors"] = save({"bert.embeddings.word_embeddings.weight": np.arange(120, dtype=np.float32).reshape(15, 8)})
    for name, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        server.add(f"/{repo}/resolve/main/{name}", Route(body=data, headers={"X-Repo-Commit": "c" * 40, "ETag": f'"{sha}"'}))
    return files


def test_hub_download_keeps_the_hf_layout(env, server):
    files = serve_hub(server)
    run = bert("download", "tiny", "--source", "hf")
    assert run.code == EXIT_OK, run.error
    folder = env.model_dir(TINY)
    assert run.stdout == f"{folder}\n"
    for name, data in files.items():
        assert (folder / name).read_bytes() == data
    derived = json.loads((folder / "bert_config.json").read_text())
    assert derived["hidden_size"] == 128 and derived["gelu_form"] == "erf"  # HF "gelu" is the erf form
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"] == "hf" and manifest["hf_repo"] == HUB_REPO and manifest["do_lower_case"] is True
    assert not (folder / ".cache").exists() and leftovers(env) == sorted(
        ["models", f"models/{TINY}", *(f"models/{TINY}/{n}" for n in [*files, "bert_config.json", "manifest.json"])]
    )
    resolved = resolve_model(TINY)
    assert resolved.weights_format == "hf" and resolved.checkpoint == str(folder / "model.safetensors")
    assert resolved.config_file == folder / "config.json"
    heads = [s for s in server.seen if s.method == "HEAD"]
    assert heads and all(s.path.startswith(f"/{HUB_REPO}/resolve/main/") for s in heads)


def test_auto_uses_the_hub_when_google_fails(env, server):
    serve_hub(server)
    server.add(TINY_ZIP_PATH, Route(status=403))
    run = bert("download", "tiny")
    assert run.code == EXIT_OK and "trying the Hub mirror" in run.stderr
    assert json.loads((env.model_dir(TINY) / "manifest.json").read_text())["source"] == "hf"


def test_hub_repo_without_vocab_is_a_clear_error(env, server):
    serve_hub(server)
    del server.routes[f"/{HUB_REPO}/resolve/main/vocab.txt"]
    run = bert("download", "tiny", "--source", "hf")
    assert run.code == EXIT_FAILED and "has no file vocab.txt" in run.error.message
    assert not env.model_dir(TINY).exists()


def test_hub_server_errors_are_retried(env, server):
    serve_hub(server)
    server.routes[f"/{HUB_REPO}/resolve/main/vocab.txt"].fail_first = 1  # (the Hub client waits 1 s itself)
    run = bert("download", "tiny", "--source", "hf")
    assert run.code == EXIT_OK, run.error
    assert [s.status for s in server.seen if s.path.endswith("/vocab.txt")][0] == 500


def test_hub_repo_with_only_pytorch_weights_is_converted(env, server):
    torch = pytest.importorskip("torch")
    from safetensors.numpy import load_file

    serve_hub(server, with_safetensors=False)
    weight = torch.arange(120, dtype=torch.float32).reshape(15, 8)
    buf = io.BytesIO()
    torch.save({"bert.embeddings.word_embeddings.weight": weight, "cls.predictions.decoder.weight": weight}, buf)  # tied
    server.add(f"/{HUB_REPO}/resolve/main/pytorch_model.bin", Route(body=buf.getvalue(), headers={"X-Repo-Commit": "c" * 40, "ETag": '"pt"'}))
    run = bert("download", "tiny", "--source", "hf")
    assert run.code == EXIT_OK, run.error
    tensors = load_file(str(env.model_dir(TINY) / "model.safetensors"))
    np.testing.assert_array_equal(tensors["bert.embeddings.word_embeddings.weight"], weight.numpy())
    assert not (env.model_dir(TINY) / "pytorch_model.bin").exists()


# -- local sources ---------------------------------------------------------------------------------


def test_local_zip_and_folder_sources(env, tmp_path, server):
    archive = tmp_path / "my_model.zip"
    archive.write_bytes(build_zip(model_files(), top="whatever"))
    run = bert("download", str(archive), "--name", "mine", "--no-do-lower-case")
    assert run.code == EXIT_OK and run.stdout == f"{env.model_dir('mine')}\n"
    files = resolve_model("mine")
    assert files.do_lower_case is False and files.checkpoint.endswith("bert_model.ckpt")
    assert json.loads((env.model_dir("mine") / "manifest.json").read_text())["source"] == "local"

    folder = tmp_path / "trained"
    folder.mkdir()
    for name, data in model_files().items():
        (folder / name).write_bytes(data)
    run = bert("download", str(folder))
    assert run.code == EXIT_OK and run.stdout == f"{env.model_dir('trained')}\n"
    assert "casing unknown" in run.stderr and resolve_model("trained").do_lower_case is None
    assert bert("download", str(folder)).code == EXIT_USAGE  # already there: --force to replace
    assert server.seen == []


def test_google_zip_fetched_by_hand_installs_under_its_catalogue_name(env, tmp_path):
    archive = tmp_path / "uncased_L-2_H-128_A-2.zip"
    archive.write_bytes(build_zip(model_files()))
    run = bert("download", str(archive))
    assert run.code == EXIT_OK and run.stdout == f"{env.model_dir(TINY)}\n"
    assert resolve_model("tiny").do_lower_case is True


def test_url_source_with_sha256(env, server):
    data = build_zip(model_files(), top=None)
    server.add("/files/custom.zip", data)
    bad = bert("download", server.url("/files/custom.zip"), "--sha256", "0" * 64)
    assert bad.code == EXIT_FAILED and "sha256" in bad.error.message and leftovers(env) == []
    good = bert("download", server.url("/files/custom.zip"), "--sha256", hashlib.sha256(data).hexdigest().upper())
    assert good.code == EXIT_OK and good.stdout == f"{env.model_dir('custom')}\n"


# -- list, remove, verify, offline, errors ---------------------------------------------------------


def test_list_json_parses_and_shows_what_is_cached(env, server):
    serve_tiny(server)
    bert("download", "tiny")
    run = bert("download", "--list", "--json")
    assert run.code == EXIT_OK
    data = json.loads(run.stdout)
    assert data["cache_dir"] == str(env.root)
    by_name = {e["name"]: e for e in data["entries"]}
    assert len([e for e in data["entries"] if e["kind"] == "model"]) == 33
    assert by_name[TINY]["cached"] is True and by_name[TINY]["path"] == str(env.model_dir(TINY))
    assert by_name["cased-base"]["cached"] is False and by_name["cased-base"]["do_lower_case"] is False
    assert by_name["glue-mrpc"]["kind"] == "dataset"
    table = bert("download", "--list")
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith(TINY))
    assert line.split()[:8] == [TINY, "L-2", "H-128", "A-2", "4.4M", "uncased", "yes", "tiny,"]


def test_remove_and_verify(env, server):
    serve_tiny(server)
    bert("download", "tiny")
    ok = bert("download", "--verify", "tiny")
    assert ok.code == EXIT_OK and ok.stdout == ""
    vocab = env.model_dir(TINY) / "vocab.txt"
    vocab.write_bytes(vocab.read_bytes().replace(b"cat", b"dog"))  # same size, other bytes
    (env.model_dir(TINY) / "bert_model.ckpt.meta").unlink()
    bad = bert("download", "--verify", "tiny", "--json")
    assert bad.code == EXIT_FAILED and "verification failed" in bad.error.message
    (item,) = json.loads(bad.stdout)
    assert item["ok"] is False
    assert item["problems"] == ["bert_model.ckpt.meta: missing", "vocab.txt: sha256 differs from the manifest"]
    gone = bert("download", "--remove", "tiny")
    assert gone.code == EXIT_OK and not env.model_dir(TINY).exists()
    again = bert("download", "--remove", "tiny")
    assert again.code == EXIT_NOT_FOUND and again.error.hint == f"bert download {TINY}"


def test_offline_only_uses_the_cache(env, server, monkeypatch):
    serve_tiny(server)
    missing = bert("--offline", "download", "tiny")
    assert missing.code == EXIT_NOT_FOUND and "offline" in missing.error.message
    sub = bert("download", "tiny", "--offline")
    assert sub.code == EXIT_NOT_FOUND
    assert server.seen == []
    bert("download", "tiny")
    monkeypatch.setenv("BERT_OFFLINE", "1")
    cached = bert("download", "tiny")
    assert cached.code == EXIT_OK and cached.stdout == f"{env.model_dir(TINY)}\n" and "offline" in cached.stderr
    assert bert("download", "tiny", "--force").code == EXIT_USAGE


def test_unknown_name_and_bad_option_combinations(env):
    unknown = bert("download", "uncased-bsae")
    assert unknown.code == EXIT_NOT_FOUND and "did you mean uncased-base" in unknown.error.message
    assert unknown.error.hint == "bert download --list"
    assert bert("download", "--list", "--remove", "tiny").code == EXIT_USAGE
    assert bert("download", "tiny", "--name", "x").code == EXIT_USAGE
    assert bert("download").code == EXIT_USAGE
    assert bert("download", "tiny", "--source", "s3").code == EXIT_USAGE


# -- datasets --------------------------------------------------------------------------------------


def test_squad_dataset_with_its_known_checksum(env, server, shared_data):
    dev = (shared_data / "squad" / "dev-v1.1.json").read_bytes()
    train = (shared_data / "squad" / "subsets" / "allennlp-models_squad.json").read_bytes()
    server.add("/data/squad-v1.1/train-v1.1.json", train)
    server.add("/data/squad-v1.1/dev-v1.1.json", dev[:-1] + b" ")  # not the official file
    bad = bert("download", "squad-v1.1")
    assert bad.code == EXIT_FAILED and "sha256" in bad.error.message
    # nothing installed; only the finished train file is kept for the next run
    assert leftovers(env) == [".downloads", ".downloads/datasets-squad-v1.1", ".downloads/datasets-squad-v1.1/train-v1.1.json"]
    server.add("/data/squad-v1.1/dev-v1.1.json", dev)
    run = bert("download", "squad")
    assert len(server.requests_for("/data/squad-v1.1/train-v1.1.json")) == 1
    folder = env.dataset_dir("squad-v1.1")
    assert run.code == EXIT_OK and run.stdout == f"{folder}\n"
    assert (folder / "dev-v1.1.json").read_bytes() == dev and (folder / "train-v1.1.json").read_bytes() == train


def _mrpc_sources(shared_data: Path, tmp: Path) -> dict[str, bytes]:
    """The MSR corpus files rebuilt from GLUE's MRPC tsv files (train and dev rows interleaved)."""
    mrpc = shared_data / "glue" / "MRPC"
    train = (mrpc / "train.tsv").read_text(encoding="utf-8").split("\n")
    dev = (mrpc / "dev.tsv").read_text(encoding="utf-8").split("\n")
    test = (mrpc / "test.tsv").read_text(encoding="utf-8").split("\n")
    header, train_rows, dev_rows = train[0], [r for r in train[1:] if r], [r for r in dev[1:] if r]
    merged, d = [], iter(dev_rows)
    for i, row in enumerate(train_rows):
        merged.append(row)
        if i % 9 == 8:
            merged.extend(r for r in [next(d, None)] if r)
    merged.extend(d)
    corpus_test = [header.lstrip("\ufeff")] + ["1\t" + "\t".join(r.split("\t")[1:]) for r in test[1:] if r]
    crlf = "\r\n"
    return {
        "msr_paraphrase_train.txt": (crlf.join([header, *merged]) + crlf).encode("utf-8"),
        "msr_paraphrase_test.txt": (crlf.join(corpus_test) + crlf).encode("utf-8"),
        "mrpc_dev_ids.tsv": "".join("\t".join(r.split("\t")[1:3]) + "\n" for r in dev_rows).encode(),
    }


def test_mrpc_is_built_exactly_as_glue_ships_it(env, server, shared_data, tmp_path):
    for name, data in _mrpc_sources(shared_data, tmp_path).items():
        server.add(f"/data/glue-mrpc/{name}", data)
    run = bert("download", "glue-mrpc")
    assert run.code == EXIT_OK, run.error
    folder = env.dataset_dir("glue-mrpc")
    for split in ("train", "dev", "test"):
        assert (folder / f"{split}.tsv").read_bytes() == (shared_data / "glue" / "MRPC" / f"{split}.tsv").read_bytes(), split
    assert sum(1 for _ in open(folder / "dev.tsv", encoding="utf-8")) == 408 + 1


def test_format_mrpc_counts(shared_data, tmp_path):
    for name, data in _mrpc_sources(shared_data, tmp_path).items():
        (tmp_path / name).write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    counts = format_mrpc(tmp_path / "msr_paraphrase_train.txt", tmp_path / "msr_paraphrase_test.txt", tmp_path / "mrpc_dev_ids.tsv", out)
    assert counts == {"train": 3668, "dev": 408, "test": 1725}


def test_cola_zip(env, server, shared_data):
    cola = shared_data / "glue" / "CoLA"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for split in ("train", "dev", "test"):
            zf.writestr(f"CoLA/{split}.tsv", (cola / f"{split}.tsv").read_bytes())
        zf.writestr("CoLA/original/raw/in_domain_train.tsv", b"raw")
    server.add("/data/glue-cola/CoLA.zip", buf.getvalue())
    run = bert("download", "cola")
    folder = env.dataset_dir("glue-cola")
    assert run.code == EXIT_OK and run.stdout == f"{folder}\n"
    assert sorted(p.name for p in folder.iterdir()) == ["dev.tsv", "manifest.json", "test.tsv", "train.tsv"]
    assert (folder / "dev.tsv").read_bytes() == (cola / "dev.tsv").read_bytes()


# -- the installed program ---------------------------------------------------------------------------


def test_exit_codes_through_the_real_entry_point(env, server, repo_root):
    """`python -m bert_cli download ...`: stderr gets error/hint lines, stdout stays empty."""
    child_env = {**os.environ, "BERT_CACHE": str(env.root)}
    out = subprocess.run(
        [sys.executable, "-m", "bert_cli", "download", "tiny", "--source", "google"],
        capture_output=True, text=True, env=child_env, timeout=120, cwd=repo_root,
    )
    assert out.returncode == EXIT_FAILED and out.stdout == ""
    assert "error: not found on the server (HTTP 404)" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "bert_cli", "download", "nosuchmodel"], capture_output=True, text=True, env=child_env, timeout=120, cwd=repo_root
    )
    assert out.returncode == EXIT_NOT_FOUND and "hint: bert download --list" in out.stderr


def test_download_is_registered_with_completion(repo_root):
    """In a fresh process (the tests above may have registered the command themselves)."""
    env = dict(os.environ, _BERT_COMPLETE="complete_bash", COMP_WORDS="bert download ti", COMP_CWORD="2")
    out = subprocess.run([sys.executable, "-m", "bert_cli"], capture_output=True, text=True, env=env, timeout=60, cwd=repo_root)
    assert out.stdout.split() == ["tiny"], "bert_cli.cli.commands must register bert_cli.cli.download:download"
    env.update(COMP_WORDS="bert download --remove ", COMP_CWORD="3", BERT_CACHE=str(repo_root / "tests" / "no-such-cache"))
    out = subprocess.run([sys.executable, "-m", "bert_cli"], capture_output=True, text=True, env=env, timeout=60, cwd=repo_root)
    assert out.returncode == 0 and out.stdout.split() == []  # cached names only; none here
