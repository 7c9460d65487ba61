#if canImport(Glibc)
import Glibc
#endif
import CSSL
import EventCore

/// One TLS connection's OpenSSL object and what both faces of TLS do with
/// it - ``TLSSocket`` (async: it awaits the readiness a step wants) and
/// ``TLSLayer`` (callbacks: a ``/EventCore/Connection`` watches for it):
/// the set-up of a client (SNI, the name check, ALPN, the resumed session)
/// or a server, one non-blocking step of a call and what it wants next,
/// and the error a failed call is - written once.
///
/// Not `Sendable`: its owner keeps it on the loop's thread.
final class TLSSession {
    let ssl: OpaquePointer
    let context: TLSContext
    /// What errors name: `TLS with HOST:PORT`.
    let name: String
    private var sessionKey: UnsafeMutablePointer<CChar>?
    private(set) var freed = false
    /// The peer, for the system errors a call meets.
    let peer: SocketAddress?

    /// What one step of a call came to.
    enum Step: Equatable {
        /// It succeeded.
        case done
        /// The peer's `close_notify`: the end of its stream.
        case closed
        /// Call again once the socket is readable, or writable.
        case wantRead, wantWrite
    }

    /// A session on the connected socket `fd`.
    ///
    /// - Throws: `EventLoopError` (`.tls(.badConfiguration)`) if OpenSSL cannot make one.
    init(fd: Int32, context: TLSContext, name: String, peer: SocketAddress?) throws(EventLoopError) {
        guard let ssl = SSL_new(context.context) else { throw TLSContext.failure(.badConfiguration, "SSL_new") }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            throw TLSContext.failure(.badConfiguration, "SSL_set_fd")
        }
        self.ssl = ssl
        self.context = context
        self.name = name
        self.peer = peer
    }

    deinit {
        free()
        Glibc.free(sessionKey)
    }

    /// Frees the OpenSSL object (once); `sendNotify` first sends
    /// `close_notify` if it was not sent (best effort: never waits).
    func free(sendNotify: Bool = false) {
        guard !freed else { return }
        freed = true
        if sendNotify && SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN == 0 { _ = SSL_shutdown(ssl) }
        SSL_free(ssl)
    }

    /// Sets a client up for `serverName` (SNI, unless an address, and the
    /// name the certificate must be for), offering the context's protocols
    /// and the last session kept for `serverName:port`.
    ///
    /// - Throws: `EventLoopError` if the context is a server's or the name cannot be checked.
    func becomeClient(serverName: String, port: UInt16) throws(EventLoopError) {
        guard case .client = context.configuration.role else {
            throw EventLoopError(.invalidArgument, operation: name, detail: "the context is a server's")
        }
        let isAddress = (try? SocketAddress(ipv4: serverName, port: 0)) != nil || (try? SocketAddress(ipv6: serverName, port: 0)) != nil
        if !isAddress { _ = CSSL_set_server_name(ssl, serverName) }
        if context.configuration.verifiesPeer {
            guard CSSL_expect_host(ssl, serverName, isAddress ? 1 : 0) == 1 else {
                throw TLSContext.failure(.badConfiguration, "the name to verify \(serverName)")
            }
        }
        if let protocols = context.clientProtocols {
            _ = SSL_set_alpn_protos(ssl, protocols.baseAddress, UInt32(protocols.count))
        }
        let key = "\(serverName):\(port)"
        sessionKey = strdup(key)
        CSSL_set_session_key(ssl, sessionKey)
        if let session = context.session(for: key) {
            SSL_set_session(ssl, session)
            SSL_SESSION_free(session) // SSL_set_session took its own reference
        }
        SSL_set_connect_state(ssl)
    }

    /// Sets a server up.
    ///
    /// - Throws: `EventLoopError` if the context is a client's.
    func becomeServer() throws(EventLoopError) {
        guard case .server = context.configuration.role else {
            throw EventLoopError(.invalidArgument, operation: name, detail: "the context is a client's")
        }
        SSL_set_accept_state(ssl)
    }

    /// The application protocol agreed (ALPN), and whether the session was
    /// resumed: known once the handshake is done.
    var agreement: (applicationProtocol: String?, resumed: Bool) {
        var protocolName: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &protocolName, &length)
        let agreed = protocolName.flatMap { length > 0 ? String(decoding: UnsafeBufferPointer(start: $0, count: Int(length)), as: UTF8.self) : nil }
        return (agreed, SSL_session_reused(ssl) == 1)
    }

    /// One non-blocking step of `call` (an `SSL_*` call returning > 0 on
    /// success): done, the peer's close, or the readiness it wants.
    ///
    /// - Throws: `EventLoopError` naming `operation` and what failed (see ``failure(_:_:)``);
    ///   a write that wants to read is a renegotiation, refused.
    func step(_ operation: String, _ call: () -> Int32) throws(EventLoopError) -> Step {
        if freed { throw EventLoopError(.descriptorClosed, operation: name) }
        ERR_clear_error()
        let result = call()
        if result > 0 { return .done }
        let error = SSL_get_error(ssl, result)
        switch error {
        case SSL_ERROR_WANT_READ where operation == "write":
            // Only a renegotiation makes a write read, and it is refused
            // (SSL_OP_NO_RENEGOTIATION): never two waiting to read.
            throw renegotiationRefused()
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closed
        default: throw failure(operation, error)
        }
    }

    /// Whether OpenSSL holds bytes read from the socket and not yet returned.
    var hasPendingInput: Bool { !freed && SSL_has_pending(ssl) == 1 }

    /// The error of a failed call: the certificate's verification result
    /// when that is why, else OpenSSL's queue, else the system's errno.
    func failure(_ operation: String, _ error: Int32) -> EventLoopError {
        let what = "\(name): \(operation)"
        let systemErrno = errno
        let queued = ERR_peek_error()
        if CSSL_is_unexpected_eof(queued) == 1 || (error == SSL_ERROR_SYSCALL && queued == 0 && systemErrno == 0) {
            ERR_clear_error()
            return EventLoopError(.tls(.unexpectedEOF), operation: what)
        }
        let verification = SSL_get_verify_result(ssl)
        if operation == "handshake" && verification != X509_V_OK {
            ERR_clear_error()
            let reason: EventLoopError.TLSFailure = switch Int32(verification) {
            case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CERT_NOT_YET_VALID: .expiredCertificate
            case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH: .nameMismatch
            case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
                 X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
                 X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: .untrustedCertificate
            default: .invalidCertificate
            }
            return EventLoopError(.tls(reason), operation: what, detail: String(cString: CSSL_verify_message(verification)))
        }
        if error == SSL_ERROR_SYSCALL && systemErrno != 0 && queued == 0 {
            return EventLoopError.system(what, Errno(rawValue: systemErrno), peer: peer)
        }
        return TLSContext.failure(operation == "handshake" ? .handshakeFailed : .protocolError, what)
    }

    /// A write that wants to read: only a renegotiation does that, and it is refused.
    func renegotiationRefused() -> EventLoopError {
        EventLoopError(.tls(.protocolError), operation: "\(name): write", detail: "the peer asked to renegotiate")
    }
}
