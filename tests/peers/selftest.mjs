// Self-test for server.mjs: spawns it in each mode and plays a real DPoP
// client (jose) against both peers. Run: node tests/peers/selftest.mjs
// Exits 0 when everything passes; last line is "N passed, N failed".

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import * as jose from 'jose';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(HERE, 'server.mjs');
const FIXTURES = path.join(HERE, '..', 'fixtures');
const VERBOSE = process.argv.includes('--verbose');

let passed = 0;
let failed = 0;
const children = new Set();

function check(name, cond, detail) {
  if (cond) {
    passed += 1;
    if (VERBOSE) console.log(`ok   ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}${detail !== undefined ? ` -- ${typeof detail === 'string' ? detail : JSON.stringify(detail)}` : ''}`);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// server process handling
// ---------------------------------------------------------------------------
function startServer(args = []) {
  const t0 = performance.now();
  const child = spawn(process.execPath, [SERVER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 15000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const nl = stdout.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(stdout.slice(0, nl)));
        } catch (e) {
          reject(new Error(`bad first line ${stdout}`));
        }
      }
    });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', () => { clearTimeout(timer); reject(new Error(`server exited early: ${stderr}`)); });
  });
  return ready.then((info) => ({
    info,
    child,
    exited,
    startupMs: performance.now() - t0,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    async stop() {
      child.stdin.end();
      return exited;
    },
  }));
}

async function withTimeout(p, ms) {
  let t;
  const r = await Promise.race([p, new Promise((resolve) => { t = setTimeout(() => resolve('timeout'), ms); })]);
  clearTimeout(t);
  return r;
}

// ---------------------------------------------------------------------------
// DPoP client
// ---------------------------------------------------------------------------
const enc = new TextEncoder();

async function newKey(alg = 'ES256') {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = await jose.exportJWK(publicKey);
  return { alg, privateKey, jwk, jkt: await jose.calculateJwkThumbprint(jwk, 'sha256') };
}

const athOf = (token) => crypto.createHash('sha256').update(token).digest('base64url');

// Builds a proof with full control over the claims (CompactSign, so that
// e.g. a string iat is possible). `claims` overrides/deletes (undefined) defaults.
async function makeProof(key, { htm, htu, token, nonce }, claims = {}, header = {}) {
  const payload = {
    jti: crypto.randomUUID(),
    htm,
    htu,
    iat: Math.floor(Date.now() / 1000),
    ...(token !== undefined ? { ath: athOf(token) } : {}),
    ...(nonce !== undefined ? { nonce } : {}),
    ...claims,
  };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  return new jose.CompactSign(enc.encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.jwk, ...header })
    .sign(key.privateKey);
}

// `assertion`: a function returning a client assertion (called for each request, so a
// nonce retry sends a new one): private_key_jwt instead of the secret. `form`: extra fields.
async function tokenRequest(srv, key, {
  clientId = 'm2m.dpop', basic = false, secret = 'secret', nonce, proof, noDpop = false, url, assertion, form: extra = {},
  iat,
} = {}) {
  const endpoint = url ?? srv.info.token_endpoint;
  const form = new URLSearchParams({ grant_type: 'client_credentials', scope: 'api', ...extra });
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (assertion) {
    form.set('client_id', clientId);
    form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    form.set('client_assertion', await assertion());
  } else if (basic) {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  } else {
    form.set('client_id', clientId);
    form.set('client_secret', secret);
  }
  if (!noDpop) headers.dpop = proof ?? await makeProof(key, { htm: 'POST', htu: endpoint, nonce }, iat !== undefined ? { iat } : {});
  const res = await fetch(endpoint, { method: 'POST', headers, body: form });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

// Gets a token, retrying once with the nonce when told use_dpop_nonce.
async function getToken(srv, key, opts = {}) {
  let r = await tokenRequest(srv, key, opts);
  let retried = false;
  if (r.status === 400 && r.json?.error === 'use_dpop_nonce') {
    retried = true;
    const nonce = r.headers.get('dpop-nonce');
    r = await tokenRequest(srv, key, { ...opts, nonce });
  }
  return { ...r, retried };
}

async function apiRequest(srv, key, token, {
  method = 'GET', url, body, nonce, claims = {}, header = {}, authz, proof, noProof = false,
} = {}) {
  const target = url ?? srv.info.api;
  const u = new URL(target);
  const htu = `${u.origin}${u.pathname}`;
  const headers = { accept: 'application/json' };
  headers.authorization = authz ?? `DPoP ${token}`;
  if (authz === null) delete headers.authorization;
  if (!noProof) headers.dpop = proof ?? await makeProof(key, { htm: method, htu, token, nonce }, claims, header);
  if (body !== undefined) headers['content-type'] = 'text/plain';
  const res = await fetch(target, { method, headers, body });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

// API call that retries once when the RS asks for its nonce.
async function callApi(srv, key, token, opts = {}) {
  let r = await apiRequest(srv, key, token, opts);
  let retried = false;
  if (r.status === 401 && r.json?.error === 'use_dpop_nonce') {
    retried = true;
    r = await apiRequest(srv, key, token, { ...opts, nonce: r.headers.get('dpop-nonce') });
  }
  return { ...r, retried };
}

// Raw request with duplicate headers (fetch cannot send those).
function rawRequest(url, method, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: data }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function getJson(url, method = 'GET') {
  const res = await fetch(url, { method });
  return res.json();
}

const claimValue = (list, type) => list?.find((c) => c.type === type)?.value;

// ---------------------------------------------------------------------------
// scenarios
// ---------------------------------------------------------------------------
async function checkToken(tag, srv, key, r, { clientId = 'm2m.dpop', ttl = 300, aud = 'api' } = {}) {
  check(`${tag}: token 200`, r.status === 200, r.text);
  if (r.status !== 200) return undefined;
  check(`${tag}: token_type DPoP`, r.json.token_type === 'DPoP', r.json);
  check(`${tag}: expires_in = ttl`, r.json.expires_in === ttl, r.json);
  const at = r.json.access_token;
  const hdr = jose.decodeProtectedHeader(at);
  check(`${tag}: token is ES256 JWT`, hdr.alg === 'ES256' && typeof hdr.kid === 'string', hdr);
  const jwks = jose.createRemoteJWKSet(new URL(`${srv.info.issuer}/jwks`));
  let payload;
  try {
    ({ payload } = await jose.jwtVerify(at, jwks, { issuer: srv.info.issuer, audience: aud }));
  } catch (e) {
    check(`${tag}: token verifies against AS jwks`, false, e.message);
    return at;
  }
  check(`${tag}: token verifies against AS jwks`, true);
  check(`${tag}: cnf.jkt bound to key`, payload.cnf?.jkt === key.jkt, payload);
  check(`${tag}: client_id`, payload.client_id === clientId, payload);
  check(`${tag}: scope api`, payload.scope === 'api', payload);
  check(`${tag}: aud ${aud}`, payload.aud === aud, payload);
  check(`${tag}: iss/iat/exp/jti`, payload.iss === srv.info.issuer && typeof payload.iat === 'number'
    && payload.exp - payload.iat === ttl && typeof payload.jti === 'string', payload);
  return at;
}

async function scenarioPlain() {
  const tag = 'plain';
  const srv = await startServer();
  console.log(`startup (no nonce): ${srv.startupMs.toFixed(0)} ms`);
  const { info } = srv;
  check(`${tag}: json line fields`, /^http:\/\/127\.0\.0\.1:\d+$/.test(info.issuer)
    && info.token_endpoint === `${info.issuer}/token`
    && /^http:\/\/127\.0\.0\.1:\d+$/.test(info.rs) && info.api === `${info.rs}/api/test`, info);

  const disco = await getJson(`${info.issuer}/.well-known/openid-configuration`);
  check(`${tag}: discovery`, disco.issuer === info.issuer && disco.token_endpoint === info.token_endpoint
    && disco.jwks_uri === `${info.issuer}/jwks`
    && disco.grant_types_supported.includes('client_credentials')
    && disco.dpop_signing_alg_values_supported?.includes('ES256'), disco);

  await getJson(`${info.issuer}/_stats/reset`, 'POST');
  await getJson(`${info.rs}/_stats/reset`, 'POST');

  const key = await newKey();
  const tr = await getToken(srv, key);
  check(`${tag}: no nonce retry needed`, !tr.retried);
  check(`${tag}: no DPoP-Nonce from AS`, !tr.headers.get('dpop-nonce'));
  const at = await checkToken(tag, srv, key, tr);

  let r = await callApi(srv, key, at);
  check(`${tag}: GET api 200`, r.status === 200, r.text);
  check(`${tag}: GET api json content-type`, r.headers.get('content-type')?.startsWith('application/json'));
  check(`${tag}: claims list`, Array.isArray(r.json) && claimValue(r.json, 'client_id') === 'm2m.dpop'
    && claimValue(r.json, 'iss') === info.issuer && claimValue(r.json, 'aud') === 'api'
    && JSON.parse(claimValue(r.json, 'cnf') ?? '{}').jkt === key.jkt
    && typeof claimValue(r.json, 'exp') === 'string', r.json);
  check(`${tag}: no nonce retry at RS`, !r.retried && !r.headers.get('dpop-nonce'));

  r = await callApi(srv, key, at, { method: 'POST', body: 'hello body' });
  check(`${tag}: POST api echoes body`, r.status === 200 && claimValue(r.json, 'request_body') === 'hello body', r.text);
  r = await callApi(srv, key, at, { method: 'PUT', body: '{"a":1}', url: `${info.rs}/api/things/1` });
  check(`${tag}: PUT api echoes body`, r.status === 200 && claimValue(r.json, 'request_body') === '{"a":1}', r.text);
  r = await callApi(srv, key, at, { method: 'DELETE', url: `${info.rs}/api/things/1` });
  check(`${tag}: DELETE api 200`, r.status === 200 && claimValue(r.json, 'request_body') === undefined, r.text);
  r = await callApi(srv, key, at, { url: `${info.api}?x=1&y=2` });
  check(`${tag}: query string ignored for htu`, r.status === 200, r.text);
  r = await callApi(srv, key, at, { authz: `dpop ${at}` });
  check(`${tag}: scheme case-insensitive`, r.status === 200, r.text);
  r = await callApi(srv, key, at, { authz: `DPoP ${at}`, url: `${info.rs}/other` });
  check(`${tag}: outside /api/ is 404`, r.status === 404, r.status);

  // --- negatives at the RS ---
  const refused = async (name, res, code, { re } = {}) => {
    const www = res.headers.get?.('www-authenticate') ?? res.headers['www-authenticate'];
    let json = res.json;
    if (json === undefined) { try { json = JSON.parse(res.text); } catch { /* empty */ } }
    const ok = res.status === 401 && json?.error === code
      && typeof www === 'string' && www.startsWith(`DPoP error="${code}"`)
      && www.includes('algs="ES256 ES384 EdDSA"') && (!re || re.test(json.error_description));
    check(`${tag}: RS refuses ${name}`, ok, { status: res.status, www, body: res.text });
  };
  const u = new URL(info.api);
  const htu = `${u.origin}${u.pathname}`;

  await refused('iat as string', await apiRequest(srv, key, at, { claims: { iat: String(Math.floor(Date.now() / 1000)) } }), 'invalid_dpop_proof', { re: /iat/ });
  await refused('old iat', await apiRequest(srv, key, at, { claims: { iat: Math.floor(Date.now() / 1000) - 120 } }), 'invalid_dpop_proof', { re: /iat/ });
  await refused('future iat', await apiRequest(srv, key, at, { claims: { iat: Math.floor(Date.now() / 1000) + 120 } }), 'invalid_dpop_proof', { re: /iat/ });
  await refused('htu without port', await apiRequest(srv, key, at, { claims: { htu: `http://127.0.0.1${u.pathname}` } }), 'invalid_dpop_proof', { re: /htu/ });
  await refused('htu other path', await apiRequest(srv, key, at, { claims: { htu: `${u.origin}/api/other` } }), 'invalid_dpop_proof', { re: /htu/ });
  await refused('htm mismatch', await apiRequest(srv, key, at, { claims: { htm: 'POST' } }), 'invalid_dpop_proof', { re: /htm/ });
  await refused('missing ath', await apiRequest(srv, key, at, { claims: { ath: undefined } }), 'invalid_dpop_proof', { re: /ath/ });
  await refused('wrong ath', await apiRequest(srv, key, at, { claims: { ath: athOf('other') } }), 'invalid_dpop_proof', { re: /ath/ });
  await refused('missing jti', await apiRequest(srv, key, at, { claims: { jti: undefined } }), 'invalid_dpop_proof', { re: /jti/ });
  const proof = await makeProof(key, { htm: 'GET', htu, token: at });
  r = await apiRequest(srv, key, at, { proof });
  check(`${tag}: fresh proof accepted`, r.status === 200, r.text);
  await refused('replayed jti', await apiRequest(srv, key, at, { proof }), 'invalid_dpop_proof', { re: /replay/ });
  const other = await newKey();
  await refused('proof by another key (cnf.jkt mismatch)', await apiRequest(srv, other, at), 'invalid_dpop_proof', { re: /jkt/ });
  await refused('wrong typ', await apiRequest(srv, key, at, { header: { typ: 'JWT' } }), 'invalid_dpop_proof');
  const priv = await jose.exportJWK(key.privateKey);
  await refused('private jwk in header', await apiRequest(srv, key, at, { header: { jwk: priv } }), 'invalid_dpop_proof', { re: /public/ });
  await refused('Bearer authorization', await apiRequest(srv, key, at, { authz: `Bearer ${at}` }), 'invalid_token');
  await refused('missing DPoP header', await apiRequest(srv, key, at, { noProof: true }), 'invalid_dpop_proof');
  const p1 = await makeProof(key, { htm: 'GET', htu, token: at });
  const p2 = await makeProof(key, { htm: 'GET', htu, token: at });
  await refused('two DPoP headers', await rawRequest(info.api, 'GET', { authorization: `DPoP ${at}`, dpop: [p1, p2] }), 'invalid_dpop_proof', { re: /more than one/ });
  const tampered = `${at.slice(0, -4)}${at.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
  await refused('tampered token', await apiRequest(srv, key, tampered), 'invalid_token');
  const bearerAt = (await (await fetch(`${info.issuer}/bearer-token`, { method: 'POST' })).json()).access_token;
  await refused('non-JWT token', await apiRequest(srv, key, bearerAt), 'invalid_token');
  // a token not signed by the AS (self-made, with the right claims)
  const forged = await new jose.SignJWT({ client_id: 'm2m.dpop', scope: 'api', cnf: { jkt: key.jkt } })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: jose.decodeProtectedHeader(at).kid })
    .setIssuer(info.issuer).setAudience('api').setIssuedAt().setExpirationTime('5m').setJti('x')
    .sign(other.privateKey);
  await refused('token signed by someone else', await apiRequest(srv, key, forged), 'invalid_token');

  r = await apiRequest(srv, key, at, { authz: null });
  check(`${tag}: missing Authorization -> 401 DPoP algs challenge`, r.status === 401
    && r.headers.get('www-authenticate') === 'DPoP algs="ES256 ES384 EdDSA"', { s: r.status, w: r.headers.get('www-authenticate') });

  // --- other client, HTTP Basic ---
  const keyB = await newKey();
  const trB = await getToken(srv, keyB, { clientId: 'm2m.dpop.basic', basic: true });
  const atB = await checkToken(`${tag}/basic`, srv, keyB, trB, { clientId: 'm2m.dpop.basic' });
  r = await callApi(srv, keyB, atB);
  check(`${tag}/basic: api 200`, r.status === 200 && claimValue(r.json, 'client_id') === 'm2m.dpop.basic', r.text);
  // ES384 proof key
  const key384 = await newKey('ES384');
  const at384 = await checkToken(`${tag}/es384`, srv, key384, await getToken(srv, key384));
  r = await callApi(srv, key384, at384);
  check(`${tag}/es384: api 200`, r.status === 200, r.text);

  // --- AS negatives ---
  r = await tokenRequest(srv, key, { noDpop: true });
  check(`${tag}: AS refuses token request without DPoP`, r.status === 400 && r.json?.error === 'invalid_grant', r.text);
  r = await tokenRequest(srv, key, { proof: await makeProof(key, { htm: 'POST', htu: `${info.issuer}/other` }) });
  check(`${tag}: AS refuses wrong htu`, r.status === 400 && r.json?.error === 'invalid_dpop_proof', r.text);
  r = await tokenRequest(srv, key, { proof: await makeProof(key, { htm: 'GET', htu: info.token_endpoint }) });
  check(`${tag}: AS refuses wrong htm`, r.status === 400 && r.json?.error === 'invalid_dpop_proof', r.text);
  r = await tokenRequest(srv, key, { proof: await makeProof(key, { htm: 'POST', htu: info.token_endpoint }, { iat: String(Math.floor(Date.now() / 1000)) }) });
  check(`${tag}: AS refuses string iat`, r.status === 400 && r.json?.error === 'invalid_dpop_proof', r.text);
  const asProof = await makeProof(key, { htm: 'POST', htu: info.token_endpoint });
  r = await tokenRequest(srv, key, { proof: asProof });
  check(`${tag}: AS accepts fresh proof`, r.status === 200, r.text);
  r = await tokenRequest(srv, key, { proof: asProof });
  check(`${tag}: AS refuses replayed proof`, r.status === 400, r.text);
  r = await tokenRequest(srv, key, { secret: 'wrong' });
  check(`${tag}: AS refuses wrong secret`, r.status === 401 && r.json?.error === 'invalid_client', r.text);
  // NB: oidc-provider treats client_secret_basic and client_secret_post as
  // interchangeable, so posting the secret for the "basic" client works.
  r = await tokenRequest(srv, key, { clientId: 'm2m.dpop.basic' });
  check(`${tag}: AS accepts post auth for the basic client (oidc-provider leniency)`, r.status === 200, r.text);
  r = await tokenRequest(srv, key, { clientId: 'm2m.dpop', basic: true, secret: 'wrong' });
  check(`${tag}: AS refuses wrong secret (basic)`, r.status === 401 && r.json?.error === 'invalid_client', r.text);

  // --- stats ---
  // token requests: m2m.dpop, basic, es384 + 9 AS checks above = 12; issued: 5
  let s = await getJson(`${info.issuer}/_stats`);
  check(`${tag}: AS stats`, s.token_requests === 12 && s.token_issued === 5, s);
  const rs = await getJson(`${info.rs}/_stats`);
  check(`${tag}: RS stats`, rs.requests === rs.ok + rs.rejected && rs.ok === 9 && rs.rejected === 20
    && typeof rs.last_error === 'string' && rs.last_error.length > 0, rs);
  await getJson(`${info.issuer}/_stats/reset`, 'POST');
  s = await getJson(`${info.issuer}/_stats`);
  check(`${tag}: AS stats reset`, s.token_requests === 0 && s.token_issued === 0, s);
  await getJson(`${info.rs}/_stats/reset`, 'POST');
  const rs2 = await getJson(`${info.rs}/_stats`);
  check(`${tag}: RS stats reset`, rs2.requests === 0 && rs2.ok === 0 && rs2.rejected === 0 && rs2.last_error === '', rs2);

  // --- hooks ---
  r = await fetch(`${info.issuer}/bearer-token`, { method: 'POST', body: 'x=1' });
  let j = await r.json();
  check(`${tag}: /bearer-token`, r.status === 200 && j.access_token === 'xyz' && j.token_type === 'Bearer' && j.expires_in === 300, j);
  r = await fetch(`${info.issuer}/bad-token/html`, { method: 'POST' });
  check(`${tag}: /bad-token/html`, r.status === 200 && r.headers.get('content-type').startsWith('text/html') && await r.text() === '<html>');
  r = await fetch(`${info.issuer}/bad-token/garbage`, { method: 'POST' });
  check(`${tag}: /bad-token/garbage`, r.status === 200 && r.headers.get('content-type').startsWith('application/json') && await r.text() === '{not json');
  r = await fetch(`${info.issuer}/bad-token/noaccess`, { method: 'POST' });
  j = await r.json();
  check(`${tag}: /bad-token/noaccess`, r.status === 200 && j.token_type === 'DPoP' && j.access_token === undefined, j);
  r = await fetch(`${info.issuer}/bad-token/noexp`, { method: 'POST' });
  j = await r.json();
  check(`${tag}: /bad-token/noexp`, r.status === 200 && j.access_token === 'abc' && j.expires_in === undefined, j);
  s = await getJson(`${info.issuer}/_stats`);
  check(`${tag}: hooks not counted`, s.token_requests === 0, s);

  const ex = await srv.stop();
  check(`${tag}: exit 0 on stdin EOF`, ex.code === 0, ex);
  check(`${tag}: exactly one stdout line`, srv.stdout.split('\n').filter(Boolean).length === 1, srv.stdout);
  const noise = srv.stderr.split('\n').filter((l) => l && !l.includes('Unsupported runtime'));
  check(`${tag}: stderr quiet`, noise.length === 0, noise.join('\n'));
}

async function scenarioNonce(asNonce, rsNonce) {
  const args = [];
  if (asNonce) args.push('--as-nonce');
  if (rsNonce) args.push('--rs-nonce');
  const tag = args.join(' ');
  const srv = await startServer(args);
  console.log(`startup (${tag}): ${srv.startupMs.toFixed(0)} ms`);
  const { info } = srv;
  const key = await newKey();

  // first attempt without nonce, by hand
  let r = await tokenRequest(srv, key);
  if (asNonce) {
    check(`${tag}: AS use_dpop_nonce`, r.status === 400 && r.json?.error === 'use_dpop_nonce'
      && !!r.headers.get('dpop-nonce'), { s: r.status, b: r.text, n: r.headers.get('dpop-nonce') });
    r = await tokenRequest(srv, key, { nonce: r.headers.get('dpop-nonce') });
  }
  const at = await checkToken(tag, srv, key, r);
  if (asNonce) {
    r = await tokenRequest(srv, key, { nonce: 'bogus-nonce' });
    check(`${tag}: AS refuses bogus nonce`, r.status === 400 && r.json?.error === 'use_dpop_nonce' && !!r.headers.get('dpop-nonce'), r.text);
    const s = await getJson(`${info.issuer}/_stats`);
    check(`${tag}: AS stats`, s.token_requests === 3 && s.token_issued === 1, s);
  }

  r = await apiRequest(srv, key, at);
  if (rsNonce) {
    const nonce = r.headers.get('dpop-nonce');
    check(`${tag}: RS use_dpop_nonce`, r.status === 401 && r.json?.error === 'use_dpop_nonce' && !!nonce
      && r.headers.get('www-authenticate') === 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
    { s: r.status, b: r.text, w: r.headers.get('www-authenticate') });
    r = await apiRequest(srv, key, at, { nonce });
    check(`${tag}: RS 200 with nonce`, r.status === 200 && claimValue(r.json, 'client_id') === 'm2m.dpop', r.text);
    check(`${tag}: RS sends DPoP-Nonce on success`, r.headers.get('dpop-nonce') === nonce);
    r = await apiRequest(srv, key, at, { nonce: 'wrong' });
    check(`${tag}: RS refuses wrong nonce`, r.status === 401 && r.json?.error === 'use_dpop_nonce' && r.headers.get('dpop-nonce') === nonce, r.text);
    r = await callApi(srv, key, at, { method: 'POST', body: 'b' });
    check(`${tag}: RS POST with nonce retry`, r.status === 200 && r.retried && claimValue(r.json, 'request_body') === 'b', r.text);
    // other checks still apply with a good nonce
    r = await apiRequest(srv, key, at, { nonce, claims: { ath: athOf('x') } });
    check(`${tag}: RS still checks ath with nonce`, r.status === 401, r.text);
  } else {
    check(`${tag}: RS 200 without nonce`, r.status === 200 && !r.headers.get('dpop-nonce'), r.text);
  }
  // the full helper path (client w/ retries) for the basic client
  const keyB = await newKey();
  const trB = await getToken(srv, keyB, { clientId: 'm2m.dpop.basic', basic: true });
  check(`${tag}: basic token retry iff as-nonce`, trB.retried === asNonce);
  const atB = await checkToken(`${tag}/basic`, srv, keyB, trB, { clientId: 'm2m.dpop.basic' });
  r = await callApi(srv, keyB, atB);
  check(`${tag}/basic: api 200`, r.status === 200 && r.retried === rsNonce, r.text);
  const ex = await srv.stop();
  check(`${tag}: exit 0 on stdin EOF`, ex.code === 0, ex);
}

async function scenarioTtl() {
  const tag = '--ttl 2';
  const srv = await startServer(['--ttl', '2']);
  const key = await newKey();
  const at = await checkToken(tag, srv, key, await getToken(srv, key), { ttl: 2 });
  let r = await callApi(srv, key, at);
  check(`${tag}: api 200 before expiry`, r.status === 200, r.text);
  const { exp } = jose.decodeJwt(at);
  await sleep(Math.max(0, (exp + 1) * 1000 - Date.now()) + 100);
  r = await callApi(srv, key, at);
  check(`${tag}: expired token refused`, r.status === 401 && r.json?.error === 'invalid_token'
    && /expired/.test(r.json.error_description)
    && r.headers.get('www-authenticate')?.startsWith('DPoP error="invalid_token"'), r.text);
  await srv.stop();
}

async function scenarioRotate() {
  const tag = '--rs-nonce --rs-nonce-rotate 1';
  const srv = await startServer(['--rs-nonce', '--rs-nonce-rotate', '1']);
  const key = await newKey();
  const at = await checkToken(tag, srv, key, await getToken(srv, key));
  const r1 = await callApi(srv, key, at);
  check(`${tag}: api 200`, r1.status === 200 && r1.retried, r1.text);
  const n1 = r1.headers.get('dpop-nonce');
  await sleep(1300);
  const r2 = await apiRequest(srv, key, at, { nonce: n1 });
  check(`${tag}: old nonce refused after rotation`, r2.status === 401 && r2.json?.error === 'use_dpop_nonce'
    && r2.headers.get('dpop-nonce') && r2.headers.get('dpop-nonce') !== n1, r2.text);
  const r3 = await apiRequest(srv, key, at, { nonce: r2.headers.get('dpop-nonce') });
  check(`${tag}: new nonce accepted`, r3.status === 200, r3.text);
  await srv.stop();
}

async function scenarioLifecycle() {
  // stdin EOF while idle
  let srv = await startServer();
  const t0 = performance.now();
  srv.child.stdin.end();
  let ex = await withTimeout(srv.exited, 3000);
  check('lifecycle: exits on stdin EOF', ex !== 'timeout' && ex.code === 0, ex);
  console.log(`exit after stdin EOF: ${(performance.now() - t0).toFixed(0)} ms`);

  // stdin EOF with a keep-alive connection open
  srv = await startServer();
  const agent = new http.Agent({ keepAlive: true });
  await new Promise((resolve) => http.get(`${srv.info.rs}/_stats`, { agent }, (res) => { res.resume(); res.on('end', resolve); }));
  srv.child.stdin.destroy();
  ex = await withTimeout(srv.exited, 3000);
  check('lifecycle: exits on stdin close with keep-alive conn open', ex !== 'timeout' && ex.code === 0, ex);
  agent.destroy();

  // SIGTERM
  srv = await startServer();
  srv.child.kill('SIGTERM');
  ex = await withTimeout(srv.exited, 3000);
  check('lifecycle: exits on SIGTERM', ex !== 'timeout', ex);

  // fixed ports
  const ports = await new Promise((resolve) => {
    const a = http.createServer().listen(0, '127.0.0.1', () => {
      const b = http.createServer().listen(0, '127.0.0.1', () => {
        const res = [a.address().port, b.address().port];
        a.close(); b.close();
        resolve(res);
      });
    });
  });
  srv = await startServer(['--as-port', String(ports[0]), '--rs-port', String(ports[1])]);
  check('lifecycle: --as-port/--rs-port honoured', srv.info.issuer === `http://127.0.0.1:${ports[0]}`
    && srv.info.rs === `http://127.0.0.1:${ports[1]}`, srv.info);
  await srv.stop();

  // bad option -> non-zero exit, nothing on stdout
  for (const args of [['--nope'], ['--profile', 'nope'], ['--dpop-algs', 'HS256'], ['--clock-skew', 'x'], ['--pkjwt-jwk', '/nonexistent.jwk']]) {
    const bad = spawn(process.execPath, [SERVER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    bad.stdout.on('data', (d) => { out += d; });
    const code = await new Promise((resolve) => bad.on('exit', resolve));
    check(`lifecycle: ${args.join(' ')} rejected`, code !== 0 && out === '', { code, out });
  }
}

// ---------------------------------------------------------------------------
// server profiles and their options
// ---------------------------------------------------------------------------
const nowS = () => Math.floor(Date.now() / 1000);

// The fixture client-assertion key (SEC1 PEM) as a jose-usable ES256 key.
async function fixtureAssertionKey() {
  const pem = crypto.createPrivateKey(fs.readFileSync(path.join(FIXTURES, 'client_assertion_p256.pem')))
    .export({ type: 'pkcs8', format: 'pem' });
  return jose.importPKCS8(pem, 'ES256');
}

// A private_key_jwt client assertion (RFC 7523): new jti, exp = now + 60.
function assertionFor(clientId, privateKey, alg, aud, { jti } = {}) {
  return () => new jose.SignJWT({})
    .setProtectedHeader({ alg })
    .setIssuer(clientId).setSubject(clientId).setAudience(aud)
    .setJti(jti ?? crypto.randomUUID())
    .setIssuedAt().setExpirationTime(nowS() + 60)
    .sign(privateKey);
}

// An RS refusal: 401, error code in body and WWW-Authenticate DPoP challenge.
function rsRefused(name, r, code, { re, algs } = {}) {
  const www = r.headers.get('www-authenticate');
  check(name, r.status === 401 && r.json?.error === code && typeof www === 'string'
    && www.startsWith(`DPoP error="${code}"`) && (!algs || www.includes(`algs="${algs}"`))
    && (!re || re.test(r.json.error_description)), { status: r.status, www, body: r.text });
}

// Okta-like: private_key_jwt (aud = token endpoint or issuer) with a nonce at the token
// endpoint; plus the m2m.pkjwt.dpopkey client whose key is the DPoP key (--pkjwt-jwk).
async function scenarioOkta() {
  const dpopKey = await newKey('EdDSA'); // the DPoP key that also signs its client assertion
  const jwkFile = path.join(os.tmpdir(), `dpopkit-selftest-${process.pid}.jwk`);
  fs.writeFileSync(jwkFile, JSON.stringify(dpopKey.jwk));
  let srv;
  try {
    srv = await startServer(['--profile', 'okta', '--pkjwt-jwk', jwkFile]);
  } finally {
    fs.rmSync(jwkFile, { force: true });
  }
  const tag = 'okta';
  const { info } = srv;
  const disco = await getJson(`${info.issuer}/.well-known/openid-configuration`);
  check(`${tag}: discovery lists private_key_jwt / ES256`, disco.token_endpoint_auth_methods_supported?.includes('private_key_jwt')
    && disco.token_endpoint_auth_signing_alg_values_supported?.includes('ES256'), disco);

  const signer = await fixtureAssertionKey();
  const key = await newKey();
  for (const [audName, aud] of [['token endpoint', info.token_endpoint], ['issuer', info.issuer]]) {
    const t = `${tag}/aud=${audName}`;
    const assertion = assertionFor('m2m.pkjwt', signer, 'ES256', aud);
    let r = await tokenRequest(srv, key, { clientId: 'm2m.pkjwt', assertion });
    check(`${t}: nonce required first`, r.status === 400 && r.json?.error === 'use_dpop_nonce' && !!r.headers.get('dpop-nonce'), r.text);
    r = await tokenRequest(srv, key, { clientId: 'm2m.pkjwt', assertion, nonce: r.headers.get('dpop-nonce') });
    const at = await checkToken(t, srv, key, r, { clientId: 'm2m.pkjwt' });
    r = await callApi(srv, key, at);
    check(`${t}: api 200`, r.status === 200 && claimValue(r.json, 'client_id') === 'm2m.pkjwt', r.text);
  }
  const tr = await getToken(srv, key, { clientId: 'm2m.pkjwt', assertion: assertionFor('m2m.pkjwt', signer, 'ES256', info.token_endpoint) });
  const nonce = tr.headers.get('dpop-nonce') ?? (await tokenRequest(srv, key)).headers.get('dpop-nonce');
  const asRefused = async (name, opts) => {
    const r = await tokenRequest(srv, key, { clientId: 'm2m.pkjwt', nonce, ...opts });
    check(`${tag}: AS refuses ${name}`, r.status === 401 && r.json?.error === 'invalid_client', r.text);
  };
  const jti = crypto.randomUUID();
  let r = await tokenRequest(srv, key, { clientId: 'm2m.pkjwt', nonce, assertion: assertionFor('m2m.pkjwt', signer, 'ES256', info.issuer, { jti }) });
  check(`${tag}: assertion with a fixed jti accepted once`, r.status === 200, r.text);
  await asRefused('a replayed assertion jti', { assertion: assertionFor('m2m.pkjwt', signer, 'ES256', info.issuer, { jti }) });
  await asRefused('aud = the RS', { assertion: assertionFor('m2m.pkjwt', signer, 'ES256', info.rs) });
  await asRefused('an assertion signed by another key', { assertion: assertionFor('m2m.pkjwt', key.privateKey, 'ES256', info.token_endpoint) });
  await asRefused('client_secret_post for the private_key_jwt client', {});

  // m2m.pkjwt.dpopkey: the (Ed25519) DPoP key signs the assertion too.
  const assertion = assertionFor('m2m.pkjwt.dpopkey', dpopKey.privateKey, 'EdDSA', info.token_endpoint);
  const trD = await getToken(srv, dpopKey, { clientId: 'm2m.pkjwt.dpopkey', assertion });
  check(`${tag}/dpopkey: nonce retry`, trD.retried);
  const atD = await checkToken(`${tag}/dpopkey`, srv, dpopKey, trD, { clientId: 'm2m.pkjwt.dpopkey' });
  r = await callApi(srv, dpopKey, atD);
  check(`${tag}/dpopkey: api 200`, r.status === 200 && claimValue(r.json, 'client_id') === 'm2m.pkjwt.dpopkey', r.text);
  const ex = await srv.stop();
  check(`${tag}: exit 0`, ex.code === 0, ex);
}

// Auth0-like: audience required.
async function scenarioAuth0() {
  const tag = 'auth0';
  const srv = await startServer(['--profile', 'auth0']);
  const AUD = 'https://api.example/';
  const key = await newKey();
  let r = await tokenRequest(srv, key);
  check(`${tag}: no audience -> 400 invalid_request`, r.status === 400 && r.json?.error === 'invalid_request'
    && r.json.error_description === `audience is required (expected ${AUD})`, r.text);
  r = await tokenRequest(srv, key, { form: { audience: 'https://other.example/' } });
  check(`${tag}: other audience -> 400 invalid_request`, r.status === 400 && r.json?.error === 'invalid_request'
    && r.json.error_description === `audience https://other.example/ is not allowed (expected ${AUD})`, r.text);
  r = await tokenRequest(srv, key, { form: { audience: AUD } });
  const at = await checkToken(tag, srv, key, r, { aud: AUD });
  r = await callApi(srv, key, at);
  check(`${tag}: api 200 (RS expects aud ${AUD})`, r.status === 200 && claimValue(r.json, 'aud') === AUD, r.text);
  const s = await getJson(`${srv.info.issuer}/_stats`);
  check(`${tag}: AS stats`, s.token_requests === 3 && s.token_issued === 1, s);
  await srv.stop();
}

// Keycloak-like: no nonces, iat within 15 s at the AS and at the RS.
async function scenarioKeycloak() {
  const tag = 'keycloak';
  const srv = await startServer(['--profile', 'keycloak']);
  const key = await newKey();
  let r = await tokenRequest(srv, key, { iat: nowS() - 30 });
  check(`${tag}: AS refuses a proof 30 s old`, r.status === 400 && r.json?.error === 'invalid_dpop_proof'
    && /iat/.test(r.json.error_description) && /15 s/.test(r.json.error_description), r.text);
  r = await tokenRequest(srv, key, { iat: nowS() + 30 });
  check(`${tag}: AS refuses a proof 30 s ahead`, r.status === 400 && r.json?.error === 'invalid_dpop_proof', r.text);
  r = await tokenRequest(srv, key, { iat: nowS() - 10 });
  check(`${tag}: AS accepts a proof 10 s old`, r.status === 200, r.text);
  const tr = await getToken(srv, key);
  check(`${tag}: no nonce at the AS`, !tr.retried && !tr.headers.get('dpop-nonce'));
  const at = await checkToken(tag, srv, key, tr);
  r = await apiRequest(srv, key, at, { claims: { iat: nowS() - 30 } });
  rsRefused(`${tag}: RS refuses a proof 30 s old`, r, 'invalid_dpop_proof', { re: /iat.*15 s/ });
  r = await apiRequest(srv, key, at);
  check(`${tag}: RS accepts a fresh proof, no nonce`, r.status === 200 && !r.headers.get('dpop-nonce'), r.text);
  r = await apiRequest(srv, key, at, { claims: { iat: nowS() - 10 } });
  check(`${tag}: RS accepts a proof 10 s old`, r.status === 200, r.text);
  await srv.stop();
}

// Server clock ahead (--clock-skew 60) with a 15 s window; and behind (-60).
async function scenarioSkew() {
  const dateOffset = (r) => Math.floor(Date.parse(r.headers.get('date')) / 1000) - nowS();
  for (const skew of [60, -60]) {
    const tag = `--clock-skew ${skew}`;
    const srv = await startServer(['--clock-skew', String(skew), '--iat-window', '15']);
    const { info } = srv;
    const key = await newKey();
    let r = await fetch(`${info.issuer}/.well-known/openid-configuration`);
    check(`${tag}: AS Date header`, Math.abs(dateOffset(r) - skew) <= 2, r.headers.get('date'));
    r = await fetch(`${info.rs}/_stats`);
    check(`${tag}: RS Date header`, Math.abs(dateOffset(r) - skew) <= 2, r.headers.get('date'));
    r = await fetch(`${info.issuer}/nowhere`);
    check(`${tag}: AS 404 Date header`, r.status === 404 && Math.abs(dateOffset(r) - skew) <= 2, r.headers.get('date'));
    r = await tokenRequest(srv, key);
    check(`${tag}: AS refuses a proof with the real iat`, r.status === 400 && r.json?.error === 'invalid_dpop_proof'
      && /iat/.test(r.json.error_description), r.text);
    const serverNow = () => nowS() + dateOffset(r);
    r = await tokenRequest(srv, key, { iat: serverNow() });
    const at = await checkToken(tag, srv, key, r);
    if (at) {
      const { iat } = jose.decodeJwt(at);
      check(`${tag}: token iat on the server's clock`, Math.abs(iat - nowS() - skew) <= 2, { iat, now: nowS() });
    }
    if (skew > 0) {
      r = await apiRequest(srv, key, at);
      rsRefused(`${tag}: RS refuses a proof with the real iat`, r, 'invalid_dpop_proof', { re: /iat/ });
      check(`${tag}: RS 401 Date header`, Math.abs(dateOffset(r) - skew) <= 2, r.headers.get('date'));
    }
    r = await apiRequest(srv, key, at, { claims: { iat: nowS() + dateOffset(r) } });
    check(`${tag}: RS accepts a proof with iat = server time`, r.status === 200, r.text);
    await srv.stop();
  }
}

// DPoP algorithms (default ES256,ES384,EdDSA; --dpop-algs ES256) and discovery.
async function scenarioAlgs() {
  let tag = 'algs default';
  let srv = await startServer();
  let { info } = srv;
  const oidc = await getJson(`${info.issuer}/.well-known/openid-configuration`);
  const oauth = await getJson(`${info.issuer}/.well-known/oauth-authorization-server`);
  check(`${tag}: openid-configuration`, oidc.token_endpoint === info.token_endpoint
    && JSON.stringify(oidc.dpop_signing_alg_values_supported) === '["ES256","ES384","EdDSA"]', oidc);
  check(`${tag}: oauth-authorization-server = openid-configuration`, JSON.stringify(oauth) === JSON.stringify(oidc), oauth);
  for (const alg of ['ES384', 'EdDSA']) {
    const key = await newKey(alg);
    const at = await checkToken(`${tag}/${alg}`, srv, key, await getToken(srv, key));
    const r = await callApi(srv, key, at);
    check(`${tag}/${alg}: api 200`, r.status === 200, r.text);
  }
  const key = await newKey();
  let r = await tokenRequest(srv, key, { clientId: 'm2m.pkjwt.dpopkey', assertion: assertionFor('m2m.pkjwt.dpopkey', key.privateKey, 'ES256', info.token_endpoint) });
  check(`${tag}: no m2m.pkjwt.dpopkey without --pkjwt-jwk`, r.status === 401 && r.json?.error === 'invalid_client', r.text);
  // oidc-provider's own iat window for nonce-less proofs: a fixed 300 s
  r = await tokenRequest(srv, key, { iat: nowS() - 120 });
  check(`${tag}: AS (oidc-provider) accepts a proof 120 s old`, r.status === 200, r.text);
  r = await tokenRequest(srv, key, { iat: nowS() - 400 });
  check(`${tag}: AS (oidc-provider) refuses a proof 400 s old`, r.status === 400
    && r.text === '{"error":"invalid_dpop_proof","error_description":"DPoP proof iat is not recent enough"}', r.text);
  await srv.stop();

  tag = '--dpop-algs ES256';
  srv = await startServer(['--dpop-algs', 'ES256']);
  ({ info } = srv);
  const disco = await getJson(`${info.issuer}/.well-known/oauth-authorization-server`);
  check(`${tag}: discovery`, JSON.stringify(disco.dpop_signing_alg_values_supported) === '["ES256"]', disco);
  const at = await checkToken(tag, srv, key, await getToken(srv, key));
  for (const alg of ['ES384', 'EdDSA']) {
    const other = await newKey(alg);
    r = await tokenRequest(srv, other);
    check(`${tag}: AS refuses an ${alg} proof`, r.status === 400 && r.json?.error === 'invalid_dpop_proof', r.text);
    // at the RS: an ES256-bound token with a proof by that key (refused on alg before cnf.jkt)
    r = await apiRequest(srv, other, at);
    rsRefused(`${tag}: RS refuses an ${alg} proof`, r, 'invalid_dpop_proof', { re: /alg/, algs: 'ES256' });
  }
  r = await callApi(srv, key, at);
  check(`${tag}: ES256 api 200`, r.status === 200, r.text);
  await srv.stop();
}

const scenarios = [
  ['plain', scenarioPlain],
  ['as-nonce', () => scenarioNonce(true, false)],
  ['rs-nonce', () => scenarioNonce(false, true)],
  ['both nonces', () => scenarioNonce(true, true)],
  ['ttl', scenarioTtl],
  ['rotate', scenarioRotate],
  ['lifecycle', scenarioLifecycle],
  ['okta', scenarioOkta],
  ['auth0', scenarioAuth0],
  ['keycloak', scenarioKeycloak],
  ['skew', scenarioSkew],
  ['algs', scenarioAlgs],
];

const overall = setTimeout(() => {
  console.log('selftest: overall timeout');
  for (const c of children) c.kill('SIGKILL');
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 120000);

for (const [name, fn] of scenarios) {
  try {
    await fn();
  } catch (err) {
    check(`${name}: scenario threw`, false, err?.stack ?? String(err));
  }
}
clearTimeout(overall);
for (const c of children) c.kill('SIGKILL');
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
