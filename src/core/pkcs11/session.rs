//! The process-wide registry of loaded modules and tokens in use, logins, and the pool
//! of sessions signing takes one from.

use super::*;

#[derive(Default)]
pub(super) struct Registry {
    pub(super) modules: HashMap<PathBuf, Pkcs11>,
    pub(super) tokens: HashMap<String, Weak<Token>>,
    /// Keyed hashes of PINs a token refused, per token identity.
    pub(super) refused: HashMap<String, Vec<[u8; 32]>>,
}

pub(super) static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
pub(super) static MODULE_LOADS: AtomicUsize = AtomicUsize::new(0);
pub(super) static LOGINS: AtomicUsize = AtomicUsize::new(0);

pub(super) fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many modules this process loaded and how many times it logged in to a token (for
/// tests: one of each per module and token, however many handles share them).
#[doc(hidden)]
pub fn counters() -> (usize, usize) {
    (MODULE_LOADS.load(Ordering::Relaxed), LOGINS.load(Ordering::Relaxed))
}

/// A keyed hash of a PIN, to recognise a PIN the token already refused without keeping it.
pub(super) fn pin_fingerprint(pin: &str) -> [u8; 32] {
    static KEY: OnceLock<ring::hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &std::process::id().to_le_bytes()))
    });
    let tag = ring::hmac::sign(key, pin.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

pub(super) fn ck_name(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("{func:?}: {rv:?}"),
        other => shorten(&other.to_string()),
    }
}

pub(super) fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

pub(super) fn load_module(path: &Path) -> Result<(PathBuf, Pkcs11)> {
    let shown = shorten(&path.display().to_string());
    let canon = std::fs::canonicalize(path).map_err(|e| {
        Error::new(
            ErrorKind::FileIo,
            format!(
                "the PKCS#11 module '{shown}' cannot be opened ({e}): install the token vendor's module \
                 (SoftHSM2: apt-get install softhsm2) or fix module-path / {MODULE_ENV}"
            ),
        )
    })?;
    let mut reg = registry();
    if let Some(ctx) = reg.modules.get(&canon) {
        return Ok((canon, ctx.clone()));
    }
    if reg.modules.len() >= MAX_MODULES {
        return err(ErrorKind::InvalidArgument, format!("more than {MAX_MODULES} PKCS#11 modules in one process"));
    }
    let ctx = Pkcs11::new(&canon)
        .map_err(|e| Error::new(ErrorKind::FileIo, format!("cannot load the PKCS#11 module '{shown}': {}", ck_name(&e))))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Another part of the process initialised it already: share it.
        Err(e) if rv(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
        Err(e) => {
            return err(ErrorKind::FileIo, format!("the PKCS#11 module '{shown}' failed to initialise: {}", ck_name(&e)));
        }
    }
    MODULE_LOADS.fetch_add(1, Ordering::Relaxed);
    reg.modules.insert(canon.clone(), ctx.clone());
    Ok((canon, ctx))
}

// ---------------------------------------------------------------------------------------
// Tokens: a session pool and the login
// ---------------------------------------------------------------------------------------

pub(super) struct Pool {
    pub(super) idle: Vec<Session>,
    pub(super) open: usize,
    pub(super) max: usize,
}

pub(super) struct Login {
    /// The PIN that logged in, kept (wiped on drop) to log in again after the token
    /// logged this process out. `None` for tokens without a login or with a PIN pad.
    pub(super) pin: Option<Zeroizing<String>>,
    pub(super) logged_in: bool,
    /// The token refused `pin` at a re-login: no further automatic try.
    pub(super) refused: bool,
}

pub(crate) struct Token {
    pub(super) ctx: Pkcs11,
    pub(super) slot: Slot,
    /// Registry key: module, slot, serial and label.
    pub(super) ident: String,
    /// "token 'LABEL'" for texts.
    pub(super) name: String,
    pub(super) login_required: bool,
    pub(super) protected_path: bool,
    pub(super) pool: Mutex<Pool>,
    pub(super) returned: Condvar,
    pub(super) login: Mutex<Login>,
    /// Bumped at every login, so that many threads logged out at once log in once.
    pub(super) generation: AtomicU64,
    /// Successful logins (C_Login calls answered OK or USER_ALREADY_LOGGED_IN).
    pub(super) logins: AtomicUsize,
}

impl Token {
    pub(super) fn locked_pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle session, a new one while fewer than `max` are open, else the next one a
    /// signer gives back, waited for until `deadline` (without one: until one comes back).
    pub(super) fn checkout(&self, deadline: Option<&Deadline>) -> Result<Session> {
        let mut pool = self.locked_pool();
        loop {
            if let Some(s) = pool.idle.pop() {
                return Ok(s);
            }
            if pool.open < pool.max {
                pool.open += 1;
                drop(pool);
                let e = match self.ctx.open_ro_session(self.slot) {
                    Ok(s) => return Ok(s),
                    Err(e) => e,
                };
                pool = self.locked_pool();
                pool.open -= 1;
                if rv(&e) != Some(RvError::SessionCount) || pool.open == 0 {
                    drop(pool);
                    self.returned.notify_one();
                    return Err(self.fail("cannot open a session", &e));
                }
                // The token allows fewer sessions than it said: wait for one of ours.
                pool.max = pool.open;
            }
            pool = match deadline {
                None => self.returned.wait(pool).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.remaining();
                    if left.is_zero() {
                        let open = pool.open;
                        drop(pool);
                        // A wake-up this thread took is passed on to the next waiter.
                        self.returned.notify_one();
                        return Err(d.exceeded(&format!(
                            " while waiting for a free session of {} (all {open} busy signing: the token is slow or \
                             stalled)",
                            self.name
                        )));
                    }
                    self.returned.wait_timeout(pool, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }

    pub(super) fn checkin(&self, s: Session) {
        self.locked_pool().idle.push(s);
        self.returned.notify_one();
    }

    /// Drops a session the token no longer knows, and the idle ones with it: sessions are
    /// closed together (C_CloseAllSessions, a token pulled out), and one stale session per
    /// retry would exhaust the retries.
    pub(super) fn discard(&self, s: Session) {
        drop(s);
        let mut pool = self.locked_pool();
        let idle = std::mem::take(&mut pool.idle);
        pool.open = pool.open.saturating_sub(1 + idle.len());
        drop(pool);
        drop(idle);
        self.returned.notify_all();
    }

    /// A failed token call as an error text. At signing time the key is unusable, which the
    /// C ABI reports as `NO_KEY`.
    pub(super) fn fail(&self, what: &str, e: &CkError) -> Error {
        let hint = match rv(e) {
            Some(RvError::DeviceRemoved | RvError::TokenNotPresent) => ": the token was removed or is not present",
            Some(RvError::DeviceError) => ": the token reported a device error",
            _ => "",
        };
        Error::new(ErrorKind::NoKey, format!("{}: {what} ({}){hint}", self.name, ck_name(e)))
    }

    /// Logs in at load time with `pin`, or checks that `pin` is the one the process logged
    /// in with.
    pub(super) fn ensure_login(&self, pin: Option<Zeroizing<String>>) -> Result<()> {
        let mut login = self.login.lock().unwrap_or_else(|e| e.into_inner());
        if !self.login_required {
            login.logged_in = true;
            return Ok(());
        }
        if login.logged_in && !login.refused {
            let same = match (&login.pin, &pin) {
                (Some(a), Some(b)) => pin_fingerprint(a) == pin_fingerprint(b),
                (None, None) => true,
                _ => false,
            };
            if same {
                return Ok(());
            }
            return err(
                ErrorKind::KeyFormat,
                format!(
                    "{} is already logged in by this process with another PIN; give the same PIN (a token has one \
                     login per process)",
                    self.name
                ),
            );
        }
        if let Some(p) = &pin {
            let fp = pin_fingerprint(p);
            if registry().refused.get(&self.ident).is_some_and(|v| v.contains(&fp)) {
                return err(
                    ErrorKind::KeyFormat,
                    format!(
                        "{} already refused this PIN in this process; it is not sent again, because tokens lock after \
                         a few wrong PINs. Check the PIN and load the key with the right one",
                        self.name
                    ),
                );
            }
        } else if !self.protected_path {
            return err(
                ErrorKind::KeyFormat,
                format!("{} needs a PIN: pass it as the password argument, or as pin-value / pin-source in the URI", self.name),
            );
        }
        let session = self.checkout(None)?;
        let result = self.login_with(&session, pin.as_ref());
        self.checkin(session);
        result?;
        login.pin = pin;
        login.logged_in = true;
        login.refused = false;
        Ok(())
    }

    pub(super) fn login_with(&self, session: &Session, pin: Option<&Zeroizing<String>>) -> Result<()> {
        let auth = pin.map(|p| {
            let mut s = String::with_capacity(p.len());
            s.push_str(p);
            AuthPin::from(s)
        });
        match session.login(UserType::User, auth.as_ref()) {
            Ok(()) => {}
            Err(e) if rv(&e) == Some(RvError::UserAlreadyLoggedIn) => {}
            Err(e) => {
                return Err(match rv(&e) {
                    Some(RvError::PinIncorrect) => {
                        if let Some(p) = pin {
                            let mut reg = registry();
                            if reg.refused.len() >= MAX_REFUSED_TOKENS && !reg.refused.contains_key(&self.ident) {
                                reg.refused.clear();
                            }
                            let list = reg.refused.entry(self.ident.clone()).or_default();
                            if list.len() >= MAX_REFUSED_PER_TOKEN {
                                list.remove(0);
                            }
                            list.push(pin_fingerprint(p));
                        }
                        Error::new(
                            ErrorKind::KeyFormat,
                            format!(
                                "{} refused the PIN (CKR_PIN_INCORRECT). dpopkit does not try it again: tokens lock \
                                 after a few wrong PINs. Check the PIN and load the key again with the right one",
                                self.name
                            ),
                        )
                    }
                    Some(RvError::PinLocked) => Error::new(
                        ErrorKind::KeyFormat,
                        format!(
                            "the user PIN of {} is locked (CKR_PIN_LOCKED) after too many wrong PINs: the token's \
                             security officer must unblock it",
                            self.name
                        ),
                    ),
                    Some(RvError::PinExpired) => Error::new(
                        ErrorKind::KeyFormat,
                        format!("the user PIN of {} has expired (CKR_PIN_EXPIRED): set a new one with the vendor's tool", self.name),
                    ),
                    Some(RvError::PinLenRange | RvError::PinInvalid) => Error::new(
                        ErrorKind::KeyFormat,
                        format!("{} does not accept a PIN of this length or with these characters ({})", self.name, ck_name(&e)),
                    ),
                    Some(RvError::UserPinNotInitialized) => Error::new(
                        ErrorKind::KeyFormat,
                        format!("{} has no user PIN yet (CKR_USER_PIN_NOT_INITIALIZED): initialise the token first", self.name),
                    ),
                    _ => Error::new(ErrorKind::KeyFormat, format!("{}: login failed: {}", self.name, ck_name(&e))),
                });
            }
        }
        LOGINS.fetch_add(1, Ordering::Relaxed);
        self.logins.fetch_add(1, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Logs in again after the token said CKR_USER_NOT_LOGGED_IN, unless another thread did
    /// since `seen` or the token refused the PIN before.
    pub(super) fn relogin(&self, seen: u64, deadline: Option<&Deadline>) -> Result<()> {
        let mut login = self.login.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        if login.refused {
            return err(
                ErrorKind::NoKey,
                format!(
                    "{} logged this process out and refused the PIN at the re-login; it is not tried again. Load the \
                     key again with the current PIN",
                    self.name
                ),
            );
        }
        if login.pin.is_none() && !self.protected_path {
            return err(ErrorKind::NoKey, format!("{} logged this process out and no PIN is known to log in again", self.name));
        }
        let session = self.checkout(deadline)?;
        let result = self.login_with(&session, login.pin.as_ref());
        self.checkin(session);
        if let Err(e) = result {
            login.refused = true;
            login.logged_in = false;
            login.pin = None;
            return Err(Error::new(ErrorKind::NoKey, format!("re-login after the token logged this process out: {}", e.message)));
        }
        Ok(())
    }
}

/// The token the URI names, shared with every other handle on it.
pub(super) fn open_token(uri: &Pkcs11Uri) -> Result<Arc<Token>> {
    let module = uri.module()?;
    let (canon, ctx) = load_module(&module)?;
    let module_shown = shorten(&module.display().to_string());
    // The slots with a token, each token described on its own: one the module cannot
    // describe (C_GetTokenInfo fails: a token in a bad state, or SoftHSM2 while another
    // thread writes its files) is skipped, not the whole list (cryptoki's
    // get_slots_with_initialized_token fails as a whole then).
    let slots = ctx.get_slots_with_token().map_err(|e| {
        Error::new(ErrorKind::KeyFormat, format!("the PKCS#11 module '{module_shown}' cannot list its slots: {}", ck_name(&e)))
    })?;
    let mut found = Vec::new();
    let mut seen = Vec::new();
    let mut all = 0;
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else { continue };
        if !info.token_initialized() {
            continue;
        }
        all += 1;
        let label = info.label().trim_end().to_string();
        let serial = info.serial_number().trim_end().to_string();
        if seen.len() < 8 {
            seen.push(format!("'{}' (serial {serial}, slot-id {})", shorten(&label), slot.id()));
        }
        let want = |w: &Option<String>, have: &str| w.as_deref().is_none_or(|w| w.trim_end() == have);
        if uri.slot_id.is_some_and(|id| id != slot.id())
            || !want(&uri.token, &label)
            || !want(&uri.serial, &serial)
            || !want(&uri.manufacturer, info.manufacturer_id().trim_end())
            || !want(&uri.model, info.model().trim_end())
        {
            continue;
        }
        found.push((slot, label, serial, info.login_required(), info.protected_authentication_path(), info.max_session_count()));
    }
    let shown = uri.shown();
    let (slot, label, serial, login_required, protected_path, max) = match found.len() {
        1 => found.remove(0),
        0 => {
            let mut present = if seen.is_empty() { "none".to_string() } else { seen.join(", ") };
            if all > seen.len() && !seen.is_empty() {
                present.push_str(&format!(" and {} more", all - seen.len()));
            }
            return err(
                ErrorKind::KeyFormat,
                format!("no token matches '{shown}' in the PKCS#11 module '{module_shown}' (tokens present: {present})"),
            );
        }
        n => {
            return err(
                ErrorKind::KeyFormat,
                format!("{n} tokens match '{shown}' ({}): add token=, serial= or slot-id= to the URI", seen.join(", ")),
            );
        }
    };
    let ident = format!("{}\n{}\n{serial}\n{label}", canon.display(), slot.id());
    let mut reg = registry();
    if let Some(t) = reg.tokens.get(&ident).and_then(Weak::upgrade) {
        return Ok(t);
    }
    let max = match max {
        cryptoki::slot::Limit::Max(m) if m > 0 => (m as usize).min(MAX_SESSIONS),
        _ => MAX_SESSIONS,
    };
    let token = Arc::new(Token {
        ctx,
        slot,
        ident: ident.clone(),
        name: format!("PKCS#11 token '{}'", shorten(&label)),
        login_required,
        protected_path,
        pool: Mutex::new(Pool { idle: Vec::new(), open: 0, max }),
        returned: Condvar::new(),
        login: Mutex::new(Login { pin: None, logged_in: false, refused: false }),
        generation: AtomicU64::new(0),
        logins: AtomicUsize::new(0),
    });
    reg.tokens.retain(|_, w| w.strong_count() > 0);
    reg.tokens.insert(ident, Arc::downgrade(&token));
    Ok(token)
}

// ---------------------------------------------------------------------------------------
// Keys in a token
// ---------------------------------------------------------------------------------------
