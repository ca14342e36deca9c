"""Real servers for the openai backend's tests: llama.cpp's, and a fault-injecting one in front of it.

:class:`LlamaServer` runs ``python -m llama_cpp.server`` on the embedded SmolLM2 GGUF file.
:class:`FaultServer` is a small threaded ``http.server`` on 127.0.0.1 (an ephemeral port) that
forwards requests to it and misbehaves on a schedule:

- ``fail_next(*faults)``: the next chat requests get these faults, one each, in order;
- ``fail_for(seconds, fault)``: every request (model list included) gets the fault for a while;
- ``fail_prompts({user_text: fault})``: every chat request whose last message is that text gets it;
- ``die_after(n)``: after ``n`` chat requests are forwarded the server stops listening, so that
  connections are refused, as from a server process that died;
- ``refuse_path(path)``: requests to that path are answered 404, as by a server without it
  (``/v1/completions`` on a chat-only API);
- ``ignore_fields(*names)``: those request fields are dropped before forwarding, as by a server
  that does not know them (``grammar``, ``guided_choice``).

A fault is a status (429 or 5xx, with or without ``Retry-After``), a connection closed without an
answer (``RESET``), or a 200 reply that is not a chat completion: truncated JSON, an HTML page, no
``choices``, no log-probabilities, a huge body. The server stops by itself after ``lifetime_s``
seconds, so a test that fails cannot leave it running.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from culture_probe.models import embedded_gguf

HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx is busy</body></html>"
NO_CHOICES = b'{"id": "chatcmpl-1", "object": "chat.completion", "error": "model overloaded"}'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LlamaServer:
    """``python -m llama_cpp.server`` on a loopback port, serving the embedded GGUF file.

    ``model``: another GGUF file; ``module``: what starts the server instead of
    ``llama_cpp.server``, with its arguments (``culture_probe.serve``: it also takes token ids).
    """

    def __init__(
        self, port: int | None = None, model: Path | None = None, module: str = "llama_cpp.server"
    ) -> None:
        self.port = port or free_port()
        self.model = model or embedded_gguf()
        self.launcher = ["-m", module]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        command = [
            sys.executable, *self.launcher,
            "--model", str(self.model),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--logits_all", "true", "--n_ctx", "2048", "--n_threads", "1",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "llama_cpp.server exited while starting"
            try:
                if httpx.get(f"{self.url}/models", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("llama_cpp.server did not start within 120 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


#: the values study's slice that ``culture-probe score`` runs through llama.cpp's server
SERVED_ITEMS = ("family_importance", "generalised_trust")
SERVED_PROXIES = ("JP", "DE")


def score_command(repo: Path, url: str, out: Path) -> subprocess.CompletedProcess[str]:
    """``culture-probe score`` of :data:`SERVED_ITEMS` x :data:`SERVED_PROXIES` through the
    server at ``url``, as a user would type it, in chunks of 4 prompts."""
    command = [
        sys.executable, "-m", "culture_probe.cli", "score", str(repo / "taxonomy" / "values.yaml"),
        "--items", ",".join(SERVED_ITEMS), "--proxies", ",".join(SERVED_PROXIES),
        "--backend", "openai",
        "--option", f"base_url={url}", "--option", "concurrency=1", "--option", "chunk_size=4",
        "--option", "retry_budget_s=1", "--option", "backoff=0.05", "--out", str(out),
        # resuming is what these runs check; exact rescoring beyond the top-k, a dozen requests
        # per rescored prompt, is checked in test_openai_exact.py
        "--option", "exact_rescore=false",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=repo)


@dataclass(frozen=True)
class InterruptedRun:
    """A served run whose server was killed after two chunks, then restarted on the same port
    and the same command run again (:func:`score_interrupted`).

    Attributes:
        out: the run directory, finished by the second command.
        stopped: the first command, which the kill stopped.
        n_saved: prompts with a result when it stopped.
        resumed: the second command.
    """

    out: Path
    stopped: subprocess.CompletedProcess[str]
    n_saved: int
    resumed: subprocess.CompletedProcess[str]


def score_interrupted(repo: Path, out: Path) -> InterruptedRun:
    """Score the served slice, killing llama.cpp's server after two chunks are saved, and
    resume it with the same command once the server is back."""
    from culture_probe.store import RunDirectory

    server = LlamaServer().start()
    try:
        results: list[subprocess.CompletedProcess[str]] = []
        run = threading.Thread(target=lambda: results.append(score_command(repo, server.url, out)))
        run.start()
        while len(list((out / "chunks").glob("chunk-*.parquet"))) < 2 and run.is_alive():
            time.sleep(0.02)
        server.kill()
        run.join()
        n_saved = len(RunDirectory(out).results())
        server = LlamaServer(server.port).start()  # the same address, as a restarted server has
        resumed = score_command(repo, server.url, out)
    finally:
        server.kill()
    return InterruptedRun(out, results[0], n_saved, resumed)


@dataclass(frozen=True)
class Fault:
    """What the server does instead of forwarding a request.

    ``kind`` is ``status`` (answer ``status`` with ``body`` and ``retry_after``), ``reset`` (close
    the connection without an answer), or a 200 reply that is not a chat completion:
    ``truncated`` (the upstream reply cut in half), ``html``, ``no_choices``, ``no_logprobs`` (the
    upstream reply without its log-probabilities) or ``huge`` (``size`` bytes).
    ``retry_after`` is a header value, or a function that makes one when the answer is sent.
    """

    kind: str = "status"
    status: int = 200
    retry_after: str | Callable[[], str] | None = None
    body: bytes = b'{"error": {"message": "injected fault", "type": "server_error"}}'
    size: int = 0


def status(
    code: int, retry_after: str | Callable[[], str] | None = None, body: bytes = b""
) -> Fault:
    """An error status, with ``Retry-After`` when given."""
    return Fault("status", code, retry_after, body or Fault.body)


def http_date_in(seconds: float) -> Callable[[], str]:
    """A ``Retry-After`` HTTP date at least ``seconds`` after the moment the answer is sent.

    HTTP dates have whole seconds: the date is rounded up, so the wait asked is in
    ``(seconds, seconds + 1]``.
    """
    return lambda: formatdate(math.ceil(time.time()) + seconds, usegmt=True)


RESET = Fault("reset")
TRUNCATED = Fault("truncated")
HTML = Fault("html")
NO_CHOICES_REPLY = Fault("no_choices")
NO_LOGPROBS = Fault("no_logprobs")


def huge(size: int) -> Fault:
    """A 200 reply of ``size`` bytes: a JSON object whose padding never ends in time."""
    return Fault("huge", size=size)


class FaultServer:
    """A forwarding server on loopback that misbehaves on a schedule; see the module docstring."""

    def __init__(self, upstream: str, lifetime_s: float = 120.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.client = httpx.Client(timeout=60)
        self.lock = threading.Lock()
        self.queued: list[Fault] = []
        self.window: tuple[float, Fault] | None = None
        self.by_prompt: dict[str, Fault] = {}
        self.forward_limit: int | None = None
        self.refused_paths: set[str] = set()
        self.ignored_fields: set[str] = set()
        self.dead = False
        #: what happened to each request, in order: "forwarded" or the fault's kind and status
        self.log: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        # bounded in time: the server stops by itself even if a test never closes it
        self.timer = threading.Timer(lifetime_s, self.close)
        self.timer.daemon = True
        self.timer.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.timer.cancel()
        with self.lock:
            self.dead = True
        self.server.shutdown()
        self.server.server_close()
        self.client.close()

    # --- the schedule -----------------------------------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        with self.lock:
            self.queued.extend(faults)

    def fail_for(self, seconds: float, fault: Fault) -> None:
        with self.lock:
            self.window = (time.monotonic() + seconds, fault)

    def fail_prompts(self, faults: dict[str, Fault]) -> None:
        with self.lock:
            self.by_prompt.update(faults)

    def die_after(self, forwarded: int) -> None:
        with self.lock:
            self.forward_limit = self.forwarded + forwarded

    def refuse_path(self, path: str) -> None:
        with self.lock:
            self.refused_paths.add(path)

    def ignore_fields(self, *names: str) -> None:
        with self.lock:
            self.ignored_fields.update(names)

    @property
    def forwarded(self) -> int:
        return self.log.count("forwarded")

    def injected(self, kind: str = "status") -> list[str]:
        """The faults injected so far, as logged (``status 429``, ``html``...)."""
        return [entry for entry in self.log if entry.startswith(kind)]

    # --- answering --------------------------------------------------------------------------------

    def _choose(self, command: str, body: bytes, path: str = "") -> Fault | None:
        """The fault for this request, or None to forward it; logs the decision."""
        with self.lock:
            fault = self._scheduled(command, body, path)
            limit = self.forward_limit
            if (
                fault is None
                and command == "POST"
                and limit is not None
                and self.forwarded >= limit
            ):
                fault = Fault("die")
            self.log.append("forwarded" if fault is None else _describe(fault))
            return fault

    def _scheduled(self, command: str, body: bytes, path: str = "") -> Fault | None:
        if self.dead:
            return Fault("die")
        if self.window is not None and time.monotonic() < self.window[0]:
            return self.window[1]
        if command != "POST":
            return None
        if path in self.refused_paths:
            return Fault("status", 404, body=b'{"detail": "Not Found"}')
        if self.queued:
            return self.queued.pop(0)
        return self.by_prompt.get(_last_message(body))

    def _reply(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.headers.append(dict(handler.headers))
        fault = self._choose(handler.command, body, handler.path)
        body = self._without_ignored_fields(body)
        if fault is not None and fault.kind in ("reset", "die"):
            self._hang_up(handler, dying=fault.kind == "die")
            return
        if fault is not None and fault.kind == "status":
            retry_after = fault.retry_after() if callable(fault.retry_after) else fault.retry_after
            extra = {"Retry-After": retry_after} if retry_after is not None else {}
            _send(handler, fault.status, fault.body, extra)
            return
        if fault is not None and fault.kind in MADE_UP:
            _send(handler, 200, MADE_UP[fault.kind](fault), {})
            return
        upstream = self.client.request(
            handler.command,
            self.upstream + handler.path.removeprefix("/v1"),
            content=body or None,
            headers={"content-type": "application/json"},
        )
        payload = upstream.content if fault is None else _spoil(upstream.content, fault)
        _send(handler, upstream.status_code, payload, {})

    def _without_ignored_fields(self, body: bytes) -> bytes:
        with self.lock:
            ignored = set(self.ignored_fields)
        if not ignored or not body:
            return body
        request = json.loads(body)
        return json.dumps({k: v for k, v in request.items() if k not in ignored}).encode()

    def _hang_up(self, handler: BaseHTTPRequestHandler, dying: bool) -> None:
        """Close the connection without an answer; a dying server also stops listening."""
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)
        if dying:
            with self.lock:
                self.dead = True
            threading.Thread(target=self._stop_listening, daemon=True).start()

    def _stop_listening(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._reply(self)

            def do_POST(self) -> None:
                server._reply(self)

            def log_message(self, *args: Any) -> None:
                return

        return Handler


def _describe(fault: Fault) -> str:
    return f"status {fault.status}" if fault.kind == "status" else fault.kind


def _last_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["messages"][-1]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _huge_body(fault: Fault) -> bytes:
    head = b'{"choices": [], "padding": "'
    return head + b"x" * max(0, fault.size - len(head) - 2) + b'"}'


#: malformed replies made up without asking the upstream server
MADE_UP: dict[str, Callable[[Fault], bytes]] = {
    "html": lambda _: HTML_PAGE,
    "no_choices": lambda _: NO_CHOICES,
    "huge": _huge_body,
}


def _spoil(payload: bytes, fault: Fault) -> bytes:
    """The upstream reply turned into the malformed 200 reply that ``fault`` names."""
    if fault.kind == "truncated":
        return payload[: len(payload) // 2]
    if fault.kind == "no_logprobs":
        reply = json.loads(payload)
        for choice in reply.get("choices", []):
            choice["logprobs"] = None
        return json.dumps(reply).encode()
    raise ValueError(f"unknown fault kind {fault.kind!r}")


def _send(
    handler: BaseHTTPRequestHandler, code: int, payload: bytes, headers: dict[str, str]
) -> None:
    handler.send_response(code)
    content_type = "text/html" if payload.startswith(b"<html") else "application/json"
    for name, value in {**headers, "content-type": content_type}.items():
        handler.send_header(name, value)
    handler.send_header("content-length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)
