"""Local fakes of crowd platforms, speaking their real wire protocols, for tests and dry runs."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server


class Listening:
    """A fake's WSGI app served from a daemon thread on ``host`` (port 0 picks a free port)."""

    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        self._server: BaseWSGIServer | None = make_server(host, port, app, threaded=True)
        self.port = self._server.server_port
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        ).start()

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
