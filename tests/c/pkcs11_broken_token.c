/* tests/servers/pkcs11.rs: a PKCS#11 module that is SoftHSM2 (REAL_MODULE, a -D at compile
 * time) in which one token cannot be read: C_GetTokenInfo fails with CKR_GENERAL_ERROR for
 * the token labelled BROKEN_LABEL (as an HSM answers for a token in a bad state, or
 * SoftHSM2 while another thread writes the token's files). Everything else is SoftHSM2's
 * own function list, found and patched as in pkcs11_stall.c. */
#include <dlfcn.h>
#include <string.h>

typedef unsigned long CK_RV;
typedef CK_RV (*token_info_fn)(unsigned long, unsigned char *);
typedef CK_RV (*get_list_fn)(void **);

#define N_FUNCS 68
#define CKR_GENERAL_ERROR 5UL

static struct {
    unsigned char version[2];
    void *f[N_FUNCS];
} list;
static token_info_fn real_token_info;

/* CK_TOKEN_INFO starts with its label: 32 bytes, padded with spaces. */
static CK_RV failing_token_info(unsigned long slot, unsigned char *info) {
    CK_RV rv = real_token_info(slot, info);
    size_t n = strlen(BROKEN_LABEL);
    if (rv == 0 && info && memcmp(info, BROKEN_LABEL, n) == 0 && (n == 32 || info[n] == ' ')) {
        return CKR_GENERAL_ERROR;
    }
    return rv;
}

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
    void *token_info = dlsym(h, "C_GetTokenInfo");
    for (int i = 0; i < N_FUNCS; i++) {
        if (token_info && list.f[i] == token_info) {
            memcpy(&real_token_info, &token_info, sizeof real_token_info);
            token_info_fn mine = failing_token_info;
            memcpy(&list.f[i], &mine, sizeof mine);
        }
    }
    if (!real_token_info) {
        return CKR_GENERAL_ERROR;
    }
    *out = &list;
    return 0;
}
