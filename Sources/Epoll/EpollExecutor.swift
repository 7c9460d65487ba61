import EventCore
import Glibc
import Synchronization

/// The `Sendable` face of an ``EpollLoop``: its `TaskExecutor` (with a
/// serial executor for actors), the door for work from other threads, and
/// the async awaits - ``/EventCore/LoopExecutorCore``, the executor both
/// loops share, with the epoll loop's wake-up: a submission that finds the
/// queue empty writes the loop's eventfd, but only if the loop may be
/// asleep in `epoll_wait` (an atomic flag the loop raises just before it
/// polls); work from the loop's own thread runs at the end of the
/// iteration, with no wake-up.
public typealias EpollExecutor = LoopExecutorCore<EpollLoop>

/// The epoll loop's side of an ``EpollExecutor``: its eventfd and the flag
/// that says the loop may be asleep.
final class EpollWaker: LoopWaker, Sendable {
    /// The eventfd the loop watches; replaced in a forked child.
    let wakeFD: LockedValue<Int32>
    /// Raised by the loop just before `epoll_wait`; a submission then writes the eventfd.
    let isPolling = Atomic(false)

    init(wakeFD: Int32) {
        self.wakeFD = LockedValue(wakeFD)
    }

    /// One increment of the eventfd's counter, the size `write(2)` takes for it.
    static let eventfdIncrement = MemoryLayout<UInt64>.size

    func wakeFromOtherThread() {
        // Only a loop that may be asleep needs the write; a busy one looks
        // at the queue before it polls again (see EpollLoop.iterate).
        if isPolling.load(ordering: .sequentiallyConsistent) {
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD.withLock { $0 }, &one, Self.eventfdIncrement)
        }
    }

    /// Nothing to do: the loop runs local work at the end of each iteration.
    func localWorkQueued() {}
}
