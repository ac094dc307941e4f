"""Tokens made by hand, for what a real identity provider never issues (expired, forged,
wrong tenant...): a generated RSA key and Entra-shaped claims signed with PyJWT."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

import localoidc
from api.settings import EntraSettings

TENANT = "3f1c8d52-6a0e-4b7f-9c2d-5e8a1b4c7d90"
CLIENT = "9a7b6c5d-4e3f-4a1b-8c2d-1e0f9a8b7c6d"
OTHER_TENANT = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
GRAPH = "00000003-0000-0000-c000-000000000000"


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """A private RSA key as a JWK (localoidc's, the same the test provider signs with)."""

    jwk: dict[str, Any]

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        return cls(localoidc.new_rsa_jwk(kid or uuid.uuid4().hex[:16]))

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    def public_jwk(self) -> dict[str, Any]:
        return localoidc.public_jwk(self.jwk)

    def private_jwk(self) -> dict[str, Any]:
        """The private key as a JWK, for the provider to sign with."""
        return dict(self.jwk)

    def pyjwk(self) -> jwt.PyJWK:
        return jwt.PyJWK(self.public_jwk(), algorithm="RS256")

    def public_pem(self) -> bytes:
        return (
            localoidc.private_key(self.jwk)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """Signed RS256 with the kid in the header; `kid=None` leaves it out."""
        headers = {key: value for key, value in {"kid": self.kid, **header}.items() if value}
        return jwt.encode(
            claims, localoidc.private_key(self.jwk), algorithm="RS256", headers=headers
        )


def entra_settings(**overrides: Any) -> EntraSettings:
    values: dict[str, Any] = {
        "client_id": CLIENT,
        "tenant_id": TENANT,
        "allowed_tenants": (TENANT,),
        "audiences": (CLIENT, f"api://{CLIENT}"),
    }
    return EntraSettings(**{**values, **overrides})


def user_claims(
    *, version: str = "2.0", tenant: str = TENANT, lifetime: int = 3600, **overrides: Any
) -> dict[str, Any]:
    """A delegated (user) access token's claims, as Entra issues them for this API."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": CLIENT if version == "2.0" else f"api://{CLIENT}",
        "iss": (
            f"https://login.microsoftonline.com/{tenant}/v2.0"
            if version == "2.0"
            else f"https://sts.windows.net/{tenant}/"
        ),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tenant,
        "oid": str(uuid.uuid4()),
        "sub": "pairwise-subject",
        "scp": "Patients.ReadWrite",
        "name": "Grace Hopper",
        "ver": version,
        ("preferred_username" if version == "2.0" else "upn"): "grace@clinic.example.org",
    }
    return {**claims, **overrides}


def unsigned(claims: dict[str, Any], **header: Any) -> str:
    """An `alg: none` token: header and claims, an empty signature."""
    parts = ({"alg": "none", "typ": "JWT", **header}, claims)
    encoded = (base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=") for part in parts)
    return b".".join(encoded).decode() + "."
