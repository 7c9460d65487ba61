// hiredis (Debian's libhiredis-dev), the C client of Redis, for the crawler's
// shared frontier. Its own libev adapter comes along: the tests run the same
// scenario through it and through the package's adapter (Examples/Redis), which
// works on any EventLoop.
#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

/// hiredis's own libev adapter (adapters/libev.h), attached to a libev loop
/// given as an opaque pointer (`struct ev_loop *`).
static inline int CHiredis_attach_libev(void *loop, redisAsyncContext *context) {
    return redisLibevAttach((struct ev_loop *)loop, context);
}

#endif
