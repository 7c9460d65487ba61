// The one place accept4, pipe2 and sched_setaffinity are called: they need
// _GNU_SOURCE, which Swift's Glibc module does not define.
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

int CLinux_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    return accept4(fd, address, length, flags);
}

int CLinux_pipe2(int fds[2], int flags) {
    return pipe2(fds, flags);
}

int CLinux_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}
