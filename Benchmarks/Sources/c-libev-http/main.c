// The C peer of `server http --engine libev`: one libev loop, Node.js's
// http_parser (the same library the Swift server uses), keep-alive and
// pipelining, the same response bytes for /plaintext. What the Swift
// server costs over C is this program's time beside it.
//
//     c-libev-http PORT
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include "http_peer.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    ev_io io;
    http_peer http;
} connection;

static void drop(struct ev_loop *loop, connection *c) {
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    http_peer_free(&c->http);
    free(c);
}

static void on_client(struct ev_loop *loop, ev_io *io, int revents) {
    connection *c = (connection *)io;
    if (revents & EV_READ) {
        ssize_t n = read(io->fd, http_peer_read_buffer, sizeof http_peer_read_buffer);
        if (n == 0 || (n < 0 && errno != EAGAIN)) return drop(loop, c);
        if (n > 0) http_peer_receive(&c->http, http_peer_read_buffer, (size_t)n);
    }
    if (http_peer_flush(&c->http, io->fd) < 0) return drop(loop, c);
    if (!http_peer_pending(&c->http) && c->http.close_after) return drop(loop, c);
    int wanted = EV_READ | (http_peer_pending(&c->http) ? EV_WRITE : 0);
    if (wanted != (io->events & (EV_READ | EV_WRITE))) {
        ev_io_stop(loop, io);
        ev_io_set(io, io->fd, wanted);
        ev_io_start(loop, io);
    }
}

static void on_listener(struct ev_loop *loop, ev_io *io, int revents) {
    (void)revents;
    for (;;) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                // Back off as the Swift server does: a second without accepting.
                ev_io_stop(loop, io);
                ev_sleep(1);
                ev_io_start(loop, io);
            }
            return;
        }
        connection *c = calloc(1, sizeof *c);
        http_peer_init(&c->http, fd);
        ev_io_init(&c->io, on_client, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

int main(int argc, char **argv) {
    int listener = http_peer_listen(argc > 1 ? atoi(argv[1]) : 8081, "C libev");
    if (listener < 0) return 1;
    struct ev_loop *loop = EV_DEFAULT;
    ev_io accept_watcher;
    ev_io_init(&accept_watcher, on_listener, listener, EV_READ);
    ev_io_start(loop, &accept_watcher);
    ev_run(loop, 0);
    return 0;
}
