"""One scrubber for every text that leaves a request: errors, log lines, ledger rows, stored records.

It removes the raw secrets it is given, the value of any `Authorization`-style credential (`Bearer ...`,
`Key ...`, `Basic ...`, `Token ...`), and anything shaped like a JWT (three base64url parts, the first
starting `eyJ`), whether or not the secret that signed it is known here: Kling's token names the access key
in its payload and stays valid for half an hour.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# A credential after its scheme word, e.g. in an echoed header or a repr of the request.
_SCHEMED = re.compile(r"\b(Bearer|Key|Basic|Token)(\s+|%20|\\u0020)[A-Za-z0-9._~+/=:-]{8,}")
# A JWT's header is base64url JSON, so it starts eyJ; a cut-off token (no signature) is masked too.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}(?:\.[A-Za-z0-9_-]*){0,2}")
# A quoted Authorization header value in JSON or a dict repr, whatever its scheme.
_AUTH_VALUE = re.compile(r"""(["']?(?:authorization|x-api-key|api[-_]key)["']?\s*[:=]\s*["']?)[^"',}\s]+""", re.IGNORECASE)


def scrub_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every known secret, credential value and JWT replaced by ***."""
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _JWT.sub(MASK, text)
    text = _SCHEMED.sub(lambda match: f"{match.group(1)} {MASK}", text)
    return _AUTH_VALUE.sub(lambda match: f"{match.group(1)}{MASK}", text)
