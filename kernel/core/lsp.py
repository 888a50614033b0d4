"""A small Language Server Protocol client over a child process's stdio.

Just what completion and hover need: requests with a deadline (an answer
that comes too late is cancelled and dropped), notifications, and polite
answers to the few requests a server sends its client. One reader thread
per server routes responses to the waiting requests.
"""

from __future__ import annotations

import json
import subprocess
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class LanguageServerError(Exception):
    """The server is gone or answered with an error."""


@dataclass
class LanguageServer:
    """One running server, spoken to over JSON-RPC with Content-Length framing."""

    process: subprocess.Popen
    _pending: dict[int, Future] = field(default_factory=dict)
    _next_id: int = 1
    _write_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, command: list[str], cwd: Path, env: dict[str, str]) -> "LanguageServer":
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        server = cls(process)
        threading.Thread(target=server._read_forever, name="lsp-reader", daemon=True).start()
        return server

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, method: str, params: Any, timeout: float) -> Any:
        """The result of a request, or TimeoutError (the request is then cancelled)."""
        future = self.send_request(method, params)
        request_id = future.request_id
        try:
            return future.result(timeout=max(timeout, 0.0))
        except FutureTimeout:
            self._pending.pop(request_id, None)
            self.notify("$/cancelRequest", {"id": request_id})
            raise TimeoutError(f"{method}: no answer within {timeout:.2f} s") from None

    def send_request(self, method: str, params: Any) -> Future:
        request_id = self._next_id
        self._next_id += 1
        future: Future = Future()
        future.request_id = request_id
        self._pending[request_id] = future
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return future

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def stop(self) -> None:
        """Ask the server to exit; kill it if it does not."""
        if self.alive:
            try:
                self.request("shutdown", None, timeout=1.0)
                self.notify("exit", None)
                self.process.wait(timeout=1.0)
            except (TimeoutError, LanguageServerError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    # -- the wire ---------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        with self._write_lock:
            try:
                self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self.process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                raise LanguageServerError(f"the language server is not running ({exc})") from None

    def _read_forever(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    self._fail_all("the language server exited")
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii", "replace").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                continue
            self._dispatch(json.loads(stream.read(length)))

    def _dispatch(self, message: dict) -> None:
        if "method" in message:
            if "id" in message:  # a request from the server: answer so it never waits on us
                self._answer_server(message)
            return
        future = self._pending.pop(message.get("id"), None)
        if future is None:
            return
        if "error" in message:
            future.set_exception(LanguageServerError(message["error"].get("message", "error")))
        else:
            future.set_result(message.get("result"))

    def _answer_server(self, message: dict) -> None:
        if message["method"] == "workspace/configuration":
            result: Any = [None for _ in message.get("params", {}).get("items", [])]
        else:  # window/workDoneProgress/create, client/registerCapability, ...
            result = None
        try:
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        except LanguageServerError:
            pass

    def _fail_all(self, reason: str) -> None:
        for request_id in list(self._pending):
            future = self._pending.pop(request_id, None)
            if future is not None and not future.done():
                future.set_exception(LanguageServerError(reason))


def utf16_column(line: str, column: int) -> int:
    """LSP counts columns in UTF-16 code units; Python in code points."""
    return len(line[:column].encode("utf-16-le")) // 2
