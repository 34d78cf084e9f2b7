//! A panic inside a call is caught at the boundary: the call returns its failure value with
//! DPOPKIT_RESULT_PANIC, the process goes on, and nothing is printed. Checked in a child
//! process so its stderr can be read whole.

use std::process::Command;

use dpopkit::capi::common::*;
use dpopkit::capi::json::dpopkit_json_new;

fn child() {
    let json = dpopkit_json_new();
    for h in [0, json] {
        assert_eq!(__panic_inside_boundary_for_tests(h), 0);
        assert_eq!(dpopkit_last_error_code(h), dpopkit::dpopkit_result::Panic as u32);
        let t = dpopkit_last_error_text(h);
        let text = unsafe { std::ffi::CStr::from_ptr(t) }.to_str().unwrap().to_string();
        unsafe { dpopkit_string_free(t) };
        assert!(text.contains("internal error"), "{text}");
    }
    // The library still works after a panic.
    assert_eq!(dpopkit_destroy(json), 1);
    println!("child ok");
}

#[test]
fn panic_is_caught_and_silent() {
    if std::env::var_os("DPOPKIT_PANIC_CHILD").is_some() {
        return child();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &crate::common::test_path(module_path!(), "panic_is_caught_and_silent"), "--nocapture", "--test-threads=1"])
        .env("DPOPKIT_PANIC_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("child ok"), "{stdout}");
    assert!(!stderr.contains("panicked") && !stdout.contains("panicked"), "the library printed a panic:\n{stdout}\n{stderr}");
}

#[test]
fn panics_outside_the_library_still_reach_the_hosts_hook() {
    if std::env::var_os("DPOPKIT_HOST_PANIC_CHILD").is_some() {
        let _ = __panic_inside_boundary_for_tests(0); // installs the quiet hook
        let r = std::panic::catch_unwind(|| panic!("host panic message"));
        assert!(r.is_err());
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::common::test_path(module_path!(), "panics_outside_the_library_still_reach_the_hosts_hook"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DPOPKIT_HOST_PANIC_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(stderr.contains("host panic message"), "a host panic was silenced:\n{stderr}");
    assert!(!stderr.contains("deliberate test panic"), "the library's own panic was printed:\n{stderr}");
}
