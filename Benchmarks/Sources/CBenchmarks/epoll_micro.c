// Raw epoll micro benchmarks: the hand-written loop's work in plain C, the
// reference the Epoll module is measured against.
#define _GNU_SOURCE
#include "CBenchmarks.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

double cbench_epoll_pingpong(int count) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) abort();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN };
    ev.data.fd = fds[0];
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
    ev.data.fd = fds[1];
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[1], &ev);
    struct epoll_event events[64];
    int left = count;
    double start = cbench_now();
    if (write(fds[0], "x", 1) != 1) abort();
    while (left > 0) {
        int n = epoll_wait(ep, events, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            char byte;
            if (read(fd, &byte, 1) != 1) abort();
            if (fd == fds[0] && --left == 0) break;
            if (write(fd, &byte, 1) != 1) abort();
        }
    }
    double elapsed = cbench_now() - start;
    close(ep);
    close(fds[0]);
    close(fds[1]);
    return elapsed;
}

// A binary min-heap of deadlines, as the Epoll module's TimerHeap.
struct ctimer { double deadline; unsigned long sequence; };

static int before(const struct ctimer *a, const struct ctimer *b) {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->sequence < b->sequence);
}

double cbench_epoll_timers(int count, uint32_t seed) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct ctimer *heap = malloc(sizeof(struct ctimer) * (size_t)count);
    int size = 0, fired = 0;
    uint32_t state = seed;
    struct epoll_event events[64];
    double start = cbench_now();
    for (int i = 0; i < count; i++) {
        struct ctimer t = { start + cbench_timer_delay(&state), (unsigned long)i };
        int child = size++;
        heap[child] = t;
        while (child > 0) {
            int parent = (child - 1) / 2;
            if (!before(&heap[child], &heap[parent])) break;
            struct ctimer tmp = heap[child]; heap[child] = heap[parent]; heap[parent] = tmp;
            child = parent;
        }
    }
    while (size > 0) {
        double now = cbench_now();
        double wait = heap[0].deadline - now;
        int ms = wait <= 0 ? 0 : (int)(wait * 1000 + 0.999999);
        epoll_wait(ep, events, 64, ms);
        now = cbench_now();
        while (size > 0 && heap[0].deadline <= now) {
            fired++;
            heap[0] = heap[--size];
            int parent = 0;
            for (;;) {
                int left = 2 * parent + 1, smallest = parent;
                if (left < size && before(&heap[left], &heap[smallest])) smallest = left;
                if (left + 1 < size && before(&heap[left + 1], &heap[smallest])) smallest = left + 1;
                if (smallest == parent) break;
                struct ctimer tmp = heap[smallest]; heap[smallest] = heap[parent]; heap[parent] = tmp;
                parent = smallest;
            }
        }
    }
    double elapsed = cbench_now() - start;
    if (fired != count) abort();
    free(heap);
    close(ep);
    return elapsed;
}

struct ecross {
    int ep, efd, count, sender_cpu;
    atomic_int acknowledged, done;
    double elapsed;
};

static void *ecross_sender(void *arg) {
    struct ecross *c = arg;
    cbench_pin_to_cpu(c->sender_cpu);
    double start = cbench_now();
    uint64_t one = 1;
    for (int i = 1; i <= c->count; i++) {
        if (write(c->efd, &one, 8) != 8) abort();
        while (atomic_load_explicit(&c->acknowledged, memory_order_acquire) < i) {}
    }
    c->elapsed = cbench_now() - start;
    atomic_store_explicit(&c->done, 1, memory_order_release);
    if (write(c->efd, &one, 8) != 8) abort();
    return NULL;
}

double cbench_epoll_crossthread(int count, int loop_cpu, int sender_cpu) {
    struct ecross c = { .count = count, .sender_cpu = sender_cpu };
    atomic_init(&c.acknowledged, 0);
    atomic_init(&c.done, 0);
    cbench_pin_to_cpu(loop_cpu);
    c.ep = epoll_create1(EPOLL_CLOEXEC);
    c.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN };
    ev.data.fd = c.efd;
    epoll_ctl(c.ep, EPOLL_CTL_ADD, c.efd, &ev);
    pthread_t sender;
    pthread_create(&sender, NULL, ecross_sender, &c);
    struct epoll_event events[8];
    for (;;) {
        int n = epoll_wait(c.ep, events, 8, -1);
        if (n <= 0) continue;
        uint64_t value;
        if (read(c.efd, &value, 8) != 8) continue;
        if (atomic_load_explicit(&c.done, memory_order_acquire)) break;
        atomic_fetch_add_explicit(&c.acknowledged, 1, memory_order_release);
    }
    pthread_join(sender, NULL);
    close(c.efd);
    close(c.ep);
    return c.elapsed;
}
