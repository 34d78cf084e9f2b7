/* The COM server driven from C as sp_OACreate drives it: an STA thread, CLSIDFromProgID,
 * CoCreateInstance(CLSCTX_INPROC_SERVER, IID_IDispatch), GetIDsOfNames, Invoke. Built with
 * mingw and run under Wine by scripts/windows.sh test.
 *
 *   client seed KEY_FILE TOKEN_URL API_URL N     the seed's calls through raw Invoke, N Http
 *                                               objects in turn: 200 each (the harness counts
 *                                               the tokens the AS issued)
 *   client abi KEY_FILE                         Invoke's contract: argument types and counts,
 *                                               named arguments, NULL BSTR, VT_BYREF, riid,
 *                                               DISPIDs, pVarResult NULL, bad UTF-16
 *   client leak KEY_FILE                        10,000 calls with BSTRs, VARIANTs and byte
 *                                               arrays in and out, 1,000 objects created and
 *                                               released: private bytes flat, live handles
 *                                               back, DllCanUnloadNow S_OK only at the end
 *
 * Prints one line per check; exits 0 only if every check passes, after "REACHED END". */
#define COBJMACROS
#include <windows.h>
#include <oleauto.h>
#include <psapi.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

static int failures = 0;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            printf("ok: ");                                                                \
        } else {                                                                           \
            printf("FAILED: ");                                                            \
            failures++;                                                                    \
        }                                                                                  \
        printf(__VA_ARGS__);                                                               \
        printf("\n");                                                                      \
    } while (0)

static wchar_t *wide(const char *s) {
    static wchar_t buf[8][2048];
    static int next = 0;
    wchar_t *w = buf[next++ % 8];
    MultiByteToWideChar(CP_UTF8, 0, s, -1, w, 2048);
    return w;
}

static IDispatch *create(const char *progid) {
    CLSID clsid;
    IDispatch *d = NULL;
    HRESULT hr = CLSIDFromProgID(wide(progid), &clsid);
    if (FAILED(hr)) {
        printf("CLSIDFromProgID(%s): 0x%08lx\n", progid, (unsigned long)hr);
        return NULL;
    }
    hr = CoCreateInstance(&clsid, NULL, CLSCTX_INPROC_SERVER, &IID_IDispatch, (void **)&d);
    if (FAILED(hr)) {
        printf("CoCreateInstance(%s): 0x%08lx\n", progid, (unsigned long)hr);
        return NULL;
    }
    return d;
}

static DISPID id_of(IDispatch *d, const char *name) {
    DISPID id = DISPID_UNKNOWN;
    LPOLESTR n = wide(name);
    HRESULT hr = IDispatch_GetIDsOfNames(d, &IID_NULL, &n, 1, LOCALE_USER_DEFAULT, &id);
    return SUCCEEDED(hr) ? id : DISPID_UNKNOWN;
}

/* Invoke `name` with args given in call order (reversed here, as IDispatch wants). */
static HRESULT call(IDispatch *d, WORD flags, const char *name, VARIANT *result, int n, VARIANT *args, UINT *arg_err, EXCEPINFO *ei) {
    VARIANT rev[8];
    DISPID put = DISPID_PROPERTYPUT;
    DISPPARAMS p = {rev, NULL, (UINT)n, 0};
    for (int i = 0; i < n; i++) rev[n - 1 - i] = args[i];
    if (flags & DISPATCH_PROPERTYPUT) {
        p.rgdispidNamedArgs = &put;
        p.cNamedArgs = 1;
    }
    DISPID id = id_of(d, name);
    if (id == DISPID_UNKNOWN) return DISP_E_UNKNOWNNAME;
    if (result) VariantInit(result);
    return IDispatch_Invoke(d, id, &IID_NULL, LOCALE_USER_DEFAULT, flags, &p, result, ei, arg_err);
}

static VARIANT bstr(const char *s) {
    VARIANT v;
    VariantInit(&v);
    V_VT(&v) = VT_BSTR;
    V_BSTR(&v) = SysAllocString(wide(s));
    return v;
}

static VARIANT i4(LONG n) {
    VARIANT v;
    VariantInit(&v);
    V_VT(&v) = VT_I4;
    V_I4(&v) = n;
    return v;
}

static VARIANT disp(IDispatch *d) {
    VARIANT v;
    VariantInit(&v);
    V_VT(&v) = VT_DISPATCH;
    V_DISPATCH(&v) = d;
    return v;
}

static void clear_args(int n, VARIANT *a) {
    for (int i = 0; i < n; i++)
        if (V_VT(&a[i]) == VT_BSTR) VariantClear(&a[i]); /* dispatch args are borrowed here */
}

/* A method returning a Long. -1000 when the call failed. */
static LONG long_of(IDispatch *d, WORD flags, const char *name, int n, VARIANT *args) {
    VARIANT r;
    HRESULT hr = call(d, flags, name, &r, n, args, NULL, NULL);
    clear_args(n, args);
    if (FAILED(hr)) {
        printf("  %s: 0x%08lx\n", name, (unsigned long)hr);
        return -1000;
    }
    LONG v = V_VT(&r) == VT_I4 ? V_I4(&r) : -2000;
    VariantClear(&r);
    return v;
}

/* A string result as UTF-8 (static buffer); "<error>" when the call failed. */
static const char *str_of(IDispatch *d, WORD flags, const char *name, int n, VARIANT *args) {
    static char out[4][65536];
    static int next = 0;
    char *o = out[next++ % 4];
    VARIANT r;
    HRESULT hr = call(d, flags, name, &r, n, args, NULL, NULL);
    clear_args(n, args);
    if (FAILED(hr) || V_VT(&r) != VT_BSTR) {
        snprintf(o, 65536, "<error 0x%08lx vt %d>", (unsigned long)hr, V_VT(&r));
        VariantClear(&r);
        return o;
    }
    o[0] = 0;
    if (V_BSTR(&r)) WideCharToMultiByte(CP_UTF8, 0, V_BSTR(&r), -1, o, 65536, NULL, NULL);
    VariantClear(&r);
    return o;
}

#define M DISPATCH_METHOD
#define G DISPATCH_PROPERTYGET
#define MG (DISPATCH_METHOD | DISPATCH_PROPERTYGET)

static IDispatch *auth_http(IDispatch *key, const char *token_url) {
    IDispatch *json = create("DpopKit.JsonObject"), *http = create("DpopKit.Http");
    if (!json || !http) return NULL;
    VARIANT a[2];
    a[0] = bstr("client_secret"); a[1] = bstr("secret");
    LONG ok = long_of(json, M, "UpdateString", 2, a);
    a[0] = bstr("client_id"); a[1] = bstr("m2m.dpop");
    ok &= long_of(json, M, "UpdateString", 2, a);
    a[0] = bstr("token_endpoint"); a[1] = bstr(token_url);
    ok &= long_of(json, M, "UpdateString", 2, a);
    a[0] = bstr("scope"); a[1] = bstr("api");
    ok &= long_of(json, M, "UpdateString", 2, a);
    CHECK(ok == 1, "UpdateString x4");
    a[0] = disp(key);
    CHECK(long_of(http, M, "SetDPoPKey", 1, a) == 1, "SetDPoPKey(IDispatch of the key)");
    /* sp_OASetProperty @http, 'AuthToken', @sTmp0 */
    a[0] = bstr(str_of(json, M, "Emit", 0, NULL));
    HRESULT hr = call(http, DISPATCH_PROPERTYPUT, "AuthToken", NULL, 1, a, NULL, NULL);
    clear_args(1, a);
    CHECK(hr == S_OK && long_of(http, G, "LastMethodSuccess", 0, NULL) == 1, "AuthToken put: 0x%08lx", (unsigned long)hr);
    IDispatch_Release(json);
    return http;
}

static int seed(const char *key_file, const char *token_url, const char *api, int n) {
    IDispatch *key = create("DpopKit.PrivateKey");
    CHECK(key != NULL, "CoCreateInstance DpopKit.PrivateKey");
    if (!key) return 1;
    VARIANT a[2];
    a[0] = bstr(key_file); a[1] = bstr("");
    CHECK(long_of(key, M, "LoadAnyFormatFile", 2, a) == 1, "LoadAnyFormatFile");
    for (int i = 1; i <= n; i++) {
        IDispatch *http = auth_http(key, token_url);
        if (!http) { CHECK(0, "create Http"); return 1; }
        a[0] = bstr(api);
        const char *body = str_of(http, M, "QuickGetStr", 1, a);
        LONG ok = long_of(http, MG, "LastMethodSuccess", 0, NULL);
        LONG status = long_of(http, MG, "LastStatus", 0, NULL);
        CHECK(ok == 1 && status == 200 && strstr(body, "m2m.dpop"), "Http #%d: QuickGetStr -> %ld, LastStatus %ld", i, ok, status);
        if (ok != 1) printf("  %s\n", str_of(http, G, "LastErrorText", 0, NULL));
        IDispatch_Release(http);
    }
    IDispatch_Release(key);
    return 0;
}

static HRESULT raw(IDispatch *d, DISPID id, WORD flags, int n, VARIANT *rev, UINT named, DISPID *names, VARIANT *res, UINT *arg_err) {
    DISPPARAMS p = {rev, names, (UINT)n, named};
    if (res) VariantInit(res);
    return IDispatch_Invoke(d, id, &IID_NULL, LOCALE_USER_DEFAULT, flags, &p, res, NULL, arg_err);
}

static int abi(const char *key_file) {
    IDispatch *key = create("DpopKit.PrivateKey"), *json = create("DpopKit.JsonObject"), *http = create("DpopKit.Http");
    CHECK(key && json && http, "three objects");
    if (!key || !json || !http) return 1;
    /* Names: case-insensitive; unknown -> DISP_E_UNKNOWNNAME; parameter names for named args. */
    CHECK(id_of(key, "loadanyformatfile") == id_of(key, "LoadAnyFormatFile") && id_of(key, "LOADANYFORMATFILE") > 0, "GetIDsOfNames ignores case");
    CHECK(id_of(key, "NoSuchThing") == DISPID_UNKNOWN, "unknown name: DISPID_UNKNOWN");
    {
        LPOLESTR names[3] = {wide("LoadAnyFormatFile"), wide("password"), wide("@path")};
        DISPID ids[3] = {0, 0, 0};
        HRESULT hr = IDispatch_GetIDsOfNames(key, &IID_NULL, names, 3, LOCALE_USER_DEFAULT, ids);
        CHECK(hr == S_OK && ids[1] == 1 && ids[2] == 0, "parameter names (T-SQL's @path too): 0x%08lx ids %ld %ld", (unsigned long)hr, ids[1], ids[2]);
        /* Named arguments, reversed order: password first, then path. */
        VARIANT rev[2];
        rev[0] = bstr(""); rev[1] = bstr(key_file);
        DISPID named[2] = {1, 0};
        VARIANT r;
        hr = raw(key, ids[0], M, 2, rev, 2, named, &r, NULL);
        CHECK(hr == S_OK && V_VT(&r) == VT_I4 && V_I4(&r) == 1, "LoadAnyFormatFile(@password = '', @path = file): 0x%08lx", (unsigned long)hr);
        clear_args(2, rev);
        LPOLESTR bad[2] = {wide("LoadAnyFormatFile"), wide("nope")};
        hr = IDispatch_GetIDsOfNames(key, &IID_NULL, bad, 2, LOCALE_USER_DEFAULT, ids);
        CHECK(hr == DISP_E_UNKNOWNNAME && ids[1] == DISPID_UNKNOWN, "an unknown parameter name: DISP_E_UNKNOWNNAME");
    }
    DISPID upd = id_of(json, "UpdateString"), emit = id_of(json, "Emit");
    VARIANT r, rev[3];
    UINT arg_err = 99;
    /* Count. */
    rev[0] = bstr("only one");
    CHECK(raw(json, upd, M, 1, rev, 0, NULL, &r, NULL) == DISP_E_BADPARAMCOUNT, "1 argument for 2: DISP_E_BADPARAMCOUNT");
    rev[1] = bstr("a"); rev[2] = bstr("b");
    CHECK(raw(json, upd, M, 3, rev, 0, NULL, &r, NULL) == DISP_E_BADPARAMCOUNT, "3 arguments for 2: DISP_E_BADPARAMCOUNT");
    clear_args(3, rev);
    /* Type: an object where a string goes (second argument = rgvarg[0]). */
    rev[0] = disp(key); rev[1] = bstr("name");
    HRESULT hr = raw(json, upd, M, 2, rev, 0, NULL, &r, &arg_err);
    CHECK(hr == DISP_E_TYPEMISMATCH && arg_err == 0, "an object for a string: DISP_E_TYPEMISMATCH, puArgErr %u", arg_err);
    clear_args(2, rev);
    /* NULL BSTR = "" (COM's rule). */
    rev[0] = bstr("x"); SysFreeString(V_BSTR(&rev[0])); V_BSTR(&rev[0]) = NULL;
    rev[1] = bstr("empty");
    hr = raw(json, upd, M, 2, rev, 0, NULL, &r, NULL);
    clear_args(2, rev);
    CHECK(hr == S_OK && V_I4(&r) == 1 && strstr(str_of(json, M, "Emit", 0, NULL), "\"empty\":\"\""), "a NULL BSTR is the empty string");
    /* VT_BYREF|VT_BSTR and VT_BYREF|VT_VARIANT (VBScript's variables), VT_I2, VT_BOOL. */
    BSTR by = SysAllocString(wide("Zoë 日本"));
    VARIANT inner = bstr("byref-variant");
    rev[0].vt = VT_BYREF | VT_BSTR; rev[0].pbstrVal = &by;
    rev[1].vt = VT_BYREF | VT_VARIANT; rev[1].pvarVal = &inner;
    hr = raw(json, upd, M, 2, rev, 0, NULL, &r, NULL);
    CHECK(hr == S_OK && V_I4(&r) == 1, "VT_BYREF arguments: 0x%08lx", (unsigned long)hr);
    CHECK(strstr(str_of(json, M, "Emit", 0, NULL), "\"byref-variant\":\"Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac\"") != NULL, "UTF-16 -> UTF-8 both ways: %s", str_of(json, M, "Emit", 0, NULL));
    CHECK(by != NULL && wcscmp(by, wide("Zoë 日本")) == 0, "the caller's BYREF BSTR is left as it was");
    SysFreeString(by);
    VariantClear(&inner);
    DISPID tmo = id_of(http, "SetTimeouts");
    rev[1].vt = VT_I2; rev[1].iVal = 3000; rev[0].vt = VT_BOOL; rev[0].boolVal = VARIANT_TRUE;
    hr = raw(http, tmo, M, 2, rev, 0, NULL, &r, &arg_err);
    CHECK(hr == DISP_E_TYPEMISMATCH, "SetTimeouts(3000, True): True is -1 ms: DISP_E_TYPEMISMATCH (0x%08lx)", (unsigned long)hr);
    rev[0] = bstr("20000");
    hr = raw(http, tmo, M, 2, rev, 0, NULL, &r, NULL);
    clear_args(2, rev);
    CHECK(hr == S_OK && V_I4(&r) == 1, "SetTimeouts(VT_I2 3000, \"20000\"): coerced");
    /* A bad UTF-16 string (unpaired surrogate): refused, never replaced. */
    rev[0] = bstr("v"); rev[1] = bstr("k"); V_BSTR(&rev[1])[0] = 0xD800;
    hr = raw(json, upd, M, 2, rev, 0, NULL, &r, &arg_err);
    clear_args(2, rev);
    CHECK(hr == DISP_E_TYPEMISMATCH && arg_err == 1, "an unpaired surrogate: DISP_E_TYPEMISMATCH, puArgErr 1");
    /* An embedded NUL cannot reach a C string. */
    rev[0] = bstr("v"); rev[1].vt = VT_BSTR; rev[1].bstrVal = SysAllocStringLen(L"a\0b", 3);
    hr = raw(json, upd, M, 2, rev, 0, NULL, &r, &arg_err);
    clear_args(2, rev);
    CHECK(hr == DISP_E_TYPEMISMATCH, "an embedded NUL: DISP_E_TYPEMISMATCH");
    /* riid, DISPIDs, flags, pVarResult NULL. */
    DISPPARAMS none = {NULL, NULL, 0, 0};
    CHECK(IDispatch_Invoke(json, emit, &IID_IDispatch, 0, M, &none, &r, NULL, NULL) == DISP_E_UNKNOWNINTERFACE, "riid not IID_NULL: DISP_E_UNKNOWNINTERFACE");
    CHECK(IDispatch_Invoke(json, 9999, &IID_NULL, 0, M, &none, &r, NULL, NULL) == DISP_E_MEMBERNOTFOUND, "an unknown DISPID: DISP_E_MEMBERNOTFOUND");
    CHECK(IDispatch_Invoke(json, emit, &IID_NULL, 0, M, &none, NULL, NULL, NULL) == S_OK, "pVarResult NULL: fine, nothing leaks");
    rev[0] = bstr("{}");
    CHECK(raw(http, id_of(http, "AuthToken"), DISPATCH_PROPERTYPUT, 1, rev, 0, NULL, NULL, NULL) == DISP_E_PARAMNOTFOUND, "a put without DISPID_PROPERTYPUT: DISP_E_PARAMNOTFOUND");
    clear_args(1, rev);
    CHECK(raw(http, id_of(http, "AuthToken"), G, 0, rev, 0, NULL, &r, NULL) == DISP_E_MEMBERNOTFOUND, "AuthToken cannot be read (it holds the client secret)");
    /* Results' types: Long 1/0, BSTR, VT_ARRAY|VT_UI1. */
    hr = call(key, M, "GetJwkThumbprint", &r, 0, NULL, NULL, NULL);
    CHECK(hr == S_OK && V_VT(&r) == VT_BSTR && SysStringLen(V_BSTR(&r)) == 43, "GetJwkThumbprint: a 43-character BSTR");
    VariantClear(&r);
    hr = call(http, G, "LastResponseBodyBytes", &r, 0, NULL, NULL, NULL);
    CHECK(hr == S_OK && V_VT(&r) == (VT_ARRAY | VT_UI1) && SafeArrayGetDim(V_ARRAY(&r)) == 1, "LastResponseBodyBytes: VT_ARRAY|VT_UI1 (vt %d)", V_VT(&r));
    VariantClear(&r);
    /* A panic inside Invoke (the test-only DISPID 0x7FFF0001) stays there: DISP_E_EXCEPTION
     * with E_UNEXPECTED and a fixed text, nothing printed, and the object still works. */
    {
        EXCEPINFO ei;
        memset(&ei, 0, sizeof ei);
        hr = IDispatch_Invoke(json, 0x7FFF0001, &IID_NULL, 0, M, &none, &r, &ei, NULL);
        CHECK(hr == DISP_E_EXCEPTION && ei.scode == E_UNEXPECTED && ei.bstrDescription && wcsstr(ei.bstrDescription, L"internal error"),
              "a panic inside Invoke: DISP_E_EXCEPTION, scode E_UNEXPECTED, '%ls'", ei.bstrDescription ? ei.bstrDescription : L"");
        SysFreeString(ei.bstrSource);
        SysFreeString(ei.bstrDescription);
        SysFreeString(ei.bstrHelpFile);
        CHECK(strstr(str_of(json, M, "Emit", 0, NULL), "\"empty\"") != NULL, "the object still works after the panic");
    }
    /* The type library is reachable from the object (what PowerShell and VBA's object browser use). */
    UINT count = 0;
    ITypeInfo *ti = NULL;
    CHECK(IDispatch_GetTypeInfoCount(http, &count) == S_OK && count == 1, "GetTypeInfoCount = 1");
    hr = IDispatch_GetTypeInfo(http, 0, 0, &ti);
    CHECK(hr == S_OK && ti, "GetTypeInfo(0): 0x%08lx", (unsigned long)hr);
    if (ti) {
        BSTR name = NULL;
        ITypeInfo_GetDocumentation(ti, MEMBERID_NIL, &name, NULL, NULL, NULL);
        CHECK(name && wcscmp(name, L"IHttp") == 0, "its interface is IHttp");
        SysFreeString(name);
        ITypeInfo_Release(ti);
    }
    IDispatch_Release(key);
    IDispatch_Release(json);
    IDispatch_Release(http);
    return 0;
}

static SIZE_T private_bytes(void) {
    PROCESS_MEMORY_COUNTERS_EX pmc;
    memset(&pmc, 0, sizeof pmc);
    GetProcessMemoryInfo(GetCurrentProcess(), (PROCESS_MEMORY_COUNTERS *)&pmc, sizeof pmc);
    return pmc.PrivateUsage ? pmc.PrivateUsage : pmc.PagefileUsage;
}

typedef HRESULT(WINAPI *can_unload_fn)(void);

static void round_trip(IDispatch *key, IDispatch *json, IDispatch *http, int i) {
    char v[64];
    snprintf(v, sizeof v, "value-%d", i);
    VARIANT a[2];
    a[0] = bstr("k"); a[1] = bstr(v);
    long_of(json, M, "UpdateString", 2, a);
    str_of(json, M, "Emit", 0, NULL);
    str_of(key, M, "GetPublicJwk", 0, NULL);
    str_of(http, G, "LastErrorText", 0, NULL);
    VARIANT r;
    call(http, G, "LastResponseBodyBytes", &r, 0, NULL, NULL, NULL);
    VariantClear(&r);
    /* A failing call (its error text, its EXCEPINFO-free HRESULT) and a type mismatch. */
    a[0] = bstr("C:\\no\\such\\key.pem");
    long_of(key, M, "LoadAnyFormatFile", 1, a);
    a[0] = disp(key); a[1] = bstr("x");
    call(json, M, "UpdateString", &r, 2, a, NULL, NULL);
    clear_args(2, a);
    /* A byte array in. */
    SAFEARRAY *sa = SafeArrayCreateVector(VT_UI1, 0, 64);
    VARIANT in[4];
    in[0] = bstr("POST"); in[1] = bstr("http://127.0.0.1:9/unused"); in[2] = bstr("application/octet-stream");
    in[3].vt = VT_ARRAY | VT_UI1; in[3].parray = sa;
    /* SetTimeouts bounds it; port 9 refuses at once. */
    call(http, M, "QuickRequestBytes", &r, 4, in, NULL, NULL);
    VariantClear(&r);
    clear_args(3, in);
    SafeArrayDestroy(sa);
}

static int leak(const char *key_file) {
    HMODULE dll = GetModuleHandleW(L"dpopkit.dll");
    IDispatch *key = create("DpopKit.PrivateKey"), *json = create("DpopKit.JsonObject"), *http = create("DpopKit.Http");
    if (!key || !json || !http) { CHECK(0, "objects"); return 1; }
    dll = GetModuleHandleW(L"dpopkit.dll");
    can_unload_fn can_unload = dll ? (can_unload_fn)(void (*)(void))GetProcAddress(dll, "DllCanUnloadNow") : NULL;
    CHECK(can_unload != NULL, "DllCanUnloadNow is exported");
    if (!can_unload) return 1;
    CHECK(can_unload() == S_FALSE, "DllCanUnloadNow: S_FALSE while objects are alive");
    VARIANT a[2];
    a[0] = bstr(key_file);
    CHECK(long_of(key, M, "LoadAnyFormatFile", 1, a) == 1, "key");
    a[0] = i4(500); a[1] = i4(1000);
    long_of(http, M, "SetTimeouts", 2, a);
    LONG base = long_of(json, G, "LiveHandles", 0, NULL);
    CHECK(base == 3, "3 live handles: %ld", base);
    for (int i = 0; i < 1000; i++) round_trip(key, json, http, i);
    SIZE_T before = private_bytes();
    for (int i = 0; i < 10000; i++) round_trip(key, json, http, i);
    SIZE_T after = private_bytes();
    long growth = (long)after - (long)before;
    printf("private bytes: %lu before, %lu after 10,000 rounds of 8 calls (%+ld)\n", (unsigned long)before, (unsigned long)after, growth);
    CHECK(before > 0, "private bytes are measurable");
    CHECK(growth < 1024 * 1024, "no leak over 10,000 rounds (80,000 calls): %+ld bytes", growth);
    CHECK(long_of(json, G, "LiveHandles", 0, NULL) == base, "live handles unchanged by the calls");
    /* 1,000 objects of each class created and released. */
    for (int i = 0; i < 100; i++) {
        IDispatch *k = create("DpopKit.PrivateKey"), *j = create("DpopKit.JsonObject"), *h = create("DpopKit.Http");
        if (k) IDispatch_Release(k);
        if (j) IDispatch_Release(j);
        if (h) IDispatch_Release(h);
    }
    before = private_bytes();
    for (int i = 0; i < 1000; i++) {
        IDispatch *k = create("DpopKit.PrivateKey"), *j = create("DpopKit.JsonObject"), *h = create("DpopKit.Http");
        if (!k || !j || !h) { CHECK(0, "create #%d", i); break; }
        a[0] = bstr(key_file);
        long_of(k, M, "LoadAnyFormatFile", 1, a);
        a[0] = disp(k);
        long_of(h, M, "SetDPoPKey", 1, a);
        IDispatch_Release(k);
        IDispatch_Release(j);
        IDispatch_Release(h);
    }
    after = private_bytes();
    growth = (long)after - (long)before;
    printf("private bytes: %lu before, %lu after 1,000 x 3 objects (%+ld)\n", (unsigned long)before, (unsigned long)after, growth);
    CHECK(growth < 1024 * 1024, "no leak over 1,000 x 3 objects: %+ld bytes", growth);
    CHECK(long_of(json, G, "LiveHandles", 0, NULL) == base, "live handles back to %ld", base);
    CHECK(can_unload() == S_FALSE, "DllCanUnloadNow: still S_FALSE (3 objects alive)");
    IDispatch_Release(key);
    IDispatch_Release(json);
    CHECK(can_unload() == S_FALSE, "DllCanUnloadNow: S_FALSE with one object alive");
    IDispatch_Release(http);
    CHECK(can_unload() == S_OK, "DllCanUnloadNow: S_OK once every object is released");
    /* LockServer holds it too. */
    CLSID clsid;
    IClassFactory *cf = NULL;
    CLSIDFromProgID(L"DpopKit.Http", &clsid);
    HRESULT hr = CoGetClassObject(&clsid, CLSCTX_INPROC_SERVER, NULL, &IID_IClassFactory, (void **)&cf);
    CHECK(hr == S_OK && cf, "CoGetClassObject");
    if (cf) {
        IClassFactory_LockServer(cf, TRUE);
        IClassFactory_Release(cf);
        CHECK(can_unload() == S_FALSE, "DllCanUnloadNow: S_FALSE under LockServer(TRUE)");
        CoGetClassObject(&clsid, CLSCTX_INPROC_SERVER, NULL, &IID_IClassFactory, (void **)&cf);
        IUnknown *outer = (IUnknown *)cf, *obj = NULL;
        CHECK(IClassFactory_CreateInstance(cf, outer, &IID_IUnknown, (void **)&obj) == CLASS_E_NOAGGREGATION, "aggregation: CLASS_E_NOAGGREGATION");
        IClassFactory_LockServer(cf, FALSE);
        IClassFactory_Release(cf);
        CHECK(can_unload() == S_OK, "DllCanUnloadNow: S_OK after LockServer(FALSE)");
    }
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: client seed KEY TOKEN_URL API N | abi KEY | leak KEY\n");
        return 2;
    }
    /* sp_OA's thread is an STA (KB180780). */
    HRESULT hr = CoInitializeEx(NULL, COINIT_APARTMENTTHREADED);
    CHECK(SUCCEEDED(hr), "CoInitializeEx(STA)");
    int rc = 1;
    if (strcmp(argv[1], "seed") == 0 && argc == 6) rc = seed(argv[2], argv[3], argv[4], atoi(argv[5]));
    else if (strcmp(argv[1], "abi") == 0) rc = abi(argv[2]);
    else if (strcmp(argv[1], "leak") == 0) rc = leak(argv[2]);
    else fprintf(stderr, "unknown mode %s\n", argv[1]);
    CoUninitialize();
    if (rc == 0 && failures == 0) {
        printf("REACHED END\n");
        return 0;
    }
    printf("%d failed\n", failures);
    return 1;
}
