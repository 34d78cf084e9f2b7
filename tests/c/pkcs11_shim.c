/* tests/servers/pkcs11.rs: a PKCS#11 module that is SoftHSM2 (REAL_MODULE, a -D at compile
 * time) with a fault of the test's choosing, each a -D:
 *   STALL_FILE    C_Sign sleeps as long as this file exists (at most 10 s), then forwards:
 *                 a token that stalls while signing.
 *   BROKEN_LABEL  C_GetTokenInfo fails with CKR_GENERAL_ERROR for the token with this
 *                 label: a token in a bad state (or SoftHSM2 while another thread writes
 *                 that token's files).
 * Everything else is SoftHSM2's own function list. No PKCS#11 header is needed: the list is
 * a CK_VERSION followed by 68 function pointers (PKCS#11 2.40), and a function's place in
 * it is found by its address. */
#include <dlfcn.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long CK_RV;
typedef CK_RV (*get_list_fn)(void **);

#define N_FUNCS 68
#define CKR_GENERAL_ERROR 5UL

static struct {
    unsigned char version[2];
    void *f[N_FUNCS];
} list;

/* Puts `mine` in the list in place of the real module's `name`, whose address goes to
 * `*real`; 0 when the real module has no such function in its list. */
static int patch(void *h, const char *name, void *mine, void **real) {
    void *f = dlsym(h, name);
    for (int i = 0; f && i < N_FUNCS; i++) {
        if (list.f[i] == f) {
            *real = f;
            list.f[i] = mine;
            return 1;
        }
    }
    return 0;
}

#ifdef STALL_FILE
typedef CK_RV (*sign_fn)(unsigned long, unsigned char *, unsigned long, unsigned char *, unsigned long *);
static void *real_sign;

static CK_RV stalling_sign(unsigned long s, unsigned char *data, unsigned long len, unsigned char *sig, unsigned long *sig_len) {
    struct timespec slice = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 500 && access(STALL_FILE, F_OK) == 0; i++) {
        nanosleep(&slice, NULL);
    }
    sign_fn sign;
    memcpy(&sign, &real_sign, sizeof sign);
    return sign(s, data, len, sig, sig_len);
}
#endif

#ifdef BROKEN_LABEL
typedef CK_RV (*token_info_fn)(unsigned long, unsigned char *);
static void *real_token_info;

/* CK_TOKEN_INFO starts with its label: 32 bytes, padded with spaces. */
static CK_RV failing_token_info(unsigned long slot, unsigned char *info) {
    token_info_fn token_info;
    memcpy(&token_info, &real_token_info, sizeof token_info);
    CK_RV rv = token_info(slot, info);
    size_t n = strlen(BROKEN_LABEL);
    if (rv == 0 && info && memcmp(info, BROKEN_LABEL, n) == 0 && (n == 32 || info[n] == ' ')) {
        return CKR_GENERAL_ERROR;
    }
    return rv;
}
#endif

CK_RV C_GetFunctionList(void **out) {
    void *h = dlopen(REAL_MODULE, RTLD_NOW | RTLD_LOCAL);
    if (!h || !out) {
        return CKR_GENERAL_ERROR;
    }
    get_list_fn get;
    void *sym = dlsym(h, "C_GetFunctionList");
    memcpy(&get, &sym, sizeof get);
    void *real = NULL;
    CK_RV rv = get(&real);
    if (rv != 0) {
        return rv;
    }
    memcpy(&list, real, sizeof list);
    void *mine;
#ifdef STALL_FILE
    sign_fn stalling = stalling_sign;
    memcpy(&mine, &stalling, sizeof mine);
    if (!patch(h, "C_Sign", mine, &real_sign)) {
        return CKR_GENERAL_ERROR;
    }
#endif
#ifdef BROKEN_LABEL
    token_info_fn failing = failing_token_info;
    memcpy(&mine, &failing, sizeof mine);
    if (!patch(h, "C_GetTokenInfo", mine, &real_token_info)) {
        return CKR_GENERAL_ERROR;
    }
#endif
    (void)mine;
    *out = &list;
    return 0;
}
