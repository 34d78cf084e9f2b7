//! TLS trust: a CA bundle given as PEM or as a file (memoized process-wide).

use super::*;

/// Parses a PEM bundle into DER certificates; at least one is required.
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c.der().to_vec()),
            Ok(_) => {}
            Err(e) => return Err(Error::new(ErrorKind::InvalidArgument, format!("the CA bundle is not valid PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(Error::new(ErrorKind::InvalidArgument, "the CA bundle holds no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Trust only the certificates of the PEM file at `path`. Parsed bundles are kept
/// process-wide ([`FileMemo`]): an object made per call that sets the same CA file reads
/// nothing when the file is unchanged, and its settings compare equal (the same `Arc`) to
/// the earlier objects', so it shares their connections.
pub fn load_ca_file(path: &std::path::Path) -> Result<TrustRoots> {
    static CA_FILES: LazyLock<FileMemo<Vec<Vec<u8>>>> = LazyLock::new(|| FileMemo::new(crate::core::state::limits::CA_FILES));
    let shown = shorten(&path.display().to_string());
    let file = crate::core::fsread::RegularFile::open(path, &crate::core::fsread::CA_FILE)?;
    let certs =
        CA_FILES.load(file, b"", |pem| parse_ca_pem(pem).map_err(|e| Error::new(e.kind, format!("CA file '{shown}': {}", e.message))))?;
    Ok(TrustRoots::Pem(certs))
}
