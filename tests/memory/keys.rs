//! Private keys are wiped when their last handle goes away: no freed block holds the private
//! scalar — big- and little-endian, plain and in the Montgomery form ring keeps.

use std::ffi::{CStr, CString};

use base64::Engine;
use p256::elliptic_curve::ff::PrimeField;
use zeroize::Zeroizing;

use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::key::*;

use crate::freed_copies;

/// d, d little-endian, d·R mod n (R = 2^256, ring's Montgomery form) in both byte orders.
fn needles_for(d: &[u8; 32]) -> Zeroizing<[[u8; 32]; 4]> {
    let scalar = p256::Scalar::from_repr((*d).into()).unwrap();
    let r = p256::Scalar::from(2u64).pow_vartime(&[256u64, 0, 0, 0]);
    let mont: [u8; 32] = (scalar * r).to_repr().into();
    let rev = |b: &[u8; 32]| {
        let mut x = *b;
        x.reverse();
        x
    };
    Zeroizing::new([*d, rev(d), mont, rev(&mont)])
}

#[test]
fn destroyed_keys_leave_no_copy_of_the_private_scalar() {
    let key = dpopkit_key_new();
    let path = CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ec_sec1.pem")).unwrap();
    assert_eq!(unsafe { dpopkit_key_load_any_format_file(key, path.as_ptr(), std::ptr::null()) }, 1);
    let http = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
    let needles = {
        let p = dpopkit_key_get_jwk(key);
        let jwk = Zeroizing::new(unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string());
        unsafe { dpopkit_string_free(p) };
        let start = jwk.find("\"d\":\"").unwrap() + 5;
        let end = start + jwk[start..].find('"').unwrap();
        let d = Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&jwk[start..end]).unwrap());
        needles_for(&d.as_slice().try_into().unwrap())
    };
    let refs: Vec<&[u8]> = needles.iter().map(|n| &n[..]).collect();

    // Control: a block that still holds the scalar is found.
    let control_found = freed_copies(&refs, || drop(std::hint::black_box(needles[2].to_vec())));
    let found = freed_copies(&refs, || {
        // The key object goes first; the Http still holds the key, then it goes too.
        assert_eq!(dpopkit_destroy(key), 1);
        assert_eq!(dpopkit_destroy(http), 1);
        // Keys loaded from files stay in the process-wide file cache until it is cleared: the
        // clear releases the last reference, and that copy must be wiped as well.
        assert_eq!(dpopkit::core::key::file_cache_len(), 1, "the loaded key is cached");
        assert_eq!(dpopkit_token_cache_clear(), 1);
        assert_eq!(dpopkit::core::key::file_cache_len(), 0);
    });

    assert_eq!(control_found, 1, "the scanner must find an unwiped copy");
    assert_eq!(found, 0, "a freed block still held the private key");
}
