// CLinux: the Linux system calls Swift's Glibc module leaves out (they sit
// behind _GNU_SOURCE or in headers it does not include): epoll, eventfd,
// signalfd, accept4, pipe2, sched_setaffinity, recvmmsg/sendmmsg. Declarations and prefixed wrappers only, no logic.
#ifndef CLINUX_H
#define CLINUX_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <signal.h>

int CLinux_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);
int CLinux_pipe2(int fds[2], int flags);

/// `struct mmsghdr` (behind _GNU_SOURCE): one message of a batch and the
/// bytes it carried. Same layout; shims.c checks it.
struct CLinux_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
int CLinux_recvmmsg(int fd, struct CLinux_mmsghdr *messages, unsigned int count, int flags);
int CLinux_sendmmsg(int fd, struct CLinux_mmsghdr *messages, unsigned int count, int flags);
/// Pins the calling thread to `cpu` (sched_setaffinity with CPU_SET, macros Swift cannot import).
int CLinux_pin_to_cpu(int cpu);

static const int CLinux_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int CLinux_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int CLinux_MSG_TRUNC = MSG_TRUNC;
static const int CLinux_MSG_NOSIGNAL = MSG_NOSIGNAL;
static const int CLinux_O_NONBLOCK = 04000;
static const int CLinux_O_CLOEXEC = 02000000;

#endif
