import EV
import Epoll
import EventCore
import TestSupport

/// The two loops of the package; scenarios run on each with `@Test(arguments:)`.
enum LoopKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case libev, epoll

    var description: String { rawValue }

    /// A new loop of this kind.
    func make() throws -> any EventLoop {
        switch self {
        case .libev: try Loop()
        case .epoll: try EpollLoop()
        }
    }

    /// Runs `body` as a task on a new loop of this kind (asyncio's `run`).
    func run<T: Sendable>(_ body: sending @escaping (any EventLoopExecutor) async throws -> T) throws -> T {
        try runChecked(body).result
    }

    /// ``run(_:)``, and what the loop still holds afterwards: watches and
    /// timers, and whether an await is still pending - both none, unless
    /// something leaked.
    func runChecked<T: Sendable>(_ body: sending @escaping (any EventLoopExecutor) async throws -> T) throws
        -> (result: T, watches: Int, waitsLeft: Bool) {
        switch self {
        case .libev:
            let loop = try Loop()
            let result = try loop.run { try await body($0) }
            return (result, loop.heldWatcherCount, !loop.executor.waits.isEmpty)
        case .epoll:
            let loop = try EpollLoop()
            let result = try loop.run { try await body($0) }
            return (result, loop.heldWatcherCount, !loop.executor.waits.isEmpty)
        }
    }

    /// Whether `error` is "the loop is closed" (the same error on both kinds).
    func isLoopClosed(_ error: (any Error)?) -> Bool {
        (error as? EventLoopError)?.code == .loopClosed
    }

    /// A loop of this kind on a thread of its own.
    func thread() throws -> LoopOnThread {
        switch self {
        case .libev:
            let thread = try EventLoopThread<Loop> { try Loop() }
            return LoopOnThread(executor: thread.executor, serialExecutor: thread.executor.asUnownedSerialExecutor(),
                                stop: { thread.stop(); thread.join() })
        case .epoll:
            let thread = try EventLoopThread<EpollLoop> { try EpollLoop() }
            return LoopOnThread(executor: thread.executor, serialExecutor: thread.executor.asUnownedSerialExecutor(),
                                stop: { thread.stop(); thread.join() })
        }
    }
}

/// A loop running on its own thread, whichever kind.
struct LoopOnThread: Sendable {
    let executor: any EventLoopExecutor
    /// The loop as an actor's executor.
    let serialExecutor: UnownedSerialExecutor
    let stop: @Sendable () -> Void
}

extension EventLoop {
    /// Runs the loop until `condition` holds, checking every millisecond;
    /// false if `timeout` seconds pass first.
    @discardableResult
    func runUntil(timeout: Double = 10, _ condition: @escaping () -> Bool) -> Bool {
        var timedOut = false
        var finished = false
        var pending: (any Cancellable)?
        let deadline = schedule(after: .seconds(timeout)) { [unowned self] in
            timedOut = true
            stop()
        }
        func check() {
            if condition() {
                finished = true
                stop()
            } else {
                pending = schedule(after: .milliseconds(1), check)
            }
        }
        check()
        if !finished { runForever() }
        // The pending check's closure captures `pending` itself (and the loop):
        // cancel it and let it go, or they keep each other alive.
        pending?.cancel()
        pending = nil
        deadline.cancel()
        return !timedOut
    }
}

extension EventLoopExecutor {
    /// The watches and timers the loop holds now (the leak check), from a
    /// task running on it.
    var runningLoopHeldWatches: Int {
        if let executor = self as? LoopExecutor { return executor.runningLoop.heldWatcherCount }
        if let executor = self as? EpollExecutor { return executor.runningLoop.heldWatcherCount }
        return -1
    }
}
