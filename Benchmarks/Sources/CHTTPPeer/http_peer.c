#include "http_peer.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

char http_peer_read_buffer[65536];
static http_parser_settings settings;
static char date_line[64];
static time_t date_second;

static void append(http_peer *peer, const char *bytes, size_t n) {
    if (peer->out_len + n > peer->out_cap) {
        peer->out_cap = (peer->out_len + n) * 2;
        peer->out = realloc(peer->out, peer->out_cap);
    }
    memcpy(peer->out + peer->out_len, bytes, n);
    peer->out_len += n;
}

static const char *date_header(void) {
    time_t now = time(NULL);
    if (now != date_second) {
        struct tm parts;
        date_second = now;
        gmtime_r(&now, &parts);
        strftime(date_line, sizeof date_line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &parts);
    }
    return date_line;
}

static int on_message_complete(http_parser *parser) {
    http_peer *peer = parser->data;
    static const char ok[] = "HTTP/1.1 200 OK\r\nServer: swift-libev\r\n";
    static const char rest[] = "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
    append(peer, ok, sizeof ok - 1);
    const char *date = date_header();
    append(peer, date, strlen(date));
    if (!http_should_keep_alive(parser)) {
        append(peer, "Connection: close\r\n", 19);
        peer->close_after = 1;
    }
    append(peer, rest, sizeof rest - 1);
    return 0;
}

int http_peer_listen(int port, const char *name) {
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
        perror("bind/listen");
        return -1;
    }
    socklen_t length = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &length);
    printf("Serving HTTP (%s) on http://127.0.0.1:%d/\n", name, ntohs(address.sin_port));
    fflush(stdout);
    return listener;
}

void http_peer_init(http_peer *peer, int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(peer, 0, sizeof *peer);
    settings.on_message_complete = on_message_complete;
    http_parser_init(&peer->parser, HTTP_REQUEST);
    peer->parser.data = peer;
}

void http_peer_receive(http_peer *peer, const char *bytes, size_t n) {
    if (peer->close_after) return;
    size_t used = http_parser_execute(&peer->parser, &settings, bytes, n);
    if (HTTP_PARSER_ERRNO(&peer->parser) != HPE_OK || used != n) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        append(peer, bad, sizeof bad - 1);
        peer->close_after = 1;
    }
}

int http_peer_flush(http_peer *peer, int fd) {
    while (peer->out_sent < peer->out_len) {
        ssize_t n = write(fd, peer->out + peer->out_sent, peer->out_len - peer->out_sent);
        if (n < 0) return errno == EAGAIN ? 0 : -1;
        peer->out_sent += (size_t)n;
    }
    peer->out_sent = peer->out_len = 0;
    return 0;
}

int http_peer_pending(const http_peer *peer) { return peer->out_sent < peer->out_len; }

void http_peer_free(http_peer *peer) { free(peer->out); }
