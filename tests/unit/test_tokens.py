import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from api import tokens
from tests.identity import (
    CLIENT,
    GRAPH,
    OTHER_TENANT,
    TENANT,
    SigningKey,
    entra_settings,
    unsigned,
    user_claims,
)

KEY = SigningKey.generate("key-1")
OTHER_KEY = SigningKey.generate("key-1")  # same kid, different key: a forger's
ENTRA = entra_settings()


def verified(token: str) -> tokens.Principal:
    assert tokens.key_id(token) == KEY.kid
    return tokens.verify(token, KEY.pyjwk(), ENTRA)


def tamper_payload(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_verify_accepts_both_token_versions_of_the_tenant(version: str) -> None:
    claims = user_claims(version=version, roles=["Registry.Admin"])
    principal = verified(KEY.sign(claims))

    assert principal.tenant_id == TENANT
    assert principal.object_id == claims["oid"]
    assert principal.display_name == "Grace Hopper"
    assert principal.username == "grace@clinic.example.org"
    assert principal.scopes == {"Patients.ReadWrite"}
    assert principal.roles == {"Registry.Admin"}
    assert principal.expires_at == claims["exp"]
    assert not principal.app_only


def test_verify_folds_the_case_of_guids() -> None:
    claims = user_claims(oid="A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D")
    claims["tid"] = TENANT.upper()
    claims["iss"] = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    principal = verified(KEY.sign(claims))

    assert principal.object_id == "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
    assert principal.tenant_id == TENANT


def test_a_token_within_the_clock_skew_is_accepted() -> None:
    now = int(time.time())
    verified(KEY.sign(user_claims(exp=now - 30, nbf=now + 30)))


@pytest.mark.parametrize(
    ("make_claims", "reason"),
    [
        pytest.param(lambda: user_claims(lifetime=-120), "has expired", id="expired"),
        pytest.param(
            lambda: user_claims(nbf=int(time.time()) + 600), "not valid yet", id="not yet valid"
        ),
        pytest.param(
            lambda: user_claims(aud=GRAPH), "another audience", id="a Microsoft Graph token"
        ),
        pytest.param(
            lambda: user_claims(aud="11111111-2222-4333-8444-555555555555"),
            "another audience",
            id="an ID token for the frontend",
        ),
        pytest.param(
            lambda: user_claims(iss="https://login.microsoftonline.com/common/v2.0"),
            "issuer",
            id="an issuer of another form",
        ),
        pytest.param(
            lambda: user_claims(iss=f"https://evil.example.org/{TENANT}/v2.0"),
            "issuer",
            id="an issuer on another host",
        ),
        pytest.param(lambda: user_claims(tenant=OTHER_TENANT), "tenant", id="another tenant"),
        pytest.param(
            lambda: {
                **user_claims(),
                "iss": f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0",
            },
            "issuer",
            id="another tenant's issuer",
        ),
        pytest.param(
            lambda: {k: v for k, v in user_claims().items() if k != "oid"}, "no oid", id="no oid"
        ),
        pytest.param(
            lambda: {k: v for k, v in user_claims().items() if k != "exp"}, "no exp", id="no expiry"
        ),
        pytest.param(lambda: user_claims(oid="alice"), "oid", id="an oid that is no GUID"),
        pytest.param(
            lambda: user_claims(exp="tomorrow"), "malformed", id="an expiry that is no number"
        ),
    ],
)
def test_verify_refuses_untrusted_claims(
    make_claims: Callable[[], dict[str, Any]], reason: str
) -> None:
    # Claims are made when the test runs, not at collection: a token minted at collection
    # with nbf = now + 600 became valid when the suite took longer than nine minutes.
    with pytest.raises(tokens.InvalidToken, match=reason):
        verified(KEY.sign(make_claims()))


def test_verify_refuses_a_token_signed_by_another_key_with_the_same_kid() -> None:
    with pytest.raises(tokens.InvalidToken, match="signature"):
        verified(OTHER_KEY.sign(user_claims()))


def test_verify_refuses_a_tampered_payload_and_signature() -> None:
    token = KEY.sign(user_claims())
    with pytest.raises(tokens.InvalidToken, match="signature"):
        verified(tamper_payload(token, oid="a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"))
    header, payload, signature = token.split(".")
    flipped = signature[:-6] + ("AAAAAA" if not signature.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(tokens.InvalidToken):
        verified(f"{header}.{payload}.{flipped}")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(unsigned(user_claims(), kid="key-1"), "RS256", id="alg none"),
        pytest.param("not-a-jwt", "well-formed", id="not a JWT"),
        pytest.param("a.b.c", "well-formed", id="three parts of nothing"),
        pytest.param(KEY.sign(user_claims(), kid=None), "kid", id="no kid"),
        pytest.param(
            KEY.sign(user_claims(), kid="k\r\nX-Injected: 1"), "kid", id="a kid with a newline"
        ),
        pytest.param(KEY.sign(user_claims(), kid="k" * 200), "kid", id="a very long kid"),
        pytest.param(KEY.sign(user_claims(), nonce="abc"), "Microsoft Graph", id="a Graph header"),
        pytest.param(KEY.sign(user_claims(padding="x" * 20_000)), "too long", id="oversized"),
    ],
)
def test_key_id_refuses_what_needs_no_key_to_refuse(token: str, reason: str) -> None:
    with pytest.raises(tokens.InvalidToken, match=reason):
        tokens.key_id(token)


def test_hmac_signed_with_the_public_key_never_verifies() -> None:
    """The classic algorithm confusion: HS256 keyed with the RSA public key's PEM."""
    header = {"alg": "HS256", "kid": KEY.kid, "typ": "JWT"}
    signing_input = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in (header, user_claims())
    )
    mac = hmac.new(KEY.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    with pytest.raises(tokens.InvalidToken, match="RS256"):
        tokens.key_id(token)
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(token, KEY.pyjwk(), ENTRA)


@pytest.mark.parametrize(
    ("claims", "allowed"),
    [
        pytest.param({"scp": "User.Read Patients.ReadWrite"}, True, id="the scope among others"),
        pytest.param({"scp": "User.Read"}, False, id="another scope"),
        pytest.param({"scp": "Patients.ReadWrite.Extra"}, False, id="a longer scope"),
        pytest.param(
            {"scp": "User.Read", "roles": ["Patients.ReadWrite.All"]},
            False,
            id="a user with the app role but not the scope",
        ),
        pytest.param({"scp": None, "roles": ["Patients.ReadWrite.All"]}, True, id="an app"),
        pytest.param({"scp": None, "roles": ["Registry.Admin"]}, False, id="an app, no role"),
    ],
)
def test_authorize_needs_the_scope_or_for_an_app_the_role(
    claims: dict[str, Any], allowed: bool
) -> None:
    token_claims = {k: v for k, v in {**user_claims(), **claims}.items() if v is not None}
    principal = verified(KEY.sign(token_claims))
    if allowed:
        tokens.authorize(principal, ENTRA)
    else:
        with pytest.raises(tokens.InsufficientScope, match="lacks"):
            tokens.authorize(principal, ENTRA)


def test_refusal_reasons_never_echo_claims() -> None:
    claims = user_claims(tenant=OTHER_TENANT, name="Patient Zero")
    with pytest.raises(tokens.InvalidToken) as refused:
        verified(KEY.sign(claims))
    assert OTHER_TENANT not in str(refused.value)
    assert "Patient Zero" not in str(refused.value)
    assert CLIENT not in str(refused.value)
