//! The committed include/dpopkit.h must equal the header build.rs generates from src/, and
//! the committed bindings/sqlserver/NativeMethods.g.cs the C# declarations build.rs
//! generates from that header. Re-bless both with `DPOPKIT_BLESS=1 cargo test --test no_peers header::`.

/// Compares a committed generated file with the one build.rs just wrote (or blesses it).
fn check_generated(generated_path: &str, committed: &str, what: &str) {
    let generated = std::fs::read_to_string(generated_path)
        .unwrap_or_else(|e| panic!("build.rs did not generate {generated_path}: {e} (see the cargo:warning of the build)"));
    let committed_path = format!("{}/{committed}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("DPOPKIT_BLESS").is_some() {
        std::fs::write(&committed_path, &generated).unwrap_or_else(|e| panic!("write {committed}: {e}"));
        return;
    }
    let current = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        current == generated,
        "{committed} is stale: {what} changed. Run `DPOPKIT_BLESS=1 cargo test --test no_peers header::` and commit {committed}"
    );
}

#[test]
fn committed_header_is_current() {
    check_generated(env!("DPOPKIT_GENERATED_HEADER"), "include/dpopkit.h", "the C API in src/");
}

#[test]
fn committed_csharp_declarations_are_current() {
    check_generated(
        env!("DPOPKIT_GENERATED_CSHARP"),
        "bindings/sqlserver/NativeMethods.g.cs",
        "the C API in src/ (or the C# generator in build/csharp.rs)",
    );
    let cs = std::fs::read_to_string(env!("DPOPKIT_GENERATED_CSHARP")).unwrap();
    assert!(!cs.contains("#error"), "the C# generator could not map a C type:\n{cs}");
}

#[test]
fn header_declares_the_stable_surface() {
    let header = std::fs::read_to_string(env!("DPOPKIT_GENERATED_HEADER")).unwrap();
    for decl in [
        "int64_t dpopkit_key_new(void);",
        "int dpopkit_key_load_any_format_file(int64_t key, const char *path, const char *password);",
        "int64_t dpopkit_json_new(void);",
        "int dpopkit_json_update_string(int64_t json, const char *name, const char *value);",
        "char *dpopkit_json_emit(int64_t json);",
        "int64_t dpopkit_http_new(void);",
        "int dpopkit_http_set_dpop_key(int64_t http, int64_t key);",
        "int dpopkit_http_set_auth_token(int64_t http, const char *auth_token_json);",
        "int dpopkit_http_set_session_log_filename(int64_t http, const char *path);",
        "char *dpopkit_http_quick_get_str(int64_t http, const char *url);",
        "int dpopkit_http_last_status(int64_t http);",
        "int dpopkit_http_last_method_success(int64_t http);",
        "char *dpopkit_last_error_text(int64_t handle);",
        "uint32_t dpopkit_last_error_code(int64_t handle);",
        "int dpopkit_destroy(int64_t handle);",
        "void dpopkit_string_free(char *s);",
        "#define DPOPKIT_VERSION_MAJOR ",
        "#define DPOPKIT_VERSION_MINOR ",
        "#define DPOPKIT_VERSION_PATCH ",
        "#define DPOPKIT_VERSION \"",
    ] {
        assert!(header.contains(decl), "the generated header lacks `{decl}`");
    }
}
