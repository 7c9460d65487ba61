import Engines
import EV
import Epoll
import EventCore
import HTTP
import TLS

/// What an HTTP server serves, where, and within which limits.
public struct HTTPServerOptions: Sendable {
    /// Where to listen; port 0 picks a free one.
    public var address: SocketAddress
    /// Loops - an ``EventCore/EventLoopGroup`` of them - or, for `threads`,
    /// accepting threads; one listening socket each (SO_REUSEPORT).
    public var workers = 1
    /// The site.
    public var site: HTTPSite
    /// Limits and timeouts.
    public var limits = HTTPServerLimits()
    /// How long a graceful stop waits for responses in flight.
    public var stopTimeout = HTTPServerOptions.defaultStopTimeout
    /// The default of ``stopTimeout``: 4 s.
    public static let defaultStopTimeout = Duration.seconds(4)
    /// Called with a line to log.
    public var log: @Sendable (String) -> Void
    /// HTTPS: the server's TLS context (the evented engines; nil serves plain HTTP).
    public var tls: TLSContext?
    /// Report to swift-metrics (the factory the app bootstrapped) this
    /// often: each loop's monitor and each worker's answers and
    /// connections (the evented engines); nil: no metrics, no monitor.
    public var metricsInterval: Duration?
    /// The loops' monitors' options, with ``metricsInterval``.
    public var loopMonitor = LoopMonitorOptions()

    /// Options for serving `site` on `address`, logging to `log`.
    public init(address: SocketAddress, site: HTTPSite, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.address = address
        self.site = site
        self.log = log
    }
}
