/* tests/pkcs11.rs: a shared library that is not the PKCS#11 module a process may load. Its
 * constructor appends to the file MARKER (a -D at compile time): the file exists exactly
 * when some process loaded this library, i.e. ran code of the caller's choosing. */
#include <fcntl.h>
#include <unistd.h>

__attribute__((constructor)) static void loaded(void) {
    int fd = open(MARKER, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        if (write(fd, "loaded\n", 7) < 0) {
            /* nothing to do: the file exists already */
        }
        close(fd);
    }
}
