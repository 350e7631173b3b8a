"""Tokens: real moto Cognito tokens are accepted, every forged kind is refused with 401, permissions 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from categorizer.api.auth import (
    LEEWAY_SECONDS,
    AuthenticationError,
    AuthUnavailableError,
    JwksCache,
    TokenVerifier,
    VerifiedTokens,
)
from tests.api.conftest import CLASSIFY_SCOPE, FEEDBACK_SCOPE, Api, Cognito, assert_error

CLASSIFY = {"texts": ["When will my new card arrive?"]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict, claims: dict) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _with(cognito: Cognito, **changes) -> str:
    claims = cognito.machine_claims()
    claims.update(changes)
    return cognito.sign({k: v for k, v in claims.items() if v is not None})


def _another_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _alg_none(cognito: Cognito) -> str:
    return _segments({"alg": "none", "kid": "dummy", "typ": "JWT"}, cognito.machine_claims()) + "."


def _hs256_with_public_key(cognito: Cognito) -> str:
    """The classic confusion attack: HMAC keyed with the RSA public key the verifier knows."""
    public_pem = cognito.signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = _segments({"alg": "HS256", "kid": "dummy", "typ": "JWT"}, cognito.machine_claims())
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _tampered(cognito: Cognito) -> str:
    """A real moto token of bob (classify only) with `feedback` added to his groups, signature kept."""
    header, payload, signature = cognito.access_token("bob").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["cognito:groups"] = ["classify", "feedback"]
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _from_another_pool(cognito: Cognito) -> str:
    return cognito.sign_in("alice", client_id=cognito.other_client_id)["AccessToken"]


def _wrong_client(cognito: Cognito) -> str:
    return cognito.sign_in("alice", client_id=cognito.rogue_client_id)["AccessToken"]


def _id_token_for_another_audience(cognito: Cognito) -> str:
    return cognito.sign_in("alice", client_id=cognito.rogue_client_id)["IdToken"]


def _expired_replay(cognito: Cognito) -> str:
    """alice's real access token, replayed after it expired (same claims, exp in the past)."""
    claims = jwt.decode(cognito.access_token("alice"), options={"verify_signature": False})
    claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    return cognito.sign(claims)


# kind -> (how to make it, the reason the API must give: proves which check refused it)
FORGED: dict[str, tuple[Callable[[Cognito], str], str]] = {
    "expired": (lambda c: _with(c, iat=int(time.time()) - 7200, exp=int(time.time()) - 60), "expired"),
    "expired real token replayed": (_expired_replay, "expired"),
    "not yet valid (nbf)": (lambda c: _with(c, nbf=int(time.time()) + 600), "not valid yet"),
    "issued in the future (iat)": (lambda c: _with(c, iat=int(time.time()) + 600), "not valid yet"),
    "wrong issuer": (lambda c: _with(c, iss=f"https://cognito-idp.us-east-1.amazonaws.com/{c.other_pool_id}"),
                     "another issuer"),
    "issuer over http": (lambda c: _with(c, iss=c.issuer.replace("https://", "http://")), "another issuer"),
    "wrong client (real token)": (_wrong_client, "app client"),
    "wrong client (client_id claim)": (lambda c: _with(c, client_id="someone-elses-client"), "app client"),
    "id token for another audience": (_id_token_for_another_audience, "app client"),
    "wrong token_use": (lambda c: _with(c, token_use="refresh"), "token_use must be"),
    "no token_use": (lambda c: _with(c, token_use=None), "lacks the `token_use`"),
    "no exp": (lambda c: _with(c, exp=None), "lacks the `exp`"),
    "unknown kid": (lambda c: c.sign(c.machine_claims(), headers={"kid": "rotated-away"}, key=_another_rsa_key()),
                    "unknown key"),
    "known kid, another key": (lambda c: c.sign(c.machine_claims(), key=_another_rsa_key()), "signature"),
    "alg none": (_alg_none, "must be signed with RS256"),
    "HS256 signed with the public key": (_hs256_with_public_key, "must be signed with RS256"),
    "tampered payload": (_tampered, "signature"),
    "token from another pool": (_from_another_pool, "another issuer"),
    "garbage": (lambda c: "not-a-jwt", "well-formed"),
    "three garbage segments": (lambda c: "a.b.c", "well-formed"),
    "header that is not an object": (lambda c: f"{_b64(b'[1]')}.{_b64(b'{}')}.sig", "well-formed"),
}


def test_real_people_tokens_are_accepted(api: Api, api_env: Cognito) -> None:
    access = api.call("classify", token=api_env.access_token("alice"), body=CLASSIFY)
    id_token = api.call("classify", token=api_env.id_token("alice"), body=CLASSIFY)

    assert access.status == 200, access.body
    assert id_token.status == 200, id_token.body


def test_machine_tokens_are_accepted(api: Api, api_env: Cognito) -> None:
    """The control for the forged catalogue: the same claims and key, unmodified, pass."""
    response = api.call("classify", token=api_env.sign(api_env.machine_claims()), body=CLASSIFY)

    assert response.status == 200, response.body


@pytest.mark.parametrize("kind", FORGED)
def test_forged_tokens_are_refused(api: Api, api_env: Cognito, kind: str) -> None:
    make, reason = FORGED[kind]

    response = api.call("classify", token=make(api_env), body=CLASSIFY)

    error = assert_error(response, 401, "unauthenticated")
    assert reason in error["message"]
    assert response.headers["www-authenticate"].startswith('Bearer realm="categorizer", error="invalid_token"')


def test_a_missing_token_is_401_with_a_challenge(api: Api, api_env: Cognito) -> None:
    response = api.call("classify", body=CLASSIFY)

    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="categorizer"'


@pytest.mark.parametrize("authorization", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", "token-without-scheme"])
def test_other_authorization_schemes_are_401(api: Api, api_env: Cognito, authorization: str) -> None:
    response = api.call("classify", body=CLASSIFY, headers={"Authorization": authorization})

    assert_error(response, 401, "unauthenticated")


@pytest.mark.parametrize(("route", "token_of", "needed"), [
    ("classify", lambda c: c.access_token("carol"), CLASSIFY_SCOPE),  # a user in no group
    ("model", lambda c: c.access_token("carol"), CLASSIFY_SCOPE),
    ("feedback", lambda c: c.access_token("bob"), FEEDBACK_SCOPE),  # classify group only
    ("feedback", lambda c: c.machine_token((CLASSIFY_SCOPE,)), FEEDBACK_SCOPE),
    ("classify", lambda c: c.machine_token((FEEDBACK_SCOPE,)), CLASSIFY_SCOPE),
    ("model", lambda c: c.machine_token(("aws.cognito.signin.user.admin",)), CLASSIFY_SCOPE),
])
def test_missing_permissions_are_403(api: Api, api_env: Cognito, route: str, token_of, needed: str) -> None:
    body = CLASSIFY if route == "classify" else None
    if route == "feedback":
        body = {"prediction_id": "p1", "text": "t", "predicted_label": "card_arrival",
                "correct_label": "card_arrival"}

    response = api.call(route, token=token_of(api_env), body=body)

    assert_error(response, 403, "forbidden")
    assert f'scope="{needed}"' in response.headers["www-authenticate"]


def test_jwks_is_fetched_once_and_unknown_kids_do_not_flood_it(api: Api, api_services, api_env: Cognito) -> None:
    for _ in range(5):
        assert api.call("classify", token=api_env.machine_token(), body=CLASSIFY).status == 200
    forged = FORGED["unknown kid"][0](api_env)
    for _ in range(20):
        assert api.call("classify", token=forged, body=CLASSIFY).status == 401

    # one fetch at first use; an unknown kid may refetch at most once per minute
    assert api_services.verifier.get().jwks.fetch_count <= 2


def test_unknown_kid_refetches_after_the_interval_to_pick_up_rotated_keys(api_env: Cognito) -> None:
    now = [1000.0]
    cache = JwksCache(api_env.jwks_url, refresh_interval=60, clock=lambda: now[0])
    cache.signing_key("dummy")
    with pytest.raises(AuthenticationError):
        cache.signing_key("new-kid")
    with pytest.raises(AuthenticationError):
        cache.signing_key("new-kid")
    assert cache.fetch_count == 1  # within the interval: no refetch
    now[0] += 61
    with pytest.raises(AuthenticationError):
        cache.signing_key("new-kid")
    assert cache.fetch_count == 2


def test_unreachable_jwks_is_503_not_500(api_config, build_handler, lambda_context, api_env: Cognito) -> None:
    import dataclasses

    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    closed = f"http://127.0.0.1:{closed_port}/{api_env.pool_id}/.well-known/jwks.json"
    unreachable = dataclasses.replace(api_config, identity=dataclasses.replace(api_config.identity, jwks_url=closed))
    api = Api(build_handler(unreachable), lambda_context, "rest_v1")

    response = api.call("classify", token=api_env.machine_token(), body=CLASSIFY)

    assert_error(response, 503, "auth_unavailable")
    assert response.headers["retry-after"] == "1"


def test_jwks_over_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(AuthUnavailableError):
        JwksCache("http://cognito-idp.us-east-1.amazonaws.com/pool/.well-known/jwks.json")


# --- Verified tokens are remembered until they expire ------------------------------------------------------


def _verifier(cognito: Cognito, now: list[float]) -> TokenVerifier:
    return TokenVerifier(issuer=cognito.issuer, client_ids=[cognito.machine_client_id],
                         jwks=JwksCache(cognito.jwks_url), verified=VerifiedTokens(clock=lambda: now[0]))


def test_a_remembered_token_lapses_when_its_exp_and_the_leeway_pass(api_env: Cognito) -> None:
    claims = api_env.machine_claims()
    now = [float(claims["iat"])]
    verifier = _verifier(api_env, now)
    token = api_env.sign(claims)

    first, again = verifier.verify(token), verifier.verify(token)

    assert again == first and len(verifier.verified) == 1
    now[0] = claims["exp"] + LEEWAY_SECONDS - 1
    assert verifier.verified.get(token) == first
    now[0] = claims["exp"] + LEEWAY_SECONDS  # the moment jwt.decode refuses it too: the full check runs again
    assert verifier.verified.get(token) is None and len(verifier.verified) == 0


def test_a_tampered_copy_of_a_remembered_token_is_still_refused(api_env: Cognito) -> None:
    now = [time.time()]
    verifier = _verifier(api_env, now)
    token = api_env.access_token("bob")
    verifier_for_people = TokenVerifier(issuer=api_env.issuer, client_ids=[api_env.people_client_id],
                                        jwks=verifier.jwks, verified=verifier.verified)
    assert verifier_for_people.verify(token).groups == frozenset({"classify"})

    with pytest.raises(AuthenticationError, match="signature"):
        verifier_for_people.verify(_tampered(api_env))


def test_remembered_tokens_are_bounded_least_recently_used_first(api_env: Cognito) -> None:
    now = [time.time()]
    verifier = TokenVerifier(issuer=api_env.issuer, client_ids=[api_env.machine_client_id],
                             jwks=JwksCache(api_env.jwks_url), verified=VerifiedTokens(capacity=2,
                                                                                       clock=lambda: now[0]))
    tokens = [api_env.machine_token() for _ in range(3)]
    for token in tokens:
        verifier.verify(token)

    assert len(verifier.verified) == 2
    assert verifier.verified.get(tokens[0]) is None and verifier.verified.get(tokens[2]) is not None
