//! The SQL Server (SQL CLR) binding, bindings/sqlserver/DpopKit.cs, under mono:
//! tests/csharp/RunTests.cs is compiled together with it by `mcs` against System.Data (so the
//! [SqlFunction]/[SqlProcedure] entry points compile against Microsoft.SqlServer.Server) and
//! run with `mono` against the real peers, with a DPoP nonce required at both the AS and the
//! RS. LD_LIBRARY_PATH points at this test's own directory, where cargo leaves libdpopkit.so.
//!
//! The P/Invoke declarations are not written by hand: build.rs generates them from the header
//! (build/csharp.rs) into NativeMethods.g.cs, which tests/no_peers/header.rs keeps current. Here: the
//! generator covers every function of the header with the mapped types, and picks up a new
//! function (or refuses an unmapped C type) without anyone editing C#.
//!
//! Needs the Debian packages mono-mcs and mono-devel (CI installs them).

#[allow(dead_code)]
#[path = "../../build/csharp.rs"]
mod generator;
// build/csharp.rs reads the header through its sibling `header` module.
use crate::common::header;

use std::path::PathBuf;
use std::process::Command;

use crate::common::{Peers, repo};

/// The file of the CLR assembly (bindings/sqlserver/README.md builds it with csc /out:).
const CLR_ASSEMBLY_FILE: &str = "DpopKitClr.dll";

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
        .arg(repo().join("bindings/sqlserver/NativeMethods.g.cs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "mcs failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // The binding alone as C# 5, the language of the csc.exe that ships in .NET Framework 4.x
    // (README.md builds the assembly with it on the SQL Server host).
    let out = Command::new("mcs")
        .args(["-langversion:5", "-warnaserror", "-nologo", "-target:library", "-r:System.Data"])
        .arg(format!("-out:{}", work.join(CLR_ASSEMBLY_FILE).display()))
        .arg(repo().join("bindings/sqlserver/DpopKit.cs"))
        .arg(repo().join("bindings/sqlserver/NativeMethods.g.cs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "DpopKit.cs + NativeMethods.g.cs are not C# 5:\n{}", String::from_utf8_lossy(&out.stdout));

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

/// The `internal static extern` lines of a generated file: (return type, name, parameters).
fn externs(cs: &str) -> Vec<(String, String, String)> {
    cs.lines()
        .filter_map(|l| l.trim().strip_prefix("internal static extern "))
        .map(|rest| {
            let (head, params) = rest.split_once('(').unwrap();
            let (ret, name) = head.trim().rsplit_once(' ').unwrap();
            (ret.to_string(), name.to_string(), params.trim_end_matches(");").to_string())
        })
        .collect()
}

/// Function names declared in the C header (build/header.rs, the one parser of it).
fn header_function_names(h: &str) -> Vec<String> {
    crate::common::header::function_names(h)
}

#[test]
fn generated_declarations_cover_the_header_with_its_types() {
    let header = std::fs::read_to_string(repo().join("include/dpopkit.h")).unwrap();
    let cs = std::fs::read_to_string(repo().join("bindings/sqlserver/NativeMethods.g.cs")).unwrap();
    let names = header_function_names(&header);
    assert!(names.len() >= 30, "found only {} functions in the header", names.len());
    let decls = externs(&cs);
    assert_eq!(decls.len(), names.len(), "one declaration per function of the header");
    for n in &names {
        assert_eq!(decls.iter().filter(|d| &d.1 == n).count(), 1, "{n} must be declared once in NativeMethods.g.cs");
    }
    // The type mapping, on functions that use each C type.
    let sig = |n: &str| decls.iter().find(|d| d.1 == n).map(|d| format!("{} {}({})", d.0, d.1, d.2)).unwrap();
    assert_eq!(sig("dpopkit_string_free"), "void dpopkit_string_free(IntPtr s)");
    assert_eq!(sig("dpopkit_last_error_code"), "uint dpopkit_last_error_code(long handle)");
    assert_eq!(sig("dpopkit_http_set_max_response_size"), "int dpopkit_http_set_max_response_size(long http, ulong max_bytes)");
    assert_eq!(
        sig("dpopkit_http_quick_request_str"),
        "IntPtr dpopkit_http_quick_request_str(long http, byte[] method, byte[] url, byte[] content_type, byte[] body)"
    );
    assert!(cs.contains("internal const string Library = \"dpopkit\";"));
    assert_eq!(cs.matches("[DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]").count(), names.len());
    // Every result code of the header, with its number.
    for code in crate::common::header::result_codes(&header) {
        assert!(
            cs.contains(&format!("        {} = {},\n", code.pascal(), code.number)),
            "DpopKitResult lacks {} = {}",
            code.pascal(),
            code.number
        );
    }
}

#[test]
fn a_new_function_is_picked_up_and_an_unmapped_type_is_an_error() {
    let header = std::fs::read_to_string(repo().join("include/dpopkit.h")).unwrap();
    let end = header.rfind("#ifdef __cplusplus\n}  // extern \"C\"").expect("end of the extern \"C\" block");
    let with = |decl: &str| format!("{}// A new function.\n{decl}\n\n{}", &header[..end], &header[end..]);

    let (cs, problems) = generator::csharp_from_header(&with(
        "int dpopkit_key_load_pkcs11(int64_t key,\n                            const char *uri,\n                            size_t slot,\n                            const uint8_t *pin,\n                            int64_t *out_handle);",
    ));
    assert!(problems.is_empty(), "{problems:?}");
    let d = externs(&cs).into_iter().find(|d| d.1 == "dpopkit_key_load_pkcs11").expect("the new function is declared");
    assert_eq!(d.0, "int");
    assert_eq!(d.2, "long key, byte[] uri, UIntPtr slot, byte[] pin, long[] out_handle");
    assert!(cs.contains("        // A new function.\n        [DllImport("), "its comment comes along");

    let (cs, problems) = generator::csharp_from_header(&with("int dpopkit_odd(struct dpopkit_thing *thing, long double x);"));
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(cs.starts_with("// <auto-generated>"));
    assert!(cs.contains("#error no C# type for `struct dpopkit_thing * thing` of dpopkit_odd"), "{cs}");
    assert!(cs.contains("#error no C# type for `long double x` of dpopkit_odd"), "{cs}");
}

/// The result codes of include/dpopkit.h, as (name, number).
fn header_result_codes(h: &str) -> Vec<(String, u32)> {
    crate::common::header::result_codes(h).into_iter().map(|c| (c.name, c.number)).collect()
}

/// Issue 12, item 6: bindings/sqlserver/README.md lists exactly the header's result codes,
/// each with its number (the list there had drifted: 2-4, 9 and 21-23 were missing).
#[test]
fn sqlserver_readme_error_codes_match_the_header() {
    let header = std::fs::read_to_string(repo().join("include/dpopkit.h")).unwrap();
    let readme = std::fs::read_to_string(repo().join("bindings/sqlserver/README.md")).unwrap();
    let codes = header_result_codes(&header);
    assert!(codes.len() >= 20, "found only {} result codes in the header", codes.len());
    // Rows `| 23 | `DPOPKIT_RESULT_DPOP_PROOF` | meaning |` of the README's table.
    let mut rows: Vec<(String, u32)> = Vec::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 4 && cells[2].starts_with("`DPOPKIT_RESULT_") {
            let num = cells[1].parse().unwrap_or_else(|_| panic!("README row without a number: {line}"));
            assert!(!cells[3].is_empty(), "README row without a meaning: {line}");
            rows.push((cells[2].trim_matches('`').to_string(), num));
        }
    }
    for (name, num) in &codes {
        let found: Vec<_> = rows.iter().filter(|(n, _)| n == name).collect();
        assert_eq!(found.len(), 1, "bindings/sqlserver/README.md must list {name} once: {found:?}");
        assert_eq!(found[0].1, *num, "bindings/sqlserver/README.md gives {name} the number {}, the header {num}", found[0].1);
    }
    for (name, num) in &rows {
        assert!(codes.iter().any(|(n, _)| n == name), "bindings/sqlserver/README.md lists {name} ({num}), which the header lacks");
    }
    // No prose list of codes beside the table that could drift again.
    assert!(!readme.contains("Codes: 1 NULL argument"), "the old prose list of codes is back");
}

/// Issue 12, item 6: the CLR assembly's file is not the native library's name in another
/// letter case (they differed in case only: one file name on Windows, where names ignore
/// case, so copying one replaced the other). Every `*.dll` the SQL Server docs,
/// scripts and tests name is spelled one way only, and the scripts agree on the assembly.
#[test]
fn clr_assembly_and_native_dll_names_differ_beyond_letter_case() {
    let files = [
        "README.md",
        "bindings/sqlserver/README.md",
        "bindings/sqlserver/install.sql",
        "bindings/sqlserver/uninstall.sql",
        "bindings/sqlserver/usage.sql",
        "bindings/sqlserver/DpopKit.cs",
    ];
    let mut spellings: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for f in files {
        let text = std::fs::read_to_string(repo().join(f)).unwrap();
        for (i, _) in text.match_indices(".dll") {
            let start = text[..i].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).map_or(0, |j| j + 1);
            let name = &text[start..i + 4];
            if name.len() > 4 {
                spellings.entry(name.to_lowercase()).or_default().insert(format!("{name} ({f})"));
            }
        }
    }
    assert!(spellings.contains_key("dpopkit.dll"), "the native library is named: {spellings:?}");
    assert!(spellings.contains_key(&CLR_ASSEMBLY_FILE.to_lowercase()), "the CLR assembly is named: {spellings:?}");
    for (lower, names) in &spellings {
        let distinct: std::collections::BTreeSet<&str> = names.iter().map(|n| n.split(' ').next().unwrap()).collect();
        assert_eq!(distinct.len(), 1, "{lower} is spelled in different letter cases: {names:?}");
    }
    let install = std::fs::read_to_string(repo().join("bindings/sqlserver/install.sql")).unwrap();
    let uninstall = std::fs::read_to_string(repo().join("bindings/sqlserver/uninstall.sql")).unwrap();
    assert!(install.contains("CREATE ASSEMBLY DpopKitClr\n") && install.contains("FROM 'C:\\dpopkit\\DpopKitClr.dll'"));
    let externals = install.matches("EXTERNAL NAME ").count();
    assert!(externals >= 7 && externals == install.matches("EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].").count(), "{install}");
    assert!(uninstall.contains("DROP ASSEMBLY DpopKitClr;") && uninstall.contains("name = N'DpopKitClr'"));
}

/// install.sql declares every T-SQL entry point with as many parameters as its C# method
/// has, OUTPUT exactly where C# has `out`, and every [SqlProcedure]/[SqlFunction] of
/// DpopKit.cs is declared there and dropped by uninstall.sql.
#[test]
fn install_sql_matches_the_sql_entry_points_of_the_assembly() {
    let install = std::fs::read_to_string(repo().join("bindings/sqlserver/install.sql")).unwrap();
    let uninstall = std::fs::read_to_string(repo().join("bindings/sqlserver/uninstall.sql")).unwrap();
    let cs = std::fs::read_to_string(repo().join("bindings/sqlserver/DpopKit.cs")).unwrap();
    // C#: the methods after [SqlProcedure] / [SqlFunction]: name -> per parameter, whether `out`.
    let mut methods = std::collections::BTreeMap::new();
    let attribute = |i: usize| {
        let line_start = cs[..i].rfind('\n').map_or(0, |j| j + 1);
        cs[line_start..i].trim().is_empty() && (cs[i..].starts_with("[SqlProcedure") || cs[i..].starts_with("[SqlFunction"))
    };
    for (i, _) in cs.match_indices("[Sql").filter(|(i, _)| attribute(*i)) {
        let sig_start = cs[i..].find("public static ").unwrap() + i;
        let open = cs[sig_start..].find('(').unwrap() + sig_start;
        let close = cs[open..].find(')').unwrap() + open;
        let name = cs[sig_start..open].rsplit(' ').next().unwrap().to_string();
        // `[SqlFacet(MaxSize = -1)]` has a ')' of its own: take the parameter list to the
        // ')' that ends the line.
        let close = if cs[open..close].contains("[SqlFacet(") { cs[open..].find(")\n").unwrap() + open } else { close };
        let params: Vec<bool> = cs[open + 1..close]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.trim_start_matches("[SqlFacet(MaxSize = -1)]").trim().starts_with("out "))
            .collect();
        methods.insert(name, params);
    }
    assert!(methods.len() >= 9 && methods.contains_key("RequestWithHeaders"), "{methods:?}");
    // T-SQL: CREATE PROCEDURE/FUNCTION ... AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].Method;
    let mut declared = 0;
    for block in install.split("\nGO").filter(|b| b.contains("EXTERNAL NAME")) {
        let create = block.find("CREATE ").unwrap();
        let object = block[create..].split_whitespace().nth(2).unwrap().split('(').next().unwrap().to_string();
        let method = block.rsplit("].").next().unwrap().trim().trim_end_matches(';').to_string();
        let params: Vec<bool> = block[create..]
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('@'))
            .map(|l| l.split("--").next().unwrap().contains(" OUTPUT"))
            .collect();
        let Some(cs_params) = methods.get(&method) else {
            panic!("{object} names {method}, which DpopKit.cs does not have as an entry point")
        };
        assert_eq!(&params, cs_params, "{object}: the parameters (true = OUTPUT) differ from DpopKitSql.{method}");
        assert!(uninstall.contains(&format!(" {object};")), "uninstall.sql does not drop {object}");
        declared += 1;
    }
    assert_eq!(declared, methods.len(), "every entry point of DpopKit.cs ({:?}) is declared in install.sql", methods.keys());
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The CLR route's install steps that can run here (issue 21 item 5): the assembly signed
/// with a strong-name key (mono's sn makes and verifies it), ClrInstall.exe's SHA2_512 (the
/// same as computed here) and signature check, the trust.sql / untrust.sql it writes for
/// both trust routes, and NativeLoader loading libdpopkit.so by full path from
/// DPOPKIT_NATIVE_DIR (and refusing, without fallback, a directory that lacks it).
#[test]
fn clr_route_signing_hash_install_script_and_native_loader() {
    use sha2::Digest;
    require_tool("mcs");
    require_tool("mono");
    let work = std::env::temp_dir().join(format!("dpopkit-clr-route-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let sq = repo().join("bindings/sqlserver");
    let snk = work.join("DpopKitClr.snk");
    let (ok, out) = run(Command::new("sn").arg("-k").arg(&snk));
    assert!(ok, "sn -k (mono's strong-name tool, Debian package mono-devel): {out}");
    let mcs = |out_file: &std::path::Path, keyfile: Option<&std::path::Path>| {
        let mut c = Command::new("mcs");
        c.args(["-langversion:5", "-warnaserror", "-nologo", "-target:library", "-r:System.Data"]);
        if let Some(k) = keyfile {
            c.arg(format!("-keyfile:{}", k.display()));
        }
        c.arg(format!("-out:{}", out_file.display())).arg(sq.join("DpopKit.cs")).arg(sq.join("NativeMethods.g.cs"));
        let (ok, out) = run(&mut c);
        assert!(ok, "mcs: {out}");
    };
    let signed = work.join(CLR_ASSEMBLY_FILE);
    let unsigned_dir = work.join("unsigned");
    std::fs::create_dir_all(&unsigned_dir).unwrap();
    let unsigned = unsigned_dir.join(CLR_ASSEMBLY_FILE);
    mcs(&signed, Some(&snk));
    mcs(&unsigned, None);
    let (ok, out) = run(Command::new("sn").arg("-v").arg(&signed));
    assert!(ok, "sn -v on the signed assembly: {out}");
    let (ok, _) = run(Command::new("sn").arg("-v").arg(&unsigned));
    assert!(!ok, "sn -v accepts an unsigned assembly: this check would prove nothing");
    let (ok, token_out) = run(Command::new("sn").arg("-T").arg(&signed));
    assert!(ok, "sn -T: {token_out}");
    let token = token_out.split("Public Key Token:").nth(1).map(|t| t.trim().to_lowercase()).unwrap_or_default();
    assert_eq!(token.len(), 16, "sn -T: {token_out}");

    let tool = work.join("ClrInstall.exe");
    let (ok, out) = run(Command::new("mcs")
        .args(["-langversion:5", "-warnaserror", "-nologo"])
        .arg(format!("-out:{}", tool.display()))
        .arg(sq.join("ClrInstall.cs")));
    assert!(ok, "mcs ClrInstall.cs: {out}");
    let clr_install = |args: &[&str]| run(Command::new("mono").arg(&tool).args(args));
    let hex = |p: &std::path::Path| sha2::Sha512::digest(std::fs::read(p).unwrap()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let sha = hex(&signed);
    let (ok, out) = clr_install(&["hash", signed.to_str().unwrap()]);
    assert!(ok && out.trim() == sha, "ClrInstall hash: {out} (want {sha})");

    let (ok, trust) = clr_install(&["install", signed.to_str().unwrap(), "hash", "Sales"]);
    assert!(ok, "{trust}");
    assert!(trust.contains(&format!("EXEC sys.sp_add_trusted_assembly @hash = 0x{sha}, @description = N'DpopKitClr, Version=")), "{trust}");
    assert!(trust.contains(&format!("CREATE ASSEMBLY DpopKitClr FROM '{}' WITH PERMISSION_SET = UNSAFE;", signed.display())), "{trust}");
    assert!(trust.contains("USE [Sales];"), "{trust}");
    let (ok, untrust) = clr_install(&["uninstall", signed.to_str().unwrap(), "hash", "Sales"]);
    assert!(
        ok && untrust.contains(&format!("EXEC sys.sp_drop_trusted_assembly @hash = 0x{sha};"))
            && untrust.contains("DROP ASSEMBLY DpopKitClr"),
        "{untrust}"
    );

    let (ok, trust) = clr_install(&["install", signed.to_str().unwrap(), "key", "Sales"]);
    assert!(ok, "{trust}");
    assert!(trust.contains(&format!("-- public key token: {token}")), "the token ClrInstall reads is sn -T's {token}:\n{trust}");
    assert!(trust.contains(&format!("CREATE ASYMMETRIC KEY DpopKitSigningKey FROM EXECUTABLE FILE = '{}';", signed.display())), "{trust}");
    assert!(trust.contains("GRANT UNSAFE ASSEMBLY TO DpopKitSigningLogin;") && trust.contains("PERMISSION_SET = UNSAFE"), "{trust}");
    let (ok, out) = clr_install(&["install", unsigned.to_str().unwrap(), "key"]);
    assert!(
        !ok && out.contains("is not strong-name signed") && out.contains("trust it by hash"),
        "an unsigned assembly for the key route: {out}"
    );
    let (ok, out) = clr_install(&["install", unsigned.to_str().unwrap(), "hash"]);
    assert!(ok && out.contains(&format!("0x{}", hex(&unsigned))), "an unsigned assembly, trusted by its own hash: {out}");
    // A rebuilt (here: changed) file is a different hash: the old trust does not carry over.
    assert_ne!(hex(&unsigned), sha);

    // NativeLoader: loaded by full path from the configured directory.
    let exe = work.join("ClrRoute.exe");
    let (ok, out) = run(Command::new("mcs")
        .args(["-langversion:5", "-warnaserror", "-nologo"])
        .arg(format!("-r:{}", signed.display()))
        .arg(format!("-out:{}", exe.display()))
        .arg(repo().join("tests/csharp/ClrRoute.cs")));
    assert!(ok, "mcs ClrRoute.cs: {out}");
    let lib = lib_dir();
    let (ok, out) = run(Command::new("mono")
        .arg(&exe)
        .arg("ok")
        .arg(&lib)
        .env("DPOPKIT_NATIVE_DIR", &lib)
        .env("LD_LIBRARY_PATH", &lib)
        .current_dir(&work));
    assert!(ok && out.trim_end().ends_with("REACHED END"), "{out}");
    let empty = work.join("no-library-here");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, out) = run(Command::new("mono")
        .arg(&exe)
        .arg("refused")
        .env("DPOPKIT_NATIVE_DIR", &empty)
        .env("LD_LIBRARY_PATH", &lib)
        .current_dir(&work));
    assert!(ok && out.trim_end().ends_with("REACHED END"), "{out}");
    let (ok, out) = run(Command::new("mono")
        .arg(&exe)
        .arg("refused")
        .env("DPOPKIT_NATIVE_DIR", "relative/dir")
        .env("LD_LIBRARY_PATH", &lib)
        .current_dir(&work));
    assert!(ok && out.contains("must be a full path"), "{out}");
    let _ = std::fs::remove_dir_all(&work);
}
