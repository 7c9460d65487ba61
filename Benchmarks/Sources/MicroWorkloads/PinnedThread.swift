import CBenchmarks
import Foundation
import Synchronization

/// A thread pinned to one CPU, for the senders of the cross-thread
/// benchmarks (Foundation's `Thread`, pinned by the C peers' own helper;
/// `join()` waits for its body to end).
final class PinnedThread: Sendable {
    private let finished = Mutex(false)

    init(cpu: Int32, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            _ = cbench_pin_to_cpu(cpu)
            body()
            finished.withLock { $0 = true }
        }
        thread.stackSize = 256 * 1024
        thread.start()
    }

    /// Waits until the body has returned.
    func join() {
        while !finished.withLock({ $0 }) { usleep(100) }
    }
}

/// A thread pinned to `cpu`, running `body`.
func pinnedThread(cpu: Int32, _ body: @escaping @Sendable () -> Void) -> PinnedThread {
    PinnedThread(cpu: cpu, body)
}
