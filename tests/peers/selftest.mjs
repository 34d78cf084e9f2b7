// Self-test for server.mjs: spawns it in each mode and plays a real DPoP
// client (jose) against both peers. Run: node tests/peers/selftest.mjs
// Exits 0 when everything passes; last line is "N passed, N failed".

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import * as jose from 'jose';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(HERE, 'server.mjs');
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

async function tokenRequest(srv, key, { clientId = 'm2m.dpop', basic = false, secret = 'secret', nonce, proof, noDpop = false, url } = {}) {
  const endpoint = url ?? srv.info.token_endpoint;
  const form = new URLSearchParams({ grant_type: 'client_credentials', scope: 'api' });
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (basic) {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  } else {
    form.set('client_id', clientId);
    form.set('client_secret', secret);
  }
  if (!noDpop) headers.dpop = proof ?? await makeProof(key, { htm: 'POST', htu: endpoint, nonce });
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
async function checkToken(tag, srv, key, r, { clientId = 'm2m.dpop', ttl = 300 } = {}) {
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
    ({ payload } = await jose.jwtVerify(at, jwks, { issuer: srv.info.issuer, audience: 'api' }));
  } catch (e) {
    check(`${tag}: token verifies against AS jwks`, false, e.message);
    return at;
  }
  check(`${tag}: token verifies against AS jwks`, true);
  check(`${tag}: cnf.jkt bound to key`, payload.cnf?.jkt === key.jkt, payload);
  check(`${tag}: client_id`, payload.client_id === clientId, payload);
  check(`${tag}: scope api`, payload.scope === 'api', payload);
  check(`${tag}: aud api`, payload.aud === 'api', payload);
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
      && www.includes('algs="ES256 ES384"') && (!re || re.test(json.error_description));
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
    && r.headers.get('www-authenticate') === 'DPoP algs="ES256 ES384"', { s: r.status, w: r.headers.get('www-authenticate') });

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
  const bad = spawn(process.execPath, [SERVER, '--nope'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  bad.stdout.on('data', (d) => { out += d; });
  const code = await new Promise((resolve) => bad.on('exit', resolve));
  check('lifecycle: unknown option rejected', code !== 0 && out === '', { code, out });
}

const scenarios = [
  ['plain', scenarioPlain],
  ['as-nonce', () => scenarioNonce(true, false)],
  ['rs-nonce', () => scenarioNonce(false, true)],
  ['both nonces', () => scenarioNonce(true, true)],
  ['ttl', scenarioTtl],
  ['rotate', scenarioRotate],
  ['lifecycle', scenarioLifecycle],
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
