import EventCore
import HTTP

/// The part of the evented HTTP engines that does not depend on how a
/// worker serves: one loop per listener in an ``EventCore/EventLoopGroup``,
/// a worker set up on each, every worker's figures added to the totals, and
/// a graceful stop that drains each worker on its own loop and joins the
/// loops (each worker owns its listener).
enum LoopWorkers {
    /// Starts `listeners.count` loops made by `make` and runs `startWorker`
    /// on each with its listener and the report for its figures; the worker
    /// returns how to drain it, which the graceful stop calls on its loop.
    /// Returns the graceful stop.
    static func start<L: EventLoop>(
        _ listeners: [SocketDescriptor], _ options: HTTPServerOptions,
        _ make: @escaping @Sendable () throws -> L,
        startWorker: @escaping @Sendable (L, SocketDescriptor, HTTPServerOptions, _ report: @escaping @Sendable (HTTPServerStats) -> Void) -> () -> Void
    ) throws -> @Sendable () -> HTTPServerStats {
        let totals = LockedValue(HTTPServerStats(pages: options.site.pages))
        let group = try EventLoopGroup(loops: listeners.count, make)
        for (executor, listener) in zip(group.executors, listeners) {
            try executor.execute { loop in
                let drain = startWorker(loop, listener, options) { stats in totals.withLock { $0.add(stats) } }
                // The loop owns the worker (through its watches, timers or
                // tasks); the shutdown reaches it through the loop-bound drain.
                let bound = LoopBound(drain, loop: loop.executor)
                group.onGracefulShutdown { loop in
                    if loop.executor === bound.loop { bound.value() }
                }
            }
        }
        // Each worker owns its listener (a Listener or an AsyncListener),
        // which closes with the worker's loop.
        return {
            try? group.syncShutdownGracefully(timeout: options.stopTimeout + .seconds(1))
            return totals.withLock { $0 }
        }
    }
}
