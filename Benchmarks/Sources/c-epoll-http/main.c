// The C peer of `server http --engine epoll`: one epoll loop written by
// hand (level-triggered, as the Swift epoll loop), Node.js's http_parser,
// keep-alive and pipelining, the same response bytes for /plaintext.
//
//     c-epoll-http PORT
#define _GNU_SOURCE
#include <errno.h>
#include "http_peer.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;
    int events;
    http_peer http;
} connection;

static int epoll_fd;

static void drop(connection *c) {
    close(c->fd);
    http_peer_free(&c->http);
    free(c);
}

static void on_client(connection *c, uint32_t revents) {
    if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t n = read(c->fd, http_peer_read_buffer, sizeof http_peer_read_buffer);
        if (n == 0 || (n < 0 && errno != EAGAIN)) return drop(c);
        if (n > 0) http_peer_receive(&c->http, http_peer_read_buffer, (size_t)n);
    }
    if (http_peer_flush(&c->http, c->fd) < 0) return drop(c);
    if (!http_peer_pending(&c->http) && c->http.close_after) return drop(c);
    int wanted = EPOLLIN | (http_peer_pending(&c->http) ? EPOLLOUT : 0);
    if (wanted != c->events) {
        struct epoll_event event = {.events = (uint32_t)wanted, .data.ptr = c};
        epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &event);
        c->events = wanted;
    }
}

static void on_listener(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) sleep(1); // back off, as the Swift server does
            return;
        }
        connection *c = calloc(1, sizeof *c);
        http_peer_init(&c->http, fd);
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
    }
}

int main(int argc, char **argv) {
    int listener = http_peer_listen(argc > 1 ? atoi(argv[1]) : 8081, "C epoll");
    if (listener < 0) return 1;
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epoll_fd, events, 256, -1);
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL) on_listener(listener);
            else on_client(events[i].data.ptr, events[i].events);
        }
    }
}
