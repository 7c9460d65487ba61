import EventCore
import Glibc

/// The status changes of a child process; see ``EventCore/LoopExecutorCore/childStatuses(_:)``.
public struct ChildStatusSequence: AsyncSequence, Sendable {
    public typealias Element = ChildWatcher.Status
    let executor: LoopExecutor
    let pid: pid_t

    public func makeAsyncIterator() -> Iterator {
        let pid = pid
        return Iterator(source: PersistentWatch(executor: executor, element: { $0 }) { loop, deliver in
            try loop.child(pid, trace: true) { watcher in deliver(watcher.status) }
        })
    }

    /// Waits for each change in turn; nil after the child has ended.
    public struct Iterator: AsyncIteratorProtocol {
        let source: PersistentWatch<ChildWatcher.Status, ChildWatcher.Status>
        var ended = false

        /// The next status; nil once the child has exited or been killed. Throws as the awaits do.
        public mutating func next() async throws -> ChildWatcher.Status? {
            guard !ended, let status = try await source.next() else { return nil }
            switch status {
            case .exited, .signaled: ended = true
            case .stopped, .continued: break
            }
            return status
        }
    }
}
