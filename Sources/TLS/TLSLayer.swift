#if canImport(Glibc)
import Glibc
#endif
import CSSL
import EventCore

/// TLS for a callback ``/EventCore/Connection``: the connection's
/// ``/EventCore/StreamLayer``, made by ``TLSContext/clientLayer(serverName:port:)``
/// or ``TLSContext/serverLayer``. The connection keeps the socket, its
/// readiness watch and its queue; this turns OpenSSL's `WANT_READ` and
/// `WANT_WRITE` into the readiness the connection watches for - the same
/// steps as ``TLSSocket``'s (one OpenSSL session core under both).
///
/// ```swift
/// let context = try TLSContext(.client(caFile: "ca.pem"))
/// let connection = try Connection.connect(to: address, on: loop, layer: context.clientLayer(serverName: "site.test", port: 443),
///                                         delegate: client)
/// connection.write("GET / HTTP/1.1\r\nHost: site.test\r\n\r\n") // queued until the handshake is done
/// ```
///
/// A failed handshake closes the connection with the error that names why
/// (`tls(.untrustedCertificate)`, `.nameMismatch`, ...); one past the
/// configuration's ``TLSConfiguration/handshakeTimeout`` with `timedOut`.
/// A clean close sends `close_notify`; a peer that closes without one ends
/// the connection with `tls(.unexpectedEOF)`.
public final class TLSLayer: StreamLayer {
    private let session: TLSSession
    /// The application protocol agreed (ALPN), once the handshake is done.
    public private(set) var applicationProtocol: String?
    /// Whether the handshake resumed an earlier session.
    public private(set) var isResumed = false

    init(_ session: TLSSession) { self.session = session }

    /// The configuration's handshake time limit.
    public var handshakeTimeout: Duration? { session.context.configuration.handshakeTimeout }

    /// One step of the handshake (``/EventCore/StreamLayer``).
    public func handshake() throws(EventLoopError) -> StreamLayerStep {
        let step = try session.step("handshake") { SSL_do_handshake(session.ssl) }
        if step == .done { (applicationProtocol, isResumed) = session.agreement }
        return Self.layerStep(step, count: 0)
    }

    /// Reads decrypted bytes (``/EventCore/StreamLayer``).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(EventLoopError) -> StreamLayerStep {
        var count = 0
        let step = try session.step("read") { SSL_read_ex(session.ssl, buffer.baseAddress, buffer.count, &count) }
        return Self.layerStep(step, count: count)
    }

    /// Writes bytes, encrypted (``/EventCore/StreamLayer``).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(EventLoopError) -> StreamLayerStep {
        var written = 0
        let step = try session.step("write") { SSL_write_ex(session.ssl, bytes.baseAddress, bytes.count, &written) }
        return Self.layerStep(step, count: written)
    }

    /// Whether OpenSSL holds input read ahead (``/EventCore/StreamLayer``).
    public var hasPendingInput: Bool { session.hasPendingInput }

    /// Sends `close_notify`, without waiting (``/EventCore/StreamLayer``).
    public func shutdownWrite() {
        guard !session.freed, SSL_get_shutdown(session.ssl) & SSL_SENT_SHUTDOWN == 0 else { return }
        ERR_clear_error()
        _ = SSL_shutdown(session.ssl)
    }

    /// Frees OpenSSL's connection (``/EventCore/StreamLayer``).
    public func release() { session.free() }

    private static func layerStep(_ step: TLSSession.Step, count: Int) -> StreamLayerStep {
        switch step {
        case .done: .done(count)
        case .closed: .ended
        case .wantRead: .wantRead
        case .wantWrite: .wantWrite
        }
    }
}

extension TLSContext {
    /// The layer of a client ``/EventCore/Connection`` to `serverName`
    /// (SNI, and the name the certificate must be for) on `port` (with the
    /// name, the key of the session kept for resumption).
    public func clientLayer(serverName: String, port: UInt16) -> StreamLayerFactory {
        { socket throws(EventLoopError) in
            let session = try TLSSession(fd: socket.descriptor.rawValue, context: self, name: "TLS with \(serverName):\(port)", peer: nil)
            try session.becomeClient(serverName: serverName, port: port)
            return TLSLayer(session)
        }
    }

    /// The layer of a server ``/EventCore/Connection`` (one a listener accepted).
    public var serverLayer: StreamLayerFactory {
        { socket throws(EventLoopError) in
            let session = try TLSSession(fd: socket.descriptor.rawValue, context: self, name: "TLS with a client", peer: nil)
            try session.becomeServer()
            return TLSLayer(session)
        }
    }
}
