"""Media URLs: where they point and, for media not everyone may see, their signature.

A media URL never names the storage vendor: it is `HOLDFAST_MEDIA__BASE_URL` (a CDN or an
alias host in front of this server) or this server's own `/media`, then the object's key.
Media that everyone may see (a public post's, an avatar or header in use) have plain URLs;
anything else is served only with `?exp=<unix seconds>&sig=<hex HMAC-SHA256 over the key and
exp>`, minted only for a viewer the visibility rule already let see it (app/routes/media.py
checks them).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

from app.settings import Settings

MEDIA_PATH = "/media"
SIGNATURE_LENGTH = 64  # hex digits of an HMAC-SHA256
_HEX_DIGITS = "0123456789abcdef"


class MediaLinks:
    def __init__(self, settings: Settings) -> None:
        # A key of its own, derived from the signing key: a media signature can never be
        # mistaken for (or turned into) a token signature.
        self._key = hmac.new(
            settings.signing_key().encode(), b"holdfast media urls", hashlib.sha256
        ).digest()
        base = settings.media.base_url
        self._base = base.rstrip("/") if base else None
        self.ttl = settings.media.signed_url_ttl

    def url(self, key: str, *, origin: str, public: bool, now: float | None = None) -> str:
        """The URL of the stored object `key`: plain when `public`, else signed for
        `signed_url_ttl` seconds. `origin` (`scheme://host[:port]` of the request) is used
        when no base URL is configured."""
        base = self._base or origin.rstrip("/") + MEDIA_PATH
        url = f"{base}/{quote(key)}"
        if public:
            return url
        # Rounded up to the minute, so the URLs a page gets within one minute are the same
        # (cacheable by the client) and each lives between ttl and ttl + 60 seconds.
        expires = (int(now if now is not None else time.time()) + self.ttl) // 60 * 60 + 60
        return f"{url}?exp={expires}&sig={self.signature(key, expires)}"

    def signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def check(self, key: str, exp: str | None, sig: str | None, now: float | None = None) -> int:
        """Seconds the signature `sig` of `key` until `exp` is still good for (0: it is
        missing, malformed, wrong or expired)."""
        # ASCII only: str.isdigit() takes other scripts' digits and superscripts, which int()
        # refuses, and compare_digest() refuses non-ASCII strings: a query string is anything.
        if not exp or not sig or len(exp) > 12 or not (exp.isascii() and exp.isdigit()):
            return 0
        if len(sig) != SIGNATURE_LENGTH or sig.strip(_HEX_DIGITS):
            return 0
        expected = self.signature(key, int(exp))
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            return 0
        return max(0, int(exp) - int(now if now is not None else time.time()))
