//! The one parser of the generated C header (include/dpopkit.h): its function declarations
//! and its result codes. build.rs includes it (beside build/csharp.rs, which generates the
//! C# declarations from it), and so do the tests (tests/common/mod.rs: the bindings' drift,
//! the library's exports, the C# generator's checks, the SQL Server README's code table).
//! The exports test (tests/shipping/artifacts.rs: the library exports exactly these
//! functions) keeps the parser honest.
#![allow(dead_code)]

/// One function declaration of the header: its comment lines, return type, name and
/// (type, name) parameters.
pub struct CFunction {
    pub doc: Vec<String>,
    pub ret: String,
    pub name: String,
    pub params: Vec<(String, String)>,
}

/// The declarations between `extern "C" {` and `}  // extern "C"`, with their comments.
pub fn functions(header: &str) -> Vec<CFunction> {
    let Some(start) = header.find("extern \"C\" {") else { return Vec::new() };
    let Some(end) = header.rfind("}  // extern \"C\"") else { return Vec::new() };
    let mut out = Vec::new();
    let mut doc = Vec::new();
    let mut decl = String::new();
    for line in header[start + "extern \"C\" {".len()..end].lines() {
        let t = line.trim();
        if let Some(c) = t.strip_prefix("//") {
            doc.push(c.strip_prefix(' ').unwrap_or(c).trim_end().to_string());
            continue;
        }
        if t.is_empty() || t.starts_with('#') {
            if decl.is_empty() && t.is_empty() {
                doc.clear();
            }
            continue;
        }
        decl.push(' ');
        decl.push_str(t);
        if !t.ends_with(';') {
            continue;
        }
        let d = std::mem::take(&mut decl);
        let d = d.trim().trim_end_matches(';');
        let (Some(open), Some(close)) = (d.find('('), d.rfind(')')) else { continue };
        let (ret, name) = split_c_decl(&d[..open]);
        let params = d[open + 1..close].trim();
        let params = if params == "void" || params.is_empty() { Vec::new() } else { params.split(',').map(split_c_decl).collect() };
        out.push(CFunction { doc: std::mem::take(&mut doc), ret, name, params });
    }
    out
}

/// The names of the functions the header declares, in the header's order.
pub fn function_names(header: &str) -> Vec<String> {
    functions(header).into_iter().map(|f| f.name).collect()
}

/// "const char *name" -> ("const char *", "name").
pub fn split_c_decl(p: &str) -> (String, String) {
    let p = p.trim();
    let cut = p.rfind([' ', '*']).map_or(0, |i| i + 1);
    let (ty, name) = p.split_at(cut);
    let ty = ty.split_whitespace().collect::<Vec<_>>().join(" ").replace(" *", "*").replace('*', " *");
    (ty.trim().to_string(), name.trim().to_string())
}

/// One `DPOPKIT_RESULT_X = n,` of the header, with its comment.
pub struct ResultCode {
    pub doc: String,
    /// `DPOPKIT_RESULT_X`.
    pub name: String,
    pub number: u32,
}

impl ResultCode {
    /// `X` in PascalCase (`DPOPKIT_RESULT_INVALID_HANDLE` -> `InvalidHandle`).
    pub fn pascal(&self) -> String {
        let x = self.name.trim_start_matches("DPOPKIT_RESULT_");
        x.split('_').filter(|w| !w.is_empty()).map(|w| w[..1].to_string() + &w[1..].to_lowercase()).collect()
    }
}

/// Every result code of the header, in its order.
pub fn result_codes(header: &str) -> Vec<ResultCode> {
    let mut out = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    for line in header.lines() {
        let t = line.trim();
        if let Some(c) = t.strip_prefix("//") {
            doc.push(c.trim().to_string());
            continue;
        }
        if !t.starts_with("DPOPKIT_RESULT_") {
            doc.clear();
            continue;
        }
        let Some((name, num)) = t.trim_end_matches(',').split_once(" = ") else { continue };
        let Ok(number) = num.trim().parse() else { continue };
        out.push(ResultCode { doc: std::mem::take(&mut doc).join(" "), name: name.to_string(), number });
    }
    out
}
