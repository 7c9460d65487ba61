#if canImport(Glibc)
import Glibc
#endif
import CSSL
import EventCore
import Resolver

/// A TLS connection over an ``/EventCore/AsyncSocket``, on the socket's loop:
/// OpenSSL on the non-blocking descriptor, its `SSL_ERROR_WANT_READ` and
/// `WANT_WRITE` turned into waits for the loop's readiness - no thread, no
/// copy of the bytes through a memory BIO.
///
/// ```swift
/// let context = try TLSContext(.client())
/// let tls = try await TLSSocket.connect(toHost: "example.com", port: 443, using: resolver, context: context)
/// try await tls.write(Array("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".utf8))
/// let head = try await BufferedReader(tls).readLine()
/// await tls.close()
/// ```
///
/// Errors name what failed - `tls(.untrustedCertificate)`, `.nameMismatch`,
/// `.expiredCertificate`, `.handshakeFailed`, `.unexpectedEOF` (closed
/// without `close_notify`) - with OpenSSL's words in the detail; a handshake
/// past ``TLSConfiguration/handshakeTimeout`` is `timedOut`.
///
/// ## Tasks
/// One task may read while another writes (writers take turns, as on an
/// ``/EventCore/AsyncSocket``). Every operation runs on the socket's loop's
/// thread - OpenSSL's connection object is not thread-safe, and the loop's
/// thread is what serializes the two tasks - and that is checked: an
/// operation from another thread traps with a message.
public final class TLSSocket: AsyncByteStream, @unchecked Sendable {
    // Sendable, checked: the SSL object and the open flag are touched only on
    // the loop's thread (`checkLoop` traps elsewhere), where tasks run one at a
    // time and no SSL call suspends; the writers take turns behind a lock.

    /// The connection under it.
    public let socket: AsyncSocket
    /// The application protocol agreed (ALPN), if any: `"http/1.1"`.
    public private(set) var applicationProtocol: String?
    /// Whether the handshake resumed an earlier session (an abbreviated handshake).
    public private(set) var isResumed = false

    private let ssl: OpaquePointer
    private let context: TLSContext
    private let executor: any EventLoopExecutor
    private let writers = WriterTurns()
    private var sessionKey: UnsafeMutablePointer<CChar>?
    private var closed = false
    /// What the operations' errors name: `TLS with HOST:PORT`.
    private let name: String

    private init(socket: AsyncSocket, context: TLSContext, ssl: OpaquePointer, name: String) {
        self.socket = socket
        self.context = context
        self.ssl = ssl
        self.executor = socket.executor
        self.name = name
    }

    deinit {
        if !closed { SSL_free(ssl) }
        free(sessionKey)
    }

    // MARK: making one

    /// Connects to `host` by name (each address in turn), then makes the TLS
    /// handshake as a client: SNI and the certificate's name check with
    /// `host`. Call it from a task on the resolver's loop.
    nonisolated(nonsending) public static func connect<L: EventLoop>(
        toHost host: String, port: UInt16, using resolver: NameResolver<L>, context: TLSContext,
        attemptTimeout: Duration? = .seconds(10)
    ) async throws -> TLSSocket {
        let socket = try await AsyncSocket.connect(toHost: host, port: port, using: resolver, attemptTimeout: attemptTimeout)
        return try await client(over: socket, serverName: host, port: port, context: context)
    }

    /// Makes the client's handshake over a connected socket, for `serverName`
    /// (sent as SNI, and the name the certificate must be for: a DNS name or
    /// an IP address). The socket is the TLS socket's from then on (closed
    /// with it, or if the handshake fails).
    nonisolated(nonsending) public static func client(over socket: AsyncSocket, serverName: String, port: UInt16? = nil,
                              context: TLSContext) async throws -> TLSSocket {
        guard case .client = context.configuration.role else {
            socket.close()
            throw EventLoopError(.invalidArgument, operation: "TLSSocket.client", detail: "the context is a server's")
        }
        let key = "\(serverName):\(port ?? socket.peer?.port ?? 0)"
        let tls = try make(socket, context, name: "TLS with \(key)")
        let isAddress = (try? SocketAddress(ipv4: serverName, port: 0)) != nil || (try? SocketAddress(ipv6: serverName, port: 0)) != nil
        if !isAddress { _ = CSSL_set_server_name(tls.ssl, serverName) }
        if context.configuration.verifiesPeer {
            guard CSSL_expect_host(tls.ssl, serverName, isAddress ? 1 : 0) == 1 else {
                tls.abandon()
                throw TLSContext.failure(.badConfiguration, "the name to verify \(serverName)")
            }
        }
        if let protocols = context.clientProtocols {
            _ = SSL_set_alpn_protos(tls.ssl, protocols.baseAddress, UInt32(protocols.count))
        }
        tls.sessionKey = strdup(key)
        CSSL_set_session_key(tls.ssl, tls.sessionKey)
        if let session = context.session(for: key) {
            SSL_set_session(tls.ssl, session)
            SSL_SESSION_free(session) // SSL_set_session took its own reference
        }
        SSL_set_connect_state(tls.ssl)
        try await tls.handshake()
        return tls
    }

    /// Makes the server's handshake over an accepted socket, which is the
    /// TLS socket's from then on (closed with it, or if the handshake fails).
    nonisolated(nonsending) public static func server(over socket: AsyncSocket, context: TLSContext) async throws -> TLSSocket {
        guard case .server = context.configuration.role else {
            socket.close()
            throw EventLoopError(.invalidArgument, operation: "TLSSocket.server", detail: "the context is a client's")
        }
        let tls = try make(socket, context, name: "TLS with \(socket.peer.map { "\($0)" } ?? "a client")")
        SSL_set_accept_state(tls.ssl)
        try await tls.handshake()
        return tls
    }

    private static func make(_ socket: AsyncSocket, _ context: TLSContext, name: String) throws(EventLoopError) -> TLSSocket {
        guard let ssl = SSL_new(context.context) else {
            socket.close()
            throw TLSContext.failure(.badConfiguration, "SSL_new")
        }
        guard SSL_set_fd(ssl, socket.descriptor.descriptor.rawValue) == 1 else {
            SSL_free(ssl)
            socket.close()
            throw TLSContext.failure(.badConfiguration, "SSL_set_fd")
        }
        return TLSSocket(socket: socket, context: context, ssl: ssl, name: name)
    }

    nonisolated(nonsending) private func handshake() async throws {
        do {
            _ = try await withTimeout(context.configuration.handshakeTimeout) {
                try await self.drive("handshake") { SSL_do_handshake(self.ssl) }
            }
        } catch let error as EventLoopError where error.code == .timedOut {
            abandon()
            throw EventLoopError(.timedOut, operation: "\(name): handshake", detail: error.detail)
        } catch {
            abandon()
            throw error
        }
        isResumed = SSL_session_reused(ssl) == 1
        var protocolName: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &protocolName, &length)
        if let protocolName, length > 0 {
            applicationProtocol = String(decoding: UnsafeBufferPointer(start: protocolName, count: Int(length)), as: UTF8.self)
        }
    }

    /// Closes everything after a failed handshake.
    private func abandon() {
        guard !closed else { return }
        closed = true
        SSL_free(ssl)
        socket.close()
    }

    // MARK: bytes

    /// Reads what is available (decrypted) into `buffer`, waiting until
    /// something is.
    ///
    /// - Returns: the byte count; 0 when the peer closed with `close_notify`.
    /// - Throws: `EventLoopError`: `tls(.unexpectedEOF)` when the peer closed
    ///   without `close_notify`; the socket's errors; the task's deadline;
    ///   `CancellationError`.
    nonisolated(nonsending) public func read(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
        guard buffer.count > 0 else { return 0 }
        var count = 0
        let outcome = try await drive("read") { SSL_read_ex(self.ssl, buffer.baseAddress, buffer.count, &count) }
        return outcome == .closed ? 0 : count
    }

    /// Reads what is available, up to `maximum` bytes, waiting until something is.
    ///
    /// - Returns: the bytes; empty when the peer closed with `close_notify`.
    nonisolated(nonsending) public func read(maximum: Int = AsyncSocket.defaultReadSize) async throws -> [UInt8] {
        try await readBytes(maximum: maximum) { try await read(into: $0) }
    }

    /// Writes all of `bytes` (encrypted), waiting whenever the socket is full
    /// and for the writes other tasks began before it.
    nonisolated(nonsending) public func write(_ bytes: [UInt8]) async throws {
        try await writers.acquire()
        defer { writers.release() }
        var offset = 0
        while offset < bytes.count {
            var written = 0
            // A retry after WANT_WRITE passes the same bytes again (the
            // pointer may move: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
            _ = try await drive("write") {
                bytes.withUnsafeBytes { all in SSL_write_ex(self.ssl, all.baseAddress! + offset, all.count - offset, &written) }
            }
            offset += written
        }
    }

    /// Whether OpenSSL holds bytes read from the socket and not yet returned
    /// by a read (a record, or part of one, read ahead).
    public var hasPendingInput: Bool {
        checkLoop()
        return !closed && SSL_has_pending(ssl) == 1
    }

    /// Writes what OpenSSL takes of `bytes` now, without waiting: the
    /// non-blocking write of a server that keeps its own output (retry with
    /// the same bytes, or more, after `.wouldBlock` and the socket's
    /// writability).
    ///
    /// - Returns: the bytes taken, or `.wouldBlock`.
    /// - Throws: `EventLoopError`, as ``write(_:)-([UInt8])``.
    public func writeNow(_ bytes: UnsafeRawBufferPointer) throws(EventLoopError) -> IOResult<Int> {
        try checkOpen()
        guard !bytes.isEmpty else { return .processed(0) }
        ERR_clear_error()
        var written = 0
        let result = SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &written)
        if result > 0 { return .processed(written) }
        let error = SSL_get_error(ssl, result)
        if error == SSL_ERROR_WANT_WRITE { return .wouldBlock }
        if error == SSL_ERROR_WANT_READ { throw renegotiationRefused() }
        throw failure("write", error)
    }

    /// Sends `close_notify`, then closes the socket as
    /// ``/EventCore/AsyncSocket/closeLingering(timeout:)`` does: what the
    /// peer still sends is read and dropped, for at most `timeout`, so that
    /// the kernel sends no reset that could destroy the last answer.
    nonisolated(nonsending) public func closeLingering(timeout: Duration = .seconds(2)) async {
        guard !closed else { return }
        checkLoop()
        closed = true
        if SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN == 0 { _ = SSL_shutdown(ssl) }
        SSL_free(ssl)
        await socket.closeLingering(timeout: timeout)
    }

    /// Writes `text` as UTF-8.
    nonisolated(nonsending) public func write(_ text: String) async throws {
        try await write(Array(text.utf8))
    }

    /// Sends `close_notify`: the peer reads the end of the stream; reading
    /// still works until the peer's own `close_notify` (a half close, as
    /// ``/EventCore/AsyncSocket/shutdownWrite()`` is).
    nonisolated(nonsending) public func shutdownWrite() async throws {
        try checkOpen()
        guard SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN == 0 else { return }
        _ = try await drive("shutdown") {
            let result = SSL_shutdown(self.ssl)
            return result < 0 ? result : 1 // 0: sent, the peer's not yet come - done for a half close
        }
    }

    /// Sends `close_notify` (without waiting for the peer's, as browsers and
    /// nginx do), then closes the socket. Harmless twice; every operation
    /// afterwards throws `descriptorClosed`.
    public func close() {
        guard !closed else { return }
        checkLoop()
        closed = true
        if SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN == 0 { _ = SSL_shutdown(ssl) } // best effort, never waits
        SSL_free(ssl)
        socket.close()
    }

    // MARK: OpenSSL on the loop

    enum Outcome { case done, closed }

    /// Calls `call` until it succeeds, waiting for the loop whenever OpenSSL
    /// wants to read or write; a clean close (`close_notify`) is `.closed`.
    nonisolated(nonsending) private func drive(_ operation: String, _ call: () -> Int32) async throws -> Outcome {
        while true {
            try checkOpen()
            try Deadline.checkCurrent()
            ERR_clear_error()
            let result = call()
            if result > 0 { return .done }
            let error = SSL_get_error(ssl, result)
            switch error {
            case SSL_ERROR_WANT_READ where operation == "write":
                // Only a renegotiation makes a write read, and it is refused
                // (SSL_OP_NO_RENEGOTIATION): never two tasks waiting to read.
                throw renegotiationRefused()
            case SSL_ERROR_WANT_READ: try await socket.waitReadable()
            case SSL_ERROR_WANT_WRITE: try await socket.waitWritable()
            case SSL_ERROR_ZERO_RETURN: return .closed
            default: throw failure(operation, error)
            }
        }
    }

    /// The error of a failed call: the certificate's verification result
    /// when that is why, else OpenSSL's queue, else the system's errno.
    private func failure(_ operation: String, _ error: Int32) -> EventLoopError {
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
            return EventLoopError.system(what, Errno(rawValue: systemErrno), peer: socket.peer)
        }
        return TLSContext.failure(operation == "handshake" ? .handshakeFailed : .protocolError, what)
    }

    /// A write that wants to read: only a renegotiation does that, and it is refused.
    private func renegotiationRefused() -> EventLoopError {
        EventLoopError(.tls(.protocolError), operation: "\(name): write", detail: "the peer asked to renegotiate")
    }

    private func checkOpen() throws(EventLoopError) {
        checkLoop()
        if closed { throw EventLoopError(.descriptorClosed, operation: name) }
    }

    private func checkLoop() {
        if !executor.isCurrent {
            misuse("TLSSocket: used off its loop's thread (\(name)); OpenSSL's connection is not thread-safe: use it from tasks on the loop")
        }
    }

}
