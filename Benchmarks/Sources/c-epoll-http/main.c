// The C peer of `server http --engine epoll`: one epoll loop written by
// hand (level-triggered, as the Swift epoll loop), Node.js's http_parser,
// keep-alive and pipelining, the same response bytes for /plaintext.
//
//     c-epoll-http PORT
#define _GNU_SOURCE
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int events;
    http_parser parser;
    char *out;
    size_t out_len, out_cap, out_sent;
    int close_after;
} connection;

static http_parser_settings settings;
static char date_line[64];
static time_t date_second;
static char read_buffer[65536];

static void append(connection *c, const char *bytes, size_t n) {
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, bytes, n);
    c->out_len += n;
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
    connection *c = parser->data;
    static const char ok[] = "HTTP/1.1 200 OK\r\nServer: swift-libev\r\n";
    static const char rest[] = "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
    append(c, ok, sizeof ok - 1);
    const char *date = date_header();
    append(c, date, strlen(date));
    if (!http_should_keep_alive(parser)) {
        append(c, "Connection: close\r\n", 19);
        c->close_after = 1;
    }
    append(c, rest, sizeof rest - 1);
    return 0;
}

static int epoll_fd;

static void drop(connection *c) {
    close(c->fd);
    free(c->out);
    free(c);
}

static void on_client(connection *c, uint32_t revents) {
    if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t n = read(c->fd, read_buffer, sizeof read_buffer);
        if (n == 0 || (n < 0 && errno != EAGAIN)) return drop(c);
        if (n > 0) {
            size_t used = http_parser_execute(&c->parser, &settings, read_buffer, (size_t)n);
            if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || used != (size_t)n) {
                static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                append(c, bad, sizeof bad - 1);
                c->close_after = 1;
            }
        }
    }
    while (c->out_sent < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_sent, c->out_len - c->out_sent);
        if (n < 0) {
            if (errno == EAGAIN) break;
            return drop(c);
        }
        c->out_sent += (size_t)n;
    }
    if (c->out_sent == c->out_len) {
        c->out_sent = c->out_len = 0;
        if (c->close_after) return drop(c);
    }
    int wanted = EPOLLIN | (c->out_len ? EPOLLOUT : 0);
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
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        connection *c = calloc(1, sizeof *c);
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8081;
    signal(SIGPIPE, SIG_IGN);
    settings.on_message_complete = on_message_complete;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
        perror("c-libev-http: bind/listen");
        return 1;
    }
    socklen_t length = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &length);
    printf("Serving HTTP (C epoll) on http://127.0.0.1:%d/\n", ntohs(address.sin_port));
    fflush(stdout);
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
