"""Links a person's browser can open when the kernel runs on a server (JupyterHub, a cloud notebook).

Workers and bots use ``run.url`` directly. A notebook user's browser may not reach 127.0.0.1 on the
kernel's machine, so the links crowdnb shows in a notebook go, in this order, through:

1. ``$CROWDNB_PUBLIC_URL``, a template such as ``https://hub.example.org/user/ada/proxy/{port}/``;
2. jupyter-server-proxy, when it is installed and this is a Jupyter kernel: ``<prefix>proxy/<port>/`` on
   the Jupyter server itself (``<prefix>`` is ``$JUPYTERHUB_SERVICE_PREFIX`` or ``/``);
3. the router's own address.

Worker pages use relative links only, so they work under any of these prefixes.
"""

from __future__ import annotations

import importlib.util
import os
from urllib.parse import urlsplit


def _in_kernel() -> bool:
    return "JPY_PARENT_PID" in os.environ or "JPY_SESSION_NAME" in os.environ


def browser_base(url: str) -> str:
    """The address a notebook user's browser should open for a router serving at ``url``."""
    port = urlsplit(url).port
    template = os.environ.get("CROWDNB_PUBLIC_URL")
    if template and port is not None:
        return template.format(port=port).rstrip("/") + "/"
    if port is not None and _in_kernel() and importlib.util.find_spec("jupyter_server_proxy") is not None:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        return f"{prefix.rstrip('/')}/proxy/{port}/"
    return url
