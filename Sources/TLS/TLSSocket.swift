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
    // Sendable, checked: the SSL object (its TLSSession) is touched only on
    // the loop's thread (`checkLoop` traps elsewhere), where tasks run one at a
    // time and no SSL call suspends; the writers take turns behind a lock.
    // `applicationProtocol` and `isResumed` are written once, at the end of
    // the handshake, inside the factory (`client`, `server`) that returns
    // the socket: no other task or thread has it before, and the factory's
    // return hands it over after the write; they never change after.

    /// The connection under it.
    public let socket: AsyncSocket
    /// The application protocol agreed (ALPN), if any: `"http/1.1"`.
    public private(set) var applicationProtocol: String?
    /// Whether the handshake resumed an earlier session (an abbreviated handshake).
    public private(set) var isResumed = false

    /// The OpenSSL object and the steps shared with ``TLSLayer``.
    private let session: TLSSession
    private let executor: any EventLoopExecutor
    private let writers = WriterTurns()
    private var closed: Bool { session.freed }
    /// What the operations' errors name: `TLS with HOST:PORT`.
    private var name: String { session.name }

    private init(socket: AsyncSocket, session: TLSSession) {
        self.socket = socket
        self.session = session
        self.executor = socket.executor
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
        let port = port ?? socket.peer?.port ?? 0
        let tls = try make(socket, context, name: "TLS with \(serverName):\(port)")
        do {
            try tls.session.becomeClient(serverName: serverName, port: port)
        } catch {
            tls.abandon()
            throw error
        }
        try await tls.handshake()
        return tls
    }

    /// Makes the server's handshake over an accepted socket, which is the
    /// TLS socket's from then on (closed with it, or if the handshake fails).
    nonisolated(nonsending) public static func server(over socket: AsyncSocket, context: TLSContext) async throws -> TLSSocket {
        let tls = try make(socket, context, name: "TLS with \(socket.peer.map { "\($0)" } ?? "a client")")
        do {
            try tls.session.becomeServer()
        } catch {
            tls.abandon()
            throw error
        }
        try await tls.handshake()
        return tls
    }

    private static func make(_ socket: AsyncSocket, _ context: TLSContext, name: String) throws(EventLoopError) -> TLSSocket {
        do {
            let session = try TLSSession(fd: socket.descriptor.descriptor.rawValue, context: context, name: name, peer: socket.peer)
            return TLSSocket(socket: socket, session: session)
        } catch {
            socket.close()
            throw error
        }
    }

    nonisolated(nonsending) private func handshake() async throws {
        do {
            _ = try await withTimeout(session.context.configuration.handshakeTimeout) {
                try await self.drive("handshake") { SSL_do_handshake(self.session.ssl) }
            }
        } catch let error as EventLoopError where error.code == .timedOut {
            abandon()
            throw EventLoopError(.timedOut, operation: "\(name): handshake", detail: error.detail)
        } catch {
            abandon()
            throw error
        }
        (applicationProtocol, isResumed) = session.agreement
    }

    /// Closes everything after a failed handshake.
    private func abandon() {
        guard !closed else { return }
        session.free()
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
        let outcome = try await drive("read") { SSL_read_ex(self.session.ssl, buffer.baseAddress, buffer.count, &count) }
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
                bytes.withUnsafeBytes { all in SSL_write_ex(self.session.ssl, all.baseAddress! + offset, all.count - offset, &written) }
            }
            offset += written
        }
    }

    /// Whether OpenSSL holds bytes read from the socket and not yet returned
    /// by a read (a record, or part of one, read ahead).
    public var hasPendingInput: Bool {
        checkLoop()
        return session.hasPendingInput
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
        var written = 0
        switch try session.step("write", { SSL_write_ex(session.ssl, bytes.baseAddress, bytes.count, &written) }) {
        case .done: return .processed(written)
        case .wantWrite: return .wouldBlock
        case .wantRead, .closed: throw session.renegotiationRefused() // a write never wants to read (see step)
        }
    }

    /// Sends `close_notify`, then closes the socket as
    /// ``/EventCore/AsyncSocket/closeLingering(timeout:)`` does: what the
    /// peer still sends is read and dropped, for at most `timeout`, so that
    /// the kernel sends no reset that could destroy the last answer.
    nonisolated(nonsending) public func closeLingering(timeout: Duration = .seconds(2)) async {
        guard !closed else { return }
        checkLoop()
        session.free(sendNotify: true)
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
        guard SSL_get_shutdown(session.ssl) & SSL_SENT_SHUTDOWN == 0 else { return }
        _ = try await drive("shutdown") {
            let result = SSL_shutdown(self.session.ssl)
            return result < 0 ? result : 1 // 0: sent, the peer's not yet come - done for a half close
        }
    }

    /// Sends `close_notify` (without waiting for the peer's, as browsers and
    /// nginx do), then closes the socket. Harmless twice; every operation
    /// afterwards throws `descriptorClosed`.
    public func close() {
        guard !closed else { return }
        checkLoop()
        session.free(sendNotify: true) // best effort, never waits
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
            switch try session.step(operation, call) {
            case .done: return .done
            case .closed: return .closed
            case .wantRead: try await socket.waitReadable()
            case .wantWrite: try await socket.waitWritable()
            }
        }
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
