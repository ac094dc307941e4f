"""A local OpenID provider (npm oidc-provider) issuing Microsoft Entra ID-shaped access tokens."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import secrets
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

import npmcache
import sessions
from localpg import free_port

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = pathlib.Path(__file__).resolve().parent / "oidc-provider"
# provider.mjs is installed beside node_modules: Node resolves its imports from the script's folder.
PACKAGE_FILES = ("package.json", "package-lock.json", "provider.mjs")
INSTALL_DIR = REPO / ".cache" / "oidc-provider"
SCRIPT = pathlib.Path("provider.mjs")
HOST = "127.0.0.1"
API_SCOPE = "Patients.ReadWrite"
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_AUDIENCE = "00000003-0000-0000-c000-000000000000"
START_WITHIN_SECONDS = 30.0
STOP_WITHIN_SECONDS = 10.0
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")


class OidcUnavailable(RuntimeError):
    """Node.js or npm is missing, so the provider cannot run."""


class ProviderFailed(RuntimeError):
    """The provider did not start, or refused a token; the message carries why."""


@dataclasses.dataclass(frozen=True)
class Client:
    """A client-credentials client standing for one user: its `claims` go into every token."""

    client_id: str
    client_secret: str
    claims: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ProviderConfig:
    """A tenant, the API's app registration, the signing keys (the first signs) and the users."""

    tenant_id: str
    api_client_id: str
    keys: Sequence[Mapping[str, Any]]
    clients: tuple[Client, ...]
    access_token_ttl: int = 3600

    @classmethod
    def new(cls, *clients: Client, access_token_ttl: int = 3600) -> ProviderConfig:
        """A fresh tenant, API client id and signing key for `clients`."""
        ids = (str(uuid.uuid4()), str(uuid.uuid4()))
        return cls(*ids, [new_rsa_jwk("key-1")], clients, access_token_ttl)

    @property
    def api_resource(self) -> str:
        return f"api://{self.api_client_id}"

    def with_keys(self, *keys: Mapping[str, Any]) -> ProviderConfig:
        """This config with other keys, as after a rollover: `with_keys(new, old)`."""
        return dataclasses.replace(self, keys=list(keys))

    def client(self, client_id: str) -> Client:
        for client in self.clients:
            if client.client_id == client_id:
                return client
        raise KeyError(f"no client {client_id!r} in this config")

    def as_json(self, port: int) -> dict[str, Any]:
        """The config file provider.mjs reads."""
        return {
            "port": port,
            "host": HOST,
            "tenant_id": self.tenant_id,
            "jwks": {"keys": [dict(key) for key in self.keys]},
            "resources": {
                self.api_resource: {"audience": self.api_client_id, "scope": API_SCOPE},
                GRAPH_RESOURCE: {"audience": GRAPH_AUDIENCE, "scope": "User.Read"},
            },
            "clients": [dataclasses.asdict(client) for client in self.clients],
            "access_token_ttl": self.access_token_ttl,
        }


def user(client_id: str, *, roles: Sequence[str] = (), **claims: Any) -> Client:
    """A client for a signed-in user: a fresh oid and secret, `scp` the API's scope.

    `user("alice", roles=["Registry.Admin"])` -> claims oid, name "alice",
    preferred_username "alice@example.org", scp "Patients.ReadWrite", roles ["Registry.Admin"].
    """
    defaults: dict[str, Any] = {
        "oid": str(uuid.uuid4()),
        "name": client_id,
        "preferred_username": f"{client_id}@example.org",
        "scp": API_SCOPE,
    }
    if roles:
        defaults["roles"] = list(roles)
    return Client(client_id, secrets.token_urlsafe(24), {**defaults, **claims})


@dataclasses.dataclass(frozen=True)
class RunningProvider:
    """A started provider: its URLs, a token endpoint client and a count of requests it served."""

    config: ProviderConfig
    port: int
    log: pathlib.Path
    discovery: Mapping[str, Any]

    @property
    def authority_host(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def tenant_id(self) -> str:
        return self.config.tenant_id

    @property
    def issuer(self) -> str:
        return str(self.discovery["issuer"])

    @property
    def jwks_uri(self) -> str:
        return str(self.discovery["jwks_uri"])

    @property
    def jwks_path(self) -> str:
        return urllib.parse.urlsplit(self.jwks_uri).path

    def token(self, client_id: str, resource: str | None = None) -> str:
        """An access token for `client_id` (client credentials), by default for the API."""
        client = self.config.client(client_id)
        form = {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "resource": resource or self.config.api_resource,
        }
        answer = _json(self.discovery["token_endpoint"], form)
        return str(answer["access_token"])

    def requests_to(self, path_fragment: str) -> int:
        """How many requests the provider logged whose path contains `path_fragment`."""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return sum(line.startswith("REQUEST ") and path_fragment in line for line in lines)


def install(install_dir: pathlib.Path = INSTALL_DIR) -> pathlib.Path:
    """The folder holding provider.mjs and its node_modules, after `npm ci` if anything changed."""
    try:
        return npmcache.install(PACKAGE, PACKAGE_FILES, install_dir, SCRIPT).parent
    except npmcache.NodeMissing as missing:
        raise OidcUnavailable(f"the local OpenID provider cannot run: {missing}") from missing


@contextlib.contextmanager
def serving(
    config: ProviderConfig,
    *,
    log: pathlib.Path,
    port: int | None = None,
    node_dir: pathlib.Path | None = None,
) -> Iterator[RunningProvider]:
    """`config` served on 127.0.0.1:`port` (a free one by default) until the block exits.

    Restarting on the same port with new keys is how a test rolls the keys over.
    """
    port = port or free_port()
    script = (node_dir or install()) / SCRIPT
    with tempfile.TemporaryDirectory(prefix="localoidc.") as folder:
        config_file = pathlib.Path(folder, "config.json")
        config_file.write_text(json.dumps(config.as_json(port)), encoding="utf-8")
        with log.open("wb") as output:
            process = subprocess.Popen(
                ["node", str(script), str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            discovery = _await_discovery(process, _discovery_url(config, port), log)
            yield RunningProvider(config, port, log, discovery)
        finally:
            _stop(process)


def new_rsa_jwk(kid: str) -> dict[str, Any]:
    """A fresh private RSA signing key as a JWK with `kid`, `alg` RS256 and `use` sig."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    # PyJWT adds key_ops ["sign"], which the provider would publish on the public key as well.
    jwk.pop("key_ops", None)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def public_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The public half of a JWK, as a provider publishes it."""
    return {name: value for name, value in jwk.items() if name not in PRIVATE_JWK_MEMBERS}


def private_key(jwk: Mapping[str, Any]) -> rsa.RSAPrivateKey:
    """The `cryptography` key of a private JWK, to sign with."""
    key = RSAAlgorithm.from_jwk(dict(jwk))
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"JWK {jwk.get('kid')!r} has no private part")
    return key


def mint(jwk: Mapping[str, Any], claims: Mapping[str, Any], **headers: Any) -> str:
    """A token signed RS256 by `jwk` (its kid in the header), for cases no provider would issue."""
    header = {"kid": jwk["kid"], "typ": "JWT", **headers}
    return jwt.encode(dict(claims), private_key(jwk), algorithm="RS256", headers=header)


def _discovery_url(config: ProviderConfig, port: int) -> str:
    return f"http://{HOST}:{port}/{config.tenant_id}/v2.0/.well-known/openid-configuration"


def _await_discovery(
    process: subprocess.Popen[bytes], url: str, log: pathlib.Path
) -> dict[str, Any]:
    deadline = time.monotonic() + START_WITHIN_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ProviderFailed(f"provider exited with {process.returncode}:\n{_tail(log)}")
        # READY first: a provider left running on the port would answer for a new one that
        # could not listen there.
        if "READY" in _tail(log):
            with contextlib.suppress(OSError, ProviderFailed):
                return _json(url)
        time.sleep(0.05)
    raise ProviderFailed(f"{url} did not answer within {START_WITHIN_SECONDS:.0f} s:\n{_tail(log)}")


def _json(url: str, form: Mapping[str, str] | None = None) -> dict[str, Any]:
    """GET `url`, or POST `form` to it, and decode the JSON answer."""
    body = None if form is None else urllib.parse.urlencode(form).encode()
    # Only ever our provider's http://127.0.0.1 URLs (S310 warns of file: and custom schemes).
    request = urllib.request.Request(url, data=body)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            answer: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            detail = error.read().decode(errors="replace")
        raise ProviderFailed(f"{url} answered {error.code}: {detail}") from None
    return answer


def _stop(process: subprocess.Popen[bytes]) -> None:
    sessions.stop(process, STOP_WITHIN_SECONDS)


def _tail(log: pathlib.Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]
