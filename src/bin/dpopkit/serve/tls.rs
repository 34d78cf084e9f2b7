//! The server certificate: PEM files the operator gives, or a self-signed one generated
//! once (rcgen, ECDSA P-256) and kept in the certificate directory so that a restart keeps
//! it — callers (SQL Server) trust that one certificate; `dpopkit serve --print-cert`
//! prints it for their trust store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dpopkit::core::ErrorKind;
use dpopkit::core::fsread::{FileKind, read_regular_file};
use dpopkit::core::http::{TrustRoots, load_ca_file};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use super::config::TlsSource;

pub const CERT_FILE: FileKind =
    FileKind { name: "gateway certificate", max: 1 << 20, too_large: ErrorKind::FileIo, hint: "give a PEM certificate (chain) file" };
const KEY_FILE: FileKind =
    FileKind { name: "gateway TLS key", max: 1 << 20, too_large: ErrorKind::FileIo, hint: "give a PEM private key file" };

pub const CERT_NAME: &str = "gateway-cert.pem";
pub const KEY_NAME: &str = "gateway-key.pem";

/// The certificate and key files of the generated certificate in `dir`, made when missing
/// (the directory 0700, the key 0600). `names` are the DNS names and IP addresses it is for,
/// besides localhost, 127.0.0.1 and ::1.
pub fn generated(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), String> {
    let cert = dir.join(CERT_NAME);
    let key = dir.join(KEY_NAME);
    if cert.exists() && key.exists() {
        // Whoever can write the directory can plant a key of their own (and impersonate the
        // gateway to its callers); whoever can read the key, too.
        private(dir, &key)?;
        return Ok((cert, key));
    }
    make_private_dir(dir).map_err(|e| {
        format!("cannot create the certificate directory '{}': {e}; give another one with cert_dir / --cert-dir", dir.display())
    })?;
    private(dir, &key)?;
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let mut params =
        rcgen::CertificateParams::new(sans).map_err(|e| format!("cannot make the gateway certificate for these names: {e}"))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "dpopkit gateway");
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(825 * 86400)).into();
    let key_pair =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| format!("cannot generate the gateway key: {e}"))?;
    let made = params.self_signed(&key_pair).map_err(|e| format!("cannot sign the gateway certificate: {e}"))?;
    let key_pem = zeroize::Zeroizing::new(key_pair.serialize_pem());
    // A key left without its certificate is replaced (checked private above).
    let _ = std::fs::remove_file(&key);
    write_new(&key, key_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&cert, made.pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&key);
        return Err(e);
    }
    Ok((cert, key))
}

/// The certificate directory must be this user's and not writable by group or others (as
/// the token cache directory); an existing key file this user's regular file, mode 0600.
fn private(dir: &Path, key: &Path) -> Result<(), String> {
    dpopkit::core::token_store::check_dir_path(dir)
        .map_err(|why| format!("the certificate directory '{}' {why}; give another one with cert_dir / --cert-dir", dir.display()))?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::symlink_metadata(key) {
        use std::os::unix::fs::MetadataExt;
        // The directory is this user's (checked above): the key's owner must be the same.
        let me = std::fs::metadata(dir).map(|d| d.uid()).unwrap_or(u32::MAX);
        if !meta.file_type().is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
            return Err(format!(
                "the gateway TLS key '{}' is not a private file of this user's (mode {:04o}, uid {}): others could read or have planted it; remove it to generate a new one, or chmod 600 it if it is yours",
                key.display(),
                meta.mode() & 0o7777,
                meta.uid()
            ));
        }
    }
    // Windows: the key file's owner and DACL, as the token cache's records are checked (this
    // user's file on disk, not a reparse point or hard link, no access for anyone else).
    #[cfg(windows)]
    if let Err(why) = dpopkit::core::sys::windows::open_private_read(key) {
        return Err(format!(
            "the gateway TLS key '{}' {why}: others could read or have planted it; remove it to generate a new one, or make it \
             private (icacls \"{}\" /inheritance:r /grant:r \"%USERNAME%:F\")",
            key.display(),
            key.display()
        ));
    }
    #[cfg(not(any(unix, windows)))]
    let _ = key;
    Ok(())
}

/// The certificate directory, made when missing: mode 0700 on Unix; on Windows its last
/// level with a protected DACL for this user, SYSTEM and Administrators, inherited by the
/// files made in it (the parents as usual).
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(windows)]
    {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        dpopkit::core::sys::windows::create_private_dir(dir)
    }
    #[cfg(not(windows))]
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)
    }
}

/// Writes a new file: `mode` and no symbolic link followed on Unix; on Windows a private
/// file (owner, SYSTEM, Administrators) for the key (mode 0600), an ordinary one otherwise.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot write '{}': {e}", path.display());
    #[cfg(windows)]
    let mut f = if mode & 0o077 == 0 {
        dpopkit::core::sys::windows::create_new_private(path).map_err(failed)?
    } else {
        std::fs::File::create(path).map_err(failed)?
    };
    #[cfg(not(windows))]
    let mut f = {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode).custom_flags(libc::O_NOFOLLOW);
        }
        #[cfg(not(unix))]
        let _ = mode;
        options.open(path).map_err(failed)?
    };
    f.write_all(data).and_then(|_| f.sync_all()).map_err(failed)
}

/// The certificate file of a TLS source (generated when missing), for `--print-cert`.
pub fn cert_path(tls: &TlsSource) -> Result<PathBuf, String> {
    match tls {
        TlsSource::Plain => Err("plain_http is on: there is no certificate to print".into()),
        TlsSource::Files { cert, .. } => Ok(cert.clone()),
        TlsSource::Generated { dir, names } => generated(dir, names).map(|(c, _)| c),
    }
}

/// The rustls configuration of a TLS source (HTTP/1.1 only).
pub fn server_config(tls: &TlsSource, client_ca: Option<&Path>) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let (cert, key) = match tls {
        TlsSource::Plain => return Ok(None),
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::Generated { dir, names } => generated(dir, names)?,
    };
    let cert_pem = read_regular_file(&cert, &CERT_FILE).map_err(|e| e.message)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("'{}' is not a PEM certificate file: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("'{}' holds no certificate (-----BEGIN CERTIFICATE-----)", cert.display()));
    }
    let key_pem = read_regular_file(&key, &KEY_FILE).map_err(|e| e.message)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("'{}' is not a PEM private key: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            // Client certificates are asked for, verified against these CAs when sent, and
            // required by the routes with caller_auth = "client_cert" (the others take the key).
            let TrustRoots::Pem(cas) = load_ca_file(path).map_err(|e| format!("client_ca_file: {}", e.message))? else {
                return Err("client_ca_file: not a PEM CA file".into());
            };
            let mut roots = rustls::RootCertStore::empty();
            for der in cas.iter() {
                roots.add(CertificateDer::from(der.clone())).map_err(|e| format!("client_ca_file '{}': {e}", path.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("client_ca_file '{}': {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("the certificate '{}' and the key '{}' do not go together: {e}", cert.display(), key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}
