// Compiled with the package trait EventLoopServices only (Trait.swift says so otherwise).
#if EventLoopServices
import EventCore
import Logging
import ServiceLifecycle
import UnixSignals

/// What ``LoopGroupService`` runs down: an ``/EventCore/EventLoopGroup``, or
/// anything made of loops that stops as one does (a server over a group).
public protocol GracefullyStoppable: Sendable {
    /// Stops gracefully within `timeout`: what was started finishes, then
    /// the loops close.
    func shutdownGracefully(timeout: Duration) async throws
    /// Stops now, cutting what is still running; a graceful shutdown in
    /// progress then returns.
    func stopNow()
}

extension EventLoopGroup: GracefullyStoppable {}

/// An ``/EventCore/EventLoopGroup`` (or another ``GracefullyStoppable``) as a swift-service-lifecycle `Service`:
/// its loops serve until the `ServiceGroup` shuts down gracefully (on
/// SIGTERM, say), then the group shuts down gracefully - its
/// ``/EventCore/EventLoopGroup/onGracefulShutdown(_:)`` handlers run on each
/// loop (a server stops accepting there) and each loop runs until nothing
/// is left for it - within ``shutdownTimeout``.
///
/// ```swift
/// let loops = try EventLoopGroup<Loop> { try Loop() }
/// // ... start the work on loops.executors ...
/// let group = ServiceGroup(services: [LoopGroupService(loops, logger: logger)],
///                          gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
///
/// A cancellation (the `ServiceGroup`'s cancellation signals, or its
/// graceful-shutdown timeout) stops the loops at once
/// (``/EventCore/EventLoopGroup/stopNow()``); so does one of
/// ``forcefulSignals`` received while the graceful shutdown waits - a second
/// SIGTERM or SIGINT, as nginx and SwiftNIO's examples take it.
public struct LoopGroupService<Target: GracefullyStoppable>: Service {
    /// The loops (or what is made of them).
    public let target: Target
    /// How long the graceful shutdown waits for the loops to run down
    /// before stopping them.
    public let shutdownTimeout: Duration
    /// Signals that, once the graceful shutdown has begun, stop the loops at once.
    public let forcefulSignals: [UnixSignal]
    /// Where the service says what it does (`.info`: the shutdown; `.warning`: a forceful stop).
    public let logger: Logger

    /// A service for `target`, a loop group, say.
    ///
    /// - Parameters:
    ///   - target: the loops (or what is made of them).
    ///   - shutdownTimeout: the graceful shutdown's limit (10 s by default).
    ///   - forcefulSignals: SIGTERM and SIGINT by default; none to only wait.
    ///   - logger: nothing is logged by default.
    public init(_ target: Target, shutdownTimeout: Duration = .seconds(10),
                forcefulSignals: [UnixSignal] = [.sigterm, .sigint],
                logger: Logger = Logger(label: "swift-libev.loops", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.target = target
        self.shutdownTimeout = shutdownTimeout
        self.forcefulSignals = forcefulSignals
        self.logger = logger
    }

    /// Serves until graceful shutdown or cancellation, then shuts the loops down.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` if the loops had to be stopped
    ///   (``/EventCore/EventLoopError/Code/shutdownTimedOut``) or were shut down already.
    public func run() async throws {
        let cancelled: Bool
        do {
            try await gracefulShutdown()
            cancelled = false
        } catch {
            cancelled = true // CancellationError: the group is cancelled, not shut down gracefully
        }
        if cancelled {
            logger.warning("the loops stop now (cancelled)")
            target.stopNow()
            try await target.shutdownGracefully(timeout: .seconds(1)) // stopped already: joins them
            return
        }
        logger.info("the loops shut down gracefully", metadata: ["timeout": "\(shutdownTimeout)"])
        let target = self.target
        let logger = self.logger
        let signals = forcefulSignals
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            if !signals.isEmpty {
                tasks.addTask {
                    for await signal in await UnixSignalsSequence(trapping: signals) {
                        logger.warning("the loops stop now", metadata: ["signal": "\(signal)"])
                        target.stopNow()
                        return
                    }
                }
            }
            // The shutdown's outcome is the service's; the signals' watch ends with it.
            defer { tasks.cancelAll() }
            try await target.shutdownGracefully(timeout: shutdownTimeout)
        }
    }
}
#endif
