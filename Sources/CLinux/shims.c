// The one place accept4 and pipe2 are called: they need _GNU_SOURCE, which
// Swift's Glibc module does not define.
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

int CLinux_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    return accept4(fd, address, length, flags);
}

int CLinux_pipe2(int fds[2], int flags) {
    return pipe2(fds, flags);
}
