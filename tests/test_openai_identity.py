"""The openai backend's identity: the model the server reports and its ``system_fingerprint``.

A loopback HTTP server answers as a hosted API does: ``GET /models`` lists the model under its
dated id, and each completion carries the ``system_fingerprint`` of the server's configuration.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from culture_probe.backends import create_backend


class HostedApi:
    """``/v1/models`` and ``/v1/chat/completions`` with a fixed model id and fingerprint."""

    def __init__(self, model_id: str, fingerprint: str | None) -> None:
        self.model_id, self.fingerprint = model_id, fingerprint
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, path: str) -> dict[str, Any]:
        if path.endswith("/models"):
            return {"object": "list", "data": [{"id": self.model_id, "object": "model"}]}
        top = [{"token": "A", "logprob": -0.1}, {"token": "B", "logprob": -2.4}]
        reply: dict[str, Any] = {
            "model": self.model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "A"},
                    "logprobs": {"content": [{"token": "A", "logprob": -0.1, "top_logprobs": top}]},
                }
            ],
        }
        if self.fingerprint:
            reply["system_fingerprint"] = self.fingerprint
        return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(api._answer(self.path))

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send(api._answer(self.path))

            def _send(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def hosted() -> Iterator[dict[str, HostedApi]]:
    servers = {
        "first": HostedApi("gpt-x-2026-01-01", "fp_1a2b"),
        "updated": HostedApi("gpt-x-2026-01-01", "fp_9z8y"),
        "unmarked": HostedApi("gpt-x-2026-01-01", None),
    }
    yield servers
    for server in servers.values():
        server.close()


def test_the_key_holds_the_served_model_and_the_server_fingerprint(
    hosted: dict[str, HostedApi],
) -> None:
    infos = {
        name: create_backend("openai", model="gpt-x", base_url=server.url).info()
        for name, server in hosted.items()
    }

    first = infos["first"]
    assert first.options["server_model"] == "gpt-x-2026-01-01"
    assert first.model_hash == "openai:gpt-x-2026-01-01"
    assert first.key()["system_fingerprint"] == "fp_1a2b"
    # the same alias served by a reconfigured server is another run
    assert first.key() != infos["updated"].key()
    assert "system_fingerprint" not in infos["unmarked"].key()
