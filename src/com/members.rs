//! The COM members of DpopKit.PrivateKey / .JsonObject / .Http: one table, read by the
//! IDispatch (src/com/dispatch.rs: names, DISPIDs, argument types) and by build.rs (which
//! writes the type library's IDL from it), so the late-bound and the early-bound views
//! cannot differ. Pure data: no Windows types, so build.rs can `#[path]`-include it.
//!
//! Naming rule (README "SQL Server", bindings/sqlserver/README.md): each C function
//! `dpopkit_<object>_<verb>` is the member `<Verb>` in PascalCase (`dpopkit_http_set_timeouts`
//! -> `SetTimeouts`); `last_*` and the common `version` / `live_handles` are read-only
//! properties; the seed's names are kept exactly (`SetDPoPKey` is `set_dpop_key`, the same
//! name to a case-insensitive lookup); `AuthToken` (write-only: it holds the client secret)
//! and `SessionLogFilename` are writable properties beside their `Set...` methods.
//! Methods that succeed or fail return a Long 1 or 0.

/// A parameter's or result's automation type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ty {
    /// no result
    Void,
    /// VT_I4 (bools too: 0 = false, anything else = true)
    Long,
    /// a count of bytes: VT_I4 or VT_I8 in, never negative
    Size,
    /// VT_BSTR, required (Null is a type mismatch)
    Str,
    /// VT_BSTR, optional: missing or Null = the C layer's NULL
    OptStr,
    /// a DpopKit.PrivateKey object (VT_DISPATCH)
    Key,
    /// a DpopKit.PrivateKey object or Nothing / missing
    OptKey,
    /// VT_ARRAY | VT_UI1 (or a string, sent as its UTF-8), optional
    OptBytes,
    /// VT_ARRAY | VT_UI1 result
    Bytes,
}

/// How a member is invoked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// DISPATCH_METHOD (VBScript and sp_OAGetProperty may send PROPERTYGET too)
    Method,
    /// read-only property
    Get,
    /// read/write property
    GetPut,
    /// write-only property
    Put,
}

pub struct Member {
    /// DISPID, > 0, fixed (the type library carries them)
    pub id: i32,
    pub name: &'static str,
    pub kind: Kind,
    /// (name, type); optional ones are last. A property put takes its value as `params[0]`.
    pub params: &'static [(&'static str, Ty)],
    pub ret: Ty,
    /// one line, for the type library's helpstring and README
    pub doc: &'static str,
}

pub struct Class {
    /// "PrivateKey", "JsonObject", "Http"
    pub name: &'static str,
    pub clsid: &'static str,
    /// the dispinterface's IID
    pub diid: &'static str,
    pub members: &'static [Member],
}

pub const LIBID: &str = "68C7AC39-241B-4A57-91FE-6E753E7B4965";
pub const LIB_NAME: &str = "DpopKit";
pub const LIB_VERSION: (u16, u16) = (1, 0);
/// The ProgIDs' version suffix (`DpopKit.Http.1`), raised when a member changes incompatibly.
pub const PROGID_VERSION: u32 = 1;

pub fn optional(t: Ty) -> bool {
    matches!(t, Ty::OptStr | Ty::OptKey | Ty::OptBytes)
}

macro_rules! m {
    ($id:expr, $name:expr, $kind:ident, [$(($p:expr, $t:ident)),*], $ret:ident, $doc:expr) => {
        Member { id: $id, name: $name, kind: Kind::$kind, params: &[$(($p, Ty::$t)),*], ret: Ty::$ret, doc: $doc }
    };
}

// Every object: the last call's outcome on the calling thread, and the library's state.
// DISPIDs 1..=5 are the same on all three; an object's own members start at 10.
macro_rules! with_common {
    ($($x:expr),* $(,)?) => {
        &[
        m!(1, "LastErrorText", Get, [], Str, "the last call's error text (empty after a success); never holds a secret"),
        m!(2, "LastMethodSuccess", Get, [], Long, "1 if the last call succeeded, else 0"),
        m!(3, "LastErrorCode", Get, [], Long, "the last call's dpopkit_result code (0 = OK)"),
        m!(4, "Version", Get, [], Str, "dpopkit_version: the DLL's version"),
        m!(5, "LiveHandles", Get, [], Long, "dpopkit_live_handles: objects alive in the DLL (all kinds, all callers)"),
            $($x),*
        ]
    };
}

pub static PRIVATE_KEY: Class = Class {
    name: "PrivateKey",
    clsid: "3FF83B4C-6DC6-44F7-9E52-C3C9E72BB1EE",
    diid: "E262A1EA-C34B-4789-8FF2-10A0039BDAE5",
    members: with_common![
        m!(
            10,
            "LoadAnyFormatFile",
            Method,
            [("path", Str), ("password", OptStr)],
            Long,
            "loads a PEM/DER key file (or a pkcs11: URI); 1/0"
        ),
        m!(
            11,
            "LoadAnyFormat",
            Method,
            [("data", Str), ("password", OptStr)],
            Long,
            "loads a key from PEM/JWK text (or a pkcs11: URI); 1/0"
        ),
        m!(12, "Generate", Method, [], Long, "generates a new P-256 key; 1/0"),
        m!(13, "GenerateAlg", Method, [("alg", Str)], Long, "generates a new key for ES256, ES384, EdDSA, RS256 or PS256; 1/0"),
        m!(
            14,
            "GeneratePkcs11",
            Method,
            [("uri", Str), ("pin", OptStr), ("alg", OptStr)],
            Long,
            "generates a non-extractable key in a PKCS#11 token; 1/0"
        ),
        m!(15, "GetAlg", Method, [], Str, "the preferred JWS algorithm: ES256, ES384, EdDSA, RS256 or PS256"),
        m!(16, "GetPkcs8Pem", Method, [], Str, "the PRIVATE key as PKCS#8 PEM (secret: an explicit export)"),
        m!(17, "GetJwk", Method, [], Str, "the PRIVATE key as a JWK (secret: an explicit export)"),
        m!(18, "GetPublicJwk", Method, [], Str, "the public key as a JWK"),
        m!(19, "GetJwkThumbprint", Method, [], Str, "the RFC 7638 thumbprint (jkt) of the public key"),
    ],
};

pub static JSON_OBJECT: Class = Class {
    name: "JsonObject",
    clsid: "67430A1E-673D-45D2-A7A9-ECE306AF6517",
    diid: "0D81D1E5-AAAF-4077-A6D0-C07BE88C2879",
    members: with_common![
        m!(10, "UpdateString", Method, [("name", Str), ("value", Str)], Long, "sets member name to the string value; 1/0"),
        m!(11, "Emit", Method, [], Str, "the object as compact JSON"),
        m!(12, "Load", Method, [("text", Str)], Long, "replaces the object with the JSON object text; 1/0"),
        m!(13, "StringOf", Method, [("name", Str)], Str, "the string member name (empty + LastMethodSuccess 0 if absent)"),
    ],
};

pub static HTTP: Class = Class {
    name: "Http",
    clsid: "6750474B-3682-4DE1-AAE5-5B7A84B9E2B9",
    diid: "797C6517-2785-4BE0-B580-D872E0290471",
    members: with_common![
        m!(10, "SetDPoPKey", Method, [("key", Key)], Long, "signs DPoP proofs with this PrivateKey object; 1/0"),
        m!(
            11,
            "SetClientAssertionKey",
            Method,
            [("key", OptKey)],
            Long,
            "private_key_jwt client authentication with this key (Nothing: off); 1/0"
        ),
        m!(
            12,
            "AuthToken",
            Put,
            [("authTokenJson", Str)],
            Void,
            "the AuthToken JSON (client_id, client_secret, token_endpoint, scope, ...); write-only"
        ),
        m!(13, "SetAuthToken", Method, [("authTokenJson", Str)], Long, "the same as setting AuthToken, with a 1/0 result"),
        m!(14, "SessionLogFilename", GetPut, [("path", OptStr)], Str, "the session log file (empty: none)"),
        m!(15, "SetSessionLogFilename", Method, [("path", OptStr)], Long, "the same as setting SessionLogFilename, with a 1/0 result"),
        m!(16, "SetTimeouts", Method, [("connectMs", Long), ("requestMs", Long)], Long, "connect and whole-call timeouts in ms; 1/0"),
        m!(17, "SetMaxResponseSize", Method, [("maxBytes", Size)], Long, "largest response body accepted; 1/0"),
        m!(18, "SetFollowRedirects", Method, [("follow", Long)], Long, "follow redirects (same origin keeps the token); 1/0"),
        m!(19, "SetCaFile", Method, [("path", OptStr)], Long, "trust only the CAs in this PEM file (empty: back to the default); 1/0"),
        m!(20, "SetUseOsTrustStore", Method, [("useOs", Long)], Long, "verify servers with the Windows certificate store; 1/0"),
        m!(21, "SetProxy", Method, [("proxyUrl", OptStr)], Long, "a proxy URL (Null: from the environment, the default); 1/0"),
        m!(22, "SetRequestHeader", Method, [("name", Str), ("value", Str)], Long, "a header sent with every API request; 1/0"),
        m!(23, "RemoveRequestHeader", Method, [("name", Str)], Long, "removes a header set with SetRequestHeader; 1/0"),
        m!(24, "ClearRequestHeaders", Method, [], Long, "removes all headers set with SetRequestHeader; 1/0"),
        m!(25, "QuickGetStr", Method, [("url", Str)], Str, "GET with DPoP; the body of a 2xx answer, else empty"),
        m!(26, "QuickGetBytes", Method, [("url", Str)], Bytes, "GET with DPoP; the body bytes of a 2xx answer, else empty"),
        m!(
            27,
            "QuickRequestStr",
            Method,
            [("method", Str), ("url", Str), ("contentType", OptStr), ("body", OptStr)],
            Str,
            "any method with a text body; the answer's body (2xx), else empty"
        ),
        m!(
            28,
            "QuickRequestBytes",
            Method,
            [("method", Str), ("url", Str), ("contentType", OptStr), ("body", OptBytes)],
            Bytes,
            "any method with a byte body; the answer's bytes (2xx), else empty"
        ),
        m!(29, "LastStatus", Get, [], Long, "HTTP status of the last request (0: no answer)"),
        m!(30, "LastStatusText", Get, [], Str, "its reason phrase (Created, Not Found, ...)"),
        m!(31, "LastResponseBody", Get, [], Str, "the last answer's body, whatever its status"),
        m!(32, "LastResponseBodyBytes", Get, [], Bytes, "the same as bytes"),
        m!(33, "LastResponseHeader", Get, [], Str, "the last answer's headers, Name: value lines joined by CRLF"),
        m!(34, "LastResponseHeaderValue", Method, [("name", Str)], Str, "one header of the last answer by name (case-insensitive)"),
        m!(35, "TokenCacheClear", Method, [], Long, "dpopkit_token_cache_clear: forgets cached tokens, nonces, keys; 1/0"),
    ],
};

pub static CLASSES: [&Class; 3] = [&PRIVATE_KEY, &JSON_OBJECT, &HTTP];

pub fn progid(c: &Class) -> String {
    format!("{LIB_NAME}.{}", c.name)
}

pub fn progid_versioned(c: &Class) -> String {
    format!("{LIB_NAME}.{}.{PROGID_VERSION}", c.name)
}

/// The type library's IDL (compiled with widl/midl by build.rs).
#[allow(dead_code)] // used by build.rs, which includes this file
pub fn idl() -> String {
    fn ty(t: Ty) -> &'static str {
        match t {
            Ty::Void => "void",
            Ty::Long => "long",
            Ty::Size => "VARIANT",
            Ty::Str => "BSTR",
            Ty::OptStr | Ty::OptKey | Ty::OptBytes => "VARIANT",
            Ty::Key => "IDispatch*",
            Ty::Bytes => "SAFEARRAY(unsigned char)",
        }
    }
    let (maj, min) = LIB_VERSION;
    let mut s = format!(
        "// Generated by build.rs from src/com/members.rs. Do not edit.\n\
         import \"oaidl.idl\";\n\n\
         [uuid({LIBID}), version({maj}.{min}), helpstring(\"dpopkit: OAuth 2.0 client_credentials + DPoP (RFC 9449) for sp_OACreate, VBScript, VBA\")]\n\
         library {LIB_NAME}\n{{\n    importlib(\"stdole2.tlb\");\n\n"
    );
    for c in CLASSES {
        s += &format!(
            "    [uuid({}), helpstring(\"DpopKit.{} (late-bound IDispatch; members by DISPID)\")]\n    dispinterface I{}\n    {{\n    properties:\n    methods:\n",
            c.diid, c.name, c.name
        );
        for m in c.members {
            let doc = m.doc.replace('"', "'");
            let params = |with_ret: bool| -> String {
                let mut v: Vec<String> = m
                    .params
                    .iter()
                    .map(|(n, t)| {
                        let attr = if optional(*t) { "[in, optional] " } else { "[in] " };
                        format!("{attr}{} {n}", ty(*t))
                    })
                    .collect();
                if with_ret && m.ret != Ty::Void {
                    v.push(format!("[out, retval] {}* result", ty(m.ret)));
                }
                v.join(", ")
            };
            let ret = |r: Ty| if r == Ty::Void { "void" } else { ty(r) };
            match m.kind {
                Kind::Method => {
                    s += &format!("        [id({}), helpstring(\"{doc}\")] {} {}({});\n", m.id, ret(m.ret), m.name, params(false))
                }
                Kind::Get => s += &format!("        [id({}), propget, helpstring(\"{doc}\")] {} {}();\n", m.id, ret(m.ret), m.name),
                Kind::GetPut => {
                    s += &format!("        [id({}), propget, helpstring(\"{doc}\")] {} {}();\n", m.id, ret(m.ret), m.name);
                    s += &format!("        [id({}), propput, helpstring(\"{doc}\")] void {}({});\n", m.id, m.name, params(false));
                }
                Kind::Put => s += &format!("        [id({}), propput, helpstring(\"{doc}\")] void {}({});\n", m.id, m.name, params(false)),
            }
        }
        s += "    };\n\n";
    }
    for c in CLASSES {
        s += &format!(
            "    [uuid({}), helpstring(\"{}\")]\n    coclass {}\n    {{\n        [default] dispinterface I{};\n    }};\n\n",
            c.clsid,
            progid(c),
            c.name,
            c.name
        );
    }
    s += "};\n";
    s
}
