"""Verify Cognito bearer tokens (RS256 JWTs) and decide what the caller may do.

The same code runs locally (keys from the Cognito emulator) and in AWS: the JWKS URL is a setting apart
from the issuer. Checked: algorithm (RS256 only), signing key (by `kid`, from the pool's JWKS), signature,
issuer, `token_use` (access or id), the app client (`client_id` of access tokens, `aud` of id tokens),
`exp` / `nbf` / `iat` with a small leeway.

A token that passed every check is remembered (by its exact string, signature included) until it expires:
clients send the same token for an hour, and the RSA check plus pyjwt's parsing cost more per request than
the rest of the API layer together (bench/results/*-api-handler.md). A remembered token is refused from the
moment its `exp` (plus the leeway) passes, exactly as a fresh check would.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import jwt

from categorizer.contract import Identity
from categorizer.observability import logger

ALGORITHM = "RS256"
LEEWAY_SECONDS = 10
VERIFIED_TOKENS_KEPT = 1024  # a container serves few callers; the bound keeps forged-token floods harmless
REALM = "categorizer"
# Cognito access tokens name the app client in `client_id`, ID tokens in `aud`.
CLIENT_CLAIM_BY_TOKEN_USE = {"access": "client_id", "id": "aud"}
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class AuthenticationError(Exception):
    """No token, or a token this API does not accept (401)."""

    def __init__(self, message: str, *, token_present: bool = True) -> None:
        super().__init__(message)
        self.token_present = token_present


class PermissionDeniedError(Exception):
    """A valid token without the permission the route needs (403)."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this operation needs the `{scope}` scope (or the matching group)")
        self.scope = scope


class AuthUnavailableError(Exception):
    """Tokens cannot be verified right now: not configured, or the signing keys cannot be fetched (503)."""


@dataclass(frozen=True)
class Principal:
    """Who called: a person (user/password app client) or a machine (client-credentials app client)."""

    subject: str  # token `sub`: the user's id, or the app client id for client-credentials tokens
    client_id: str
    token_use: str
    username: str | None
    scopes: frozenset[str]
    groups: frozenset[str]

    def may(self, *, scope: str, group: str) -> bool:
        return scope in self.scopes or group in self.groups


def require_permission(principal: Principal, *, scope: str, group: str) -> Principal:
    if not principal.may(scope=scope, group=group):
        raise PermissionDeniedError(scope)
    return principal


class JwksCache:
    """The pool's signing keys, fetched once and kept.

    An unknown `kid` triggers a refetch (Cognito may have rotated keys) at most once per
    `refresh_interval`, so a flood of forged tokens cannot turn into a flood of JWKS requests.
    """

    def __init__(self, url: str, *, refresh_interval: float = 60.0, max_age: float = 3600.0,
                 timeout: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "https" and not (parsed.scheme == "http" and parsed.hostname in _LOOPBACK_HOSTS):
            raise AuthUnavailableError(f"JWKS URL must be https (http only on loopback): {url}")
        self.url = url
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self.fetch_count = 0

    def signing_key(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is not None and not self._stale():
            return key
        with self._lock:
            if self._keys.get(kid) is None or self._stale():
                self._maybe_refresh()
            key = self._keys.get(kid)
        if key is None:
            raise AuthenticationError("token is signed with an unknown key")
        return key

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._max_age

    def _maybe_refresh(self) -> None:
        now = self._clock()
        # Without any key, retry soon; with keys, a refetch is rate-limited.
        interval = self._refresh_interval if self._keys else 1.0
        if self._attempted_at is not None and now - self._attempted_at < interval:
            if not self._keys:
                raise AuthUnavailableError("the token signing keys cannot be fetched; retry later")
            return
        self._attempted_at = now
        try:
            self._keys = self._fetch()
            self._fetched_at = now
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            logger.error("JWKS fetch failed", extra={"jwks_url": self.url, "error": str(exc)})
            if not self._keys:
                raise AuthUnavailableError("the token signing keys cannot be fetched; retry later") from exc

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        self.fetch_count += 1
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 - scheme checked
            document = json.loads(response.read(1_000_000))
        keys: dict[str, jwt.PyJWK] = {}
        for data in document.get("keys", []):
            if data.get("kty") != "RSA" or data.get("use", "sig") != "sig" or not isinstance(data.get("kid"), str):
                continue
            keys[data["kid"]] = jwt.PyJWK(data, algorithm=ALGORITHM)
        if not keys:
            raise ValueError("the JWKS holds no RSA signing key")
        return keys


class VerifiedTokens:
    """Tokens that passed verification, with the time each stops being valid; least recently used go first."""

    def __init__(self, *, capacity: int = VERIFIED_TOKENS_KEPT, clock: Callable[[], float] = time.time) -> None:
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def get(self, token: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            principal, valid_until = entry
            if self._clock() >= valid_until:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return principal

    def put(self, token: str, principal: Principal, *, valid_until: float) -> None:
        with self._lock:
            self._entries[token] = (principal, valid_until)
            self._entries.move_to_end(token)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class TokenVerifier:
    def __init__(self, *, issuer: str, client_ids: Iterable[str], jwks: JwksCache,
                 leeway: float = LEEWAY_SECONDS, verified: VerifiedTokens | None = None) -> None:
        self.issuer = issuer
        self.client_ids = frozenset(client_ids)
        self.jwks = jwks
        self.leeway = leeway
        self.verified = verified if verified is not None else VerifiedTokens()

    def verify(self, token: str) -> Principal:
        known = self.verified.get(token)
        if known is not None:
            return known
        claims = self._verified_claims(token)
        principal = self._principal(claims)
        # jwt.decode accepted `exp` with the leeway; the remembered token lapses at that same moment.
        self.verified.put(token, principal, valid_until=float(claims["exp"]) + self.leeway)
        return principal

    def _principal(self, claims: dict[str, Any]) -> Principal:
        use = claims["token_use"]
        if use not in CLIENT_CLAIM_BY_TOKEN_USE:
            raise AuthenticationError("token_use must be `access` or `id`")
        client_id = claims.get(CLIENT_CLAIM_BY_TOKEN_USE[use])
        if not isinstance(client_id, str) or client_id not in self.client_ids:
            raise AuthenticationError("token was issued to an app client this API does not accept")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("token has no subject")
        return Principal(
            subject=subject,
            client_id=client_id,
            token_use=use,
            username=_optional_str(claims.get("username") or claims.get("cognito:username")),
            scopes=frozenset(_str_list(claims.get("scope", ""))),
            groups=frozenset(_str_list(claims.get("cognito:groups", []))),
        )

    def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("token is not a well-formed JWT") from exc
        if header.get("alg") != ALGORITHM:
            raise AuthenticationError(f"token must be signed with {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("token has no key id")
        key = self.jwks.signing_key(kid)
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError("token is not valid yet") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError("token was issued by another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the `{exc.claim}` claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError("token signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("token is invalid") from exc


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def build_token_verifier(identity: Identity) -> TokenVerifier:
    """One verifier (and JWKS cache) per container; the contract checked the values at cold start."""
    return TokenVerifier(issuer=identity.token_issuer, client_ids=identity.app_client_ids,
                         jwks=JwksCache(identity.token_jwks_url))
