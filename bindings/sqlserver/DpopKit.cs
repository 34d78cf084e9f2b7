// DpopKit.cs: the SQL Server (SQL CLR) binding of dpopkit, OAuth 2.0 client_credentials
// with DPoP (RFC 9449) behind a C ABI (include/dpopkit.h).
//
// One file, C# 7, .NET Framework 4.x: compile it into the assembly that install.sql
// registers (see README.md). It needs the native library dpopkit.dll (libdpopkit.so with
// mono on Linux) next to the process (see README.md: the SQL CLR assembly lives inside the
// database, so "next to the assembly" does not exist there).
//
// Layers, bottom up:
//   NativeMethods    one [DllImport] per function of include/dpopkit.h, nothing else.
//                    tests/csharp_bindings.rs parses the `internal static extern` lines and
//                    compares them with the header, so keep each on ONE line.
//   Utf8             strings in as NUL-terminated UTF-8 byte[]; strings out as IntPtr,
//                    copied, then freed with dpopkit_string_free (never string marshalling:
//                    the marshaler would CoTaskMemFree memory that Rust allocated).
//   DpopKitHandle    SafeHandle over the int64 handle; ReleaseHandle = dpopkit_destroy.
//   PrivateKey, JsonObject, Http   Chilkat-shaped managed classes (bool/null results plus
//                    LastErrorText, LastMethodSuccess, LastStatus), IDisposable.
//   DpopKitSql       the T-SQL entry points ([SqlProcedure] / [SqlFunction]).
//
// Requirements: 64-bit process (handles are carried in an IntPtr), PERMISSION_SET = UNSAFE
// (P/Invoke), SQL Server on Windows (SQL Server on Linux runs SAFE assemblies only).

using System;
using System.Collections.Concurrent;
using System.Data.SqlTypes;
using System.Runtime.CompilerServices;
using System.Runtime.ConstrainedExecution;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.SqlServer.Server;

namespace DpopKit
{
    /// <summary>The dpopkit_result codes of include/dpopkit.h (stable numbers).</summary>
    public enum DpopKitResult : uint
    {
        Ok = 0,
        NullArgument = 1,
        InvalidHandle = 2,
        WrongHandleType = 3,
        InvalidUtf8 = 4,
        InvalidArgument = 5,
        KeyFormat = 6,
        KeyUnsupported = 7,
        FileIo = 8,
        NoKey = 9,
        AuthToken = 10,
        Transport = 11,
        Timeout = 12,
        Tls = 13,
        TokenEndpoint = 14,
        TokenNotDpopBound = 15,
        TokenResponse = 16,
        HttpStatus = 17,
        DpopNonce = 18,
        ResponseTooLarge = 19,
        ResponseNotText = 20,
        Json = 21,
        Discovery = 22,
        DpopProof = 23,
        Panic = 100,
        Internal = 101,
    }

    /// <summary>
    /// The C ABI, one declaration per exported function. int64_t -> long, int -> int,
    /// uint32_t -> uint, uint64_t -> ulong, returned char* -> IntPtr (caller frees with
    /// dpopkit_string_free), const char* -> NUL-terminated UTF-8 byte[] (null = NULL).
    /// </summary>
    internal static class NativeMethods
    {
        internal const string Library = "dpopkit";

        // common
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_destroy(long handle);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_last_error_text(long handle);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint dpopkit_last_error_code(long handle);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void dpopkit_string_free(IntPtr s);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_version();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern long dpopkit_live_handles();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_token_cache_clear();

        // Http
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern long dpopkit_http_new();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_dpop_key(long http, long key);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_client_assertion_key(long http, long key);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_auth_token(long http, byte[] auth_token_json);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_session_log_filename(long http, byte[] path);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_timeouts(long http, uint connect_ms, uint request_ms);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_max_response_size(long http, ulong max_bytes);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_follow_redirects(long http, int follow);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_ca_file(long http, byte[] path);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_use_os_trust_store(long http, int use_os);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_set_proxy(long http, byte[] proxy_url);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_http_quick_get_str(long http, byte[] url);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_http_quick_request_str(long http, byte[] method, byte[] url, byte[] content_type, byte[] body);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_last_status(long http);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_http_last_method_success(long http);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_http_last_response_body(long http);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_http_last_response_header(long http);

        // JsonObject
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern long dpopkit_json_new();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_json_update_string(long json, byte[] name, byte[] value);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_json_emit(long json);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_json_load(long json, byte[] text);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_json_string_of(long json, byte[] name);

        // PrivateKey
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern long dpopkit_key_new();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_key_load_any_format_file(long key, byte[] path, byte[] password);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_key_load_any_format(long key, byte[] data, byte[] password);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_key_generate(long key);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_key_generate_alg(long key, byte[] alg);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int dpopkit_key_generate_pkcs11(long key, byte[] uri, byte[] pin, byte[] alg);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_key_get_alg(long key);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_key_get_pkcs8_pem(long key);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_key_get_jwk(long key);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_key_get_public_jwk(long key);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr dpopkit_key_get_jwk_thumbprint(long key);
    }

    /// <summary>Windows only: load dpopkit.dll from a full path before the first call.</summary>
    internal static class Win32
    {
        // Input-only string: marshalling is fine here (nothing of ours is freed).
        [DllImport("kernel32", CharSet = CharSet.Unicode, SetLastError = true)]
        internal static extern IntPtr LoadLibraryW(string path);
    }

    /// <summary>UTF-8 at the boundary, and the one place that frees returned strings.</summary>
    internal static class Utf8
    {
        // Strict both ways: invalid UTF-16 in (a lone surrogate) is an error, never a '?'.
        private static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>NUL-terminated UTF-8, or null for null.</summary>
        internal static byte[] In(string s, string name)
        {
            if (s == null) return null;
            if (s.IndexOf('\0') >= 0)
                throw new ArgumentException(name + " contains a NUL character", name);
            byte[] bytes;
            try
            {
                int n = Strict.GetByteCount(s);
                bytes = new byte[n + 1];
                Strict.GetBytes(s, 0, s.Length, bytes, 0);
            }
            catch (EncoderFallbackException)
            {
                throw new ArgumentException(name + " is not valid UTF-16 text", name);
            }
            return bytes;
        }

        /// <summary>Copies a string returned by dpopkit and frees it; null for NULL.</summary>
        internal static string Take(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            try
            {
                int len = 0;
                while (Marshal.ReadByte(p, len) != 0) len++;
                byte[] bytes = new byte[len];
                Marshal.Copy(p, bytes, 0, len);
                return Strict.GetString(bytes);
            }
            finally
            {
                NativeMethods.dpopkit_string_free(p);
            }
        }
    }

    /// <summary>
    /// Owns one dpopkit handle (an int64 carried in IntPtr, so 64-bit processes only).
    /// ReleaseHandle runs exactly once: on Dispose, on finalization, or when the AppDomain
    /// unloads (SQL Server may unload it under memory pressure).
    /// </summary>
    public sealed class DpopKitHandle : SafeHandle
    {
        private DpopKitHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        /// <summary>The int64 handle value of the C ABI.</summary>
        public long Value { get { return handle.ToInt64(); } }

        /// <summary>Calls a dpopkit_*_new function without a window where the handle could leak.</summary>
        internal static DpopKitHandle Create(Func<long> create)
        {
            if (IntPtr.Size != 8)
                throw new PlatformNotSupportedException("dpopkit needs a 64-bit process");
            var h = new DpopKitHandle();
            RuntimeHelpers.PrepareConstrainedRegions();
            try { }
            finally
            {
                long v = create();
                if (v > 0) h.SetHandle(new IntPtr(v));
            }
            return h;
        }

        [ReliabilityContract(Consistency.WillNotCorruptState, Cer.Success)]
        protected override bool ReleaseHandle()
        {
            return NativeMethods.dpopkit_destroy(handle.ToInt64()) == 1;
        }
    }

    /// <summary>A dpopkit failure: the result code, the HTTP status (0 if none) and the text.</summary>
    [Serializable]
    public class DpopKitException : Exception
    {
        public DpopKitResult Code { get; private set; }
        public int Status { get; private set; }

        public DpopKitException(DpopKitResult code, int status, string message)
            : base(string.IsNullOrEmpty(message) ? "dpopkit error " + code : message)
        {
            Code = code;
            Status = status;
        }

        public override string ToString()
        {
            return "DpopKitException(" + Code + ", status " + Status + "): " + Message;
        }
    }

    /// <summary>Process-wide functions: version, live handle count, the thread's last error.</summary>
    public static class DpopKitLibrary
    {
        public static string Version { get { return Utf8.Take(NativeMethods.dpopkit_version()); } }

        /// <summary>Live native handles in the process (leak checks).</summary>
        public static long LiveHandles { get { return NativeMethods.dpopkit_live_handles(); } }

        /// <summary>Forgets every cached access token and DPoP nonce in the process (after a
        /// secret or key rotation): the next request fetches a new token.</summary>
        public static void ClearTokenCache() { NativeMethods.dpopkit_token_cache_clear(); }

        /// <summary>The calling thread's latest error of any call.</summary>
        public static string LastErrorText { get { return Utf8.Take(NativeMethods.dpopkit_last_error_text(0)) ?? ""; } }

        public static DpopKitResult LastErrorCode { get { return (DpopKitResult)NativeMethods.dpopkit_last_error_code(0); } }

        /// <summary>
        /// Windows: loads dpopkit.dll from a full path, so that later [DllImport("dpopkit")]
        /// calls bind to it (a module already loaded under that name wins the search).
        /// Must run before the first other call in the process.
        /// </summary>
        public static void Preload(string fullPath)
        {
            if (Environment.OSVersion.Platform != PlatformID.Win32NT)
                throw new PlatformNotSupportedException("Preload is for Windows; use LD_LIBRARY_PATH elsewhere");
            if (Win32.LoadLibraryW(fullPath) == IntPtr.Zero)
                throw new DllNotFoundException("LoadLibrary(" + fullPath + ") failed, Win32 error " + Marshal.GetLastWin32Error());
        }
    }

    /// <summary>
    /// Base of the managed objects. Every native call runs inside Call(), which holds a
    /// reference on the SafeHandle so a concurrent Dispose cannot destroy the handle mid-call,
    /// and throws ObjectDisposedException once the object is disposed.
    /// The last error / status are kept natively per (handle, thread): read them on the
    /// thread that made the call.
    /// </summary>
    public abstract class DpopKitObject : IDisposable
    {
        private readonly DpopKitHandle _handle;

        protected DpopKitObject(Func<long> create, string what)
        {
            _handle = DpopKitHandle.Create(create);
            if (_handle.IsInvalid)
                throw new DpopKitException(DpopKitLibrary.LastErrorCode, 0, what + " failed: " + DpopKitLibrary.LastErrorText);
        }

        public bool IsDisposed { get { return _handle.IsClosed; } }

        public void Dispose()
        {
            _handle.Dispose();
        }

        internal T Call<T>(Func<long, T> f)
        {
            bool added = false;
            try
            {
                try
                {
                    _handle.DangerousAddRef(ref added);
                }
                catch (ObjectDisposedException)
                {
                    throw new ObjectDisposedException(GetType().Name);
                }
                return f(_handle.Value);
            }
            finally
            {
                if (added) _handle.DangerousRelease();
            }
        }

        internal bool CallOk(Func<long, int> f) { return Call(f) == 1; }

        /// <summary>The raw int64 handle (for diagnostics; do not destroy it yourself).</summary>
        public long RawHandle { get { return Call(h => h); } }

        /// <summary>Text of this object's last error on this thread ("" after a success).</summary>
        public string LastErrorText
        {
            get { return Call(h => Utf8.Take(NativeMethods.dpopkit_last_error_text(h)) ?? ""); }
        }

        public DpopKitResult LastErrorCode
        {
            get { return (DpopKitResult)Call(h => NativeMethods.dpopkit_last_error_code(h)); }
        }

        public virtual bool LastMethodSuccess { get { return LastErrorCode == DpopKitResult.Ok; } }

        internal DpopKitException LastError(string what, int status)
        {
            return new DpopKitException(LastErrorCode, status, what + ": " + LastErrorText);
        }
    }

    /// <summary>An EC P-256 private key (Chilkat PrivateKey).</summary>
    public sealed class PrivateKey : DpopKitObject
    {
        public PrivateKey() : base(NativeMethods.dpopkit_key_new, "dpopkit_key_new") { }

        /// <summary>PEM (SEC1, PKCS#8, encrypted PKCS#8), DER or JWK file, or a pkcs11: URI (then password is the PIN). password may be null.</summary>
        public bool LoadAnyFormatFile(string path, string password)
        {
            byte[] p = Utf8.In(path, "path"), pw = Utf8.In(password, "password");
            return CallOk(h => NativeMethods.dpopkit_key_load_any_format_file(h, p, pw));
        }

        /// <summary>PEM or JWK text.</summary>
        public bool LoadAnyFormat(string data, string password)
        {
            byte[] d = Utf8.In(data, "data"), pw = Utf8.In(password, "password");
            return CallOk(h => NativeMethods.dpopkit_key_load_any_format(h, d, pw));
        }

        public bool Generate() { return CallOk(NativeMethods.dpopkit_key_generate); }

        /// <summary>A new key for "ES256" (P-256), "ES384" (P-384) or "EdDSA" (Ed25519).</summary>
        public bool Generate(string alg)
        {
            byte[] a = Utf8.In(alg, "alg");
            return CallOk(h => NativeMethods.dpopkit_key_generate_alg(h, a));
        }

        /// <summary>A new non-extractable key pair inside the PKCS#11 token a pkcs11: URI names
        /// (object= is its label); pin and alg ("ES256" or "ES384") may be null.</summary>
        public bool GeneratePkcs11(string uri, string pin, string alg)
        {
            byte[] u = Utf8.In(uri, "uri"), p = Utf8.In(pin, "pin"), a = Utf8.In(alg, "alg");
            return CallOk(h => NativeMethods.dpopkit_key_generate_pkcs11(h, u, p, a));
        }

        /// <summary>"ES256", "ES384" or "EdDSA".</summary>
        public string Alg { get { return Call(h => Utf8.Take(NativeMethods.dpopkit_key_get_alg(h))); } }

        /// <summary>Secret material.</summary>
        public string GetPkcs8Pem() { return Call(h => Utf8.Take(NativeMethods.dpopkit_key_get_pkcs8_pem(h))); }

        /// <summary>Secret material (includes d).</summary>
        public string GetJwk() { return Call(h => Utf8.Take(NativeMethods.dpopkit_key_get_jwk(h))); }

        public string GetPublicJwk() { return Call(h => Utf8.Take(NativeMethods.dpopkit_key_get_public_jwk(h))); }

        /// <summary>RFC 7638 SHA-256 thumbprint, base64url (the jkt).</summary>
        public string GetJwkThumbprint() { return Call(h => Utf8.Take(NativeMethods.dpopkit_key_get_jwk_thumbprint(h))); }
    }

    /// <summary>A flat JSON object of string members (Chilkat JsonObject).</summary>
    public sealed class JsonObject : DpopKitObject
    {
        public JsonObject() : base(NativeMethods.dpopkit_json_new, "dpopkit_json_new") { }

        public bool UpdateString(string name, string value)
        {
            byte[] n = Utf8.In(name, "name"), v = Utf8.In(value, "value");
            return CallOk(h => NativeMethods.dpopkit_json_update_string(h, n, v));
        }

        /// <summary>Compact JSON text; null on failure.</summary>
        public string Emit() { return Call(h => Utf8.Take(NativeMethods.dpopkit_json_emit(h))); }

        public bool Load(string text)
        {
            byte[] t = Utf8.In(text, "text");
            return CallOk(h => NativeMethods.dpopkit_json_load(h, t));
        }

        /// <summary>The member as a string; null if absent or an object/array.</summary>
        public string StringOf(string name)
        {
            byte[] n = Utf8.In(name, "name");
            return Call(h => Utf8.Take(NativeMethods.dpopkit_json_string_of(h, n)));
        }
    }

    /// <summary>
    /// HTTP client with DPoP (Chilkat Http). Chilkat-style methods return null/false on
    /// failure and leave LastStatus, LastErrorText and LastMethodSuccess; Get/Request throw
    /// DpopKitException instead. Property setters throw on failure. One Http may be used
    /// by many threads at once; each thread reads its own LastStatus/LastErrorText.
    /// </summary>
    public sealed class Http : DpopKitObject
    {
        private string _authToken = "";
        private string _sessionLog = "";
        private uint _connectMs = 10000, _requestMs = 60000;
        private bool _followRedirects = true, _useOsTrustStore;

        public Http() : base(NativeMethods.dpopkit_http_new, "dpopkit_http_new") { }

        /// <summary>The Http keeps its own reference: the key object may be disposed afterwards.</summary>
        public bool SetDPoPKey(PrivateKey key)
        {
            if (key == null) throw new ArgumentNullException("key");
            return key.Call(k => CallOk(h => NativeMethods.dpopkit_http_set_dpop_key(h, k)));
        }

        /// <summary>The key that signs private_key_jwt client assertions (null: the DPoP key).</summary>
        public bool SetClientAssertionKey(PrivateKey key)
        {
            if (key == null) return CallOk(h => NativeMethods.dpopkit_http_set_client_assertion_key(h, 0));
            return key.Call(k => CallOk(h => NativeMethods.dpopkit_http_set_client_assertion_key(h, k)));
        }

        /// <summary>Sets the AuthToken JSON (token_endpoint, client_id, client_secret, scope, ...).</summary>
        public bool SetAuthToken(string json)
        {
            byte[] j = Utf8.In(json, "json");
            bool ok = CallOk(h => NativeMethods.dpopkit_http_set_auth_token(h, j));
            if (ok) _authToken = json;
            return ok;
        }

        /// <summary>Chilkat's http.AuthToken = json.Emit(). Throws DpopKitException if refused.</summary>
        public string AuthToken
        {
            get { return _authToken; }
            set { if (!SetAuthToken(value)) throw LastError("AuthToken", 0); }
        }

        /// <summary>Appends a redacted session log to this file; null or "" stops logging.</summary>
        public bool SetSessionLogFilename(string path)
        {
            byte[] p = Utf8.In(path, "path");
            bool ok = CallOk(h => NativeMethods.dpopkit_http_set_session_log_filename(h, p));
            if (ok) _sessionLog = path ?? "";
            return ok;
        }

        /// <summary>Chilkat's http.SessionLogFilename. Throws DpopKitException if the file cannot be opened.</summary>
        public string SessionLogFilename
        {
            get { return _sessionLog; }
            set { if (!SetSessionLogFilename(value)) throw LastError("SessionLogFilename", 0); }
        }

        /// <summary>Both in milliseconds, both > 0. request_ms bounds the whole request.</summary>
        public bool SetTimeouts(uint connectMs, uint requestMs)
        {
            bool ok = CallOk(h => NativeMethods.dpopkit_http_set_timeouts(h, connectMs, requestMs));
            if (ok) { _connectMs = connectMs; _requestMs = requestMs; }
            return ok;
        }

        public int ConnectTimeoutMs
        {
            get { return (int)_connectMs; }
            set { if (value <= 0 || !SetTimeouts((uint)value, _requestMs)) throw new ArgumentOutOfRangeException("value"); }
        }

        /// <summary>Timeout of the whole request (connect, send, full response).</summary>
        public int RequestTimeoutMs
        {
            get { return (int)_requestMs; }
            set { if (value <= 0 || !SetTimeouts(_connectMs, (uint)value)) throw new ArgumentOutOfRangeException("value"); }
        }

        public bool SetMaxResponseSize(ulong maxBytes)
        {
            return CallOk(h => NativeMethods.dpopkit_http_set_max_response_size(h, maxBytes));
        }

        /// <summary>Follow up to 5 redirects (default true); credentials go to the original origin only.</summary>
        public bool SetFollowRedirects(bool follow)
        {
            bool ok = CallOk(h => NativeMethods.dpopkit_http_set_follow_redirects(h, follow ? 1 : 0));
            if (ok) _followRedirects = follow;
            return ok;
        }

        public bool FollowRedirects
        {
            get { return _followRedirects; }
            set { if (!SetFollowRedirects(value)) throw LastError("FollowRedirects", 0); }
        }

        /// <summary>Trust only the CAs in this PEM file; null or "" = the bundled Mozilla roots.</summary>
        public bool SetCaFile(string path)
        {
            byte[] p = Utf8.In(path, "path");
            return CallOk(h => NativeMethods.dpopkit_http_set_ca_file(h, p));
        }

        /// <summary>Verify https with the OS trust store (Windows certificate store) instead of the bundled roots.</summary>
        public bool SetUseOsTrustStore(bool useOs)
        {
            bool ok = CallOk(h => NativeMethods.dpopkit_http_set_use_os_trust_store(h, useOs ? 1 : 0));
            if (ok) _useOsTrustStore = useOs;
            return ok;
        }

        public bool UseOsTrustStore
        {
            get { return _useOsTrustStore; }
            set { if (!SetUseOsTrustStore(value)) throw LastError("UseOsTrustStore", 0); }
        }

        /// <summary>"http://host:port"; null = HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY of the process; "" = none.</summary>
        public bool SetProxy(string proxyUrl)
        {
            byte[] p = Utf8.In(proxyUrl, "proxyUrl");
            return CallOk(h => NativeMethods.dpopkit_http_set_proxy(h, p));
        }

        /// <summary>GET; the body of a 2xx response, else null (see LastStatus, LastErrorText).</summary>
        public string QuickGetStr(string url)
        {
            byte[] u = Utf8.In(url, "url");
            return Call(h => Utf8.Take(NativeMethods.dpopkit_http_quick_get_str(h, u)));
        }

        /// <summary>Any method; contentType and body may be null.</summary>
        public string QuickRequestStr(string method, string url, string contentType, string body)
        {
            byte[] m = Utf8.In(method, "method"), u = Utf8.In(url, "url");
            byte[] ct = Utf8.In(contentType, "contentType"), b = Utf8.In(body, "body");
            return Call(h => Utf8.Take(NativeMethods.dpopkit_http_quick_request_str(h, m, u, ct, b)));
        }

        /// <summary>GET that throws DpopKitException (with Code and Status) on failure.</summary>
        public string Get(string url)
        {
            return Request("GET", url, null, null);
        }

        public string Request(string method, string url, string contentType, string body)
        {
            byte[] m = Utf8.In(method, "method"), u = Utf8.In(url, "url");
            byte[] ct = Utf8.In(contentType, "contentType"), b = Utf8.In(body, "body");
            return Call(h =>
            {
                string r = Utf8.Take(NativeMethods.dpopkit_http_quick_request_str(h, m, u, ct, b));
                if (r != null) return r;
                // Same thread, same handle, right after the call: this call's own result.
                int status = NativeMethods.dpopkit_http_last_status(h);
                var code = (DpopKitResult)NativeMethods.dpopkit_last_error_code(h);
                string text = Utf8.Take(NativeMethods.dpopkit_last_error_text(h));
                throw new DpopKitException(code, status, text);
            });
        }

        /// <summary>HTTP status of this thread's last request (0 if no response).</summary>
        public int LastStatus { get { return Call(NativeMethods.dpopkit_http_last_status); } }

        public override bool LastMethodSuccess
        {
            get { return Call(NativeMethods.dpopkit_http_last_method_success) == 1; }
        }

        /// <summary>Body of the last response whatever its status ("" if none).</summary>
        public string LastResponseBody { get { return Call(h => Utf8.Take(NativeMethods.dpopkit_http_last_response_body(h))); } }

        public string LastResponseHeader { get { return Call(h => Utf8.Take(NativeMethods.dpopkit_http_last_response_header(h))) ?? ""; } }
    }

    /// <summary>
    /// T-SQL entry points (install.sql declares them). Every entry point reports failures
    /// as values (return code, NULL, @errorText); only setup problems (the DLL cannot be
    /// found, 32-bit process) surface as T-SQL errors.
    ///
    /// Token reuse: dpopkit caches access tokens PROCESS-WIDE, keyed by the AuthToken
    /// configuration and the key's thumbprint. So even the per-call entry points
    /// (GetWithDpop, DpopGet), which create and destroy the key and Http objects on every
    /// call, fetch one token per token lifetime for the whole sqlservr.exe process, and the
    /// cache survives AppDomain unloads (the native DLL stays loaded). The cached entry points
    /// (DpopGetCached, RequestWithDpopCached) additionally skip re-reading the key file and
    /// keep the Http's keep-alive connections.
    /// </summary>
    public sealed class DpopKitSql
    {
        private DpopKitSql() { }

        /// <summary>Timeouts applied to every Http made here: never block a SQL worker for long.</summary>
        public const uint ConnectTimeoutMs = 10000;
        public const uint RequestTimeoutMs = 30000;

        /// <summary>
        /// Every Http made here verifies https with the Windows certificate store, so a CA that
        /// the server's administrators installed (corporate TLS inspection, a private PKI) is
        /// trusted as it is by the rest of the host. Set false and rebuild for the bundled
        /// Mozilla roots only. Proxy: the sqlservr.exe service's HTTPS_PROXY etc. environment.
        /// </summary>
        public const bool UseOsTrustStore = true;

        // Cached Http objects, keyed by (key path, SHA-256 of password + AuthToken JSON). The
        // password is part of the hash so a caller who only knows the path cannot use a key
        // loaded by someone who knew its password. Static mutable state is allowed in
        // UNSAFE assemblies only. The cache is per AppDomain: it is empty again after SQL
        // Server unloads the AppDomain (the token cache in the DLL is not). ClearCache
        // disposes everything and clears the DLL's token cache, e.g. after the key file was replaced.
        private static readonly ConcurrentDictionary<string, Http> Cache =
            new ConcurrentDictionary<string, Http>(StringComparer.Ordinal);

        // -------- (a) the seed procedure in one call --------

        /// <summary>
        /// Loads the key, sets the AuthToken and the session log, GETs url. Returns 0 on
        /// success, else the dpopkit_result code (@body NULL, @errorText set, @status the
        /// HTTP status or 0). Objects are created per call; the token is still cached.
        /// </summary>
        [SqlProcedure]
        public static SqlInt32 GetWithDpop(SqlString keyPath, SqlString keyPassword, SqlString authTokenJson,
            SqlString url, SqlString sessionLog,
            [SqlFacet(MaxSize = -1)] out SqlString body, out SqlInt32 status, [SqlFacet(MaxSize = -1)] out SqlString errorText)
        {
            string b, e; int s;
            DpopKitResult code = Run(false, Str(keyPath), Str(keyPassword), Str(authTokenJson), "GET", Str(url), null, null,
                Str(sessionLog), out b, out s, out e);
            body = b == null ? SqlString.Null : new SqlString(b);
            status = s;
            errorText = code == DpopKitResult.Ok ? SqlString.Null : new SqlString(e);
            return (int)code;
        }

        // -------- (b) scalar function, per-call objects --------

        /// <summary>The body of a 2xx GET, NULL on any failure (use GetWithDpop for the reason).</summary>
        [SqlFunction(IsDeterministic = false, IsPrecise = true, DataAccess = DataAccessKind.None, SystemDataAccess = SystemDataAccessKind.None)]
        [return: SqlFacet(MaxSize = -1)]
        public static SqlString DpopGet(SqlString keyPath, SqlString keyPassword, SqlString authTokenJson, SqlString url)
        {
            string b, e; int s;
            Run(false, Str(keyPath), Str(keyPassword), Str(authTokenJson), "GET", Str(url), null, null, null, out b, out s, out e);
            return b == null ? SqlString.Null : new SqlString(b);
        }

        // -------- (c) cached objects across calls --------

        /// <summary>Like DpopGet, reusing a cached Http per (key path, password + AuthToken hash).</summary>
        [SqlFunction(IsDeterministic = false, IsPrecise = true, DataAccess = DataAccessKind.None, SystemDataAccess = SystemDataAccessKind.None)]
        [return: SqlFacet(MaxSize = -1)]
        public static SqlString DpopGetCached(SqlString keyPath, SqlString keyPassword, SqlString authTokenJson, SqlString url)
        {
            string b, e; int s;
            Run(true, Str(keyPath), Str(keyPassword), Str(authTokenJson), "GET", Str(url), null, null, null, out b, out s, out e);
            return b == null ? SqlString.Null : new SqlString(b);
        }

        /// <summary>Any method with an optional body through the cached Http, with status and error out.</summary>
        [SqlProcedure]
        public static SqlInt32 RequestWithDpopCached(SqlString keyPath, SqlString keyPassword, SqlString authTokenJson,
            SqlString method, SqlString url, SqlString contentType, [SqlFacet(MaxSize = -1)] SqlString requestBody,
            [SqlFacet(MaxSize = -1)] out SqlString body, out SqlInt32 status, [SqlFacet(MaxSize = -1)] out SqlString errorText)
        {
            string b, e; int s;
            DpopKitResult code = Run(true, Str(keyPath), Str(keyPassword), Str(authTokenJson), Str(method), Str(url),
                Str(contentType), Str(requestBody), null, out b, out s, out e);
            body = b == null ? SqlString.Null : new SqlString(b);
            status = s;
            errorText = code == DpopKitResult.Ok ? SqlString.Null : new SqlString(e);
            return (int)code;
        }

        /// <summary>Disposes every cached Http and forgets the DLL's cached tokens and nonces
        /// (e.g. after the key file or the client secret changed); returns how many Http
        /// objects were disposed.</summary>
        [SqlProcedure]
        public static SqlInt32 ClearCache()
        {
            int n = 0;
            foreach (var k in Cache.Keys)
            {
                Http h;
                if (Cache.TryRemove(k, out h)) { h.Dispose(); n++; }
            }
            DpopKitLibrary.ClearTokenCache();
            return n;
        }

        // -------- diagnostics --------

        [SqlFunction(IsDeterministic = false, DataAccess = DataAccessKind.None, SystemDataAccess = SystemDataAccessKind.None)]
        public static SqlString DpopKitVersion()
        {
            return new SqlString(DpopKitLibrary.Version);
        }

        /// <summary>Windows: loads dpopkit.dll from a full path (see README); call once before anything else.</summary>
        [SqlProcedure]
        public static void Preload(SqlString dllFullPath)
        {
            DpopKitLibrary.Preload(Str(dllFullPath));
        }

        // -------- shared implementation --------

        private static string Str(SqlString s) { return s.IsNull ? null : s.Value; }

        internal static DpopKitResult Run(bool cached, string keyPath, string keyPassword, string authJson,
            string method, string url, string contentType, string requestBody, string sessionLog,
            out string body, out int status, out string errorText)
        {
            body = null; status = 0; errorText = null;
            if (keyPath == null) { errorText = "keyPath is NULL"; return DpopKitResult.NullArgument; }
            if (authJson == null) { errorText = "authTokenJson is NULL"; return DpopKitResult.NullArgument; }
            if (url == null) { errorText = "url is NULL"; return DpopKitResult.NullArgument; }
            if (method == null) { errorText = "method is NULL"; return DpopKitResult.NullArgument; }
            try
            {
                if (!cached)
                {
                    DpopKitResult code;
                    using (Http http = NewHttp(keyPath, keyPassword, authJson, sessionLog, out code, out errorText))
                    {
                        if (http == null) return code;
                        return Send(http, method, url, contentType, requestBody, out body, out status, out errorText);
                    }
                }
                for (int attempt = 0; ; attempt++)
                {
                    DpopKitResult code;
                    Http http = Cached(keyPath, keyPassword, authJson, out code, out errorText);
                    if (http == null) return code;
                    try
                    {
                        return Send(http, method, url, contentType, requestBody, out body, out status, out errorText);
                    }
                    catch (ObjectDisposedException)
                    {
                        // ClearCache ran between the lookup and the call: take a fresh one once.
                        if (attempt > 0) throw;
                    }
                }
            }
            catch (ArgumentException ex)
            {
                errorText = ex.Message;
                return DpopKitResult.InvalidArgument;
            }
            catch (DpopKitException ex)
            {
                errorText = ex.Message;
                return ex.Code;
            }
        }

        private static DpopKitResult Send(Http http, string method, string url, string contentType, string requestBody,
            out string body, out int status, out string errorText)
        {
            try
            {
                body = http.Request(method, url, contentType, requestBody);
                status = http.LastStatus;
                errorText = null;
                return DpopKitResult.Ok;
            }
            catch (DpopKitException ex)
            {
                body = null;
                status = ex.Status;
                errorText = ex.Message;
                return ex.Code;
            }
        }

        /// <summary>Key file -> Http with key, AuthToken, timeouts and optional log; null on failure.</summary>
        private static Http NewHttp(string keyPath, string keyPassword, string authJson, string sessionLog,
            out DpopKitResult code, out string errorText)
        {
            Http http = null;
            bool ok = false;
            try
            {
                using (var key = new PrivateKey())
                {
                    if (!key.LoadAnyFormatFile(keyPath, keyPassword))
                        return Fail(key, "loading the key file", out code, out errorText);
                    http = new Http();
                    if (!http.SetTimeouts(ConnectTimeoutMs, RequestTimeoutMs))
                        return Fail(http, "setting timeouts", out code, out errorText);
                    if (!http.SetUseOsTrustStore(UseOsTrustStore))
                        return Fail(http, "selecting the trust store", out code, out errorText);
                    if (!http.SetDPoPKey(key))
                        return Fail(http, "setting the DPoP key", out code, out errorText);
                }
                if (!http.SetAuthToken(authJson))
                    return Fail(http, "setting the AuthToken", out code, out errorText);
                if (!string.IsNullOrEmpty(sessionLog) && !http.SetSessionLogFilename(sessionLog))
                    return Fail(http, "opening the session log", out code, out errorText);
                ok = true;
                code = DpopKitResult.Ok;
                errorText = null;
                return http;
            }
            finally
            {
                if (!ok && http != null) http.Dispose();
            }
        }

        private static Http Fail(DpopKitObject o, string what, out DpopKitResult code, out string errorText)
        {
            code = o.LastErrorCode;
            errorText = what + ": " + o.LastErrorText;
            return null;
        }

        private static Http Cached(string keyPath, string keyPassword, string authJson,
            out DpopKitResult code, out string errorText)
        {
            string id = CacheKey(keyPath, keyPassword, authJson);
            Http http;
            if (Cache.TryGetValue(id, out http) && !http.IsDisposed)
            {
                code = DpopKitResult.Ok; errorText = null;
                return http;
            }
            // Failures are not cached, so a fixed key file is picked up on the next call.
            Http fresh = NewHttp(keyPath, keyPassword, authJson, null, out code, out errorText);
            if (fresh == null) return null;
            Http winner = Cache.AddOrUpdate(id, fresh, (k, old) => old.IsDisposed ? fresh : old);
            if (!ReferenceEquals(winner, fresh)) fresh.Dispose();
            return winner;
        }

        private static string CacheKey(string keyPath, string keyPassword, string authJson)
        {
            byte[] digest;
            using (SHA256 sha = SHA256.Create())
                digest = sha.ComputeHash(Encoding.UTF8.GetBytes((keyPassword ?? "") + "\0" + authJson));
            var sb = new StringBuilder(keyPath.Length + 65);
            sb.Append(keyPath).Append('|');
            foreach (byte x in digest) sb.Append(x.ToString("x2"));
            return sb.ToString();
        }

        /// <summary>Number of cached Http objects (tests, diagnostics).</summary>
        internal static int CacheCount { get { return Cache.Count; } }
    }
}
