import CLibev
import EventCore
import Glibc

/// The deliveries of a signal; see `LoopExecutor.signals(_:)`.
public struct SignalSequence: AsyncSequence, Sendable {
    public typealias Element = Int32
    let executor: LoopExecutor
    let signal: Int32

    public func makeAsyncIterator() -> Iterator {
        Iterator(source: PersistentWatch(executor: executor, element: { _ in signal }) { loop, deliver in
            try loop.signal(signal) { _ in deliver(()) }
        })
    }

    /// Waits for each delivery in turn.
    public struct Iterator: AsyncIteratorProtocol {
        let source: PersistentWatch<Void, Int32>
        /// The signal number at the next delivery; throws as the awaits do.
        public mutating func next() async throws -> Int32? { try await source.next() }
    }
}
