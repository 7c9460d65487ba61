// The HTTP side of the C peers (c-libev-http, c-epoll-http): one connection's
// parser (Node.js's http_parser, as the Swift server) and output, and the
// answer to /plaintext - the same bytes as `server http`.
#ifndef HTTP_PEER_H
#define HTTP_PEER_H

#include <http_parser.h>
#include <stddef.h>

typedef struct {
    http_parser parser;
    char *out;
    size_t out_len, out_cap, out_sent;
    int close_after;
} http_peer;

/// Starts a connection's state (and sets TCP_NODELAY on `fd`).
void http_peer_init(http_peer *peer, int fd);
/// Listens on 127.0.0.1:`port` (0: any), ignores SIGPIPE, prints
/// "Serving HTTP (NAME) on http://127.0.0.1:PORT/"; -1 on failure.
int http_peer_listen(int port, const char *name);
/// Parses `n` received bytes and answers every complete request; a bad one
/// gets 400 and sets close_after.
void http_peer_receive(http_peer *peer, const char *bytes, size_t n);
/// Writes what is pending to `fd`: 0 when all is written or the socket is
/// full (see http_peer_pending), -1 when the connection is gone.
int http_peer_flush(http_peer *peer, int fd);
/// Whether output is left to write.
int http_peer_pending(const http_peer *peer);
/// Frees the connection's buffers.
void http_peer_free(http_peer *peer);

/// One read buffer for the (single-threaded) server.
extern char http_peer_read_buffer[65536];

#endif
