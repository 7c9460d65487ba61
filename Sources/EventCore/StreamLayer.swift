/// A protocol spoken over a connected socket that a ``Connection`` reads and
/// writes through - TLS is one (`TLS.TLSLayer`): the connection keeps the
/// socket, its readiness watch, the queue of output and the delegate's
/// events; the layer turns bytes into the socket's and back, and says
/// which readiness it waits for. Every call is non-blocking and made on
/// the loop's thread.
public protocol StreamLayer: AnyObject {
    /// Moves the layer's opening (a handshake) on: done when the app's
    /// bytes may flow, or the readiness it waits for.
    ///
    /// - Throws: ``EventLoopError`` naming what failed (the connection closes with it).
    func handshake() throws(EventLoopError) -> StreamLayerStep

    /// Reads into `buffer`: `.done(n)` (n > 0), `.ended` (the peer's clean
    /// end of stream), or the readiness to wait for.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(EventLoopError) -> StreamLayerStep

    /// Writes from `bytes`: `.done(n)` with what it took, or `.wantWrite`
    /// (then called again with the same bytes, or more, once writable).
    func write(_ bytes: UnsafeRawBufferPointer) throws(EventLoopError) -> StreamLayerStep

    /// Whether it holds input already taken from the socket (a record read
    /// ahead): read again without waiting for readiness.
    var hasPendingInput: Bool { get }

    /// Ends the sending side the layer's way (TLS: `close_notify`), best
    /// effort, without waiting; reading may go on.
    func shutdownWrite()

    /// Lets go of the layer's state (after ``shutdownWrite()`` when the close
    /// is clean); the socket is the connection's, closed after.
    func release()

    /// How long ``handshake()`` may take in all; nil: no limit.
    var handshakeTimeout: Duration? { get }
}

/// What a ``StreamLayer`` call came to.
public enum StreamLayerStep: Equatable, Sendable {
    /// It went through: the bytes read or written (0 for a handshake).
    case done(Int)
    /// The peer ended its stream cleanly.
    case ended
    /// Call again once the socket is readable.
    case wantRead
    /// Call again once the socket is writable.
    case wantWrite
}

/// Makes the ``StreamLayer`` a connection speaks over its socket (TLS's:
/// `TLSContext.layer(serverName:)`), once the socket exists.
public typealias StreamLayerFactory = (SocketDescriptor) throws(EventLoopError) -> any StreamLayer
