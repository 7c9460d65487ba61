import EventCore

extension EpollLoop {
    /// Runs `body` as a task on this loop, on the current thread, until it
    /// returns - asyncio's `run`. See `EV.Loop.run(_:)`; the same contract.
    public func run<T: Sendable>(_ body: sending @escaping (EpollExecutor) async throws -> T) throws -> T {
        checkUsage(runningThread == nil, "Epoll: run(_:) with a task cannot be called while the loop runs")
        return try executor.runTask(on: self, body)
    }
}
