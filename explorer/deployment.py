"""Who the app is served to: its user on their own machine (local, the default), or anyone with its address (shared).

On a shared server nothing a visitor types or a link says opens a path on the server: videos come from the
bundled samples or an upload, the network is the demo model or an untrained ViT, and the pages that read or
write server folders (Local path, Weights, the VideoMAE download, Scan) say they are not offered. Set it with
the environment variable below (`token-explorer app --shared` sets it for the server it starts).
"""

from __future__ import annotations

import os

SHARED_ENV = "TOKEN_EXPLORER_SHARED"
SHARED_REFUSAL = "this shared server opens no paths on it"


def shared() -> bool:
    """Whether this process serves the app to others (TOKEN_EXPLORER_SHARED=1, true, yes or on)."""
    return os.environ.get(SHARED_ENV, "").strip().lower() in ("1", "true", "yes", "on")
