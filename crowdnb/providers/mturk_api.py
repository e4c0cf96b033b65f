"""The one seam to Amazon MTurk: a boto3 client, and every call's failure as a ``ProviderError``.

Keys come from ``crowdnb register mturk`` (``credentials.lookup``) or else AWS's own credential chain
(environment, ``~/.aws``, instance role) — never from provider options, which are stored with the run.
The endpoint is, in order: the ``endpoint_url`` option, the one registered with the keys,
``AWS_ENDPOINT_URL_MTURK``, then MTurk's live or sandbox endpoint. boto3's own retries are off:
``call(..., safe=True)`` retries transient failures (throttling, 5xx, timeouts) through ``retried``,
and only the calls that can be repeated without doing twice what they do are marked safe.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from ..credentials import lookup
from ..errors import ConfigError, ProviderError
from .meter import Meter
from .retry import retried

log = logging.getLogger(__name__)

LIVE = "https://mturk-requester.us-east-1.amazonaws.com"
SANDBOX = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
WORKER_SITE = {False: "https://www.mturk.com", True: "https://workersandbox.mturk.com"}
THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
# botocore's data loader (the service models it reads from disk) shared by every client this process
# builds: a client then takes ~0.04 s instead of ~0.25 s. Each client keeps a session (and credentials) of its own.
_loader: Any = None
_LOADER_LOCK = threading.Lock()
_SCHEMA = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"


class MTurkAPI:
    """A lazily built boto3 ``mturk`` client (no network until the first call) with crowdnb's error mapping."""

    def __init__(
        self,
        sandbox: bool,
        endpoint_url: str | None = None,
        region: str | None = None,
        timeout: float = 20.0,
        retry_delay: float = 0.5,
    ) -> None:
        keys = lookup("mturk")
        self.sandbox = sandbox
        self.endpoint = (
            endpoint_url
            or keys.get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_MTURK")
            or (SANDBOX if sandbox else LIVE)
        ).rstrip("/")
        if sandbox and urlsplit(self.endpoint).hostname == urlsplit(LIVE).hostname:
            raise ConfigError(
                f"mturk_sandbox is pointed at the live endpoint {LIVE}; use provider 'mturk' for real HITs"
            )
        self.region = region or keys.get("region") or "us-east-1"
        self.timeout, self.retry_delay = timeout, retry_delay
        self._client: Any = None
        self._lock = threading.Lock()
        self.meter = Meter()  # every attempt of every call, for the run's metrics

    def _boto(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import boto3
                    import botocore.session
                    from botocore.config import Config
                except ImportError as exc:
                    raise ConfigError('the MTurk provider needs boto3: pip install "crowdnb[aws]"') from exc
                keys = lookup("mturk")
                config = Config(
                    retries={"total_max_attempts": 1},  # crowdnb decides what is safe to repeat
                    connect_timeout=min(self.timeout, 10.0),
                    read_timeout=self.timeout,
                    user_agent_extra="crowdnb",
                )
                with _LOADER_LOCK:  # one client built at a time, as the loader is shared
                    global _loader
                    core = botocore.session.get_session()
                    if _loader is None:
                        _loader = core.get_component("data_loader")
                    else:
                        core.register_component("data_loader", _loader)
                    session = boto3.session.Session(
                        aws_access_key_id=keys.get("aws_access_key_id"),
                        aws_secret_access_key=keys.get("aws_secret_access_key"),
                        botocore_session=core,
                    )
                    self._client = session.client(
                        "mturk", region_name=self.region, endpoint_url=self.endpoint, config=config
                    )
            return self._client

    def call(self, operation: str, *, safe: bool = False, **params: Any) -> dict[str, Any]:
        """MTurk's ``operation`` (e.g. "GetHIT") with ``params``; retried on a transient failure when ``safe``."""
        if safe:
            return retried(lambda: self._once(operation, params), base_delay=self.retry_delay)
        return self._once(operation, params)

    def _once(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.meter.timed("MTurk", operation):
            return self._sent(operation, params)

    def _sent(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        from botocore import exceptions as bx
        from botocore import xform_name

        method = getattr(self._boto(), xform_name(operation))
        try:
            answer: dict[str, Any] = method(**params)
            return answer
        except bx.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            transient = code in THROTTLED or code == "ServiceFault" or (status is not None and status >= 500)
            message = f"{code}: {error.get('Message') or exc}"
            raise ProviderError("MTurk", operation, message, transient=transient, status=status) from exc
        except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
            raise ConfigError(
                "no MTurk keys found: run `crowdnb register mturk` (or cn.register) or set up the AWS "
                "credential chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws/credentials)"
            ) from exc
        except (bx.ConnectionError, bx.ReadTimeoutError, bx.ConnectionClosedError) as exc:
            # EndpointConnectionError and ConnectTimeoutError are ConnectionErrors too
            raise ProviderError(
                "MTurk", operation, f"no answer from {self.endpoint} ({type(exc).__name__})", transient=True
            ) from exc

    def pages(self, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paginated listing (``key``: "HITs", "Assignments" …)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            extra = {"NextToken": token} if token else {}
            page = self.call(operation, safe=True, MaxResults=100, **params, **extra)
            items.extend(page.get(key, []))
            token = page.get("NextToken")
            if not token:
                return items


def turk_code(exc: ProviderError) -> str:
    """MTurk's own error code of a refused call (``AWS.MechanicalTurk.HitAlreadyExists`` …), or ""."""
    cause = exc.__cause__
    response = getattr(cause, "response", None) or {}
    return str(response.get("TurkErrorCode") or "")


def request_token(*parts: object) -> str:
    """A ``UniqueRequestToken`` (64 characters, MTurk's limit) that is the same for the same parts."""
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


def external_question(url: str, frame_height: int = 0) -> str:
    """The ``ExternalQuestion`` XML that shows ``url`` in MTurk's frame (height 0: as tall as the page)."""
    return (
        f'<ExternalQuestion xmlns="{_SCHEMA}"><ExternalURL>{escape(url)}</ExternalURL>'
        f"<FrameHeight>{int(frame_height)}</FrameHeight></ExternalQuestion>"
    )


def short(worker: str) -> str:
    """A worker id as logs show it (never in full)."""
    return worker[:4] + "…" if len(worker) > 4 else worker
