// Raw libev micro benchmarks, the reference the Swift wrapper is measured against.
#define _GNU_SOURCE
#include "CBenchmarks.h"

#include <ev.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double cbench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cbench_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// MARK: timers

static int timers_fired;

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)loop; (void)w; (void)revents;
    timers_fired++;
}

double cbench_libev_timers(int count, uint32_t seed) {
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    ev_timer *timers = malloc(sizeof(ev_timer) * (size_t)count);
    uint32_t state = seed;
    timers_fired = 0;
    double start = cbench_now();
    for (int i = 0; i < count; i++) {
        ev_timer_init(&timers[i], timer_cb, cbench_timer_delay(&state), 0.);
        ev_timer_start(loop, &timers[i]);
    }
    ev_run(loop, 0);
    double elapsed = cbench_now() - start;
    if (timers_fired != count) abort();
    free(timers);
    ev_loop_destroy(loop);
    return elapsed;
}

/// `batches` rounds of `count` timers each (a working set that stays in cache).
double cbench_libev_timer_batches(int count, int batches, uint32_t seed) {
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    ev_timer *timers = malloc(sizeof(ev_timer) * (size_t)count);
    uint32_t state = seed;
    timers_fired = 0;
    double start = cbench_now();
    for (int batch = 0; batch < batches; batch++) {
        for (int i = 0; i < count; i++) {
            ev_timer_init(&timers[i], timer_cb, cbench_timer_delay(&state), 0.);
            ev_timer_start(loop, &timers[i]);
        }
        ev_run(loop, 0);
    }
    double elapsed = cbench_now() - start;
    if (timers_fired != count * batches) abort();
    free(timers);
    ev_loop_destroy(loop);
    return elapsed;
}

/// The same, but each timer is malloc'd when started and freed in its
/// callback - what a wrapper that lets a program forget its timers must do.
static void timer_free_cb(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)loop; (void)revents;
    timers_fired++;
    free(w);
}

double cbench_libev_timers_malloc(int count, uint32_t seed) {
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    uint32_t state = seed;
    timers_fired = 0;
    double start = cbench_now();
    for (int i = 0; i < count; i++) {
        ev_timer *timer = malloc(sizeof(ev_timer));
        ev_timer_init(timer, timer_free_cb, cbench_timer_delay(&state), 0.);
        ev_timer_start(loop, timer);
    }
    ev_run(loop, 0);
    double elapsed = cbench_now() - start;
    if (timers_fired != count) abort();
    ev_loop_destroy(loop);
    return elapsed;
}

// MARK: ping-pong

static int pingpong_left;

static void ping_cb(struct ev_loop *loop, ev_io *w, int revents) {
    (void)revents;
    char byte;
    if (read(w->fd, &byte, 1) != 1) abort();
    if (--pingpong_left == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (write(w->fd, &byte, 1) != 1) abort();
}

static void pong_cb(struct ev_loop *loop, ev_io *w, int revents) {
    (void)loop; (void)revents;
    char byte;
    if (read(w->fd, &byte, 1) != 1) abort();
    if (write(w->fd, &byte, 1) != 1) abort();
}

double cbench_libev_pingpong(int count) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) abort();
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    ev_io ping, pong;
    ev_io_init(&ping, ping_cb, fds[0], EV_READ);
    ev_io_init(&pong, pong_cb, fds[1], EV_READ);
    ev_io_start(loop, &ping);
    ev_io_start(loop, &pong);
    pingpong_left = count;
    double start = cbench_now();
    if (write(fds[0], "x", 1) != 1) abort();
    ev_run(loop, 0);
    double elapsed = cbench_now() - start;
    ev_io_stop(loop, &ping);
    ev_io_stop(loop, &pong);
    ev_loop_destroy(loop);
    close(fds[0]);
    close(fds[1]);
    return elapsed;
}

// MARK: cross-thread wake-up

struct crossthread {
    struct ev_loop *loop;
    ev_async async;
    atomic_int acknowledged;
    atomic_int done;
    int count;
    int sender_cpu;
    double elapsed;
};

static void crossthread_cb(struct ev_loop *loop, ev_async *w, int revents) {
    (void)revents;
    struct crossthread *ct = w->data;
    if (atomic_load_explicit(&ct->done, memory_order_acquire)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    atomic_fetch_add_explicit(&ct->acknowledged, 1, memory_order_release);
}

static void *crossthread_sender(void *arg) {
    struct crossthread *ct = arg;
    cbench_pin_to_cpu(ct->sender_cpu);
    double start = cbench_now();
    for (int i = 1; i <= ct->count; i++) {
        ev_async_send(ct->loop, &ct->async);
        while (atomic_load_explicit(&ct->acknowledged, memory_order_acquire) < i) {}
    }
    ct->elapsed = cbench_now() - start;
    atomic_store_explicit(&ct->done, 1, memory_order_release);
    ev_async_send(ct->loop, &ct->async);
    return NULL;
}

double cbench_libev_crossthread(int count, int loop_cpu, int sender_cpu) {
    struct crossthread ct = { .count = count, .sender_cpu = sender_cpu };
    atomic_init(&ct.acknowledged, 0);
    atomic_init(&ct.done, 0);
    cbench_pin_to_cpu(loop_cpu);
    ct.loop = ev_loop_new(EVBACKEND_EPOLL);
    ev_async_init(&ct.async, crossthread_cb);
    ct.async.data = &ct;
    ev_async_start(ct.loop, &ct.async);
    pthread_t sender;
    pthread_create(&sender, NULL, crossthread_sender, &ct);
    ev_run(ct.loop, 0);
    pthread_join(sender, NULL);
    ev_async_stop(ct.loop, &ct.async);
    ev_loop_destroy(ct.loop);
    return ct.elapsed;
}
