//! Build script:
//! - generates the C header with cbindgen into OUT_DIR (never into the source tree), with
//!   the version macros from Cargo's version; `tests/no_peers/header.rs` compares it with the
//!   committed include/dpopkit.h;
//! - generates the C# P/Invoke declarations (NativeMethods.g.cs) from that header, so the
//!   SQL Server binding cannot drift from the C ABI; `tests/no_peers/header.rs` compares it with the
//!   committed bindings/sqlserver/NativeMethods.g.cs;
//! - on ELF targets, gives the shared library its SONAME and exports only `dpopkit_*`, and
//!   puts the SONAME link (`libdpopkit.so.0.1 -> libdpopkit.so`) beside the built library;
//! - on Windows targets, puts a version resource (the file properties Windows shows:
//!   FileVersion, ProductVersion, ProductName, ...) into dpopkit.dll and dpopkit.exe.

#[path = "build/csharp.rs"]
mod csharp;
#[path = "build/header.rs"]
mod header;
// The COM member table (src/com/members.rs): the type library's IDL is written from it.
#[path = "src/com/members.rs"]
#[allow(dead_code)]
mod com_members;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=bindings/c/dpopkit.map");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("cargo sets {k}"));
    let (major, minor, patch) = (env("CARGO_PKG_VERSION_MAJOR"), env("CARGO_PKG_VERSION_MINOR"), env("CARGO_PKG_VERSION_PATCH"));
    let version = env("CARGO_PKG_VERSION");

    link_args(&crate_dir, &major, &minor);
    version_resources(&out_dir, &version, [&major, &minor, &patch]);

    let mut config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml is valid");
    config.after_includes = Some(format!(
        "\n// The version of this header; dpopkit_version() returns the library's at run time.\n\
         #define DPOPKIT_VERSION_MAJOR {major}\n\
         #define DPOPKIT_VERSION_MINOR {minor}\n\
         #define DPOPKIT_VERSION_PATCH {patch}\n\
         #define DPOPKIT_VERSION \"{version}\"\n"
    ));
    let out = format!("{out_dir}/dpopkit.h");
    let cs_out = format!("{out_dir}/NativeMethods.g.cs");
    match cbindgen::Builder::new().with_config(config).with_src(format!("{crate_dir}/src/lib.rs")).generate() {
        Ok(bindings) => {
            bindings.write_to_file(&out);
            let header = std::fs::read_to_string(&out).expect("read the generated header");
            let (cs, problems) = csharp::csharp_from_header(&header);
            for p in &problems {
                // The generated file carries an #error for each, so the C# build fails too.
                println!("cargo:warning=NativeMethods.g.cs: {p}");
            }
            std::fs::write(&cs_out, cs).expect("write NativeMethods.g.cs");
        }
        Err(e) => {
            // The header test reports the missing file; do not break the library build.
            println!("cargo:warning=cbindgen could not generate the header: {e}");
            let _ = std::fs::remove_file(&out);
            let _ = std::fs::remove_file(&cs_out);
        }
    }
    println!("cargo:rustc-env=DPOPKIT_GENERATED_HEADER={out}");
    println!("cargo:rustc-env=DPOPKIT_GENERATED_CSHARP={cs_out}");
}

/// SONAME and exported symbols of the cdylib, on ELF targets with a GNU-compatible linker.
/// 0.x releases may break the ABI at every minor version, so the SONAME carries the minor
/// too (libdpopkit.so.0.1), as rustls-ffi does; from 1.0 on only the major.
fn link_args(crate_dir: &str, major: &str, minor: &str) {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = matches!(os.as_str(), "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly");
    if !elf {
        return;
    }
    let soname = if major == "0" { format!("libdpopkit.so.{major}.{minor}") } else { format!("libdpopkit.so.{major}") };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    // rustc already limits the exports to the #[no_mangle] functions; this script makes the
    // rule explicit (only dpopkit_*) whatever a dependency declares. tests/shipping/artifacts.rs checks.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={crate_dir}/bindings/c/dpopkit.map");
    println!("cargo:rustc-env=DPOPKIT_SONAME={soname}");
    soname_link(&soname);
}

/// A program linked straight against the build output (`-L target/release -ldpopkit`)
/// records the SONAME and asks the loader for `libdpopkit.so.0.1` at run time: put that
/// link beside the library cargo builds, as install.sh does in a prefix. OUT_DIR is
/// `<target>/[<triple>/]<profile>/build/dpopkit-<hash>/out`, so the profile's directory is
/// three levels up. The link may dangle until rustc writes the library.
fn soname_link(soname: &str) {
    #[cfg(unix)]
    {
        let Some(out_dir) = std::env::var_os("OUT_DIR") else { return };
        let Some(profile_dir) = std::path::Path::new(&out_dir).ancestors().nth(3) else { return };
        let link = profile_dir.join(soname);
        if std::fs::read_link(&link).is_ok_and(|t| t == std::path::Path::new("libdpopkit.so")) {
            return;
        }
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink("libdpopkit.so", &link) {
            println!("cargo:warning=could not create {}: {e}", link.display());
        }
    }
    #[cfg(not(unix))]
    let _ = soname;
}

/// Windows: a VERSIONINFO resource in the DLL and in the exe, so that the file's properties
/// (what an administrator reads before deploying a DLL into SQL Server) name the product
/// and carry Cargo's version. Compiled with windres on the GNU target (mingw, e.g. the
/// cross build of scripts/windows.sh) and with rc.exe on the MSVC target (a Visual Studio
/// developer prompt has it on PATH); linked as an object (GNU) or a .res (MSVC).
/// scripts/windows.sh test reads the resource back from the built files.
fn version_resources(out_dir: &str, version: &str, parts: [&String; 3]) {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let msvc = std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("msvc");
    println!("cargo:rerun-if-env-changed=WINDRES");
    let numeric = format!("{},{},{},0", parts[0], parts[1], parts[2]);
    let (desc, license) = (env_or("CARGO_PKG_DESCRIPTION", "dpopkit"), env_or("CARGO_PKG_LICENSE", "MIT OR Apache-2.0"));
    let company = match env_or("CARGO_PKG_AUTHORS", "") {
        a if a.trim().is_empty() => "dpopkit contributors".to_string(),
        a => a.replace(':', ", "),
    };
    // The COM server's type library (src/com), resource TYPELIB 1 of the DLL.
    let typelib = com_typelib(out_dir, msvc);
    for (kind, file, filetype, link_arg) in [("dll", "dpopkit.dll", "0x2L", "cdylib"), ("exe", "dpopkit.exe", "0x1L", "bins")] {
        let description = if kind == "dll" { format!("dpopkit library: {desc}") } else { format!("dpopkit command line: {desc}") };
        let q = |s: &str| s.replace('"', "\"\"");
        let rc = format!(
            "1 VERSIONINFO\n\
             FILEVERSION {numeric}\nPRODUCTVERSION {numeric}\nFILEFLAGSMASK 0x3fL\nFILEFLAGS 0x0L\n\
             FILEOS 0x40004L\nFILETYPE {filetype}\nFILESUBTYPE 0x0L\n\
             BEGIN\n  BLOCK \"StringFileInfo\"\n  BEGIN\n    BLOCK \"040904b0\"\n    BEGIN\n\
             \x20     VALUE \"CompanyName\", \"{company}\"\n\
             \x20     VALUE \"FileDescription\", \"{description}\"\n\
             \x20     VALUE \"FileVersion\", \"{version}\"\n\
             \x20     VALUE \"InternalName\", \"dpopkit\"\n\
             \x20     VALUE \"LegalCopyright\", \"Copyright (c) {company}. License: {license}\"\n\
             \x20     VALUE \"OriginalFilename\", \"{file}\"\n\
             \x20     VALUE \"ProductName\", \"dpopkit\"\n\
             \x20     VALUE \"ProductVersion\", \"{version}\"\n\
             \x20   END\n  END\n  BLOCK \"VarFileInfo\"\n  BEGIN\n    VALUE \"Translation\", 0x409, 1200\n  END\nEND\n",
            company = q(&company),
            description = q(&description),
            license = q(&license),
        );
        let rc = match (&typelib, kind) {
            (Some(tlb), "dll") => format!("{rc}1 TYPELIB \"{}\"\n", tlb.replace('\\', "\\\\")),
            _ => rc,
        };
        let rc_path = format!("{out_dir}/dpopkit-{kind}.rc");
        std::fs::write(&rc_path, rc).expect("write the .rc file");
        let (obj, status) = if msvc {
            let res = format!("{out_dir}/dpopkit-{kind}.res");
            (res.clone(), std::process::Command::new("rc.exe").args(["/nologo", "/fo", &res, &rc_path]).status())
        } else {
            let windres = std::env::var("WINDRES").unwrap_or_else(|_| {
                let cross = std::env::var("HOST").ok() != std::env::var("TARGET").ok();
                if cross { "x86_64-w64-mingw32-windres".to_string() } else { "windres".to_string() }
            });
            let o = format!("{out_dir}/dpopkit-{kind}-res.o");
            (o.clone(), std::process::Command::new(&windres).args(["-O", "coff", "-i", &rc_path, "-o", &o]).status())
        };
        match status {
            Ok(s) if s.success() => println!("cargo:rustc-link-arg-{link_arg}={obj}"),
            // Without the resource the files still work; their properties are just empty.
            other => println!(
                "cargo:warning={file} gets no version resource: the resource compiler failed ({other:?}); install mingw's windres (GNU) or run from a Visual Studio developer prompt (rc.exe)"
            ),
        }
    }
}

/// The type library of the COM server: IDL written from src/com/members.rs, compiled with
/// widl (mingw-w64-tools; the IDL imports come from libwine-dev, `stdole2.tlb` from wine)
/// or, on the MSVC target, midl.exe. Without a compiler the DLL still works late-bound
/// (VBScript, sp_OA*), and DllRegisterServer reports SELFREG_E_TYPELIB.
fn com_typelib(out_dir: &str, msvc: bool) -> Option<String> {
    println!("cargo:rerun-if-env-changed=WIDL");
    println!("cargo:rerun-if-env-changed=WIDL_INCLUDE");
    println!("cargo:rerun-if-env-changed=WIDL_STDOLE2_DIR");
    let idl = format!("{out_dir}/dpopkit.idl");
    let tlb = format!("{out_dir}/dpopkit.tlb");
    std::fs::write(&idl, com_members::idl()).expect("write dpopkit.idl");
    let _ = std::fs::remove_file(&tlb);
    let status = if msvc {
        std::process::Command::new("midl.exe").args(["/nologo", "/env", "x64", "/tlb", &tlb, &idl]).current_dir(out_dir).status()
    } else {
        let widl = std::env::var("WIDL").unwrap_or_else(|_| "x86_64-w64-mingw32-widl".to_string());
        let include = std::env::var("WIDL_INCLUDE").unwrap_or_else(|_| "/usr/include/wine/wine/windows".to_string());
        let stdole = std::env::var("WIDL_STDOLE2_DIR").unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows".to_string());
        std::process::Command::new(&widl).args(["-t", "-m64", "-I", &include, "-L", &stdole, "-o", &tlb, &idl]).status()
    };
    match status {
        Ok(s) if s.success() && std::path::Path::new(&tlb).exists() => Some(tlb),
        other => {
            println!(
                "cargo:warning=dpopkit.dll gets no COM type library: the IDL compiler failed ({other:?}); install mingw-w64-tools + libwine-dev (widl, cross build) or run from a Visual Studio developer prompt (midl.exe)"
            );
            None
        }
    }
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}
