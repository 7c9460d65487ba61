import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

/// The server's limits and timeouts (`server http`'s options), each with the
/// status it earns.
public struct HTTPServerLimits: Sendable, Equatable {
    /// Request target, head, header count and body limits (414, 431, 431, 413).
    public var parser = HTTPLimits()
    /// The time from a request's first byte to the end of its head (408
    /// after it). Any byte starts it - an empty line before the request line
    /// too - and nothing that arrives later pushes it back.
    public var headerTimeout = Duration.seconds(10)
    /// How long a connection may sit with nothing to do (or make no
    /// progress) before it is closed without a word.
    public var idleTimeout = Duration.seconds(60)
    /// Connections open at once; accepting pauses while at the limit.
    public var maxConnections = 16_384
    /// Bytes of unsent output per connection above which the server stops
    /// reading and parsing that connection's requests until the peer reads.
    public var outputHighWater = 64 * 1024
    /// How long a closing connection waits for its peer's FIN after the
    /// server's (a lingering close: closing with unread input would reset
    /// the connection and destroy the answer in flight).
    public var lingerTimeout = Duration.seconds(2)

    /// The default limits.
    public init() {}
}

extension Duration {
    /// The duration in seconds, for the connection's clock (seconds of the
    /// loop's monotonic clock).
    package var inSeconds: Double {
        self / .seconds(1)
    }
}
