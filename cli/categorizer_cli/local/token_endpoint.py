"""The Cognito domain's OAuth2 token endpoint, for the emulator (moto has none).

Client-credentials grant only: the client id and secret are checked against the emulated user pool, the
scopes against the client's allowed scopes, and the access token is signed with the same key moto's Cognito
uses for its own tokens (the one behind its JWKS), in the claim shape Cognito issues.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
from moto.utilities.utils import load_resource

from categorizer_cli.local.provision import client

TOKEN_LIFETIME_SECONDS = 3600


class TokenIssuer:
    def __init__(self, *, endpoint: str, region: str, user_pool_id: str) -> None:
        self._idp = client("cognito-idp", endpoint)
        self._pool = user_pool_id
        self._issuer = f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
        self._key = jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json")).key

    def issue(self, client_id: str, secret: str, requested_scopes: list[str]) -> tuple[int, dict]:
        try:
            app = self._idp.describe_user_pool_client(UserPoolId=self._pool, ClientId=client_id)["UserPoolClient"]
        except self._idp.exceptions.ResourceNotFoundException:
            return 400, {"error": "invalid_client"}
        if not secret or app.get("ClientSecret") != secret:
            return 400, {"error": "invalid_client"}
        if "client_credentials" not in app.get("AllowedOAuthFlows", []):
            return 400, {"error": "unauthorized_client"}
        allowed = app.get("AllowedOAuthScopes", [])
        scopes = requested_scopes or allowed
        if not set(scopes) <= set(allowed):
            return 400, {"error": "invalid_scope"}
        now = int(time.time())
        claims = {"sub": client_id, "token_use": "access", "scope": " ".join(scopes), "auth_time": now,
                  "iss": self._issuer, "exp": now + TOKEN_LIFETIME_SECONDS, "iat": now, "version": 2,
                  "jti": str(uuid.uuid4()), "client_id": client_id}
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": "dummy"})
        return 200, {"access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS, "token_type": "Bearer"}


def _handler_for(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/oauth2/token":
                return self._send(404, {"error": "not_found"})
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
            if form.get("grant_type") != "client_credentials":
                return self._send(400, {"error": "unsupported_grant_type"})
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                try:
                    client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return self._send(400, {"error": "invalid_client"})
            status, body = issuer.issue(client_id, secret, form.get("scope", "").split())
            return self._send(status, body)

        def _send(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args) -> None:  # keep the stack log for our own lines
            return

    return Handler


def serve_tokens(issuer: TokenIssuer, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler_for(issuer))
    threading.Thread(target=server.serve_forever, name="token-endpoint", daemon=True).start()
    return server
