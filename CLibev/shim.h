// CLibev: Debian's libev (libev-dev, 4.33) as a Swift module.
//
// libev's public API is mostly macros that Swift cannot import. This header
// turns the ones the EV module needs into `static inline CLibev_*` functions,
// one per macro, and holds no other logic. Every callback parameter takes the
// generic `ev_watcher` form so that one C trampoline can serve every watcher
// type; the casts below only restore the type the macro expects.
#ifndef CLIBEV_SHIM_H
#define CLIBEV_SHIM_H

// The pre-4.0 compatibility names (`ev_loop()` the function, EV_TIMEOUT, ...)
// would clash with `struct ev_loop` in Swift. They are header-only inlines and
// macros, so leaving them out does not change the library's ABI.
#define EV_COMPAT3 0
#include <ev.h>

typedef void (*CLibev_callback)(struct ev_loop *loop, ev_watcher *w, int revents);
typedef ev_tstamp (*CLibev_reschedule)(ev_periodic *w, ev_tstamp now);

// MARK: generic watcher macros

static inline void CLibev_init(void *w, CLibev_callback cb) { ev_init((ev_watcher *)w, cb); }
static inline int CLibev_is_active(const void *w) { return ev_is_active((ev_watcher *)w); }
static inline int CLibev_is_pending(const void *w) { return ev_is_pending((ev_watcher *)w); }
static inline int CLibev_priority(const void *w) { return ev_priority((ev_watcher *)w); }
static inline void CLibev_set_priority(void *w, int pri) { ev_set_priority((ev_watcher *)w, pri); }
static inline void CLibev_cb_set(void *w, CLibev_callback cb) { ev_set_cb((ev_watcher *)w, cb); }
static inline void *CLibev_data(const void *w) { return ((const ev_watcher *)w)->data; }
static inline void CLibev_set_data(void *w, void *data) { ((ev_watcher *)w)->data = data; }

// MARK: ev_TYPE_init and ev_TYPE_set

static inline void CLibev_io_init(ev_io *w, CLibev_callback cb, int fd, int events) {
    ev_io_init(w, (void (*)(struct ev_loop *, ev_io *, int))cb, fd, events);
}
static inline void CLibev_io_set(ev_io *w, int fd, int events) { ev_io_set(w, fd, events); }

static inline void CLibev_timer_init(ev_timer *w, CLibev_callback cb, ev_tstamp after, ev_tstamp repeat) {
    ev_timer_init(w, (void (*)(struct ev_loop *, ev_timer *, int))cb, after, repeat);
}
static inline void CLibev_timer_set(ev_timer *w, ev_tstamp after, ev_tstamp repeat) { ev_timer_set(w, after, repeat); }

static inline void CLibev_periodic_init(ev_periodic *w, CLibev_callback cb, ev_tstamp offset, ev_tstamp interval,
                                        CLibev_reschedule reschedule) {
    ev_periodic_init(w, (void (*)(struct ev_loop *, ev_periodic *, int))cb, offset, interval, reschedule);
}
static inline void CLibev_periodic_set(ev_periodic *w, ev_tstamp offset, ev_tstamp interval, CLibev_reschedule reschedule) {
    ev_periodic_set(w, offset, interval, reschedule);
}
static inline ev_tstamp CLibev_periodic_at(const ev_periodic *w) { return ev_periodic_at((ev_periodic *)w); }

static inline void CLibev_signal_init(ev_signal *w, CLibev_callback cb, int signum) {
    ev_signal_init(w, (void (*)(struct ev_loop *, ev_signal *, int))cb, signum);
}
static inline void CLibev_signal_set(ev_signal *w, int signum) { ev_signal_set(w, signum); }

static inline void CLibev_child_init(ev_child *w, CLibev_callback cb, int pid, int trace) {
    ev_child_init(w, (void (*)(struct ev_loop *, ev_child *, int))cb, pid, trace);
}
static inline void CLibev_child_set(ev_child *w, int pid, int trace) { ev_child_set(w, pid, trace); }

static inline void CLibev_stat_init(ev_stat *w, CLibev_callback cb, const char *path, ev_tstamp interval) {
    ev_stat_init(w, (void (*)(struct ev_loop *, ev_stat *, int))cb, path, interval);
}
static inline void CLibev_stat_set(ev_stat *w, const char *path, ev_tstamp interval) { ev_stat_set(w, path, interval); }

static inline void CLibev_idle_init(ev_idle *w, CLibev_callback cb) {
    ev_idle_init(w, (void (*)(struct ev_loop *, ev_idle *, int))cb);
}
static inline void CLibev_prepare_init(ev_prepare *w, CLibev_callback cb) {
    ev_prepare_init(w, (void (*)(struct ev_loop *, ev_prepare *, int))cb);
}
static inline void CLibev_check_init(ev_check *w, CLibev_callback cb) {
    ev_check_init(w, (void (*)(struct ev_loop *, ev_check *, int))cb);
}
static inline void CLibev_embed_set(ev_embed *w, struct ev_loop *other) { ev_embed_set(w, other); }
static inline void CLibev_embed_init(ev_embed *w, CLibev_callback cb, struct ev_loop *other) {
    ev_embed_init(w, (void (*)(struct ev_loop *, ev_embed *, int))cb, other);
}
static inline void CLibev_fork_init(ev_fork *w, CLibev_callback cb) {
    ev_fork_init(w, (void (*)(struct ev_loop *, ev_fork *, int))cb);
}
static inline void CLibev_cleanup_init(ev_cleanup *w, CLibev_callback cb) {
    ev_cleanup_init(w, (void (*)(struct ev_loop *, ev_cleanup *, int))cb);
}
static inline void CLibev_async_init(ev_async *w, CLibev_callback cb) {
    ev_async_init(w, (void (*)(struct ev_loop *, ev_async *, int))cb);
}
static inline int CLibev_async_pending(const ev_async *w) { return ev_async_pending((ev_async *)w); }

// MARK: the default loop (ev_default_loop_uc_ is an inline that reads a global)

static inline struct ev_loop *CLibev_default_loop_if_initialised(void) { return ev_default_loop_uc_(); }

#endif
