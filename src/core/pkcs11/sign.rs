//! Keys in a token: finding, generating and signing with them (on a worker thread,
//! within the call's deadline).

use super::*;

/// The curves a token key may be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    pub fn alg(self) -> &'static str {
        match self {
            Curve::P256 => "ES256",
            Curve::P384 => "ES384",
        }
    }
    pub fn crv(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
    pub(super) fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
    pub(super) fn der_oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => DER_OID_P256,
            Curve::P384 => DER_OID_P384,
        }
    }
}

/// What a token key is: EC on a curve, or RSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Ec(Curve),
    Rsa,
}

impl TokenKind {
    pub(super) fn from_alg(alg: &str) -> Result<Self> {
        match alg {
            "ES256" | "" => Ok(TokenKind::Ec(Curve::P256)),
            "ES384" => Ok(TokenKind::Ec(Curve::P384)),
            "RS256" | "PS256" => Ok(TokenKind::Rsa),
            other => err(
                ErrorKind::InvalidArgument,
                format!("keys in a PKCS#11 token are ES256 (P-256), ES384 (P-384) or RS256 / PS256 (RSA), not '{}'", shorten(other)),
            ),
        }
    }
}

/// What [`TokenKey::find_in`] found: the private key object, its kind, its public half
/// (the EC point, or the RSA modulus and exponent) and the template that finds it again.
pub(super) struct Found {
    handle: ObjectHandle,
    kind: TokenKind,
    point: Vec<u8>,
    rsa: Option<(Vec<u8>, Vec<u8>)>,
    template: Vec<Attribute>,
}

/// A private key inside a token: signs there, never leaves it.
pub struct TokenKey {
    pub(super) signer: Arc<KeySigner>,
    /// Uncompressed SEC1 point, 0x04 || x || y (EC keys; empty for RSA).
    pub(super) point: Vec<u8>,
    /// Modulus and public exponent, big-endian (RSA keys).
    pub(super) rsa: Option<(Vec<u8>, Vec<u8>)>,
}

/// What signing needs, shared with the worker thread that signs for a call with a deadline
/// (the worker may outlive the call when the token stalls).
pub(super) struct KeySigner {
    pub(super) token: Arc<Token>,
    pub(super) handle: Mutex<ObjectHandle>,
    /// Finds the key again when the token invalidates the handle.
    pub(super) template: Vec<Attribute>,
    pub(super) kind: TokenKind,
    pub(super) shown: String,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey").field("uri", &self.signer.shown).field("kind", &self.signer.kind).finish()
    }
}

use super::mechanism::{Mech, rsa_public};
use super::workers;

pub(super) fn ec_params_curve(params: &[u8]) -> Result<Curve> {
    match params {
        p if p == DER_OID_P256 => Ok(Curve::P256),
        p if p == DER_OID_P384 => Ok(Curve::P384),
        // A printable-string curve name (rare, PKCS#11 allows it).
        p if p.len() > 2 && p[0] == 0x13 && (p.ends_with(b"prime256v1") || p.ends_with(b"P-256")) => Ok(Curve::P256),
        p if p.len() > 2 && p[0] == 0x13 && (p.ends_with(b"secp384r1") || p.ends_with(b"P-384")) => Ok(Curve::P384),
        p => err(
            ErrorKind::KeyUnsupported,
            format!(
                "the token key is on an EC curve dpopkit does not sign with (CKA_EC_PARAMS {}): use P-256 (ES256) or \
                 P-384 (ES384), e.g. dpopkit keygen --pkcs11 URI",
                p.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>()
            ),
        ),
    }
}

/// The public point from CKA_EC_POINT, which tokens give as a DER OCTET STRING (the
/// standard) or as the raw point; compressed points are expanded.
pub fn parse_ec_point(curve: Curve, data: &[u8]) -> Result<Vec<u8>> {
    let unwrapped = match data {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && len & 0x80 == 0 => Some(rest),
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => Some(rest),
        _ => None,
    };
    let point = |raw: &[u8]| match curve {
        Curve::P256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            p256::PublicKey::from_sec1_bytes(raw).ok().map(|pk| pk.to_encoded_point(false).as_bytes().to_vec())
        }
        Curve::P384 => {
            use p384::elliptic_curve::sec1::ToEncodedPoint;
            p384::PublicKey::from_sec1_bytes(raw).ok().map(|pk| pk.to_encoded_point(false).as_bytes().to_vec())
        }
    };
    // A raw point first: an uncompressed one (0x04, X, Y) whose X starts with the byte
    // that is the length of the rest (1 in 256) also reads as an OCTET STRING, and a
    // wrapped point never reads as a raw one (its length is not a point's).
    point(data)
        .or_else(|| unwrapped.and_then(point))
        .ok_or_else(|| Error::new(ErrorKind::KeyFormat, format!("the token's CKA_EC_POINT is not a valid {} point", curve.crv())))
}

/// CKM_ECDSA returns r || s; a few tokens return a DER ECDSA-Sig-Value instead.
pub(super) fn raw_signature(sig: Vec<u8>, n: usize) -> Option<Vec<u8>> {
    if sig.len() == 2 * n {
        return Some(sig);
    }
    // SEQUENCE { INTEGER r, INTEGER s }, short or one-byte long length.
    let body = match sig.as_slice() {
        [0x30, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        [0x30, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        _ => return None,
    };
    let mut out = vec![0u8; 2 * n];
    let mut rest = body;
    for i in 0..2 {
        let [0x02, len, tail @ ..] = rest else { return None };
        let len = usize::from(*len);
        if tail.len() < len {
            return None;
        }
        let mut int = &tail[..len];
        while int.len() > n && int[0] == 0 {
            int = &int[1..];
        }
        if int.len() > n {
            return None;
        }
        out[i * n + n - int.len()..(i + 1) * n].copy_from_slice(int);
        rest = &tail[len..];
    }
    rest.is_empty().then_some(out)
}

pub(super) fn key_template(uri: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(o) = &uri.object {
        t.push(Attribute::Label(o.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

pub(super) fn label_list(session: &Session, class: ObjectClass) -> String {
    let Ok(objs) = session.find_objects(&[Attribute::Class(class)]) else { return "unknown".into() };
    let mut names: Vec<String> = objs
        .iter()
        .take(8)
        .filter_map(|o| session.get_attributes(*o, &[AttributeType::Label]).ok())
        .filter_map(|a| match a.first() {
            Some(Attribute::Label(l)) => Some(format!("'{}'", shorten(&String::from_utf8_lossy(l)))),
            _ => None,
        })
        .collect();
    if objs.len() > 8 {
        names.push(format!("and {} more", objs.len() - 8));
    }
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

impl KeySigner {
    /// `mech` over `input` (the digest for CKM_ECDSA, the message for the RSA mechanisms,
    /// which hash inside the token) with a pooled session; a closed session, a logout and a
    /// stale object handle are each repaired once.
    fn sign_input(&self, mech: Mech, input: &[u8], deadline: Option<&Deadline>) -> Result<Vec<u8>> {
        let token = &self.token;
        let mut last = None;
        // A closed session, a logout and a stale object handle are each repaired once.
        for _ in 0..4 {
            if let Some(d) = deadline {
                // Past the deadline nobody waits for this signature: do not start one.
                d.check(|| format!(" while waiting to sign in {}", token.name))?;
            }
            let seen = token.generation.load(Ordering::Acquire);
            let session = token.checkout(deadline)?;
            let handle = *self.handle.lock().unwrap_or_else(|e| e.into_inner());
            match session.sign(&mech.mechanism(), handle, input) {
                Ok(sig) => {
                    token.checkin(session);
                    let sig = match self.kind {
                        TokenKind::Ec(curve) => raw_signature(sig, curve.field_len()),
                        TokenKind::Rsa => Some(sig),
                    };
                    return sig.ok_or_else(|| {
                        Error::new(
                            ErrorKind::Internal,
                            format!("{}: {} returned a signature of an unexpected form", token.name, mech.name()),
                        )
                    });
                }
                Err(e) => match rv(&e) {
                    Some(RvError::SessionHandleInvalid | RvError::SessionClosed) => {
                        token.discard(session);
                        last = Some(e);
                    }
                    Some(RvError::UserNotLoggedIn) => {
                        token.checkin(session);
                        token.relogin(seen, deadline)?;
                        last = Some(e);
                    }
                    Some(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid) => {
                        // Some tokens (SoftHSM2) hide private objects after a logout and
                        // answer "invalid handle" instead of CKR_USER_NOT_LOGGED_IN.
                        let logged_out = session
                            .get_session_info()
                            .is_ok_and(|i| matches!(i.session_state(), SessionState::RoPublic | SessionState::RwPublic));
                        if logged_out && token.login_required {
                            token.checkin(session);
                            token.relogin(seen, deadline)?;
                            last = Some(e);
                            continue;
                        }
                        let found = session.find_objects(&self.template);
                        token.checkin(session);
                        match found.as_deref() {
                            Ok([one]) => *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = *one,
                            _ => {
                                return err(ErrorKind::NoKey, format!("the key '{}' is no longer in {}", self.shown, token.name));
                            }
                        }
                        last = Some(e);
                    }
                    Some(RvError::DeviceRemoved | RvError::TokenNotPresent | RvError::DeviceError) => {
                        token.discard(session);
                        return Err(token.fail("signing failed", &e));
                    }
                    Some(RvError::MechanismInvalid) => {
                        token.checkin(session);
                        let what = match self.kind {
                            TokenKind::Ec(curve) => curve.crv(),
                            TokenKind::Rsa => "RSA",
                        };
                        let fix = if matches!(mech, Mech::Sha256RsaPss) { ": let the server take RS256, or use an EC key" } else { "" };
                        return err(
                            ErrorKind::KeyUnsupported,
                            format!("{} does not offer {} for {what} keys{fix}", token.name, mech.name()),
                        );
                    }
                    _ => {
                        token.checkin(session);
                        return Err(token.fail("signing failed", &e));
                    }
                },
            }
        }
        Err(token.fail("signing failed after re-opening the session and logging in again", &last.unwrap_or(CkError::InvalidValue)))
    }
}

impl TokenKey {
    /// Opens the key a `pkcs11:` URI names. `password` is the user PIN (else `pin-value` or
    /// `pin-source` from the URI); it is wiped after use and kept only inside the token's
    /// shared state to log in again after the token logs the process out.
    pub fn open(uri_text: &str, password: Option<&str>) -> Result<Self> {
        let uri = Pkcs11Uri::parse(uri_text)?;
        let pin = uri.pin(password)?;
        let token = open_token(&uri)?;
        token.ensure_login(pin)?;
        Self::find(token, &uri)
    }

    pub(super) fn find(token: Arc<Token>, uri: &Pkcs11Uri) -> Result<Self> {
        let shown = uri.shown();
        let session = token.checkout(None)?;
        let result = Self::find_in(&token, &session, uri, &shown);
        token.checkin(session);
        let Found { handle, kind, point, rsa, template } = result?;
        let signer = Arc::new(KeySigner { token, handle: Mutex::new(handle), template, kind, shown });
        let key = TokenKey { signer, point, rsa };
        key.self_test()?;
        Ok(key)
    }

    pub(super) fn find_in(token: &Token, session: &Session, uri: &Pkcs11Uri, shown: &str) -> Result<Found> {
        let template = key_template(uri, ObjectClass::PRIVATE_KEY);
        let found = session.find_objects(&template).map_err(|e| token.fail("cannot search for the key", &e))?;
        let handle = match found.as_slice() {
            [one] => *one,
            [] => {
                return err(
                    ErrorKind::KeyFormat,
                    format!(
                        "{} holds no private key matching '{shown}' (private keys visible after login: {}); create one \
                         with: dpopkit keygen --pkcs11 'URI'",
                        token.name,
                        label_list(session, ObjectClass::PRIVATE_KEY)
                    ),
                );
            }
            many => {
                return err(
                    ErrorKind::KeyFormat,
                    format!("{} private keys in {} match '{shown}': add object= or id= to the URI", many.len(), token.name),
                );
            }
        };
        let attrs = session
            .get_attributes(
                handle,
                &[AttributeType::KeyType, AttributeType::EcParams, AttributeType::Id, AttributeType::Label, AttributeType::Sign],
            )
            .map_err(|e| token.fail("cannot read the key's attributes", &e))?;
        let mut key_type = None;
        let mut params = None;
        let mut id = None;
        let mut label = None;
        let mut can_sign = true;
        for a in attrs {
            match a {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::EcParams(p) => params = Some(p),
                Attribute::Id(i) => id = Some(i),
                Attribute::Label(l) => label = Some(l),
                Attribute::Sign(s) => can_sign = s,
                _ => {}
            }
        }
        let is_rsa = match key_type {
            Some(t) if t == KeyType::EC => false,
            Some(t) if t == KeyType::RSA => true,
            Some(t) => {
                let what = if t == KeyType::EC_EDWARDS { "an EdDSA key".to_string() } else { format!("a key of type {t}") };
                return err(
                    ErrorKind::KeyUnsupported,
                    format!(
                        "the token key '{shown}' is {what}: dpopkit signs DPoP proofs in a token with EC P-256 (ES256), \
                         P-384 (ES384) or RSA (RS256, PS256) keys; create one with: dpopkit keygen --pkcs11 'URI'"
                    ),
                );
            }
            None => return err(ErrorKind::KeyUnsupported, format!("the token does not say which type of key '{shown}' is")),
        };
        if !can_sign {
            return err(ErrorKind::KeyUnsupported, format!("the token key '{shown}' may not sign (CKA_SIGN is false)"));
        }
        if is_rsa {
            let rsa = rsa_public(token, session, handle, (&id, &label), shown)?;
            return Ok(Found { handle, kind: TokenKind::Rsa, point: Vec::new(), rsa: Some(rsa), template });
        }
        let curve = ec_params_curve(&params.unwrap_or_default())?;
        // The public point: from the public key object with the same CKA_ID (or label),
        // else from the private key object itself (some tokens keep it there).
        let mut pub_template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        match (&id, &label) {
            (Some(i), _) if !i.is_empty() => pub_template.push(Attribute::Id(i.clone())),
            (_, Some(l)) => pub_template.push(Attribute::Label(l.clone())),
            _ => {}
        }
        let mut point = None;
        let publics = session.find_objects(&pub_template).map_err(|e| token.fail("cannot search for the public key", &e))?;
        for obj in publics.iter().copied().chain(std::iter::once(handle)) {
            if let Ok(a) = session.get_attributes(obj, &[AttributeType::EcPoint]) {
                if let Some(Attribute::EcPoint(p)) = a.into_iter().next() {
                    point = Some(p);
                    break;
                }
            }
        }
        let Some(point) = point else {
            return err(
                ErrorKind::KeyFormat,
                format!(
                    "{} has no public key object with the CKA_ID of '{shown}', and the private key does not carry \
                     CKA_EC_POINT: the public key is needed for the JWK. Import it, e.g. pkcs11-tool --write-object \
                     pub.der --type pubkey --id ID",
                    token.name
                ),
            );
        };
        let point = parse_ec_point(curve, &point)?;
        Ok(Found { handle, kind: TokenKind::Ec(curve), point, rsa: None, template })
    }

    /// One signature verified with the public key: catches a public key object that does
    /// not belong to the private key (two objects sharing a label) at load time.
    pub(super) fn self_test(&self) -> Result<()> {
        let msg = b"dpopkit pkcs11 self-test";
        let sig = self.sign(msg)?;
        let verified = match (self.signer.kind, &self.rsa) {
            (TokenKind::Rsa, Some((n, e))) => {
                ring::signature::RsaPublicKeyComponents { n, e }.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, msg, &sig)
            }
            (kind, _) => {
                let alg: &dyn ring::signature::VerificationAlgorithm = match kind {
                    TokenKind::Ec(Curve::P384) => &ring::signature::ECDSA_P384_SHA384_FIXED,
                    _ => &ring::signature::ECDSA_P256_SHA256_FIXED,
                };
                ring::signature::UnparsedPublicKey::new(alg, &self.point).verify(msg, &sig)
            }
        };
        verified.map_err(|_| {
            Error::new(
                ErrorKind::KeyFormat,
                format!(
                    "the private key '{}' and the public key found for it in {} do not match (two key pairs share a \
                     label or CKA_ID): give the URI an id= that names one pair",
                    self.signer.shown, self.signer.token.name
                ),
            )
        })
    }

    /// The curve of an EC key (P-256 for an RSA key: see [`TokenKey::kind`]).
    pub fn curve(&self) -> Curve {
        match self.signer.kind {
            TokenKind::Ec(c) => c,
            TokenKind::Rsa => Curve::P256,
        }
    }

    pub fn kind(&self) -> TokenKind {
        self.signer.kind
    }

    /// Uncompressed SEC1 public point (EC keys; empty for RSA).
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// The modulus and public exponent of an RSA key, big-endian.
    pub fn rsa_public(&self) -> Option<(&[u8], &[u8])> {
        self.rsa.as_ref().map(|(n, e)| (n.as_slice(), e.as_slice()))
    }

    /// The URI without PIN, for texts.
    pub fn shown(&self) -> &str {
        &self.signer.shown
    }

    /// How often this process logged in to the key's token (for tests).
    #[doc(hidden)]
    pub fn token_logins(&self) -> usize {
        self.signer.token.logins.load(Ordering::Relaxed)
    }

    /// Whether both keys share one token session pool and login (for tests).
    #[doc(hidden)]
    pub fn shares_token_with(&self, other: &TokenKey) -> bool {
        Arc::ptr_eq(&self.signer.token, &other.signer.token)
    }

    /// Idle and open sessions of the key's token (for tests).
    #[doc(hidden)]
    pub fn token_sessions(&self) -> (usize, usize) {
        let pool = self.signer.token.locked_pool();
        (pool.idle.len(), pool.open)
    }

    /// A JWS signature of `message`: for EC (r || s) the digest is computed here and the
    /// ECDSA operation (CKM_ECDSA) runs in the token; an RSA key signs RS256
    /// (CKM_SHA256_RSA_PKCS). No deadline: for key loading and tests.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.sign_within(message, None)
    }

    /// [`TokenKey::sign`] with `alg`: `PS256` makes an RSA key sign with
    /// CKM_SHA256_RSA_PKCS_PSS (MGF1-SHA256, 32-byte salt); EC keys have one algorithm.
    pub fn sign_alg(&self, alg: &str, message: &[u8]) -> Result<Vec<u8>> {
        self.sign_alg_within(alg, message, None)
    }

    /// [`TokenKey::sign`] for a call that ends at `deadline`: the token is asked on a worker
    /// thread, and at the deadline this returns TIMEOUT whether the token answered or not
    /// (waiting for a free session included). A signature that comes after the deadline is
    /// dropped; its session goes back to the pool only when the token has answered.
    pub fn sign_within(&self, message: &[u8], deadline: Option<Deadline>) -> Result<Vec<u8>> {
        self.sign_alg_within("RS256", message, deadline)
    }

    /// [`TokenKey::sign_within`] with `alg` (see [`TokenKey::sign_alg`]).
    pub fn sign_alg_within(&self, alg: &str, message: &[u8], deadline: Option<Deadline>) -> Result<Vec<u8>> {
        let mech = Mech::for_alg(self.signer.kind, alg);
        let digest: Vec<u8> = match self.signer.kind {
            TokenKind::Ec(Curve::P256) => sha2::Sha256::digest(message).to_vec(),
            TokenKind::Ec(Curve::P384) => sha2::Sha384::digest(message).to_vec(),
            TokenKind::Rsa => message.to_vec(),
        };
        let Some(deadline) = deadline else { return self.signer.sign_input(mech, &digest, None) };
        let doing = || format!(" while {} was signing the DPoP proof or assertion (it did not answer in time)", self.signer.token.name);
        deadline.check(doing)?;
        let (tx, rx) = mpsc::sync_channel(1);
        let signer = self.signer.clone();
        workers::run(Box::new(move || {
            let _ = tx.send(signer.sign_input(mech, &digest, Some(&deadline)));
        }))?;
        match rx.recv_timeout(deadline.remaining().max(Duration::from_millis(1))) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(deadline.exceeded(&doing())),
            Err(RecvTimeoutError::Disconnected) => {
                err(ErrorKind::Internal, format!("{}: the signing thread ended without an answer", self.signer.token.name))
            }
        }
    }
    /// Creates a non-extractable, sensitive key pair in the token the URI names, labelled
    /// with `object=` (required) and `id=` (else 16 random bytes), then opens it. Refuses
    /// when a key with that label or id already exists.
    pub fn generate(uri_text: &str, password: Option<&str>, alg: &str) -> Result<Self> {
        let kind = TokenKind::from_alg(alg)?;
        let mut uri = Pkcs11Uri::parse(uri_text)?;
        let Some(label) = uri.object.clone().filter(|o| !o.is_empty()) else {
            return err(ErrorKind::InvalidArgument, "a new token key needs a name: add object=NAME to the URI");
        };
        let pin = uri.pin(password)?;
        let token = open_token(&uri)?;
        token.ensure_login(pin)?;
        let id = match &uri.id {
            Some(id) => id.clone(),
            None => {
                let mut id = vec![0u8; 16];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
                    .map_err(|_| Error::new(ErrorKind::Internal, "the system random generator failed"))?;
                id
            }
        };
        let session =
            token.ctx.open_rw_session(token.slot).map_err(|e| token.fail("cannot open a read-write session to create the key", &e))?;
        for t in [vec![Attribute::Label(label.as_bytes().to_vec())], vec![Attribute::Id(id.clone())]] {
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                let mut t = t.clone();
                t.push(Attribute::Class(class));
                let n = session.find_objects(&t).map_err(|e| token.fail("cannot search the token", &e))?.len();
                if n > 0 {
                    return err(
                        ErrorKind::InvalidArgument,
                        format!(
                            "{} already holds a key with this object= label or id= ('{}'): choose another name, or \
                             delete the old key with the vendor's tool",
                            token.name,
                            uri.shown()
                        ),
                    );
                }
            }
        }
        let label = label.into_bytes();
        let (mechanism, shape, what) = match kind {
            TokenKind::Ec(curve) => (Mechanism::EccKeyPairGen, Attribute::EcParams(curve.der_oid().to_vec()), curve.crv()),
            TokenKind::Rsa => (Mechanism::RsaPkcsKeyPairGen, Attribute::ModulusBits(2048.into()), "RSA 2048"),
        };
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            shape,
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        if kind == TokenKind::Rsa {
            public.push(Attribute::PublicExponent(vec![1, 0, 1]));
        }
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
            Attribute::Id(id.clone()),
        ];
        session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| token.fail(&format!("cannot create a {what} key pair"), &e))?;
        drop(session);
        uri.id = Some(id);
        Self::find(token, &uri)
    }
}
