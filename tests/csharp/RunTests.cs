// Tests of bindings/sqlserver/DpopKit.cs under mono, compiled together with it:
//   mcs -langversion:7 -r:System.Data -out:RunTests.exe tests/csharp/RunTests.cs bindings/sqlserver/DpopKit.cs \
//       bindings/sqlserver/NativeMethods.g.cs
//   LD_LIBRARY_PATH=target/debug/deps mono RunTests.exe FIXTURES_DIR TOKEN_ENDPOINT API_URL WORK_DIR
// Driven by tests/bindings/csharp.rs against the real peers. Every request in here uses the
// same key and the same AuthToken configuration, so the AS must issue exactly ONE token
// for the whole run, although the SQL entry points create new objects on every call.
// Prints one line per check and "N passed, N failed"; exits 0 only if nothing failed.

using System;
using System.Data.SqlTypes;
using System.IO;
using System.Threading;
using System.Text.RegularExpressions;
using DpopKit;

internal static class RunTests
{
    private static int passed, failed;

    private static void Check(bool ok, string what, string detail = null)
    {
        if (ok) { passed++; Console.WriteLine("ok - " + what); }
        else { failed++; Console.WriteLine("FAIL - " + what + (detail == null ? "" : ": " + detail)); }
    }

    private static void Throws<T>(Action a, string what, Func<T, bool> also = null) where T : Exception
    {
        try
        {
            a();
            Check(false, what, "no exception");
        }
        catch (T ex)
        {
            Check(also == null || also(ex), what, ex.ToString());
        }
        catch (Exception ex)
        {
            Check(false, what, "wrong exception " + ex);
        }
    }

    private static bool HasClient(string body)
    {
        return body != null && body.Contains("m2m.dpop");
    }

    private static int Main(string[] args)
    {
        if (args.Length != 4)
        {
            Console.Error.WriteLine("usage: RunTests.exe FIXTURES_DIR TOKEN_ENDPOINT API_URL WORK_DIR");
            return 2;
        }
        try
        {
            Run(args[0], args[1], args[2], args[3]);
        }
        catch (Exception ex)
        {
            Check(false, "unexpected exception", ex.ToString());
        }
        Console.WriteLine(passed + " passed, " + failed + " failed");
        return failed == 0 && passed > 0 ? 0 : 1;
    }

    private static void Run(string fixtures, string tokenEndpoint, string api, string work)
    {
        string keyPath = Path.Combine(fixtures, "ec_sec1.pem");
        string missingKey = Path.Combine(work, "no-such-key.pem");
        string log = Path.Combine(work, "session.log");
        string sqlLog = Path.Combine(work, "sql-session.log");
        string baseUrl = api.Substring(0, api.IndexOf("/api/"));
        long handlesAtStart = DpopKitLibrary.LiveHandles;

        Check(DpopKitLibrary.Version == "0.1.0", "version", DpopKitLibrary.Version);

        // ---- The seed flow through the managed Chilkat-shaped classes ----
        string authJson;
        using (var key = new PrivateKey())
        using (var json = new JsonObject())
        using (var http = new Http())
        {
            Check(key.LoadAnyFormatFile(keyPath, null), "PrivateKey.LoadAnyFormatFile", key.LastErrorText);
            Check(key.LastMethodSuccess && key.LastErrorText == "", "key LastMethodSuccess / empty LastErrorText");
            string jkt = File.ReadAllText(Path.Combine(fixtures, "ec.jkt")).Trim();
            Check(key.GetJwkThumbprint() == jkt, "thumbprint matches ec.jkt", key.GetJwkThumbprint());
            Check(key.GetPublicJwk().Contains("\"P-256\"") && !key.GetPublicJwk().Contains("\"d\""), "public JWK");

            Check(json.UpdateString("client_secret", "secret"), "UpdateString client_secret");
            Check(json.UpdateString("client_id", "m2m.dpop"), "UpdateString client_id");
            Check(json.UpdateString("token_endpoint", tokenEndpoint), "UpdateString token_endpoint");
            Check(json.UpdateString("scope", "api"), "UpdateString scope");
            authJson = json.Emit();
            Check(authJson != null && authJson.StartsWith("{\"client_secret\":\"secret\",\"client_id\""), "Emit", authJson);
            Check(json.StringOf("client_id") == "m2m.dpop", "StringOf");
            Check(json.StringOf("nope") == null && json.LastErrorCode == DpopKitResult.Json, "StringOf missing member");

            Check(http.SetDPoPKey(key), "SetDPoPKey", http.LastErrorText);
            http.AuthToken = authJson;
            Check(http.AuthToken == authJson, "AuthToken property");
            File.Delete(log);
            http.SessionLogFilename = log;
            Check(http.SessionLogFilename == log, "SessionLogFilename property");
            http.ConnectTimeoutMs = 5000;
            http.RequestTimeoutMs = 20000;
            Check(http.ConnectTimeoutMs == 5000 && http.RequestTimeoutMs == 20000, "timeouts");
            Check(http.SetMaxResponseSize(1 << 20), "SetMaxResponseSize");
            http.FollowRedirects = false;
            http.FollowRedirects = true;
            Check(http.FollowRedirects, "FollowRedirects property");
            http.UseOsTrustStore = true;
            http.UseOsTrustStore = false;
            Check(!http.UseOsTrustStore, "UseOsTrustStore property");
            Check(!http.SetCaFile(missingKey) && http.LastErrorCode == DpopKitResult.FileIo, "SetCaFile missing file -> FileIo",
                http.LastErrorCode + " " + http.LastErrorText);
            Check(http.SetCaFile(null), "SetCaFile(null) -> bundled roots");
            Check(!http.SetProxy("not a url") && http.LastErrorCode == DpopKitResult.InvalidArgument, "SetProxy bad URL -> InvalidArgument",
                http.LastErrorCode + " " + http.LastErrorText);
            Check(http.SetProxy(""), "SetProxy(\"\") -> no proxy");

            for (int i = 0; i < 2; i++)
            {
                string resp = http.QuickGetStr(api);
                Check(http.LastStatus == 200 && HasClient(resp), "QuickGetStr " + i + " -> 200 with m2m.dpop",
                    "status " + http.LastStatus + " " + http.LastErrorText);
                Check(http.LastMethodSuccess, "LastMethodSuccess after success");
            }
            Check(http.LastResponseHeader.IndexOf("content-type", StringComparison.OrdinalIgnoreCase) >= 0, "LastResponseHeader");

            string posted = http.QuickRequestStr("POST", api, "application/json", "{\"x\":\"\u00e9\u20ac\"}");
            Check(http.LastStatus == 200 && posted != null && posted.Contains("\u00e9\u20ac"), "QuickRequestStr POST round-trips UTF-8", posted);

            // Failures: Chilkat style (null + LastStatus + LastErrorText) and the throwing style.
            Check(http.QuickGetStr(baseUrl + "/nope") == null && http.LastStatus == 404 && !http.LastMethodSuccess
                && http.LastErrorCode == DpopKitResult.HttpStatus && http.LastErrorText.Contains("404"),
                "404: null, LastStatus, LastErrorText", http.LastErrorText);
            Check(http.LastResponseBody != null && http.LastResponseBody.Contains("not_found"), "LastResponseBody after 404");
            Throws<DpopKitException>(() => http.Get(baseUrl + "/nope"), "Get throws DpopKitException with Code/Status",
                ex => ex.Code == DpopKitResult.HttpStatus && ex.Status == 404);
            Throws<DpopKitException>(() => http.Get("ftp://example.invalid/"), "bad URL -> InvalidArgument",
                ex => ex.Code == DpopKitResult.InvalidArgument && ex.Status == 0);
            Throws<DpopKitException>(() => http.AuthToken = "{\"client_id\":\"x\"}", "AuthToken setter refuses bad JSON",
                ex => ex.Code == DpopKitResult.AuthToken);
            Check(http.AuthToken == authJson, "AuthToken unchanged after a refused value");
            Throws<ArgumentException>(() => http.QuickGetStr(api + "\0x"), "embedded NUL refused");
            Throws<ArgumentOutOfRangeException>(() => http.ConnectTimeoutMs = 0, "zero timeout refused");

            // Misuse at the raw C ABI level is an error code, never a crash.
            long rawKey = key.RawHandle;
            Check(NativeMethods.dpopkit_http_quick_get_str(rawKey, Utf8.In(api, "url")) == IntPtr.Zero
                && DpopKitLibrary.LastErrorCode == DpopKitResult.WrongHandleType, "wrong handle type");
            Check(NativeMethods.dpopkit_json_emit(123) == IntPtr.Zero
                && DpopKitLibrary.LastErrorCode == DpopKitResult.InvalidHandle, "made-up handle");

            // The Http keeps its own reference to the key.
            key.Dispose();
            Check(HasClient(http.QuickGetStr(api)), "Http works after its key object is disposed", http.LastErrorText);

            // Several threads on one Http, each with its own LastStatus.
            var results = new bool[4];
            var threads = new Thread[results.Length];
            for (int t = 0; t < threads.Length; t++)
            {
                int n = t;
                threads[t] = new Thread(() =>
                {
                    bool ok = true;
                    for (int i = 0; i < 3; i++)
                    {
                        bool good = n % 2 == 0;
                        string r = http.QuickGetStr(good ? api : baseUrl + "/nope");
                        ok &= good ? (HasClient(r) && http.LastStatus == 200) : (r == null && http.LastStatus == 404);
                    }
                    results[n] = ok;
                });
                threads[t].Start();
            }
            foreach (var th in threads) th.Join();
            Check(Array.TrueForAll(results, r => r), "4 threads on one Http see their own LastStatus");
        }

        string logged = File.Exists(log) ? File.ReadAllText(log) : "";
        Check(logged.Contains("GET /api/test"), "session log written");
        // A JWT (token or proof) is header.claims, both base64url JSON: "eyJ...\.eyJ". A bare
        // "eyJ" can occur by chance inside a random nonce or jti.
        Check(!logged.Contains("=secret") && !Regex.IsMatch(logged, @"eyJ[A-Za-z0-9_-]*\.eyJ"), "no secret in the session log");

        // ---- Issue 12: request headers, status text, header lookup, bytes (the porting flow) ----
        using (var key = new PrivateKey())
        using (var http = new Http())
        {
            Check(key.LoadAnyFormatFile(keyPath, null) && http.SetDPoPKey(key), "porting: key", key.LastErrorText);
            http.AuthToken = authJson;
            string echo = baseUrl + "/api/echo-headers";
            Check(http.SetRequestHeader("Accept", "application/json"), "SetRequestHeader Accept", http.LastErrorText);
            Check(http.SetRequestHeader("X-Correlation-Id", "corr-cs-1"), "SetRequestHeader X-Correlation-Id");
            string echoed = http.QuickGetStr(echo);
            Check(echoed != null && echoed.Contains("\"accept\":\"application/json\"") && echoed.Contains("\"x-correlation-id\":\"corr-cs-1\""),
                "custom Accept and correlation id sent", echoed + " " + http.LastErrorText);
            Check(http.LastStatusText == "OK", "LastStatusText OK", http.LastStatusText);
            Check(http.LastResponseHeaderValue("X-REPEATED") == "first, second", "LastResponseHeaderValue: any case, repeated joined",
                http.LastResponseHeaderValue("x-repeated"));
            Check(http.LastResponseHeaderValue("x-not-there") == null && http.LastErrorCode == DpopKitResult.NotFound,
                "LastResponseHeaderValue absent -> null, NotFound", http.LastErrorCode.ToString());
            Check(!http.SetRequestHeader("Authorization", "Bearer abc") && http.LastErrorCode == DpopKitResult.InvalidArgument
                && http.LastErrorText.Contains("Authorization"), "Authorization refused with the reason", http.LastErrorText);
            Check(!http.SetRequestHeader("X-Split", "a\r\nInjected: yes") && http.LastErrorCode == DpopKitResult.InvalidArgument,
                "CR/LF in a value refused");
            Check(!http.SetRequestHeader("Bad Name", "v") && http.LastErrorCode == DpopKitResult.InvalidArgument, "bad header name refused");
            Check(http.RemoveRequestHeader("x-correlation-id") && http.RemoveRequestHeader("X-Never-Set"), "RemoveRequestHeader");
            echoed = http.QuickGetStr(echo);
            Check(echoed != null && !echoed.Contains("corr-cs-1") && echoed.Contains("application/json"), "removed header not sent", echoed);

            Check(http.SetRequestHeader("Idempotency-Key", "cs-idem-1"), "SetRequestHeader Idempotency-Key");
            string created = http.QuickRequestStr("POST", baseUrl + "/api/items", "application/json", "{\"n\":1}");
            Check(http.LastStatus == 201 && http.LastStatusText == "Created" && created != null
                && created.Contains("\"idempotency_key\":\"cs-idem-1\"") && created.Contains("\"content_type\":\"application/json\""),
                "POST JSON with Idempotency-Key -> 201 Created", http.LastStatus + " " + created + " " + http.LastErrorText);
            string location = http.LastResponseHeaderValue("Location");
            Check(location != null && location.StartsWith("/api/items/"), "Location of the 201", location);
            Check(http.LastResponseHeadersJson.Contains("\"location\":\"" + location + "\""), "LastResponseHeadersJson", http.LastResponseHeadersJson);
            Check(http.ClearHeaders(), "ClearHeaders");
            echoed = http.QuickGetStr(echo);
            Check(echoed != null && !echoed.Contains("cs-idem-1") && !echoed.Contains("application/json"), "cleared headers not sent", echoed);

            byte[] bytes = http.QuickGetBytes(baseUrl + "/api/bytes");
            bool exact = bytes != null && bytes.Length == 256;
            for (int i = 0; exact && i < 256; i++) exact = bytes[i] == (byte)i;
            Check(exact, "QuickGetBytes: bytes 0..255, byte-exact", bytes == null ? http.LastErrorText : bytes.Length.ToString());
            byte[] last = http.LastResponseBodyBytes;
            Check(last != null && last.Length == 256 && last[0] == 0 && last[255] == 255, "LastResponseBodyBytes");
            byte[] up = { 0, 0xff, 0xc3, 0x28, 0, 10, 0x80 };
            byte[] back = http.QuickRequestBytes("PUT", baseUrl + "/api/echo-bytes", "application/octet-stream", up);
            Check(back != null && Convert.ToBase64String(back) == Convert.ToBase64String(up), "QuickRequestBytes round-trips NUL and invalid UTF-8");
            byte[] none = http.QuickGetBytes(baseUrl + "/api/empty");
            Check(none != null && none.Length == 0 && http.LastStatus == 204, "empty body -> zero-length array, not null");
            Check(http.QuickGetBytes(baseUrl + "/nope") == null && http.LastStatus == 404 && http.LastStatusText == "Not Found"
                && System.Text.Encoding.UTF8.GetString(http.LastResponseBodyBytes).Contains("not_found"),
                "QuickGetBytes 404 -> null, LastStatusText, LastResponseBodyBytes");
            Throws<DpopKitException>(() => http.GetBytes(baseUrl + "/nope"), "GetBytes throws with Code/Status",
                ex => ex.Code == DpopKitResult.HttpStatus && ex.Status == 404);
            Check(http.QuickGetStr(baseUrl + "/api/bytes") == null && http.LastErrorCode == DpopKitResult.ResponseNotText,
                "binary body as a string -> ResponseNotText");
        }

        // ---- Disposed / stale objects ----
        var disposedHttp = new Http();
        long stale = disposedHttp.RawHandle;
        disposedHttp.Dispose();
        disposedHttp.Dispose(); // idempotent
        Throws<ObjectDisposedException>(() => disposedHttp.QuickGetStr(api), "disposed Http -> ObjectDisposedException");
        Throws<ObjectDisposedException>(() => { var s = disposedHttp.LastStatus; }, "disposed Http LastStatus -> ObjectDisposedException");
        var disposedKey = new PrivateKey();
        disposedKey.Dispose();
        Throws<ObjectDisposedException>(() => disposedKey.LoadAnyFormatFile(keyPath, null), "disposed PrivateKey -> ObjectDisposedException");
        Check(NativeMethods.dpopkit_http_quick_get_str(stale, Utf8.In(api, "url")) == IntPtr.Zero
            && DpopKitLibrary.LastErrorCode == DpopKitResult.InvalidHandle, "stale native handle -> InvalidHandle");
        Check(NativeMethods.dpopkit_destroy(stale) == 0, "double destroy fails");

        using (var k = new PrivateKey())
        {
            Check(!k.LoadAnyFormatFile(missingKey, null) && k.LastErrorCode == DpopKitResult.FileIo
                && k.LastErrorText.Length > 0 && !k.LastMethodSuccess, "missing key file -> FileIo", k.LastErrorText);
            Check(!k.LoadAnyFormatFile(Path.Combine(fixtures, "ec_pkcs8_enc.pem"), "wrong")
                && k.LastErrorCode == DpopKitResult.KeyFormat, "wrong password -> KeyFormat");
            Check(k.LoadAnyFormatFile(Path.Combine(fixtures, "ec_pkcs8_enc.pem"), "test-password"), "encrypted PKCS#8 with password", k.LastErrorText);
            Check(!k.LoadAnyFormatFile(Path.Combine(fixtures, "rsa1024.pem"), null)
                && k.LastErrorCode == DpopKitResult.KeyUnsupported, "1024-bit RSA key -> KeyUnsupported");
        }

        // ---- The T-SQL entry points, called as SQL Server calls them ----
        // T-SQL's FOR JSON escapes '/' as '\/': the same configuration, so the same token.
        string sqlAuth = "{\"client_secret\":\"secret\",\"client_id\":\"m2m.dpop\",\"token_endpoint\":\""
            + tokenEndpoint.Replace("/", "\\/") + "\",\"scope\":\"api\"}";
        SqlString body, errorText;
        SqlInt32 status;
        long handlesBefore = DpopKitLibrary.LiveHandles;

        File.Delete(sqlLog);
        SqlInt32 rc = DpopKitSql.GetWithDpop(keyPath, SqlString.Null, sqlAuth, api, sqlLog, out body, out status, out errorText);
        Check(rc.Value == 0 && status.Value == 200 && !body.IsNull && HasClient(body.Value) && errorText.IsNull,
            "GetWithDpop -> 0, 200, body", errorText.IsNull ? "" : errorText.Value);
        Check(File.Exists(sqlLog) && File.ReadAllText(sqlLog).Contains("GET /api/test"), "GetWithDpop wrote the session log");

        rc = DpopKitSql.GetWithDpop(missingKey, SqlString.Null, sqlAuth, api, SqlString.Null, out body, out status, out errorText);
        Check(rc.Value == (int)DpopKitResult.FileIo && body.IsNull && status.Value == 0 && !errorText.IsNull
            && errorText.Value.Contains("key"), "GetWithDpop missing key -> FileIo + error text",
            rc.Value + " " + (errorText.IsNull ? "NULL" : errorText.Value));

        rc = DpopKitSql.GetWithDpop(keyPath, SqlString.Null, "{\"client_id\":\"m2m.dpop\"}", api, SqlString.Null, out body, out status, out errorText);
        Check(rc.Value == (int)DpopKitResult.AuthToken && body.IsNull && !errorText.IsNull, "GetWithDpop bad AuthToken -> AuthToken");

        rc = DpopKitSql.GetWithDpop(keyPath, SqlString.Null, sqlAuth, baseUrl + "/nope", SqlString.Null, out body, out status, out errorText);
        Check(rc.Value == (int)DpopKitResult.HttpStatus && status.Value == 404 && body.IsNull && errorText.Value.Contains("404"),
            "GetWithDpop 404 -> HttpStatus, status 404");

        rc = DpopKitSql.GetWithDpop(SqlString.Null, SqlString.Null, sqlAuth, api, SqlString.Null, out body, out status, out errorText);
        Check(rc.Value == (int)DpopKitResult.NullArgument && !errorText.IsNull, "GetWithDpop NULL key path -> NullArgument");

        for (int i = 0; i < 3; i++)
        {
            SqlString r = DpopKitSql.DpopGet(keyPath, SqlString.Null, sqlAuth, api);
            Check(!r.IsNull && HasClient(r.Value), "DpopGet (per-call objects) " + i);
        }
        Check(DpopKitSql.DpopGet(missingKey, SqlString.Null, sqlAuth, api).IsNull, "DpopGet missing key -> NULL");
        Check(DpopKitLibrary.LiveHandles == handlesBefore, "per-call entry points leak no handle",
            DpopKitLibrary.LiveHandles + " vs " + handlesBefore);

        for (int i = 0; i < 3; i++)
        {
            SqlString r = DpopKitSql.DpopGetCached(keyPath, SqlString.Null, sqlAuth, api);
            Check(!r.IsNull && HasClient(r.Value), "DpopGetCached " + i);
        }
        Check(DpopKitSql.CacheCount == 1 && DpopKitLibrary.LiveHandles == handlesBefore + 1, "one cached Http",
            DpopKitSql.CacheCount + " cached, " + DpopKitLibrary.LiveHandles + " live");
        Check(DpopKitSql.DpopGetCached(missingKey, SqlString.Null, sqlAuth, api).IsNull && DpopKitSql.CacheCount == 1,
            "DpopGetCached missing key -> NULL, nothing cached");
        Check(DpopKitSql.DpopGetCached(keyPath, "other-password", sqlAuth, api).IsNull == false && DpopKitSql.CacheCount == 2,
            "another password is another cache entry (unencrypted key ignores it)");

        rc = DpopKitSql.RequestWithDpopCached(keyPath, SqlString.Null, sqlAuth, "POST", api, "text/plain", "hello sql",
            out body, out status, out errorText);
        Check(rc.Value == 0 && status.Value == 200 && body.Value.Contains("hello sql"), "RequestWithDpopCached POST");
        rc = DpopKitSql.RequestWithDpopCached(keyPath, SqlString.Null, sqlAuth, "GET", baseUrl + "/nope", SqlString.Null, SqlString.Null,
            out body, out status, out errorText);
        Check(rc.Value == (int)DpopKitResult.HttpStatus && status.Value == 404 && !errorText.IsNull, "RequestWithDpopCached 404");

        // ---- RequestWithHeaders: a JSON object of request headers, any method, from T-SQL ----
        SqlString statusText, respHeaders;
        long handlesBeforeHeaders = DpopKitLibrary.LiveHandles;
        rc = DpopKitSql.RequestWithHeaders(keyPath, SqlString.Null, sqlAuth, "POST", baseUrl + "/api/items",
            "{\"Accept\":\"application/json\",\"Idempotency-Key\":\"sql-idem-7\"}", "application/json", "{\"sql\":\"\u00e9\"}",
            SqlString.Null, out body, out status, out statusText, out respHeaders, out errorText);
        Check(rc.Value == 0 && status.Value == 201 && statusText.Value == "Created" && errorText.IsNull
            && body.Value.Contains("\"idempotency_key\":\"sql-idem-7\"") && body.Value.Contains("\u00e9")
            && respHeaders.Value.Contains("\"location\":\"/api/items/"),
            "RequestWithHeaders POST -> 201 Created, Location in @responseHeaders",
            rc.Value + " " + (errorText.IsNull ? "" : errorText.Value) + " " + (body.IsNull ? "NULL" : body.Value));
        foreach (string m in new[] { "PUT", "PATCH", "DELETE" })
        {
            rc = DpopKitSql.RequestWithHeaders(keyPath, SqlString.Null, sqlAuth, m, baseUrl + "/api/echo-headers",
                "{\"X-From-Sql\":\"yes\",\"Idempotency-Key\":42,\"X-Null\":null}", "text/plain", "x", SqlString.Null,
                out body, out status, out statusText, out respHeaders, out errorText);
            Check(rc.Value == 0 && status.Value == 200 && body.Value.Contains("\"method\":\"" + m + "\"")
                && body.Value.Contains("\"x-from-sql\":\"yes\"") && body.Value.Contains("\"idempotency-key\":\"42\"")
                && !body.Value.Contains("x-null"), "RequestWithHeaders " + m + " with headers (a number, a null)",
                errorText.IsNull ? body.Value : errorText.Value);
        }
        foreach (string bad in new[] { "not json", "[1]", "{\"Accept\":{\"a\":1}}", "{\"A\":\"1\",\"a\":\"2\"}", "{\"A\":\"1\"} x" })
        {
            rc = DpopKitSql.RequestWithHeaders(keyPath, SqlString.Null, sqlAuth, "POST", baseUrl + "/api/items", bad,
                SqlString.Null, SqlString.Null, SqlString.Null, out body, out status, out statusText, out respHeaders, out errorText);
            Check(rc.Value == (int)DpopKitResult.Json && status.Value == 0 && errorText.Value.Contains("@requestHeaders"),
                "RequestWithHeaders bad @requestHeaders " + bad + " -> Json", rc.Value + " " + (errorText.IsNull ? "" : errorText.Value));
        }
        rc = DpopKitSql.RequestWithHeaders(keyPath, SqlString.Null, sqlAuth, "POST", baseUrl + "/api/items",
            "{\"Authorization\":\"Bearer stolen\"}", SqlString.Null, SqlString.Null, SqlString.Null,
            out body, out status, out statusText, out respHeaders, out errorText);
        Check(rc.Value == (int)DpopKitResult.InvalidArgument && status.Value == 0 && errorText.Value.Contains("Authorization")
            && !errorText.Value.Contains("stolen"), "RequestWithHeaders refused header -> InvalidArgument", errorText.IsNull ? "" : errorText.Value);
        rc = DpopKitSql.RequestWithHeaders(keyPath, SqlString.Null, sqlAuth, "DELETE", baseUrl + "/nope", SqlString.Null,
            SqlString.Null, SqlString.Null, SqlString.Null, out body, out status, out statusText, out respHeaders, out errorText);
        Check(rc.Value == (int)DpopKitResult.HttpStatus && status.Value == 404 && statusText.Value == "Not Found"
            && !body.IsNull && body.Value.Contains("not_found") && !errorText.IsNull, "RequestWithHeaders 404: the error body in @body");
        rc = DpopKitSql.RequestWithHeaders(keyPath, SqlString.Null, sqlAuth, "GET", baseUrl + "/api/bytes", SqlString.Null,
            SqlString.Null, SqlString.Null, SqlString.Null, out body, out status, out statusText, out respHeaders, out errorText);
        Check(rc.Value == (int)DpopKitResult.ResponseNotText && status.Value == 200 && body.IsNull
            && errorText.Value.Contains("DpopKit_RequestBinary"), "RequestWithHeaders binary body -> ResponseNotText naming the binary procedure");
        SqlBinary bin;
        rc = DpopKitSql.RequestBinaryWithHeaders(keyPath, SqlString.Null, sqlAuth, "GET", baseUrl + "/api/bytes",
            "{\"Accept\":\"application/octet-stream\"}", SqlString.Null, SqlBinary.Null, SqlString.Null,
            out bin, out status, out statusText, out respHeaders, out errorText);
        bool sqlExact = rc.Value == 0 && !bin.IsNull && bin.Length == 256;
        for (int i = 0; sqlExact && i < 256; i++) sqlExact = bin[i] == (byte)i;
        Check(sqlExact, "RequestBinaryWithHeaders GET bytes 0..255", errorText.IsNull ? "" : errorText.Value);
        rc = DpopKitSql.RequestBinaryWithHeaders(keyPath, SqlString.Null, sqlAuth, "PUT", baseUrl + "/api/echo-bytes", SqlString.Null,
            "application/pdf", new SqlBinary(new byte[] { 0x25, 0x50, 0x44, 0x46, 0, 0xff }), SqlString.Null,
            out bin, out status, out statusText, out respHeaders, out errorText);
        Check(rc.Value == 0 && !bin.IsNull && Convert.ToBase64String(bin.Value) == Convert.ToBase64String(new byte[] { 0x25, 0x50, 0x44, 0x46, 0, 0xff }),
            "RequestBinaryWithHeaders PUT varbinary round trip");
        Check(DpopKitLibrary.LiveHandles == handlesBeforeHeaders, "RequestWithHeaders leaks no handle",
            DpopKitLibrary.LiveHandles + " vs " + handlesBeforeHeaders);

        Check(DpopKitSql.ClearCache().Value == 2 && DpopKitSql.CacheCount == 0, "ClearCache disposes the cached objects");
        Check(DpopKitLibrary.LiveHandles == handlesBefore, "no handle left after ClearCache");
        SqlString again = DpopKitSql.DpopGetCached(keyPath, SqlString.Null, sqlAuth, api);
        Check(!again.IsNull && HasClient(again.Value), "DpopGetCached after ClearCache");
        for (int i = 0; i < DpopKitSql.MaxCached + 3; i++)
            DpopKitSql.DpopGetCached(keyPath, "password-" + i, sqlAuth, api);
        Check(DpopKitSql.CacheCount <= DpopKitSql.MaxCached, "the cache of Http objects is bounded",
            DpopKitSql.CacheCount + " cached, at most " + DpopKitSql.MaxCached);
        string cacheKey = DpopKitSql.CacheKey(keyPath, "pw", sqlAuth);
        string unsalted;
        using (var sha = System.Security.Cryptography.SHA256.Create())
            unsalted = BitConverter.ToString(sha.ComputeHash(System.Text.Encoding.UTF8.GetBytes("pw\0" + sqlAuth))).Replace("-", "").ToLowerInvariant();
        Check(!cacheKey.Contains(keyPath) && !cacheKey.Contains(unsalted) && cacheKey.Length == 64,
            "the cache key is a salted hash (no path, no unsalted hash of password and AuthToken)", cacheKey);
        DpopKitSql.ClearCache();

        Check(DpopKitSql.DpopKitVersion().Value == DpopKitLibrary.Version, "DpopKitVersion()");

        GC.Collect();
        GC.WaitForPendingFinalizers();
        Check(DpopKitLibrary.LiveHandles == handlesAtStart, "all handles released",
            DpopKitLibrary.LiveHandles + " vs " + handlesAtStart);
    }
}
