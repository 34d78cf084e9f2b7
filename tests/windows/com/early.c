/* An early-bound client through the type library: the GUIDs come from the header widl
 * generates from the DLL's IDL (dpopkit_com.h), the members and DISPIDs from the
 * registered type library (LoadRegTypeLib), as VBA's References, the VB6/VBA compiler or
 * C#'s tlbimp bind them; calls go by those DISPIDs, never through the object's
 * GetIDsOfNames. Run under Wine by scripts/windows.sh test.
 *
 *   early KEY_FILE TOKEN_URL API_URL
 *
 * Prints one line per check; exits 0 only if every check passes, after "REACHED END". */
#define COBJMACROS
#include <initguid.h>
#include <windows.h>
#include <oleauto.h>
#include <stdio.h>
#include <string.h>
#include "dpopkit_com.h"

static int failures = 0;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        printf((cond) ? "ok: " : "FAILED: ");                                              \
        if (!(cond)) failures++;                                                           \
        printf(__VA_ARGS__);                                                               \
        printf("\n");                                                                      \
    } while (0)

/* The DISPID of `name` in a type info, from the type library alone. */
static MEMBERID member(ITypeInfo *ti, const wchar_t *name) {
    MEMBERID id = MEMBERID_NIL;
    LPOLESTR n = (LPOLESTR)name;
    return SUCCEEDED(ITypeInfo_GetIDsOfNames(ti, &n, 1, &id)) ? id : MEMBERID_NIL;
}

/* The default dispinterface of a coclass. */
static ITypeInfo *dispinterface_of(ITypeLib *lib, REFCLSID clsid) {
    ITypeInfo *co = NULL, *di = NULL;
    HREFTYPE ref;
    if (FAILED(ITypeLib_GetTypeInfoOfGuid(lib, clsid, &co))) return NULL;
    if (SUCCEEDED(ITypeInfo_GetRefTypeOfImplType(co, 0, &ref))) ITypeInfo_GetRefTypeInfo(co, ref, &di);
    ITypeInfo_Release(co);
    return di;
}

static HRESULT inv(IDispatch *d, MEMBERID id, WORD flags, VARIANT *res, int n, VARIANT *args_in_order) {
    VARIANT rev[4];
    DISPID put = DISPID_PROPERTYPUT;
    for (int i = 0; i < n; i++) rev[n - 1 - i] = args_in_order[i];
    DISPPARAMS p = {rev, NULL, (UINT)n, 0};
    if (flags == DISPATCH_PROPERTYPUT) { p.rgdispidNamedArgs = &put; p.cNamedArgs = 1; }
    if (res) VariantInit(res);
    static const IID none = {0, 0, 0, {0, 0, 0, 0, 0, 0, 0, 0}}; /* IID_NULL */
    return IDispatch_Invoke(d, id, &none, 0, flags, &p, res, NULL, NULL);
}

static VARIANT bstr(const wchar_t *s) {
    VARIANT v;
    VariantInit(&v);
    V_VT(&v) = VT_BSTR;
    V_BSTR(&v) = SysAllocString(s);
    return v;
}

static wchar_t *wide(const char *s) {
    static wchar_t buf[4][2048];
    static int next = 0;
    wchar_t *w = buf[next++ % 4];
    MultiByteToWideChar(CP_UTF8, 0, s, -1, w, 2048);
    return w;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 4) {
        fprintf(stderr, "usage: early KEY_FILE TOKEN_URL API_URL\n");
        return 2;
    }
    CoInitializeEx(NULL, COINIT_APARTMENTTHREADED);
    ITypeLib *lib = NULL;
    HRESULT hr = LoadRegTypeLib(&LIBID_DpopKit, 1, 0, 0, &lib);
    CHECK(hr == S_OK && lib, "LoadRegTypeLib(LIBID_DpopKit 1.0): 0x%08lx", (unsigned long)hr);
    if (!lib) return 1;
    ITypeInfo *tk = dispinterface_of(lib, &CLSID_PrivateKey), *tj = dispinterface_of(lib, &CLSID_JsonObject), *th = dispinterface_of(lib, &CLSID_Http);
    CHECK(tk && tj && th, "the three coclasses and their default dispinterfaces");
    if (!tk || !tj || !th) return 1;
    TYPEATTR *ta = NULL;
    ITypeInfo_GetTypeAttr(th, &ta);
    CHECK(ta && ta->typekind == TKIND_DISPATCH && IsEqualGUID(&ta->guid, &DIID_IHttp), "IHttp is a dispinterface with DIID_IHttp");
    printf("IHttp: %u members:", ta ? ta->cFuncs : 0);
    for (UINT i = 0; ta && i < ta->cFuncs; i++) {
        FUNCDESC *fd = NULL;
        if (FAILED(ITypeInfo_GetFuncDesc(th, i, &fd))) continue;
        BSTR name = NULL;
        UINT got = 0;
        ITypeInfo_GetNames(th, fd->memid, &name, 1, &got);
        printf(" %ls%s", name ? name : L"?", fd->invkind == INVOKE_PROPERTYPUT ? "(put)" : "");
        SysFreeString(name);
        ITypeInfo_ReleaseFuncDesc(th, fd);
    }
    printf("\n");
    if (ta) ITypeInfo_ReleaseTypeAttr(th, ta);

    /* Every DISPID the seed needs, from the type library. */
    MEMBERID load = member(tk, L"LoadAnyFormatFile"), upd = member(tj, L"UpdateString"), emit = member(tj, L"Emit"),
             setkey = member(th, L"SetDPoPKey"), auth = member(th, L"AuthToken"), get = member(th, L"QuickGetStr"),
             ok = member(th, L"LastMethodSuccess"), status = member(th, L"LastStatus"), err = member(th, L"LastErrorText");
    CHECK(load > 0 && upd > 0 && emit > 0 && setkey > 0 && auth > 0 && get > 0 && ok > 0 && status > 0 && err > 0, "the seed's members are in the type library");

    IDispatch *key = NULL, *json = NULL, *http = NULL;
    /* As VBA's `Dim h As DpopKit.Http: Set h = New DpopKit.Http`: the default interface's IID. */
    CoCreateInstance(&CLSID_PrivateKey, NULL, CLSCTX_INPROC_SERVER, &DIID_IPrivateKey, (void **)&key);
    CoCreateInstance(&CLSID_JsonObject, NULL, CLSCTX_INPROC_SERVER, &DIID_IJsonObject, (void **)&json);
    hr = CoCreateInstance(&CLSID_Http, NULL, CLSCTX_INPROC_SERVER, &DIID_IHttp, (void **)&http);
    CHECK(key && json && http, "CoCreateInstance(CLSID_*, DIID_I*): each object answers its dispinterface's IID (0x%08lx)", (unsigned long)hr);
    if (!key || !json || !http) return 1;
    {
        void *other = NULL;
        HRESULT q = IDispatch_QueryInterface(key, &DIID_IHttp, &other);
        CHECK(q == E_NOINTERFACE && other == NULL, "a PrivateKey does not answer DIID_IHttp (0x%08lx)", (unsigned long)q);
        if (other) IUnknown_Release((IUnknown *)other);
        IDispatch *d = NULL;
        CHECK(IDispatch_QueryInterface(http, &IID_IDispatch, (void **)&d) == S_OK && d, "and IDispatch as well");
        if (d) IDispatch_Release(d);
    }
    ITypeInfo *from_obj = NULL;
    IDispatch_GetTypeInfo(http, 0, 0, &from_obj);
    if (from_obj) {
        ITypeInfo_GetTypeAttr(from_obj, &ta);
        CHECK(ta && IsEqualGUID(&ta->guid, &DIID_IHttp), "IDispatch::GetTypeInfo(0) is the same IHttp");
        ITypeInfo_ReleaseTypeAttr(from_obj, ta);
        ITypeInfo_Release(from_obj);
    } else {
        CHECK(0, "IDispatch::GetTypeInfo(0)");
    }

    VARIANT r, a[2];
    a[0] = bstr(wide(argv[1])); a[1] = bstr(L"");
    hr = inv(key, load, DISPATCH_METHOD, &r, 2, a);
    CHECK(hr == S_OK && V_VT(&r) == VT_I4 && V_I4(&r) == 1, "LoadAnyFormatFile by DISPID %ld", load);
    VariantClear(&a[0]); VariantClear(&a[1]);
    const wchar_t *pairs[4][2] = {{L"client_secret", L"secret"}, {L"client_id", L"m2m.dpop"}, {L"token_endpoint", NULL}, {L"scope", L"api"}};
    for (int i = 0; i < 4; i++) {
        a[0] = bstr(pairs[i][0]); a[1] = bstr(pairs[i][1] ? pairs[i][1] : wide(argv[2]));
        hr = inv(json, upd, DISPATCH_METHOD, &r, 2, a);
        CHECK(hr == S_OK && V_I4(&r) == 1, "UpdateString(%ls) by DISPID", pairs[i][0]);
        VariantClear(&a[0]); VariantClear(&a[1]);
    }
    VARIANT token;
    inv(json, emit, DISPATCH_METHOD, &token, 0, NULL);
    V_VT(&a[0]) = VT_DISPATCH; V_DISPATCH(&a[0]) = key;
    hr = inv(http, setkey, DISPATCH_METHOD, &r, 1, a);
    CHECK(hr == S_OK && V_I4(&r) == 1, "SetDPoPKey by DISPID");
    hr = inv(http, auth, DISPATCH_PROPERTYPUT, NULL, 1, &token);
    VariantClear(&token);
    CHECK(hr == S_OK, "AuthToken (propput) by DISPID");
    a[0] = bstr(wide(argv[3]));
    hr = inv(http, get, DISPATCH_METHOD, &r, 1, a);
    VariantClear(&a[0]);
    VariantClear(&r);
    VARIANT s, m;
    inv(http, status, DISPATCH_PROPERTYGET, &s, 0, NULL);
    inv(http, ok, DISPATCH_PROPERTYGET, &m, 0, NULL);
    CHECK(hr == S_OK && V_I4(&m) == 1 && V_I4(&s) == 200, "QuickGetStr by DISPID: LastMethodSuccess %ld, LastStatus %ld", V_I4(&m), V_I4(&s));
    if (V_I4(&m) != 1) {
        inv(http, err, DISPATCH_PROPERTYGET, &r, 0, NULL);
        printf("  %ls\n", V_BSTR(&r));
        VariantClear(&r);
    }
    IDispatch_Release(key);
    IDispatch_Release(json);
    IDispatch_Release(http);
    ITypeInfo_Release(tk);
    ITypeInfo_Release(tj);
    ITypeInfo_Release(th);
    ITypeLib_Release(lib);
    CoUninitialize();
    if (failures == 0) {
        printf("REACHED END\n");
        return 0;
    }
    printf("%d failed\n", failures);
    return 1;
}
