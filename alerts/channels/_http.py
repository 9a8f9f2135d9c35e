"""The HTTP plumbing the webhook-style channels share: one session, one error mapping.

Kept private: each channel module exposes only its Channel and its settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from alerts.channels.base import DeliveryError, status_error

USER_AGENT = "crisismon/0.1 (+alert delivery)"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the provider said: status, headers and the body as text."""

    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON (a proxy's HTML error page)."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None


class HttpPoster:
    """POSTs for one channel over one lazily created ``aiohttp.ClientSession``.

    Lazily because a session must be made inside the running loop, and channels are
    built while the config is loaded. The URL is never put into errors or logs: for
    most chat robots it carries the access token.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def post(self, url: str | URL, body: bytes, *, headers: Mapping[str, str] | None = None,
                   params: Mapping[str, str] | None = None) -> Answer:
        """POST ``body`` as JSON; transport failures become retryable DeliveryErrors."""
        all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        try:
            async with self._get_session().post(url, data=body, headers=all_headers,
                                                params=params) as resp:
                text = await resp.text(errors="replace")
                return Answer(resp.status, resp.headers, text)
        except TimeoutError:
            raise DeliveryError(f"no answer within {self.timeout:g}s", retryable=True) from None
        except aiohttp.InvalidURL:
            # The message would quote the URL, token included.
            raise DeliveryError("invalid URL", retryable=False) from None
        except aiohttp.ClientConnectorError as exc:
            # Names host:port and the OS error, not the path or query.
            raise DeliveryError(f"cannot connect: {exc}", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"HTTP failure: {type(exc).__name__}", retryable=True) from None

    async def aclose(self) -> None:
        """Close the session (and its pooled connections)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def check_http(answer: Answer) -> None:
    """Raise the DeliveryError for a non-2xx answer; return for 2xx."""
    if not 200 <= answer.status < 300:
        raise status_error(answer.status, answer.text, answer.headers)


def check_code(answer: Answer, key: str, *, message_key: str, retryable: Mapping[int, float | None],
               provider: str) -> None:
    """Check a chat robot's 200-with-an-error-code answer (``errcode``/``code`` != 0).

    ``retryable`` maps the provider's transient codes (rate limit, busy) to a retry hint
    in seconds; every other non-zero code is a permanent mistake on our side.
    """
    check_http(answer)
    data = answer.json()
    if not isinstance(data, dict):
        # 200 without the JSON the robot always sends: a captive proxy or a wrong URL.
        raise DeliveryError(f"{provider}: unexpected answer {answer.text[:100]!r}",
                            retryable=True)
    code = data.get(key)
    if code is None and key == "code":
        code = data.get("StatusCode")  # Feishu's older answer shape
    if code in (0, None):
        return
    try:
        code = int(code)
    except (TypeError, ValueError):
        raise DeliveryError(f"{provider}: odd {key} {code!r}", retryable=True) from None
    message = f"{provider} {key} {code}: {str(data.get(message_key, ''))[:200]}"
    if code in retryable:
        raise DeliveryError(message, retryable=True, retry_after=retryable[code])
    raise DeliveryError(message, retryable=False)
