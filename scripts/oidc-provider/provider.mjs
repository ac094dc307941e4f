// oidc-provider with Microsoft Entra ID's URLs and access-token claims: `node provider.mjs config.json`.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const tenant = `/${config.tenant_id}`;
const resources = new Map(Object.entries(config.resources));
const claims = new Map(config.clients.map((client) => [client.client_id, client.claims]));
const signingKid = config.jwks.keys[0].kid;

function resourceServer(_ctx, indicator) {
  const resource = resources.get(indicator);
  if (resource === undefined) throw new errors.InvalidTarget();
  return {
    scope: resource.scope,
    audience: resource.audience,
    accessTokenFormat: 'jwt',
    accessTokenTTL: config.access_token_ttl,
    // The first key signs; the others are only published, as during a key rollover.
    jwt: { sign: { alg: 'RS256', kid: signingKid } },
  };
}

function entraClaims(_ctx, token) {
  // Spread before the standard claims by oidc-provider, so a client's claims cannot replace aud or iss.
  return { tid: config.tenant_id, ver: '2.0', azp: token.clientId, ...claims.get(token.clientId) };
}

function entraShape(_ctx, _token, jwt) {
  // Entra's access tokens are typed JWT (oidc-provider's default is RFC 9068's at+jwt) and carry nbf.
  jwt.header = { typ: 'JWT' };
  jwt.payload.nbf = jwt.payload.iat;
}

const provider = new Provider(`http://${config.host}:${config.port}${tenant}/v2.0`, {
  jwks: config.jwks,
  clients: config.clients.map(({ client_id, client_secret }) => ({
    client_id, client_secret, grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
  })),
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: { enabled: true, getResourceServerInfo: resourceServer },
  },
  extraTokenClaims: entraClaims,
  formats: { customizers: { jwt: entraShape } },
  // Relative to the mount path /{tenant}: Entra's /{tenant}/discovery/v2.0/keys and .../oauth2/v2.0/token.
  routes: { jwks: '/discovery/v2.0/keys', token: '/oauth2/v2.0/token' },
  ttl: { ClientCredentials: config.access_token_ttl },
});

// Entra serves discovery below the issuer (/{tenant}/v2.0/.well-known/...) but keys and tokens below
// /{tenant}. oidc-provider puts all its routes below one mount path and takes that path from
// req.baseUrl (as under Express), so mount it at /{tenant} and move discovery there.
function mount(req) {
  if (!req.url.startsWith(`${tenant}/`)) return false;
  req.baseUrl = tenant;
  req.url = req.url.slice(tenant.length).replace(/^\/v2\.0\/\.well-known\//, '/.well-known/');
  return true;
}

const handle = provider.callback();
const server = createServer((req, res) => {
  // Tests count requests (key fetches above all) from this line.
  console.log(`REQUEST ${req.method} ${req.url}`);
  if (mount(req)) {
    handle(req, res);
  } else {
    res.writeHead(404).end();
  }
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}

process.on('SIGINT', stop);
process.on('SIGTERM', stop);
server.listen(config.port, config.host, () => console.log('READY'));
