"""The front process of ``stepcrew dev``: it holds the port, answers ``GET /health`` itself and forwards every
other request to the runtime process behind it.

Why two processes: runs execute in the runtime process's threads (the emulated Step Functions and DynamoDB live
there), so one process's GIL and garbage collector are shared by eight executions and the API. Measured with
bench/dev_api.py (8 runs executing, 2 cores), ``/health`` answered in that process had a p95 of 31-39 ms: its
collector alone paused every thread for up to 0.4 s (gen-2 collections of moto's objects). The front process holds
no runs: its heap is small and its threads only copy bytes.

Shape:
- ``stepcrew dev`` (:func:`run_front`) binds ``host:port``, starts ``<python> -m stepcrew.cli dev --runtime-for
  URL ...`` in its own session (a terminal's Ctrl-C reaches the front only), reads the runtime's port from the
  runtime's first stdout line and its ``/health`` answer, then serves. Requests that arrive meanwhile wait in the
  listen backlog.
- ``GET /health``: the runtime's answer while the runtime process lives; 503 ``runtime_unavailable`` otherwise.
- Any other request is forwarded unchanged (method, path and query, headers with ``Host``, body by
  ``Content-Length``; hop-by-hop headers dropped, RFC 9110 section 7.6.1), the answer copied back. Presigned upload
  URLs are signed for the front's address (the runtime is told it with ``--runtime-for``), so they verify.
- SIGTERM or SIGINT to the front: SIGTERM to the runtime (it stops like ``stepcrew dev`` always did: executions
  marked FAILED ``LocalRuntimeExited``, resumable), then the front exits with the runtime's exit code. A second
  signal kills the runtime.
- The runtime process ends when the front dies, even by SIGKILL: it watches its stdin (a pipe from the front) and
  exits at once at end of file, as a killed server would (its runs are orphans for the next start's sweep).
- The runtime process ends on its own (a crash, a bad setting refused at start with exit 2): the front stops with
  its exit code.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import urlsplit

#: Headers that describe one connection, not the message (RFC 9110 section 7.6.1): never forwarded.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade"})
#: Seconds the front waits for the runtime's answer to one request (a long poll of the API is well under it).
FORWARD_TIMEOUT_S = 300.0
#: Seconds the runtime process may take to start (it builds the emulated services and sweeps orphans).
START_TIMEOUT_S = 180.0
_CHUNK = 64 * 1024


class RuntimeStartError(RuntimeError):
    """The runtime process ended before it listened; ``code`` is its exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the runtime process exited with code {code} before it listened")
        self.code = code


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"code": code, "message": message}).encode()


class _FrontHandler(BaseHTTPRequestHandler):
    server: FrontServer
    protocol_version = "HTTP/1.1"
    server_version = "stepcrew-dev"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET  # noqa: N815

    def __getattr__(self, name: str):
        """Any other method goes to the runtime too (the API answers 405), as without the front."""
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the runtime logs each request
        return

    def _send_json(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        srv = self.server
        if (self.command, urlsplit(self.path).path) == ("GET", "/health"):
            if srv.runtime_alive():
                status, headers, body = srv.health
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                return
            return self._send_json(*_error(503, "runtime_unavailable", "the runtime process has ended"))
        self._forward()

    def _forward(self) -> None:
        srv = self.server
        length_header = self.headers.get("Content-Length")
        chunked = self.headers.get("Transfer-Encoding") is not None
        try:
            length = int(length_header) if length_header and not chunked else 0
        except ValueError:
            length = -1
        if length < 0 or chunked:  # the runtime answers these (411, 400) without reading a body: neither do we
            self.close_connection = True
            length = 0
        conn = http.client.HTTPConnection("127.0.0.1", srv.runtime_port, timeout=FORWARD_TIMEOUT_S)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    conn.putheader(name, value)
            if length_header is not None and not chunked and length >= 0:
                conn.putheader("Content-Length", str(length))
            if chunked:
                conn.putheader("Transfer-Encoding", self.headers["Transfer-Encoding"])
            conn.endheaders()
            _copy(self.rfile, conn.sock, length)
            response = conn.getresponse()
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            if response.getheader("Connection", "").lower() == "close":
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                while chunk := response.read(_CHUNK):
                    self.wfile.write(chunk)
        except (OSError, http.client.HTTPException):
            self.close_connection = True
            try:
                self._send_json(*_error(502, "runtime_unavailable", "the runtime process did not answer"))
            except OSError:
                pass
        finally:
            conn.close()


def _copy(source: BinaryIO, sock: Any, length: int) -> None:
    left = length
    while left > 0:
        chunk = source.read(min(_CHUNK, left))
        if not chunk:
            break
        sock.sendall(chunk)
        left -= len(chunk)


class FrontServer(ThreadingHTTPServer):
    """The front's HTTP server (bound at construction; :meth:`attach` before ``serve_forever``)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _FrontHandler)
        self.runtime: subprocess.Popen | None = None
        self.runtime_port = 0
        self.health: tuple[int, list[tuple[str, str]], bytes] = (503, [], b"")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def runtime_alive(self) -> bool:
        return self.runtime is not None and self.runtime.poll() is None

    def attach(self, runtime: subprocess.Popen, port: int) -> None:
        """Use the runtime process listening on ``port``; keeps its ``/health`` answer (raises OSError if none)."""
        self.runtime, self.runtime_port = runtime, port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            body = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            self.health = (response.status, headers, body)
        finally:
            conn.close()

    def service_actions(self) -> None:  # about every poll interval: stop when the runtime has ended
        if self.runtime is not None and self.runtime.poll() is not None:
            threading.Thread(target=self.shutdown, daemon=True).start()


def _read_port(runtime: subprocess.Popen) -> int:
    """The runtime's first stdout line (its port); RuntimeStartError if it ends first."""
    line = runtime.stdout.readline() if runtime.stdout is not None else b""
    try:
        return int(line.strip())
    except ValueError:
        raise RuntimeStartError(runtime.wait()) from None


def _drain(stream: BinaryIO | None) -> None:
    """Copy the runtime's stdout to ours (a pipe nobody reads would fill and block it)."""
    if stream is None:
        return
    for line in iter(stream.readline, b""):
        sys.stdout.buffer.write(line)
        sys.stdout.flush()


def run_front(host: str, port: int, runtime_args: list[str], env: dict[str, str] | None = None) -> int:
    """Serve ``host:port`` in front of ``<python> -m stepcrew.cli dev --runtime-for URL *runtime_args`` until
    SIGTERM/SIGINT or until the runtime process ends; returns the runtime's exit code (see the module docstring).
    Raises OSError if ``host:port`` cannot be bound (nothing started)."""
    server = FrontServer((host, port))
    stopping = threading.Event()
    runtime = subprocess.Popen([sys.executable, "-m", "stepcrew.cli", "dev", "--runtime-for", server.url,
                                *runtime_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               env=env, start_new_session=True)

    def stop(signum: int, frame: Any) -> None:
        if stopping.is_set():  # a second signal: do not wait for the runtime's clean stop
            runtime.kill()
            return
        stopping.set()
        if runtime.poll() is None:
            runtime.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            runtime_port = _read_port(runtime)
        except RuntimeStartError as exc:
            return exc.code
        threading.Thread(target=_drain, args=(runtime.stdout,), name="front-drain", daemon=True).start()
        if not stopping.is_set():
            try:
                server.attach(runtime, runtime_port)
            except OSError:
                runtime.send_signal(signal.SIGTERM)
            else:
                server.serve_forever(poll_interval=0.2)  # until the runtime process ends (service_actions)
        code = runtime.wait()
        if code < 0:  # ended by a signal: report it the way a shell does
            code = 128 - code
        if not stopping.is_set() and code != 0:
            sys.stderr.write(f"stepcrew dev: the runtime process ended unexpectedly (exit code {code}); stopping\n")
        return code
    finally:
        server.server_close()
        if runtime.poll() is None:
            runtime.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_with_front(fd: int = 0) -> None:
    """In the runtime process: a daemon thread that ends this process at once when the front's pipe on ``fd``
    (stdin) reaches end of file (the front died, even by SIGKILL): the same end as a killed server, its runs left
    for the sweep. It reads the file descriptor itself: a daemon thread blocked in ``sys.stdin`` would hold the
    buffer's lock at interpreter shutdown (a fatal error)."""

    def watch() -> None:
        while os.read(fd, _CHUNK):
            pass
        os._exit(137)

    threading.Thread(target=watch, name="front-watch", daemon=True).start()
