"""WebRTC settings of the Webcam page: the ICE servers (STUN/TURN) the browser and the server use.

With nothing configured no third-party server is contacted (localhost or a LAN without NAT); a
remote deployment names its servers in environment variables or ``.streamlit/secrets.toml``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ICE_ENV = {"stun": "FER_STUN_URLS", "turn": "FER_TURN_URLS", "username": "FER_TURN_USERNAME",
           "credential": "FER_TURN_CREDENTIAL"}


def _urls(value) -> list[str]:
    if isinstance(value, str):
        return [u.strip() for u in value.split(",") if u.strip()]
    return [str(u).strip() for u in value or [] if str(u).strip()]


def rtc_configuration(env: Mapping[str, str] | None = None, secrets: Mapping | None = None) -> dict:
    """The WebRTC configuration for the webcam stream (browser and server): ``{"iceServers": [...]}``.

    With nothing configured the list is empty: browser and server connect over the host's own
    addresses (localhost, or a LAN without NAT) and no third-party server is contacted. For a remote
    deployment, give STUN/TURN servers (RFC 8489 / RFC 8656) either in environment variables
    ``FER_STUN_URLS`` (comma-separated ``stun:host:port``), ``FER_TURN_URLS``, ``FER_TURN_USERNAME``
    and ``FER_TURN_CREDENTIAL``, or in ``.streamlit/secrets.toml``::

        [webrtc]
        ice_servers = [
          { urls = ["stun:stun.example.org:3478"] },
          { urls = ["turn:turn.example.org:3478"], username = "user", credential = "secret" },
        ]

    Both sources are combined (secrets first).

    Args:
        env: environment variables (default ``os.environ``).
        secrets: the ``[webrtc]`` section of Streamlit's secrets, or None.

    Returns:
        A dict for ``webrtc_streamer(rtc_configuration=...)``.

    Raises:
        ValueError: a TURN server without username or credential, a server without URLs, or a URL
            that is not ``stun:``, ``turn:`` or ``turns:``.
    """
    env = os.environ if env is None else env
    servers: list[dict] = []
    for i, entry in enumerate((secrets or {}).get("ice_servers", []) or []):
        urls = _urls(entry.get("urls") if isinstance(entry, Mapping) else None)
        if not urls:
            raise ValueError(f"secrets [webrtc] ice_servers[{i}] has no 'urls'; give e.g. urls = ['stun:host:3478']")
        server = {"urls": urls}
        for key in ("username", "credential"):
            if entry.get(key):
                server[key] = str(entry[key])
        servers.append(server)
    stun = _urls(env.get(ICE_ENV["stun"], ""))
    if stun:
        servers.append({"urls": stun})
    turn = _urls(env.get(ICE_ENV["turn"], ""))
    if turn:
        servers.append({"urls": turn, "username": env.get(ICE_ENV["username"], ""),
                        "credential": env.get(ICE_ENV["credential"], "")})
    for s in servers:
        for u in s["urls"]:
            if not u.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"ICE server URL {u!r} must start with stun:, turn: or turns:")
        if any(u.startswith("turn") for u in s["urls"]) and not (s.get("username") and s.get("credential")):
            raise ValueError(f"TURN server {s['urls'][0]} needs a username and a credential (set "
                             f"{ICE_ENV['username']} and {ICE_ENV['credential']}, or username/credential in "
                             "the [webrtc] section of .streamlit/secrets.toml)")
    return {"iceServers": servers}
