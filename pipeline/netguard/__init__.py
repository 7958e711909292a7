"""SSRF-safe HTTP(S) download: the only place ingest touches the network.

Every hop (the first URL and each redirect) is checked the same way: http/https only, no
credentials, the host resolved exactly once, every resolved address vetted, then the connection
is made to the vetted IP itself while the original name travels in the ``Host`` header and, for
https, in SNI and the certificate check. A second DNS lookup never happens, so a name that
re-resolves to an internal address between check and connect (DNS rebinding) gets nowhere.
This is the Python counterpart of imgproxy's ``dialer.Control`` check.

Bodies are streamed to disk under a byte cap and one monotonic deadline. urllib3 exceptions
never leave this package; callers see only :mod:`pipeline.errors` types.

:mod:`.vet` decides which URLs and addresses may be fetched (pure checks and the one DNS
lookup per hop); :mod:`.client` makes the requests and streams the bodies.
"""

from __future__ import annotations

from .client import Downloaded, download
from .vet import check_address, check_url, safe_url

__all__ = ["Downloaded", "check_address", "check_url", "download", "safe_url"]
