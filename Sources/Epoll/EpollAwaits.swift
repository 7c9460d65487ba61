@_spi(EventLoops) import EventCore

extension EpollLoop {
    /// Runs `body` as a task on this loop, on the current thread, until it
    /// returns - asyncio's `run`. See `EV.Loop.run(_:)`; the same contract.
    ///
    /// - Precondition: the loop is open and not running (a trap with a message otherwise).
    public func run<T: Sendable>(_ body: sending @escaping (EpollExecutor) async throws -> T) throws -> T {
        executor.lifecycle.checkUsable("EpollLoop.run(_:)")
        executor.lifecycle.checkNotRunning("EpollLoop.run(_:) with a task", "await the work instead")
        return try executor.runTask(on: self, body)
    }
}
