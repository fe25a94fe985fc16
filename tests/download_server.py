"""A real local HTTP server for the download tests (threaded ``http.server`` on 127.0.0.1, port 0),
plus builders for small but valid model archives. A plain helper module, not a test module:
conftest.py's ``server`` fixture starts a :class:`FakeServer`; tests import the builders
(``from download_server import Route, build_zip, model_files``). test_download_server.py checks
the server itself (Range, HEAD, injected failures), so the download tests can trust what it records.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", "on", "mat", ".", "hello", "world", "!"]
# The sizes of the catalogue's "tiny" (uncased_L-2_H-128_A-2): downloads check the config against
# the catalogue. The vocabulary and the checkpoint bytes are stand-ins (nothing loads them).
TINY_CONFIG = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 128,
    "initializer_range": 0.02,
    "intermediate_size": 512,
    "max_position_embeddings": 512,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


def model_files(ckpt_bytes: int = 40_000, **config) -> dict[str, bytes]:
    """The files of a tiny model in the original release layout (the checkpoint bytes are filler);
    ``config`` overrides keys of :data:`TINY_CONFIG`."""
    filler = hashlib.sha256(b"seed").digest() * (ckpt_bytes // 32 + 1)
    return {
        "bert_config.json": json.dumps({**TINY_CONFIG, **config}, indent=2).encode(),
        "vocab.txt": ("\n".join(TINY_VOCAB) + "\n").encode(),
        "bert_model.ckpt.index": b"index:" + filler[:200],
        "bert_model.ckpt.data-00000-of-00001": filler[:ckpt_bytes],
        "bert_model.ckpt.meta": b"meta:" + filler[:300],
    }


def build_zip(files: dict[str, bytes], top: str | None = "uncased_L-2_H-128_A-2", extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of ``files`` under ``top/`` (as Google's zips), plus ``extra`` members verbatim."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        if top:
            zf.writestr(f"{top}/", b"")
        for name, data in files.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


@dataclass
class Route:
    """What the server answers on one path."""

    body: bytes = b""
    status: int = 200
    fail_first: int = 0  # answer this many requests with HTTP 500 first
    drop_first: int = 0  # then this many full-body answers that drop the connection halfway
    drop_at: int | None = None  # byte offset (within the file) where a dropped answer stops
    headers: dict = field(default_factory=dict)
    honor_range: bool = True
    delay_s: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    status: int = 0
    sent: int = 0  # body bytes written


class FakeServer:
    """Serves :class:`Route` objects; records every request (method, path, headers, bytes sent)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                server._serve(self, head=True)

            def do_GET(self) -> None:
                server._serve(self, head=False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, route: Route | bytes) -> Route:
        route = route if isinstance(route, Route) else Route(body=route)
        self.routes[path] = route
        return route

    def requests_for(self, path: str, method: str = "GET") -> list[Seen]:
        return [s for s in self.seen if s.path == path and s.method == method]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the handler logic -------------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        import time

        path = h.path.split("?")[0]
        seen = Seen("HEAD" if head else "GET", path, {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.seen.append(seen)
            route = self.routes.get(path)
            fail = route is not None and route.fail_first > 0
            if fail:
                route.fail_first -= 1
            drop = route is not None and not fail and not head and route.drop_first > 0 and route.status == 200
            if drop:
                route.drop_first -= 1
        if route is None:
            return self._plain(h, seen, 404, b"not found", {"X-Error-Code": "EntryNotFound"})
        if fail:
            return self._plain(h, seen, 500, b"server error", {})
        if route.status != 200:
            return self._plain(h, seen, route.status, b"error", route.headers)
        if route.delay_s:
            time.sleep(route.delay_s)
        body, start, status = route.body, 0, 200
        extra = dict(route.headers)
        rng = seen.headers.get("range")
        if rng and route.honor_range and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes=") : -1])
            if start >= len(body):
                return self._plain(h, seen, 416, b"", {"Content-Range": f"bytes */{len(body)}"})
            status = 206
            extra["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        payload = body[start:]
        seen.status = status
        h.send_response(status)
        h.send_header("Content-Length", str(len(payload)))
        h.send_header("Accept-Ranges", "bytes")
        for k, v in extra.items():
            h.send_header(k, v)
        h.end_headers()
        if head:
            return
        if drop:
            cut = max(0, (route.drop_at if route.drop_at is not None else len(body) // 2) - start)
            seen.sent = cut  # recorded before writing: the client may finish before this thread resumes
            h.wfile.write(payload[:cut])
            h.wfile.flush()
            h.close_connection = True
            return
        seen.sent = len(payload)
        h.wfile.write(payload)

    @staticmethod
    def _plain(h, seen: Seen, status: int, body: bytes, headers: dict) -> None:
        seen.status = status
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if seen.method == "GET":
            seen.sent = len(body)
            h.wfile.write(body)
