// Debian's libhttp-parser-dev (the parser Node.js used for a decade) for Swift.
// Only what Swift cannot reach by itself: the parser's bit fields, as
// CHTTPParser_* functions. No other logic.
#ifndef CHTTPPARSER_SHIM_H
#define CHTTPPARSER_SHIM_H

#include <http_parser.h>

/// The parser's error (`HTTP_PARSER_ERRNO`); HPE_OK while all is well.
static inline enum http_errno CHTTPParser_errno(const http_parser *parser) {
    return (enum http_errno)parser->http_errno;
}

/// The request's method (requests only).
static inline enum http_method CHTTPParser_method(const http_parser *parser) {
    return (enum http_method)parser->method;
}

/// The response's status code (responses only).
static inline unsigned int CHTTPParser_statusCode(const http_parser *parser) {
    return parser->status_code;
}

/// Whether the message asked to switch protocols (Upgrade, or CONNECT).
static inline int CHTTPParser_upgrade(const http_parser *parser) {
    return parser->upgrade;
}

/// Whether the message uses the Transfer-Encoding header.
static inline int CHTTPParser_usesTransferEncoding(const http_parser *parser) {
    return parser->uses_transfer_encoding;
}

/// Whether the message's body is chunked (`F_CHUNKED` in the flags bit field).
static inline int CHTTPParser_isChunked(const http_parser *parser) {
    return (parser->flags & F_CHUNKED) != 0;
}

/// Where a parsed URL's field is (`field_data`, an array of anonymous
/// structs Swift does not import): its offset and length in the text.
static inline void CHTTPParser_urlField(const struct http_parser_url *url, enum http_parser_url_fields field,
                                        unsigned short *offset, unsigned short *length) {
    *offset = url->field_data[field].off;
    *length = url->field_data[field].len;
}

#endif
