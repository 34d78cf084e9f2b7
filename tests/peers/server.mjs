// Test peers for dpopkit: an OAuth authorization server (oidc-provider) and an
// independent DPoP-validating resource server (node:http + jose), in ONE process.
//
// Prints exactly one JSON line on stdout once both servers listen:
//   {"issuer":"http://127.0.0.1:A","token_endpoint":"http://127.0.0.1:A/token",
//    "rs":"http://127.0.0.1:B","api":"http://127.0.0.1:B/api/test"}
// Exits when stdin reaches EOF (unless --ignore-stdin), and on SIGTERM/SIGINT.
//
// Options: --as-port N  --rs-port N  --as-nonce  --rs-nonce  --ttl SECONDS
//          --rs-nonce-rotate SECONDS  --ignore-stdin  --verbose
//          --tls CERT_PEM KEY_PEM  (both servers speak https with that certificate;
//                                   the URLs in the JSON line are then https://)
//          --tls-ca CA_PEM         (the CA the RS trusts when it fetches the AS JWKS
//                                   over https; default: the --tls certificate file)
//          --pkjwt-jwk FILE        (registers client m2m.pkjwt.dpopkey, private_key_jwt with
//                                   that public JWK, e.g. the DPoP key's; without it the
//                                   client does not exist. m2m.pkjwt, private_key_jwt ES256
//                                   with tests/fixtures/client_assertion_p256.pub.jwk, always is)
//          --require-audience VALUE (Auth0-like: client_credentials requests must carry
//                                   audience=VALUE, else 400 invalid_request; the token's aud
//                                   is then VALUE, and the RS expects that aud)
//          --iat-window SECONDS    (Keycloak-like: the RS accepts proofs whose iat is within
//                                   +-SECONDS of its clock (default 60); the AS refuses at its
//                                   /token a proof outside that window, in front of
//                                   oidc-provider, whose own window is a fixed 300 s)
//          --clock-skew SECONDS    (may be negative: both servers run SECONDS ahead of the real
//                                   clock: Date.now/new Date() and every Date header)
//          --dpop-algs LIST        (comma-separated; default ES256,ES384,EdDSA: the AS's
//                                   dpop_signing_alg_values_supported and the RS's algs;
//                                   RS256, PS256 and Ed25519 too)
//          --rs-dpop-algs LIST     (the RS's algs only, when they differ from the AS's: its
//                                   challenges list them, jose verifies with them)
//          --profile NAME          (defaults for the options above: okta = --as-nonce, with the
//                                   m2m.pkjwt client; auth0 = --require-audience
//                                   https://api.example/; keycloak = no nonces + --iat-window
//                                   15; duende = the defaults (m2m.dpop / secret, scope api).
//                                   Options given explicitly win over the profile's)

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

// ---------------------------------------------------------------------------
// stdout is reserved for the single JSON line. oidc-provider prints its
// NOTICEs with console.info (stdout), so route console.log/info/debug to
// stderr, and keep them silent unless --verbose.
// ---------------------------------------------------------------------------
const argv = process.argv.slice(2);
const VERBOSE = argv.includes('--verbose') || !!process.env.PEERS_VERBOSE;
{
  const toStderr = (...args) => {
    if (VERBOSE) process.stderr.write(`${args.map(String).join(' ')}\n`);
  };
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
  // oidc-provider 9 warns on every start that it wants Node 22 LTS. The tests run on Node 20
  // and 22 (README: "Test servers"); the warning is shown with --verbose only.
  const warn = console.warn.bind(console);
  console.warn = (...args) => {
    if (VERBOSE || !String(args[0]).includes('oidc-provider WARNING: Unsupported runtime')) warn(...args);
  };
}
const log = (...args) => {
  if (VERBOSE) process.stderr.write(`[peers] ${args.join(' ')}\n`);
};

function usage(msg) {
  process.stderr.write(`server.mjs: ${msg}\n`
    + 'usage: node server.mjs [--as-port N] [--rs-port N] [--as-nonce] [--rs-nonce]\n'
    + '                       [--ttl SECONDS] [--rs-nonce-rotate SECONDS] [--ignore-stdin] [--verbose]\n'
    + '                       [--tls CERT_PEM KEY_PEM [--tls-ca CA_PEM]]\n'
    + '                       [--pkjwt-jwk FILE] [--require-audience VALUE] [--iat-window SECONDS]\n'
    + '                       [--clock-skew SECONDS] [--dpop-algs LIST] [--rs-dpop-algs LIST]\n'
    + '                       [--profile okta|auth0|keycloak|duende]\n');
  process.exit(2);
}

function parseArgs(args) {
  const opts = {
    asPort: 0,
    rsPort: 0,
    asNonce: false,
    rsNonce: false,
    ttl: 300,
    rsNonceRotate: 0,
    ignoreStdin: false,
    tlsCert: undefined,
    tlsKey: undefined,
    tlsCa: undefined,
    pkjwtJwk: undefined,
    requireAudience: undefined,
    iatWindow: undefined, // undefined: RS 60 s, no extra check at the AS
    clockSkew: 0,
    dpopAlgs: ['ES256', 'ES384', 'EdDSA'],
    rsDpopAlgs: undefined, // undefined: the AS's
    profile: undefined,
  };
  const explicit = new Set();
  const file = (name, v) => {
    if (v === undefined || v.startsWith('--')) usage(`${name} needs a file name`);
    return v;
  };
  const int = (name, v, min) => {
    if (v === undefined || !/^\d+$/.test(v)) usage(`${name} needs a non-negative integer`);
    const n = Number(v);
    if (n < min) usage(`${name} must be >= ${min}`);
    return n;
  };
  const signedInt = (name, v) => {
    if (v === undefined || !/^[-+]?\d+$/.test(v)) usage(`${name} needs an integer (may be negative)`);
    return Number(v);
  };
  const value = (name, v) => {
    if (v === undefined || v.startsWith('--') || v === '') usage(`${name} needs a value`);
    return v;
  };
  const algList = (name, v) => {
    const list = value(name, v).split(',').map((x) => x.trim()).filter(Boolean);
    if (list.length === 0) usage(`${name} needs at least one algorithm`);
    for (const alg of list) {
      if (!DPOP_ALGS_KNOWN.includes(alg)) usage(`${name}: unknown algorithm ${alg} (known: ${DPOP_ALGS_KNOWN.join(', ')})`);
    }
    return [...new Set(list)];
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    explicit.add(a);
    switch (a) {
      case '--as-port': opts.asPort = int(a, args[++i], 0); break;
      case '--rs-port': opts.rsPort = int(a, args[++i], 0); break;
      case '--as-nonce': opts.asNonce = true; break;
      case '--rs-nonce': opts.rsNonce = true; break;
      case '--ttl': opts.ttl = int(a, args[++i], 1); break;
      case '--rs-nonce-rotate': opts.rsNonceRotate = int(a, args[++i], 1); break;
      case '--ignore-stdin': opts.ignoreStdin = true; break;
      case '--verbose': break;
      case '--tls':
        opts.tlsCert = file(a, args[++i]);
        opts.tlsKey = file(a, args[++i]);
        break;
      case '--tls-ca': opts.tlsCa = file(a, args[++i]); break;
      case '--pkjwt-jwk': opts.pkjwtJwk = file(a, args[++i]); break;
      case '--require-audience': opts.requireAudience = value(a, args[++i]); break;
      case '--iat-window': opts.iatWindow = int(a, args[++i], 1); break;
      case '--clock-skew': opts.clockSkew = signedInt(a, args[++i]); break;
      case '--dpop-algs': opts.dpopAlgs = algList(a, args[++i]); break;
      case '--rs-dpop-algs': opts.rsDpopAlgs = algList(a, args[++i]); break;
      case '--profile': opts.profile = value(a, args[++i]); break;
      default: usage(`unknown option ${a}`);
    }
  }
  if (opts.tlsCa !== undefined && opts.tlsCert === undefined) usage('--tls-ca needs --tls');
  // A profile only supplies defaults: options given explicitly win.
  const profileDefaults = {
    okta: { '--as-nonce': () => { opts.asNonce = true; } }, // + the m2m.pkjwt client (always registered)
    auth0: { '--require-audience': () => { opts.requireAudience = 'https://api.example/'; } },
    keycloak: { '--iat-window': () => { opts.iatWindow = 15; } }, // no nonces: the default
    duende: {}, // m2m.dpop / secret, client_secret_post, scope api: the default
  };
  if (opts.profile !== undefined) {
    const defaults = profileDefaults[opts.profile];
    if (!defaults) usage(`unknown profile ${opts.profile} (known: ${Object.keys(profileDefaults).join(', ')})`);
    for (const [option, apply] of Object.entries(defaults)) if (!explicit.has(option)) apply();
  }
  return opts;
}

// Algorithms oidc-provider accepts in enabledJWA.dPoPSigningAlgValues (its "EdDSA" and
// "Ed25519" both mean Ed25519 proofs; jose verifies either name).
const DPOP_ALGS_KNOWN = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA', 'Ed25519'];

const opts = parseArgs(argv);

// Exit promptly when the parent goes away (stdin EOF) or asks us to.
function shutdown(why) {
  log('shutting down:', why);
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGHUP', () => shutdown('SIGHUP'));
if (!opts.ignoreStdin) {
  process.stdin.on('end', () => shutdown('stdin EOF'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume(); // discard anything written to us
}
// If stdout is closed by the parent, writing would raise EPIPE: just go.
process.stdout.on('error', () => shutdown('stdout error'));

// --clock-skew: the whole process runs on a clock SECONDS ahead (or behind). oidc-provider
// (epochTime, its memory structures, nonces) takes "now" from Date.now(); jose from
// new Date() (jwt_claims_set: iat/exp/nbf checks, setIssuedAt) and Date.now() (JWKS cache).
// Replace the global Date before importing either, keeping instanceof and statics working.
// node:http's own Date header comes from node's internal (real) clock: see stampDate below.
const SKEW_MS = opts.clockSkew * 1000;
if (SKEW_MS !== 0) {
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  // eslint-disable-next-line no-inner-declarations
  function SkewedDate(...args) {
    if (!new.target) return new RealDate(realNow() + SKEW_MS).toString();
    return Reflect.construct(RealDate, args.length ? args : [realNow() + SKEW_MS], new.target);
  }
  Object.setPrototypeOf(SkewedDate, RealDate); // Date.UTC, Date.parse
  SkewedDate.prototype = RealDate.prototype; // instanceof Date holds for real and skewed dates
  SkewedDate.now = () => realNow() + SKEW_MS;
  globalThis.Date = SkewedDate;
}

// With a skewed clock, every response of both servers carries a Date header from it.
function stampDate(res) {
  if (SKEW_MS === 0) return;
  const writeHead = res.writeHead;
  // res.end()/write() without writeHead() go through this.writeHead (_implicitHeader).
  res.writeHead = function writeHeadWithSkewedDate(...args) {
    if (!this.headersSent) this.setHeader('Date', new Date().toUTCString());
    return writeHead.apply(this, args);
  };
}

// Imported after the console redirection above so that anything printed at
// import time goes to stderr.
const jose = await import('jose');
const { default: Provider, errors: oidcErrors } = await import('oidc-provider');

const HOST = '127.0.0.1';

// --tls: both servers are https servers with the given certificate and key.
let tls;
if (opts.tlsCert !== undefined) {
  const read = (what, f) => {
    try {
      return fs.readFileSync(f);
    } catch (err) {
      usage(`cannot read ${what} ${f}: ${err.message}`);
    }
    return undefined;
  };
  tls = {
    cert: read('--tls certificate', opts.tlsCert),
    key: read('--tls key', opts.tlsKey),
    ca: read('--tls-ca file', opts.tlsCa ?? opts.tlsCert),
  };
}
const SCHEME = tls ? 'https' : 'http';
const createServer = () => (tls ? https.createServer({ cert: tls.cert, key: tls.key }) : http.createServer());
const ALGS = opts.dpopAlgs;
const RESOURCE = 'urn:dpopkit:api'; // resource indicator (must be an absolute URI)
const AUDIENCE = opts.requireAudience ?? 'api';

function listen(server, port, option) {
  return new Promise((resolve, reject) => {
    server.once('error', (e) => {
      if (e.code === 'EADDRINUSE' || e.code === 'EACCES') {
        process.stderr.write(`server.mjs: cannot listen on ${HOST}:${port} (${e.code}): `
          + `pass another ${option} (0 picks a free port)\n`);
        process.exit(1);
      }
      reject(e);
    });
    server.listen(port, HOST, () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

function readBody(req) {
  return readBodyRaw(req).then((b) => b.toString('utf8'));
}

function readBodyRaw(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// The request's headers as received (lower-case names, repeated ones as arrays), for the
// echo endpoints that show a client which headers it sent.
const requestHeaders = (req) => Object.fromEntries(
  Object.entries(req.headersDistinct).map(([k, v]) => [k, v.length === 1 ? v[0] : v]),
);

function sendJson(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

// ---------------------------------------------------------------------------
// Minimal in-memory adapter (stands in for oidc-provider's development one,
// which warns on every start). Enough for client_credentials + DPoP replay.
// ---------------------------------------------------------------------------
const stores = new Map();
class MemoryAdapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.store = stores.get(name);
  }

  get(id) {
    const e = this.store.get(id);
    if (!e) return undefined;
    if (e.exp && e.exp < Date.now()) {
      this.store.delete(id);
      return undefined;
    }
    return e.payload;
  }

  async upsert(id, payload, expiresIn) {
    this.store.set(id, { payload, exp: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
  }

  async find(id) { return this.get(id); }

  async findByUserCode(userCode) {
    for (const [id, e] of this.store) if (e.payload.userCode === userCode) return this.get(id);
    return undefined;
  }

  async findByUid(uid) {
    for (const [id, e] of this.store) if (e.payload.uid === uid) return this.get(id);
    return undefined;
  }

  async consume(id) {
    const p = this.get(id);
    if (p) p.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { this.store.delete(id); }

  async revokeByGrantId(grantId) {
    for (const [id, e] of this.store) if (e.payload.grantId === grantId) this.store.delete(id);
  }
}

// ---------------------------------------------------------------------------
// Authorization server
// ---------------------------------------------------------------------------
const asServer = createServer();
const asPort = await listen(asServer, opts.asPort, '--as-port');
const issuer = `${SCHEME}://${HOST}:${asPort}`;

const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
const signingJwk = {
  ...(await jose.exportJWK(privateKey)),
  kid: crypto.randomBytes(8).toString('base64url'),
  alg: 'ES256',
  use: 'sig',
};

const clientCommon = {
  client_secret: 'secret',
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: 'api',
  dpop_bound_access_tokens: true,
};

// private_key_jwt clients. oidc-provider accepts a client assertion whose aud is (or, as
// an array, includes) the issuer, the token endpoint URL, or the URL of the endpoint it is
// sent to (here the token endpoint too): OIDCContext.clientJwtAuthExpectedAudience.
function readJwk(what, f) {
  let jwk;
  try {
    jwk = JSON.parse(fs.readFileSync(f, 'utf8'));
  } catch (err) {
    usage(`cannot read ${what} ${f}: ${err.message}`);
  }
  if (Array.isArray(jwk?.keys)) [jwk] = jwk.keys; // a JWKS with one key is fine too
  if (!jwk || typeof jwk !== 'object' || typeof jwk.kty !== 'string') usage(`${what} ${f} is not a JWK`);
  // Public members only, should a private JWK be given.
  const { d, p, q, dp, dq, qi, oth, k, ...pub } = jwk;
  if (k !== undefined) usage(`${what} ${f} is a symmetric key, not a public key`);
  return pub;
}
const pkjwtCommon = {
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: 'api',
  dpop_bound_access_tokens: true,
  token_endpoint_auth_method: 'private_key_jwt',
};
const pkjwtClients = [{
  ...pkjwtCommon,
  client_id: 'm2m.pkjwt',
  token_endpoint_auth_signing_alg: 'ES256',
  jwks: { keys: [readJwk('client assertion JWK', new URL('../fixtures/client_assertion_p256.pub.jwk', import.meta.url))] },
}];
if (opts.pkjwtJwk !== undefined) {
  // The DPoP key signs the assertion: any algorithm enabled below that fits the key
  // (ES256, ES384, EdDSA/Ed25519); pinned only when the JWK names its alg.
  const jwk = readJwk('--pkjwt-jwk', opts.pkjwtJwk);
  pkjwtClients.push({
    ...pkjwtCommon,
    client_id: 'm2m.pkjwt.dpopkey',
    ...(jwk.alg ? { token_endpoint_auth_signing_alg: jwk.alg } : {}),
    jwks: { keys: [jwk] },
  });
}

// --require-audience (Auth0-like): checked when the client_credentials grant resolves its
// resource server, i.e. after client authentication and the DPoP proof. The raw form is in
// ctx.oidc.body (oidc-provider drops unknown parameters from ctx.oidc.params).
function checkAudience(ctx) {
  const expected = opts.requireAudience;
  const got = ctx.oidc.body?.audience;
  if (got === undefined || got === '') {
    throw new oidcErrors.InvalidRequest(`audience is required (expected ${expected})`);
  }
  if (Array.isArray(got)) {
    throw new oidcErrors.InvalidRequest(`audience must be given once (expected ${expected})`);
  }
  if (got !== expected) {
    throw new oidcErrors.InvalidRequest(`audience ${got} is not allowed (expected ${expected})`);
  }
}

const provider = new Provider(issuer, {
  adapter: MemoryAdapter,
  jwks: { keys: [signingJwk] },
  clients: [
    { ...clientCommon, client_id: 'm2m.dpop', token_endpoint_auth_method: 'client_secret_post' },
    { ...clientCommon, client_id: 'm2m.dpop.basic', token_endpoint_auth_method: 'client_secret_basic' },
    ...pkjwtClients,
  ],
  clientDefaults: {
    grant_types: ['client_credentials'],
    response_types: [],
    id_token_signed_response_alg: 'ES256',
    token_endpoint_auth_method: 'client_secret_post',
  },
  scopes: ['api'],
  enabledJWA: {
    dPoPSigningAlgValues: ALGS,
    // oidc-provider's default plus ES384 (for --pkjwt-jwk with a P-384 DPoP key)
    clientAuthSigningAlgValues: ['HS256', 'RS256', 'PS256', 'ES256', 'ES384', 'Ed25519', 'EdDSA'],
  },
  ttl: {
    ClientCredentials: () => opts.ttl,
    AccessToken: () => opts.ttl,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    dPoP: {
      enabled: true,
      // Only configure nonces when asked: with a nonceSecret oidc-provider also
      // hands out DPoP-Nonce headers on successful responses.
      ...(opts.asNonce ? {
        nonceSecret: crypto.randomBytes(32),
        requireNonce: () => true,
      } : {}),
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) {
          throw new oidcErrors.InvalidTarget();
        }
        if (opts.requireAudience !== undefined && ctx.oidc.route === 'token') checkAudience(ctx);
        return {
          scope: 'api',
          audience: AUDIENCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: opts.ttl,
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  renderError: (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});
provider.on('server_error', (ctx, err) => process.stderr.write(`[as] server_error: ${err.stack}\n`));
if (VERBOSE) {
  provider.on('grant.error', (ctx, err) => log('as grant.error:', err.message, err.error_description ?? ''));
}

// last_proof_header: the JOSE header of the last token request's DPoP proof (public: typ,
// alg, jwk); issued_algs: the proof alg of each token issued.
const asStats = { token_requests: 0, token_issued: 0, last_proof_header: null, issued_algs: [] };
const proofHeader = (req) => {
  const proofs = req.headersDistinct.dpop;
  try {
    return proofs && proofs.length === 1 ? jose.decodeProtectedHeader(proofs[0].trim()) : null;
  } catch {
    return null;
  }
};
const providerCallback = provider.callback();

// --iat-window at the AS. oidc-provider 9 has no setting for it: validate_dpop.js
// compares a nonce-less proof's iat with CHALLENGE_OK_WINDOW, a constant 300 s (clockTolerance
// is for JWT client assertions and the like, not DPoP proofs), and does not look at iat at all
// when the proof carries a nonce. So the window is enforced here, in front of oidc-provider,
// with oidc-provider's own answer to a stale proof: 400 invalid_dpop_proof.
function staleProofAtAs(req) {
  if (opts.iatWindow === undefined) return undefined;
  const proofs = req.headersDistinct.dpop;
  if (!proofs || proofs.length !== 1) return undefined; // oidc-provider judges those
  let iat;
  try {
    ({ iat } = jose.decodeJwt(proofs[0].trim()));
  } catch {
    return undefined;
  }
  if (typeof iat !== 'number') return undefined;
  const now = Math.floor(Date.now() / 1000);
  if (Math.abs(now - iat) <= opts.iatWindow) return undefined;
  return `DPoP proof iat is not recent enough (must be within ${opts.iatWindow} s of the server's clock)`;
}

asServer.on('request', async (req, res) => {
  stampDate(res);
  try {
    const url = new URL(req.url, issuer);
    const path = url.pathname;

    if (path === '/_stats' && req.method === 'GET') {
      sendJson(res, 200, asStats);
      return;
    }
    if (path === '/_stats/reset' && req.method === 'POST') {
      await readBody(req);
      asStats.token_requests = 0;
      asStats.token_issued = 0;
      asStats.issued_algs = [];
      sendJson(res, 200, asStats);
      return;
    }
    // Unauthenticated echo on the AS origin: where a cross-origin redirect from the RS
    // lands, to show which headers followed it.
    if (path === '/_echo-headers') {
      await readBody(req);
      sendJson(res, 200, { origin: 'as', method: req.method, headers: requestHeaders(req) });
      return;
    }
    if (path === '/bearer-token' && req.method === 'POST') {
      await readBody(req);
      sendJson(res, 200, { access_token: 'xyz', token_type: 'Bearer', expires_in: 300 });
      return;
    }
    if (path.startsWith('/bad-token/') && req.method === 'POST') {
      await readBody(req);
      const kind = path.slice('/bad-token/'.length);
      switch (kind) {
        case 'html': {
          const body = '<html>';
          res.writeHead(200, { 'content-type': 'text/html', 'content-length': body.length });
          res.end(body);
          return;
        }
        case 'garbage':
          sendJson(res, 200, '{not json');
          return;
        case 'noaccess':
          sendJson(res, 200, { token_type: 'DPoP', expires_in: 300 });
          return;
        case 'noexp':
          sendJson(res, 200, { access_token: 'abc', token_type: 'DPoP' });
          return;
        default:
          sendJson(res, 404, { error: 'not_found', error_description: `unknown bad-token kind ${kind}` });
          return;
      }
    }

    if (path === '/token' && req.method === 'POST') {
      asStats.token_requests += 1;
      const header = proofHeader(req);
      asStats.last_proof_header = header;
      // Count on end() (synchronously, before the bytes leave) so that a
      // client reading /_stats right after the token response sees it.
      const end = res.end;
      res.end = function countedEnd(...args) {
        if (res.statusCode === 200) {
          asStats.token_issued += 1;
          if (asStats.issued_algs.length < 1000) asStats.issued_algs.push(header?.alg ?? null);
        }
        res.end = end;
        return end.apply(this, args);
      };
      const stale = staleProofAtAs(req);
      if (stale) {
        await readBody(req);
        log('as reject:', stale);
        sendJson(res, 400, { error: 'invalid_dpop_proof', error_description: stale });
        return;
      }
    }
    providerCallback(req, res);
  } catch (err) {
    process.stderr.write(`[as] wrapper error: ${err.stack}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
  }
});

// ---------------------------------------------------------------------------
// Resource server: an independent DPoP validator (jose only)
// ---------------------------------------------------------------------------
const rsServer = createServer();
const rsPort = await listen(rsServer, opts.rsPort, '--rs-port');
const rsOrigin = `${SCHEME}://${HOST}:${rsPort}`;

// Over https the RS fetches the AS JWKS trusting only the --tls-ca certificate(s): a
// fetch for jose built on node:https (the global fetch has no per-request CA option).
function fetchTrustingCa(url, { method, headers, signal }) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method,
      headers: Object.fromEntries(headers),
      signal,
      ca: tls.ca,
      agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, json: async () => JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}
const asJwks = jose.createRemoteJWKSet(
  new URL(`${issuer}/jwks`),
  tls ? { [jose.customFetch]: fetchTrustingCa } : {},
);
// last_proof_header: the JOSE header of the last proof jose verified (public: typ, alg,
// jwk); ok_algs: its alg for each request answered.
const rsStats = { requests: 0, ok: 0, rejected: 0, last_error: '', last_proof_header: null, ok_algs: [] };

const REPLAY_WINDOW_MS = 5 * 60 * 1000;
const IAT_WINDOW_S = opts.iatWindow ?? 60;
const seenJti = new Map(); // jti -> expiry (ms)
function pruneJti(now) {
  for (const [jti, exp] of seenJti) {
    if (exp > now) break; // insertion order == expiry order
    seenJti.delete(jti);
  }
}

const newNonce = () => crypto.randomBytes(16).toString('base64url');
let rsNonce = opts.rsNonce ? newNonce() : undefined;
if (opts.rsNonce && opts.rsNonceRotate > 0) {
  setInterval(() => {
    rsNonce = newNonce();
    log('rs nonce rotated');
  }, opts.rsNonceRotate * 1000).unref();
}

class RsError extends Error {
  constructor(code, description, { headers = {}, challenge } = {}) {
    super(description);
    this.code = code;
    this.headers = headers;
    this.challenge = challenge;
  }
}
const q = (s) => String(s).replace(/[\\"]/g, '\\$&');
const RS_ALGS = opts.rsDpopAlgs ?? ALGS;
const algsParam = `algs="${RS_ALGS.join(' ')}"`;

async function validateRequest(req, pathname) {
  // --- Authorization: DPoP <token> ---
  const authz = req.headersDistinct.authorization;
  if (!authz || authz.length === 0) {
    throw new RsError('invalid_token', 'missing Authorization header', {
      challenge: `DPoP ${algsParam}`,
    });
  }
  if (authz.length !== 1) throw new RsError('invalid_token', 'multiple Authorization headers');
  const m = /^(\S+) +(\S+)\s*$/.exec(authz[0]);
  if (!m || m[1].toLowerCase() !== 'dpop') {
    throw new RsError('invalid_token', 'Authorization scheme must be DPoP');
  }
  const token = m[2];

  // --- exactly one DPoP header ---
  const proofs = req.headersDistinct.dpop;
  if (!proofs || proofs.length === 0) throw new RsError('invalid_dpop_proof', 'missing DPoP header');
  if (proofs.length !== 1) throw new RsError('invalid_dpop_proof', 'more than one DPoP header');
  const proof = proofs[0].trim();
  if (!proof || proof.includes(',')) throw new RsError('invalid_dpop_proof', 'more than one DPoP proof');

  // --- access token ---
  let claims;
  try {
    ({ payload: claims } = await jose.jwtVerify(token, asJwks, {
      issuer,
      audience: AUDIENCE,
      algorithms: ['ES256'],
      typ: 'at+jwt',
    }));
  } catch (err) {
    if (err?.code === 'ERR_JWT_EXPIRED') throw new RsError('invalid_token', 'access token expired');
    throw new RsError('invalid_token', `access token invalid: ${err?.message ?? err}`);
  }
  const jkt = claims.cnf?.jkt;
  if (typeof jkt !== 'string' || !jkt) {
    throw new RsError('invalid_token', 'access token is not DPoP-bound (no cnf.jkt)');
  }

  // --- DPoP proof ---
  let header;
  try {
    header = jose.decodeProtectedHeader(proof);
  } catch {
    throw new RsError('invalid_dpop_proof', 'DPoP proof is not a JWS');
  }
  if (!header.jwk || typeof header.jwk !== 'object') {
    throw new RsError('invalid_dpop_proof', 'DPoP proof header has no jwk');
  }
  if ('d' in header.jwk) throw new RsError('invalid_dpop_proof', 'DPoP proof jwk must be a public key');

  let p;
  try {
    ({ payload: p } = await jose.jwtVerify(proof, jose.EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: RS_ALGS,
    }));
  } catch (err) {
    throw new RsError('invalid_dpop_proof', `DPoP proof invalid: ${err?.message ?? err}`);
  }
  const verifiedHeader = jose.decodeProtectedHeader(proof);

  if (typeof p.jti !== 'string' || !p.jti) throw new RsError('invalid_dpop_proof', 'DPoP proof jti missing');
  if (p.htm !== req.method) throw new RsError('invalid_dpop_proof', 'DPoP proof htm mismatch');

  {
    const expected = new URL(`${SCHEME}://${req.headers.host}${pathname}`);
    expected.search = '';
    expected.hash = '';
    const actual = typeof p.htu === 'string' ? URL.parse(p.htu) : null;
    if (!actual) throw new RsError('invalid_dpop_proof', 'DPoP proof htu missing or not a URL');
    actual.search = '';
    actual.hash = '';
    if (actual.href !== expected.href) {
      throw new RsError('invalid_dpop_proof', `DPoP proof htu mismatch (expected ${expected.href})`);
    }
  }

  if (typeof p.iat !== 'number') throw new RsError('invalid_dpop_proof', 'DPoP proof iat must be a number');
  const now = Math.floor(Date.now() / 1000);
  if (Math.abs(now - p.iat) > IAT_WINDOW_S) {
    throw new RsError('invalid_dpop_proof', opts.iatWindow === undefined
      ? 'DPoP proof iat is not recent enough'
      : `DPoP proof iat is not recent enough (must be within ${IAT_WINDOW_S} s of the server's clock)`);
  }

  const ath = crypto.createHash('sha256').update(token).digest('base64url');
  if (p.ath === undefined) throw new RsError('invalid_dpop_proof', 'DPoP proof ath missing');
  if (p.ath !== ath) throw new RsError('invalid_dpop_proof', 'DPoP proof ath mismatch');

  const thumbprint = await jose.calculateJwkThumbprint(header.jwk, 'sha256');
  if (thumbprint !== jkt) {
    throw new RsError('invalid_dpop_proof', 'DPoP proof key does not match the access token cnf.jkt');
  }

  if (rsNonce !== undefined && p.nonce !== rsNonce) {
    throw new RsError('use_dpop_nonce', 'Resource server requires nonce in DPoP proof', {
      headers: { 'DPoP-Nonce': rsNonce },
      challenge: 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
    });
  }

  const nowMs = Date.now();
  pruneJti(nowMs);
  if (seenJti.has(p.jti)) throw new RsError('invalid_dpop_proof', 'DPoP proof jti replayed');
  seenJti.set(p.jti, nowMs + REPLAY_WINDOW_MS);
  rsStats.last_proof_header = verifiedHeader;
  if (rsStats.ok_algs.length < 1000) rsStats.ok_algs.push(verifiedHeader.alg);

  return claims;
}

rsServer.on('request', async (req, res) => {
  stampDate(res);
  try {
    const qi = req.url.indexOf('?');
    const rawPath = qi === -1 ? req.url : req.url.slice(0, qi);
    const pathname = new URL(rawPath, rsOrigin).pathname;

    if (pathname === '/_stats' && req.method === 'GET') {
      sendJson(res, 200, rsStats);
      return;
    }
    if (pathname === '/_stats/reset' && req.method === 'POST') {
      await readBody(req);
      Object.assign(rsStats, { requests: 0, ok: 0, rejected: 0, last_error: '', last_proof_header: null, ok_algs: [] });
      sendJson(res, 200, rsStats);
      return;
    }
    if (!pathname.startsWith('/api/')) {
      await readBody(req);
      sendJson(res, 404, { error: 'not_found' });
      return;
    }

    rsStats.requests += 1;
    const rawBody = await readBodyRaw(req);
    const body = rawBody.toString('utf8');
    let claims;
    try {
      // Raw path (not the URL-normalised one) so htu comparison sees what
      // the client sent; new URL() in the comparison normalises both sides.
      claims = await validateRequest(req, rawPath);
    } catch (err) {
      if (!(err instanceof RsError)) throw err;
      rsStats.rejected += 1;
      rsStats.last_error = `${err.code}: ${err.message}`;
      log('rs reject:', rsStats.last_error);
      const challenge = err.challenge
        ?? `DPoP error="${q(err.code)}", error_description="${q(err.message)}", ${algsParam}`;
      sendJson(res, 401, { error: err.code, error_description: err.message }, {
        'WWW-Authenticate': challenge,
        ...err.headers,
      });
      return;
    }

    rsStats.ok += 1;
    const nonceHeader = rsNonce !== undefined ? { 'DPoP-Nonce': rsNonce } : {};
    // The endpoints of the porting flow (issue 12), all behind the same DPoP validation:
    //   /api/echo-headers   200 JSON {method, headers} of the request; two X-Repeated fields
    //   /api/items          POST -> 201, Location /api/items/<n>, ETag; JSON of what came
    //   /api/bytes          200 application/octet-stream, the bytes 0..255
    //   /api/echo-bytes     200 application/octet-stream, the request body as sent
    //   /api/empty          204, no body
    //   /api/redirect?to=U  302 to U (relative: same origin; absolute: anywhere)
    if (pathname === '/api/echo-headers') {
      const text = JSON.stringify({ method: req.method, headers: requestHeaders(req) });
      res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        'x-repeated': ['first', 'second'],
        ...nonceHeader,
      });
      res.end(text);
      return;
    }
    if (pathname === '/api/items' && req.method === 'POST') {
      rsStats.items = (rsStats.items ?? 0) + 1;
      const id = rsStats.items;
      sendJson(res, 201, {
        id,
        content_type: req.headers['content-type'] ?? null,
        idempotency_key: req.headers['idempotency-key'] ?? null,
        received: body,
      }, { Location: `/api/items/${id}`, ETag: `"item-${id}"`, ...nonceHeader });
      return;
    }
    if (pathname === '/api/bytes' || pathname === '/api/echo-bytes' || pathname === '/api/empty') {
      const bytes = pathname === '/api/bytes' ? Buffer.from([...Array(256).keys()])
        : pathname === '/api/echo-bytes' ? rawBody : Buffer.alloc(0);
      const status = pathname === '/api/empty' ? 204 : 200;
      res.writeHead(status, {
        ...(status === 204 ? {} : { 'content-type': 'application/octet-stream', 'content-length': bytes.length }),
        ...nonceHeader,
      });
      res.end(status === 204 ? undefined : bytes);
      return;
    }
    if (pathname === '/api/redirect') {
      const to = new URL(req.url, rsOrigin).searchParams.get('to') ?? '/api/test';
      res.writeHead(302, { Location: to, 'content-length': 0, ...nonceHeader });
      res.end();
      return;
    }
    const out = Object.entries(claims).map(([type, value]) => ({
      type,
      value: typeof value === 'string' ? value : JSON.stringify(value),
    }));
    if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
      out.push({ type: 'request_body', value: body });
    }
    sendJson(res, 200, out, rsNonce !== undefined ? { 'DPoP-Nonce': rsNonce } : {});
  } catch (err) {
    process.stderr.write(`[rs] error: ${err?.stack ?? err}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
  }
});

process.stdout.write(`${JSON.stringify({
  issuer,
  token_endpoint: `${issuer}/token`,
  rs: rsOrigin,
  api: `${rsOrigin}/api/test`,
})}\n`);
log(`ready: as-nonce=${opts.asNonce} rs-nonce=${opts.rsNonce} ttl=${opts.ttl} tls=${!!tls}`
  + ` profile=${opts.profile ?? '-'} audience=${AUDIENCE} iat-window=${opts.iatWindow ?? '-'}`
  + ` clock-skew=${opts.clockSkew} dpop-algs=${ALGS.join(',')} rs-dpop-algs=${RS_ALGS.join(',')} pkjwt-dpopkey=${opts.pkjwtJwk !== undefined}`);
