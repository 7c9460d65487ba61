// CLinux: the Linux system calls Swift's Glibc module leaves out (they sit
// behind _GNU_SOURCE or in headers it does not include): epoll, eventfd,
// signalfd, accept4, pipe2, dup3, sched_setaffinity, recvmmsg/sendmmsg, pidfd, posix_spawn's closefrom. Declarations and prefixed wrappers only, no logic.
#ifndef CLINUX_H
#define CLINUX_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>

int CLinux_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);
int CLinux_pipe2(int fds[2], int flags);
/// `dup3(fd, number, flags)`: `dup2` with `O_CLOEXEC` set in the same step.
int CLinux_dup3(int fd, int number, int flags);
/// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34): the child closes
/// every descriptor from `from` up, after the actions added before it.
int CLinux_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);

/// `struct mmsghdr` (behind _GNU_SOURCE): one message of a batch and the
/// bytes it carried. Same layout; shims.c checks it.
struct CLinux_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
int CLinux_recvmmsg(int fd, struct CLinux_mmsghdr *messages, unsigned int count, int flags);
int CLinux_sendmmsg(int fd, struct CLinux_mmsghdr *messages, unsigned int count, int flags);
/// `pidfd_open(pid, 0)` (Linux 5.3): a descriptor that is readable once the process has exited.
int CLinux_pidfd_open(int pid);
/// `waitid(P_PIDFD, pidfd, ..., WEXITED | WNOHANG)`: reaps the process if it
/// has exited. Returns -1 with errno on failure; 0 if it has not exited yet;
/// 1 with `*code` (`CLD_EXITED`, `CLD_KILLED`, `CLD_DUMPED`) and `*status`
/// (the exit code or the signal) once reaped.
int CLinux_reap_pidfd(int pidfd, int *code, int *status);
static const int CLinux_CLD_EXITED = CLD_EXITED;
static const int CLinux_CLD_KILLED = CLD_KILLED;
static const int CLinux_CLD_DUMPED = CLD_DUMPED;
/// Pins the calling thread to `cpu` (sched_setaffinity with CPU_SET, macros Swift cannot import).
int CLinux_pin_to_cpu(int cpu);

static const int CLinux_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int CLinux_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int CLinux_MSG_TRUNC = MSG_TRUNC;
static const int CLinux_MSG_NOSIGNAL = MSG_NOSIGNAL;
static const int CLinux_O_NONBLOCK = 04000;
static const int CLinux_O_CLOEXEC = 02000000;

#endif
