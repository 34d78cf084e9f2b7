//! The texts that describe which keys are accepted match the library: EC P-256 (ES256),
//! EC P-384 (ES384) and Ed25519 (EdDSA), not "P-256 only" (the state before ES384/EdDSA).

use crate::common;

use dpopkit::core::EcKey;

const STALE: &[&str] =
    &["not an EC P-256 key", "refused if not P-256", "key not P-256", "An EC P-256 private key", "an EC P-256 key for DPoP", "P-256 only"];

#[test]
fn key_texts_do_not_say_p256_only() {
    let files = [
        "include/dpopkit.h",
        "src/core/error.rs",
        "src/ffi/result.rs",
        "src/capi/key.rs",
        "SECURITY.md",
        "README.md",
        "bindings/cpp/dpopkit.hpp",
        "bindings/sqlserver/README.md",
        "bindings/sqlserver/DpopKit.cs",
        "bindings/python/dpopkit/__init__.py",
    ];
    let mut stale = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(common::repo().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        for s in STALE {
            if text.to_lowercase().contains(&s.to_lowercase()) {
                stale.push(format!("{f}: \"{s}\""));
            }
        }
    }
    assert!(stale.is_empty(), "texts still say P-256 only:\n{}", stale.join("\n"));
    // The header's KEY_UNSUPPORTED names the three kinds.
    let header = std::fs::read_to_string(common::repo().join("include/dpopkit.h")).unwrap();
    let line = header.lines().position(|l| l.contains("DPOPKIT_RESULT_KEY_UNSUPPORTED")).unwrap();
    let doc = header.lines().take(line).collect::<Vec<_>>();
    let doc = doc[doc.len().saturating_sub(3)..].join(" ");
    for kind in ["P-256", "P-384", "Ed25519"] {
        assert!(doc.contains(kind), "KEY_UNSUPPORTED doc lacks {kind}: {doc}");
    }
}

#[test]
fn the_documented_kinds_are_the_accepted_ones() {
    for alg in ["ES256", "ES384", "EdDSA"] {
        let k = EcKey::generate_alg(alg).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(k.alg(), alg);
    }
}
