// The C peers of the Swift benchmarks: the same work, written the way a C
// programmer would write it against libev (and, later, raw epoll).
// Each returns the elapsed wall time in seconds for the whole run.
#ifndef CBENCHMARKS_H
#define CBENCHMARKS_H

#include <stdint.h>

/// The benchmarks' pseudo-random delays: the same sequence in C and Swift.
static inline uint32_t cbench_next_random(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/// Delay number i of the timer benchmark, in [0, 1 ms].
static inline double cbench_timer_delay(uint32_t *state) {
    return (double)(cbench_next_random(state) % 1001) * 1e-6;
}

/// `count` timers with pseudo-random delays in [0, 1 ms], started and run until all fired.
double cbench_libev_timers(int count, uint32_t seed);

/// `batches` rounds of `count` timers each, run until all fired (a working set that stays in cache).
double cbench_libev_timer_batches(int count, int batches, uint32_t seed);

/// The same with each timer malloc'd at start and freed in its callback.
double cbench_libev_timers_malloc(int count, uint32_t seed);

/// `count` one-byte round trips over a socketpair, two io watchers on one loop.
double cbench_libev_pingpong(int count);

/// `count` wake-ups of a loop thread (pinned to `loop_cpu`) by a sender
/// (pinned to `sender_cpu`), each waiting for its callback before the next.
double cbench_libev_crossthread(int count, int loop_cpu, int sender_cpu);

/// The same three on raw epoll: a ping-pong, timers on a binary heap with
/// epoll_wait's timeout, and wake-ups through an eventfd.
double cbench_epoll_pingpong(int count);
double cbench_epoll_timers(int count, uint32_t seed);
double cbench_epoll_crossthread(int count, int loop_cpu, int sender_cpu);

/// Pins the calling thread to one CPU; returns 0 on success.
int cbench_pin_to_cpu(int cpu);

/// The monotonic clock, in seconds.
double cbench_now(void);

#endif
