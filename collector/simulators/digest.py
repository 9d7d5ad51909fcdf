"""Digest auth as a Shelly Gen2+ device checks it (SHELLY.md §5), shared by the simulators.

RFC 7616 with SHA-256, qop "auth", user `admin`, realm = the device id. A
simulator mixes `DigestGuard` in and provides `device_id`, `password`, `clock`
and a `_nonces` dict.
"""

import hashlib
import json
import secrets

from aiohttp import web

WS_HA2 = hashlib.sha256(b"dummy_method:dummy_uri").hexdigest()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_auth_header(text: str):
    """Split `a="x, y", b=z` on commas outside quotes."""
    part, quoted = "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            yield part
            part = ""
        else:
            part += char
    if part.strip():
        yield part


class DigestGuard:
    def _new_nonce(self) -> int:
        nonce = int(self.clock()) * 1000 + secrets.randbelow(1000)
        self._nonces[nonce] = self.clock()
        if len(self._nonces) > 1000:
            self._nonces.pop(next(iter(self._nonces)))
        return nonce

    def _ha1(self) -> str:
        return sha256_hex(f"admin:{self.device_id}:{self.password}")

    def _http_authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = {}
        for part in split_auth_header(header[len("Digest ") :]):
            name, _, value = part.partition("=")
            fields[name.strip().lower()] = value.strip().strip('"')
        try:
            nonce = int(fields["nonce"])
        except (KeyError, ValueError):
            return False
        if nonce not in self._nonces or fields.get("username") != "admin":
            return False
        ha2 = sha256_hex(f"{request.method}:{fields.get('uri', '')}")
        expected = sha256_hex(
            f"{self._ha1()}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}"
        )
        return secrets.compare_digest(expected, fields.get("response", ""))

    def _challenge_response(self) -> web.Response:
        header = f'Digest qop="auth", realm="{self.device_id}", nonce="{self._new_nonce()}", algorithm=SHA-256'
        return web.json_response(
            {"code": 401, "message": "Unauthorized"}, status=401, headers={"WWW-Authenticate": header}
        )

    def _ws_challenge(self) -> dict:
        challenge = {
            "auth_type": "digest",
            "nonce": self._new_nonce(),
            "nc": 1,
            "realm": self.device_id,
            "algorithm": "SHA-256",
        }
        return {"code": 401, "message": json.dumps(challenge)}

    def _ws_authorized(self, auth) -> bool:
        if not isinstance(auth, dict) or auth.get("nonce") not in self._nonces:
            return False
        expected = sha256_hex(f"{self._ha1()}:{auth['nonce']}:{auth.get('nc')}:{auth.get('cnonce')}:auth:{WS_HA2}")
        return auth.get("username") == "admin" and secrets.compare_digest(expected, str(auth.get("response", "")))
