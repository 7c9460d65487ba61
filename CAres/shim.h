// c-ares (Debian's libc-ares-dev), the asynchronous DNS resolver that gevent
// and many libev programs pair with libev: driven by a loop's own readiness
// watches and one timer (Sources/Resolver).
#ifndef CARES_SHIM_H
#define CARES_SHIM_H

#include <string.h>
#include <ares.h>

/// A channel whose sockets are reported to `callback` (ARES_OPT_SOCK_STATE_CB),
/// `timeout_ms` per try, `tries` tries, lookups `lookups` ("fb": the hosts
/// file, then DNS), reading `resolv_conf` if it is not NULL.
static inline int CAres_init(ares_channel *channel, ares_sock_state_cb callback, void *data,
                             int timeout_ms, int tries, const char *lookups, const char *resolv_conf) {
    struct ares_options options;
    memset(&options, 0, sizeof options);
    options.sock_state_cb = callback;
    options.sock_state_cb_data = data;
    options.timeout = timeout_ms;
    options.tries = tries;
    options.lookups = (char *)lookups;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
    if (resolv_conf) {
        options.resolvconf_path = (char *)resolv_conf;
        mask |= ARES_OPT_RESOLVCONF;
    }
    return ares_init_options(channel, &options, mask);
}

/// How long until the channel's next timeout, in seconds; -1 if it has no query.
static inline double CAres_next_timeout(ares_channel channel) {
    struct timeval value;
    struct timeval *next = ares_timeout(channel, NULL, &value);
    if (!next) return -1;
    return (double)next->tv_sec + (double)next->tv_usec / 1e6;
}

#endif
