"""A local stand-in for a platform, used by `breakglass demo`.

It serves a health endpoint whose response depends on the version written in a release
file (version 2.0.0 is the broken release), and a webhook endpoint that records what is
posted to it. It binds to 127.0.0.1 only and stops with the demo.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BROKEN_VERSION = "2.0.0"
GOOD_VERSION = "1.4.2"


@dataclass
class DemoPlatform:
    release_file: Path
    received: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def version(self) -> str:
        return self.release_file.read_text(encoding="utf-8").strip()

    def start(self) -> None:
        self.release_file.parent.mkdir(parents=True, exist_ok=True)
        self.release_file.write_text(BROKEN_VERSION, encoding="utf-8")
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/healthz":
                    self._reply(404, {"error": "not found"})
                    return
                version = platform.version()
                if version == BROKEN_VERSION:
                    self._reply(503, {"status": "degraded", "version": version, "error_rate": 0.37})
                else:
                    self._reply(200, {"status": "ok", "version": version, "error_rate": 0.001})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                platform.received.append(json.loads(body or b"{}"))
                self._reply(202, {"accepted": True})

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, name="demo-platform", daemon=True
        ).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
