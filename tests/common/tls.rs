//! Shared by tests/servers/tls.rs and tests/servers/proxy.rs: a throw-away test PKI made with the openssl
//! CLI (a CA and a leaf for 127.0.0.1 / localhost), https peers, and a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use dpopkit::core::http::{ProxyChoice, TrustRoots, parse_ca_pem};
use dpopkit::core::{HttpClient, Settings};

use crate::common::Peers;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::hash::{BuildHasher, RandomState};
        let n = RandomState::new().hash_one(std::time::SystemTime::now());
        let dir = std::env::temp_dir().join(format!("dpopkit-{tag}-{}-{n:x}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test CA and a server certificate it signed, as PEM files.
pub struct TestPki {
    pub dir: TempDir,
    /// The CA certificate (basicConstraints CA:TRUE).
    pub ca: PathBuf,
    /// The leaf: SAN IP:127.0.0.1, DNS:localhost and IP:0.0.0.0 (on Linux 0.0.0.0 reaches
    /// these 127.0.0.1 servers but is no loopback literal: tests/servers/proxy.rs plays another
    /// machine with it, as loopback targets never go through a proxy), EKU serverAuth.
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is needed to make the test certificates (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestPki {
    pub fn new() -> TestPki {
        let dir = TempDir::new("pki");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=dpopkit test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            d.join("server.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost,IP:0.0.0.0\n\
             subjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid\n",
        )
        .unwrap();
        let serial = format!("0x{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial,
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        TestPki { ca: d.join("ca.pem"), cert: d.join("server.pem"), key: d.join("server.key"), dir }
    }

    /// The CA as the core's trust setting.
    pub fn trust(&self) -> TrustRoots {
        TrustRoots::Pem(Arc::new(parse_ca_pem(&std::fs::read(&self.ca).unwrap()).unwrap()))
    }

    /// Starts the peers over https with this PKI, plus `extra` server.mjs options.
    pub fn peers(&self, extra: &[&str]) -> Peers {
        let (cert, key, ca) = (self.cert.to_str().unwrap(), self.key.to_str().unwrap(), self.ca.to_str().unwrap());
        let mut args = vec!["--tls", cert, key, "--tls-ca", ca];
        args.extend_from_slice(extra);
        let peers = Peers::start(&args);
        for url in [&peers.issuer, &peers.token_endpoint, &peers.rs, &peers.api] {
            assert!(url.starts_with("https://127.0.0.1:"), "peers with --tls announced {url}");
        }
        peers
    }

    /// GET a JSON document (the peers' `/_stats`) over https trusting the test CA, directly
    /// (Peers::rs_stats and friends use plain ureq with the bundled roots).
    pub fn get_json(&self, url: &str) -> serde_json::Value {
        let http = HttpClient::new();
        http.set_settings(Settings { trust: self.trust(), proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
        let (body, _) = http.quick_get_str(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        serde_json::from_str(&body).unwrap()
    }
}
