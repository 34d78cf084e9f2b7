/* A stand-in for bcryptprimitives.dll, for running the Windows tests under Wine only.
 *
 * Rust's standard library gets its randomness from ProcessPrng in bcryptprimitives.dll,
 * which every Windows that Rust supports (10 and later) has, but Wine 8 does not. This
 * DLL, put beside the test programs, serves ProcessPrng from RtlGenRandom
 * (advapi32's SystemFunction036, which Wine implements with the host's random source).
 * It is a test fixture: scripts/windows.sh builds it next to the test programs and never
 * puts it into the zip. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
