"""Links a person's browser can open when the kernel runs on a server (JupyterHub, a cloud notebook).

Workers and bots use ``run.url`` directly. A notebook user's browser may not reach 127.0.0.1 on the
kernel's machine, so the links crowdnb shows in a notebook go, in this order, through:

1. ``$CROWDNB_PUBLIC_URL``, a template such as ``https://hub.example.org/user/ada/proxy/{port}/``;
2. jupyter-server-proxy, when it is installed and this is a Jupyter kernel: ``<server>proxy/<port>/`` on
   the Jupyter server itself. ``<server>`` is the address the browser uses for that server: under
   JupyterHub, ``$JUPYTERHUB_PUBLIC_URL`` (or ``$JUPYTERHUB_HOST``) with ``$JUPYTERHUB_SERVICE_PREFIX``;
   otherwise the URL the server wrote to its runtime file (``jpserver-<pid>.json``, found by the
   kernel's ``$JPY_PARENT_PID``) when it listens on a named address. When neither tells, the link is
   the path alone and a warning says how to set ``$CROWDNB_PUBLIC_URL``;
3. the router's own address.

Worker pages use relative links only, so they work under any of these prefixes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

_WILDCARDS = ("", "0.0.0.0", "::")  # a server on every interface: its own URL names a host the browser may not know
_warned: set[int] = set()  # ports already warned about, so a live panel's refreshes warn once


def _in_kernel() -> bool:
    return "JPY_PARENT_PID" in os.environ or "JPY_SESSION_NAME" in os.environ


def browser_base(url: str) -> str:
    """The address a notebook user's browser should open for a router serving at ``url``."""
    port = urlsplit(url).port
    template = os.environ.get("CROWDNB_PUBLIC_URL")
    if template and port is not None:
        return template.format(port=port).rstrip("/") + "/"
    if port is not None and _in_kernel() and importlib.util.find_spec("jupyter_server_proxy") is not None:
        server = jupyter_server_url()
        if server is not None:
            return f"{server}proxy/{port}/"
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        path = f"{prefix.rstrip('/')}/proxy/{port}/"
        if port not in _warned:
            _warned.add(port)
            log.warning(
                "crowdnb cannot tell which address your browser uses for this Jupyter server, so links are "
                "relative (%s); for clickable links set CROWDNB_PUBLIC_URL to the proxy address, for example "
                "os.environ['CROWDNB_PUBLIC_URL'] = 'https://jupyter.example.org%s'",
                path,
                path.replace(f"/{port}/", "/{port}/"),
            )
        return path
    return url


def jupyter_server_url() -> str | None:
    """The Jupyter server's address as this kernel's user opens it (ending in ``/``), or None when unknown."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix is not None:  # under JupyterHub the server's own URL is internal: only the Hub knows the public one
        public = os.environ.get("JUPYTERHUB_HOST") or os.environ.get("JUPYTERHUB_PUBLIC_URL") or ""
        origin = urlsplit(public)
        if not (origin.scheme and origin.netloc):
            return None
        path = prefix.strip("/")
        return f"{origin.scheme}://{origin.netloc}/{path}/" if path else f"{origin.scheme}://{origin.netloc}/"
    info = _server_info()
    if info is None or str(info.get("hostname", "")) in _WILDCARDS or info.get("sock"):
        return None
    server = str(info.get("url") or "")
    if not server.startswith(("http://", "https://")):
        return None
    return server.rstrip("/") + "/"


def _server_info() -> dict[str, object] | None:
    """What the Jupyter server that started this kernel wrote about itself, if this is such a kernel."""
    parent = os.environ.get("JPY_PARENT_PID", "")
    if not parent.isdigit():
        return None
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return None
    path = Path(jupyter_runtime_dir()) / f"jpserver-{parent}.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None
