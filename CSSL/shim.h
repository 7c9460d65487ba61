// OpenSSL (Debian's libssl-dev): TLS on the package's non-blocking sockets
// (Sources/TLS). The shim turns OpenSSL's macros into functions and holds
// the two callbacks C must own: ALPN selection and the client's new sessions.
#ifndef CSSL_SHIM_H
#define CSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/// TLS 1.2 and 1.3 only; partial writes; buffers released while idle; reads
/// ahead; no
/// renegotiation (a TLS 1.2 peer's renegotiation would make a write want to
/// read, and two tasks wait to read one socket).
static inline int CSSL_context_defaults(SSL_CTX *context) {
    SSL_CTX_set_options(context, SSL_OP_NO_RENEGOTIATION);
    // Read what the socket has, not a record's 5-byte header and then its
    // body: one read(2) per request instead of two. (Bytes read ahead stay in
    // OpenSSL's buffer; SSL_read is always tried before waiting for the loop.)
    SSL_CTX_set_read_ahead(context, 1);
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    return SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
}

static inline int CSSL_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// The server's ALPN list (wire format), kept alive by the context's owner.
typedef struct {
    const unsigned char *protocols;
    unsigned int length;
} CSSL_alpn_list;

static int CSSL_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *out_length,
                            const unsigned char *in, unsigned int in_length, void *argument) {
    (void)ssl;
    const CSSL_alpn_list *list = argument;
    if (SSL_select_next_proto((unsigned char **)out, out_length, list->protocols, list->length, in, in_length)
        != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}

static inline void CSSL_set_server_alpn(SSL_CTX *context, CSSL_alpn_list *list) {
    SSL_CTX_set_alpn_select_cb(context, CSSL_alpn_select, list);
}

/// Where the client's new sessions go: `store(key, session)` with the key
/// given to the connection (`CSSL_set_session_key`). Returns 1: the store
/// keeps the session's reference.
typedef void (*CSSL_session_store)(void *context_owner, const char *key, SSL_SESSION *session);

static int CSSL_new_session(SSL *ssl, SSL_SESSION *session) {
    CSSL_session_store store = (CSSL_session_store)SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 1);
    void *owner = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0);
    const char *key = SSL_get_ex_data(ssl, 0);
    if (!store || !owner || !key) return 0;
    store(owner, key, session);
    return 1;
}

static inline void CSSL_enable_client_sessions(SSL_CTX *context, void *owner, CSSL_session_store store) {
    SSL_CTX_set_ex_data(context, 0, owner);
    SSL_CTX_set_ex_data(context, 1, (void *)store);
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(context, CSSL_new_session);
}

/// Resumption by session tickets (stateless: TLS 1.3's, and 1.2's ticket
/// extension), with no session kept in the server's memory - nginx's default
/// (`ssl_session_cache none`): an internal cache costs every full handshake
/// an insertion and, now and then, a sweep of the whole table.
static inline void CSSL_enable_server_sessions(SSL_CTX *context) {
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    // One TLS 1.3 ticket per connection, not OpenSSL's two: a client resumes
    // with one (a browser keeps one per server), and each costs the handshake
    // an encryption.
    SSL_CTX_set_num_tickets(context, 1);
    SSL_CTX_set_session_id_context(context, (const unsigned char *)"swift-libev", 11);
}

static inline void CSSL_set_session_key(SSL *ssl, const char *key) { SSL_set_ex_data(ssl, 0, (void *)key); }

/// The certificate verification's result name, for messages.
static inline const char *CSSL_verify_message(long result) { return X509_verify_cert_error_string(result); }

/// Verifies the peer's name: a DNS name, or an IP address in its SAN.
static inline int CSSL_expect_host(SSL *ssl, const char *host, int is_ip) {
    if (is_ip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    return SSL_set1_host(ssl, host);
}

static inline int CSSL_is_unexpected_eof(unsigned long error) {
    return ERR_GET_LIB(error) == ERR_LIB_SSL && ERR_GET_REASON(error) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

#endif
