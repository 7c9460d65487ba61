import CLibev
import EventCore
import Glibc

/// The attribute changes of a path; see `LoopExecutor.fileChanges(_:interval:)`.
public struct FileChangeSequence: AsyncSequence, Sendable {
    public typealias Element = (previous: FileAttributes?, current: FileAttributes?)
    let executor: LoopExecutor
    let path: String
    let interval: Duration

    public func makeAsyncIterator() -> Iterator {
        let path = path, interval = interval
        return Iterator(source: PersistentWatch(executor: executor, element: { $0 }) { loop, deliver in
            loop.stat(path, interval: interval) { watcher in deliver((watcher.previous, watcher.current)) }
        })
    }

    /// Waits for each change in turn.
    public struct Iterator: AsyncIteratorProtocol {
        let source: PersistentWatch<(previous: FileAttributes?, current: FileAttributes?), Element>
        /// The next change; throws as the awaits do.
        public mutating func next() async throws -> Element? { try await source.next() }
    }
}
