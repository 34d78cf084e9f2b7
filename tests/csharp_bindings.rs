//! The SQL Server (SQL CLR) binding, bindings/sqlserver/DpopKit.cs, under mono:
//! tests/csharp/RunTests.cs is compiled together with it by `mcs` against System.Data (so the
//! [SqlFunction]/[SqlProcedure] entry points compile against Microsoft.SqlServer.Server) and
//! run with `mono` against the real peers, with a DPoP nonce required at both the AS and the
//! RS. LD_LIBRARY_PATH points at this test's own directory, where cargo leaves libdpopkit.so.
//!
//! Also a drift check: every function of include/dpopkit.h has exactly one matching
//! `internal static extern` declaration in DpopKit.cs, and the result enum matches.
//!
//! Needs the Debian packages mono-mcs and mono-devel (CI installs them).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Peers, repo};

const APT_HINT: &str = "install the Debian packages mono-mcs and mono-devel \
                        (apt-get install -y mono-mcs mono-devel)";

/// target/<profile>/deps, where cargo leaves libdpopkit.so for the tests.
fn lib_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().to_path_buf()
}

fn require_tool(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`{tool} --version` failed ({}): {APT_HINT}", out.status),
        Err(e) => panic!("`{tool}` is needed for the C# binding tests and was not found ({e}): {APT_HINT}"),
    }
}

#[test]
fn csharp_sqlclr_binding_against_peers_with_nonces() {
    require_tool("mcs");
    require_tool("mono");

    let work = std::env::temp_dir().join(format!("dpopkit-csharp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let exe = work.join("RunTests.exe");

    let out = Command::new("mcs")
        .args(["-langversion:7", "-warnaserror", "-nologo", "-r:System.Data"])
        .arg(format!("-out:{}", exe.display()))
        .arg(repo().join("tests/csharp/RunTests.cs"))
        .arg(repo().join("bindings/sqlserver/DpopKit.cs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mcs failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The binding alone as C# 5, the language of the csc.exe that ships in .NET Framework 4.x
    // (README.md builds the assembly with it on the SQL Server host).
    let out = Command::new("mcs")
        .args(["-langversion:5", "-warnaserror", "-nologo", "-target:library", "-r:System.Data"])
        .arg(format!("-out:{}", work.join("DpopKit.dll").display()))
        .arg(repo().join("bindings/sqlserver/DpopKit.cs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "DpopKit.cs is not C# 5:\n{}", String::from_utf8_lossy(&out.stdout));

    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let lib = lib_dir();
    assert!(lib.join("libdpopkit.so").exists(), "no libdpopkit.so in {}", lib.display());
    let ld_path = match std::env::var_os("LD_LIBRARY_PATH") {
        Some(old) if !old.is_empty() => format!("{}:{}", lib.display(), old.to_string_lossy()),
        _ => lib.display().to_string(),
    };
    let out = Command::new("mono")
        .arg("--debug")
        .arg(&exe)
        .arg(repo().join("tests/fixtures"))
        .arg(&peers.token_endpoint)
        .arg(&peers.api)
        .arg(&work)
        .env("LD_LIBRARY_PATH", ld_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mono RunTests.exe failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.ends_with(" passed, 0 failed") && !last.starts_with("0 "), "{stdout}");
    println!("RunTests.exe: {last}");

    // Every request of the program (managed objects, GetWithDpop and DpopGet creating new
    // objects on each call, the cached entry points) used one key and one AuthToken
    // configuration: the process-wide token cache must have fetched exactly one token —
    // and one more after DpopKit_ClearCache, which also clears the DLL's token cache.
    assert_eq!(
        peers.tokens_issued(),
        2,
        "one token across all the calls of the C# program before ClearCache, one after (token requests: {})\n{stdout}",
        peers.token_requests()
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// (return type, name, parameter types and names) as C# should declare them.
type Decl = (String, String, Vec<(String, String)>);

fn c_to_cs(c_type: &str, is_return: bool) -> String {
    match c_type {
        "int64_t" => "long",
        "int" => "int",
        "uint32_t" => "uint",
        "uint64_t" => "ulong",
        "void" => "void",
        "char*" => "IntPtr", // returned strings, and the pointer given back to string_free
        "constchar*" if !is_return => "byte[]",
        other => panic!("no C# mapping for C type `{other}`: extend tests/csharp_bindings.rs and DpopKit.cs"),
    }
    .to_string()
}

/// Splits "const char *name" into ("constchar*", "name").
fn split_c_param(p: &str) -> (String, String) {
    let p = p.trim();
    let cut = p.rfind(|c: char| c == ' ' || c == '*').expect("typed parameter");
    let (ty, name) = p.split_at(cut + 1);
    (ty.chars().filter(|c| !c.is_whitespace()).collect(), name.trim().to_string())
}

fn header_functions() -> Vec<Decl> {
    let h = std::fs::read_to_string(repo().join("include/dpopkit.h")).unwrap();
    let start = h.find("extern \"C\" {").expect("extern \"C\" block");
    let end = h.rfind("}  // extern \"C\"").expect("end of extern \"C\" block");
    let body: String = h[start + "extern \"C\" {".len()..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//") && !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = Vec::new();
    for decl in body.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let open = decl.find('(').unwrap_or_else(|| panic!("not a function: {decl}"));
        let close = decl.rfind(')').unwrap();
        let (ret, name) = split_c_param(&decl[..open]);
        let params = decl[open + 1..close].trim();
        let params = if params == "void" || params.is_empty() {
            Vec::new()
        } else {
            params
                .split(',')
                .map(|p| {
                    let (ty, n) = split_c_param(p);
                    (c_to_cs(&ty, false), n)
                })
                .collect()
        };
        out.push((c_to_cs(&ret, true), name, params));
    }
    out
}

fn csharp_functions(cs: &str) -> Vec<Decl> {
    let lines: Vec<&str> = cs.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix("internal static extern ") else { continue };
        let attr = lines[..i].iter().rev().map(|l| l.trim()).find(|l| !l.is_empty()).unwrap_or("");
        let (sig, _) = rest.split_once(");").unwrap_or_else(|| panic!("not on one line: {line}"));
        let (head, params) = sig.split_once('(').unwrap();
        let (ret, name) = head.trim().split_once(' ').unwrap();
        if !name.starts_with("dpopkit_") {
            continue; // Win32.LoadLibraryW
        }
        assert_eq!(
            attr, "[DllImport(Library, CallingConvention = CallingConvention.Cdecl)]",
            "the attribute of {name}"
        );
        let params = params
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (t, n) = p.rsplit_once(' ').unwrap_or_else(|| panic!("parameter `{p}` of {name}"));
                (t.trim().to_string(), n.to_string())
            })
            .collect();
        out.push((ret.to_string(), name.trim().to_string(), params));
    }
    out
}

#[test]
fn csharp_declarations_match_the_header() {
    let cs = std::fs::read_to_string(repo().join("bindings/sqlserver/DpopKit.cs")).unwrap();
    assert!(cs.contains("internal const string Library = \"dpopkit\";"));
    let header = header_functions();
    let csharp = csharp_functions(&cs);
    assert!(header.len() >= 30, "parsed only {} functions from the header", header.len());
    for h in &header {
        let found: Vec<_> = csharp.iter().filter(|c| c.1 == h.1).collect();
        assert_eq!(found.len(), 1, "{} must be declared once in NativeMethods (DpopKit.cs)", h.1);
        assert_eq!(found[0], h, "DpopKit.cs declares {} differently from include/dpopkit.h", h.1);
    }
    for c in &csharp {
        assert!(header.iter().any(|h| h.1 == c.1), "DpopKit.cs declares {}, which the header does not have", c.1);
    }

    // enum dpopkit_result <-> enum DpopKitResult
    let h = std::fs::read_to_string(repo().join("include/dpopkit.h")).unwrap();
    let mut codes: Vec<(String, u32)> = Vec::new();
    for line in h.lines() {
        let Some(rest) = line.trim().strip_prefix("DPOPKIT_RESULT_") else { continue };
        let Some((name, num)) = rest.trim_end_matches(',').split_once(" = ") else { continue };
        let pascal: String = name
            .split('_')
            .map(|w| w[..1].to_string() + &w[1..].to_lowercase())
            .collect();
        codes.push((pascal, num.parse().unwrap()));
    }
    assert!(codes.len() >= 20, "parsed only {} result codes", codes.len());
    let start = cs.find("public enum DpopKitResult").unwrap();
    let block = &cs[start..start + cs[start..].find('}').unwrap()];
    let mut cs_codes: Vec<(String, u32)> = Vec::new();
    for line in block.lines() {
        if let Some((name, num)) = line.trim().trim_end_matches(',').split_once(" = ") {
            cs_codes.push((name.to_string(), num.parse().unwrap()));
        }
    }
    assert_eq!(cs_codes, codes, "DpopKitResult in DpopKit.cs differs from dpopkit_result in the header");
}
