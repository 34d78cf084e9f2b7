/* tests/pkcs11.rs: a PKCS#11 module that is SoftHSM2 (REAL_MODULE, a -D at compile time)
 * with a token that stalls while signing: as long as the file STALL_FILE exists (at most
 * 10 s), C_Sign sleeps before it forwards to SoftHSM2. Everything else is SoftHSM2's own
 * function list. No PKCS#11 header is needed: the list is a CK_VERSION followed by 68
 * function pointers (PKCS#11 2.40), and C_Sign's place in it is found by its address. */
#include <dlfcn.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long CK_RV;
typedef CK_RV (*sign_fn)(unsigned long, unsigned char *, unsigned long, unsigned char *, unsigned long *);
typedef CK_RV (*get_list_fn)(void **);

#define N_FUNCS 68
#define CKR_GENERAL_ERROR 5UL

static struct {
    unsigned char version[2];
    void *f[N_FUNCS];
} list;
static sign_fn real_sign;

static CK_RV stalling_sign(unsigned long s, unsigned char *data, unsigned long len, unsigned char *sig, unsigned long *sig_len) {
    struct timespec slice = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 500 && access(STALL_FILE, F_OK) == 0; i++) {
        nanosleep(&slice, NULL);
    }
    return real_sign(s, data, len, sig, sig_len);
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
    void *sign = dlsym(h, "C_Sign");
    for (int i = 0; i < N_FUNCS; i++) {
        if (sign && list.f[i] == sign) {
            memcpy(&real_sign, &sign, sizeof real_sign);
            sign_fn mine = stalling_sign;
            memcpy(&list.f[i], &mine, sizeof mine);
        }
    }
    if (!real_sign) {
        return CKR_GENERAL_ERROR;
    }
    *out = &list;
    return 0;
}
