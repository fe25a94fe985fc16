"""The local HTTP server of the download tests (tests/download_server.py, the ``server`` fixture
of conftest.py): Range, HEAD, injected failures, and the model-archive builder."""

from __future__ import annotations

import io
import zipfile

import pytest
import requests
from download_server import Route, build_zip, model_files

# -- the server's own checks ---------------------------------------------------------------------


def test_server_serves_ranges_and_records_them(server):
    server.add("/f.bin", bytes(range(256)) * 10)
    whole = requests.get(server.url("/f.bin"), timeout=5)
    assert whole.status_code == 200 and len(whole.content) == 2560
    part = requests.get(server.url("/f.bin"), headers={"Range": "bytes=2500-"}, timeout=5)
    assert part.status_code == 206 and part.content == (bytes(range(256)) * 10)[2500:]
    assert part.headers["Content-Range"] == "bytes 2500-2559/2560"
    assert server.requests_for("/f.bin")[-1].headers["range"] == "bytes=2500-"


def test_server_injects_500_then_drop(server):
    server.add("/g.bin", Route(body=b"x" * 1000, fail_first=1, drop_first=1))
    assert requests.get(server.url("/g.bin"), timeout=5).status_code == 500
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(server.url("/g.bin"), timeout=5).content  # noqa: B018
    assert requests.get(server.url("/g.bin"), timeout=5).content == b"x" * 1000
    assert requests.get(server.url("/missing"), timeout=5).status_code == 404


def test_build_zip_is_a_valid_model_archive():
    data = build_zip(model_files())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert "uncased_L-2_H-128_A-2/vocab.txt" in zf.namelist()
