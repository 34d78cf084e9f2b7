//! Bounds on the cost of decrypting an encrypted PKCS#8 key, and PEM body helpers.

use super::*;

/// Largest PBKDF2 iteration count accepted (OpenSSL uses 2,048, OWASP suggests 600,000):
/// a key file must not be able to keep a caller busy for minutes.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Largest scrypt cost accepted: N = 2^20 with r = 8 needs 1 GiB.
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;

pub(super) fn check_kdf_cost(scheme: &pkcs8::pkcs5::EncryptionScheme<'_>) -> Result<()> {
    use pkcs8::pkcs5::pbes2::Kdf;
    let Some(params) = scheme.pbes2() else { return Ok(()) };
    match &params.kdf {
        Kdf::Pbkdf2(p) if p.iteration_count > MAX_PBKDF2_ITERATIONS => err(
            ErrorKind::KeyFormat,
            format!(
                "the encrypted key asks for {} PBKDF2 iterations, more than the {MAX_PBKDF2_ITERATIONS} accepted; \
                 re-encrypt it with: openssl pkcs8 -topk8 -v2 aes-256-cbc",
                p.iteration_count
            ),
        ),
        Kdf::Scrypt(p) => {
            let memory =
                128u64.saturating_mul(p.block_size as u64).saturating_mul(p.cost_parameter).saturating_mul(p.parallelization.max(1) as u64);
            if memory > MAX_SCRYPT_MEMORY {
                return err(ErrorKind::KeyFormat, "the encrypted key's scrypt parameters need more than 1 GiB; re-encrypt it with PBKDF2");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

pub(super) fn pem_body(body: &str) -> Result<Zeroizing<Vec<u8>>> {
    let compact: Zeroizing<String> = Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
    STANDARD
        .decode(compact.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| Error::new(ErrorKind::KeyFormat, "the PEM block is not valid base64"))
}
