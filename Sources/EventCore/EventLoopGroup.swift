import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// N event loops, each on a thread of its own - one per core by default -
/// the way nginx's workers and SwiftNIO's `MultiThreadedEventLoopGroup`
/// scale an event loop beyond one core.
///
/// ```swift
/// let group = try EventLoopGroup<Loop> { try Loop() }          // one loop per core
/// let listeners = try group.listeners(on: SocketAddress(parsing: "8080"))
/// for (executor, listener) in zip(group.executors, listeners) {
///     try executor.execute { loop in serve(listener, on: loop) }
/// }
/// group.onGracefulShutdown { loop in stopAccepting(on: loop) }
/// try await group.shutdownGracefully(timeout: .seconds(10))
/// ```
///
/// Where it differs from SwiftNIO's group: there are no channels, so a
/// graceful shutdown runs the handlers given to ``onGracefulShutdown(_:)``
/// (a server stops accepting there) and then lets each loop run until
/// nothing is left for it to wait for - the connections' watches, timers and
/// tasks have ended - rather than closing channels itself; ``listeners(on:backlog:)``
/// gives each loop a listening socket of its own on one port (`SO_REUSEPORT`,
/// the kernel spreads the connections), where SwiftNIO accepts on one loop
/// and hands connections to the others.
public final class EventLoopGroup<L: EventLoop>: Sendable {
    /// The loops' threads, in order.
    package let threads: [EventLoopThread<L>]
    private let nextIndex = Atomic(0)
    private let shutdownHandlers = LockedValue<[@Sendable (L) -> Void]>([])
    private let isShutDown = Atomic(false)

    /// The loops' executors, in order.
    public var executors: [L.Executor] { threads.map(\.executor) }

    /// Starts `count` loops, each made by `make` on a thread of its own.
    ///
    /// - Parameters:
    ///   - count: how many loops; by default one per online CPU.
    ///   - make: makes a loop (on its thread).
    /// - Throws: what `make` throws, or ``EventLoopError``; the loops already started are stopped.
    public init(loops count: Int = EventLoopGroup.coreCount, _ make: @escaping @Sendable () throws -> L) throws {
        checkUsage(count >= 1, "EventLoopGroup needs at least one loop")
        var threads: [EventLoopThread<L>] = []
        do {
            for _ in 0..<count { threads.append(try EventLoopThread(make)) }
        } catch {
            threads.forEach { $0.stop(); $0.join() }
            throw error
        }
        self.threads = threads
    }

    /// The online CPUs: the default number of loops.
    public static var coreCount: Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }

    /// The next loop's executor, round-robin: where to put new work.
    public func next() -> L.Executor {
        threads[nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue % threads.count].executor
    }

    /// The executor of the loop the caller runs on, if it is one of the
    /// group's; ``next()`` otherwise (SwiftNIO's `any()`).
    public func any() -> L.Executor {
        threads.first { $0.executor.isCurrent }?.executor ?? next()
    }

    /// One listening socket per loop, all on `address`'s port (`SO_REUSEPORT`
    /// when there are several): give each loop its own and the kernel spreads
    /// the connections. Port 0 picks one free port for all of them.
    ///
    /// - Throws: ``EventLoopError`` if the address cannot be bound.
    public func listeners(on address: SocketAddress, backlog: Int32 = SocketDescriptor.maximumBacklog) throws(EventLoopError) -> [SocketDescriptor] {
        try SocketDescriptor.listeningGroup(of: threads.count, on: address, backlog: backlog)
    }

    /// Adds a handler that ``shutdownGracefully(timeout:)`` runs on each
    /// loop's thread with its loop, before letting the loop run down: stop
    /// accepting there, and ask idle connections to close.
    public func onGracefulShutdown(_ handler: @escaping @Sendable (L) -> Void) {
        shutdownHandlers.withLock { $0.append(handler) }
    }

    /// Shuts the group down gracefully: on each loop, runs the handlers of
    /// ``onGracefulShutdown(_:)``, lets the loop run until nothing is left
    /// for it to wait for, closes it and joins its thread. A loop still busy
    /// after `timeout` is stopped then (its connections cut).
    ///
    /// - Throws: ``EventLoopError``: ``EventLoopError/Code/loopClosed`` the
    ///   second time; ``EventLoopError/Code/shutdownTimedOut`` if loops had to
    ///   be stopped (its detail says how many).
    public func shutdownGracefully(timeout: Duration = .seconds(10)) async throws(EventLoopError) {
        // The waits block: a thread of their own, not the cooperative pool's.
        let outcome: Result<Void, EventLoopError> = await withCheckedContinuation { continuation in
            do throws(EventLoopError) {
                try PlainThread { [self] in
                    continuation.resume(returning: Result { () throws(EventLoopError) in try syncShutdownGracefully(timeout: timeout) })
                }.detach()
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        try outcome.get()
    }

    /// Stops every loop now, whatever it still waits for - a forceful stop
    /// (a second SIGTERM's): a graceful shutdown in progress stops waiting
    /// for its connections and returns; the loops' threads end, and
    /// ``shutdownGracefully(timeout:)`` joins them (without its handlers,
    /// if it was not running yet).
    public func stopNow() {
        for thread in threads { thread.stop() }
    }

    /// ``shutdownGracefully(timeout:)``, blocking the calling thread (not one of the group's).
    public func syncShutdownGracefully(timeout: Duration = .seconds(10)) throws(EventLoopError) {
        guard !isShutDown.exchange(true, ordering: .acquiringAndReleasing) else {
            throw EventLoopError(.loopClosed, operation: "shutdownGracefully", detail: "the group was shut down already")
        }
        let handlers = shutdownHandlers.withLock { $0 }
        for thread in threads {
            thread.stopWhenDone { loop in handlers.forEach { $0(loop) } }
        }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var stopped = 0
        for thread in threads where !thread.join(timeout: ContinuousClock.now.duration(to: deadline)) {
            thread.stop()
            thread.join()
            stopped += 1
        }
        if stopped > 0 {
            throw EventLoopError(.shutdownTimedOut, operation: "shutdownGracefully",
                                 detail: "\(stopped) loop\(stopped == 1 ? "" : "s") still had work after \(LoopTime.describe(timeout))")
        }
    }
}
