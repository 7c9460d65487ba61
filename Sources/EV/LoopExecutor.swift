import CLibev
import EventCore

/// The `Sendable` door into a ``Loop``: any thread can hand it work, and the
/// work runs on the loop's thread, in the order submitted.
///
/// Built as libev recommends: a queue under a lock plus one `ev_async`
/// watcher. A submission that finds the queue empty wakes the loop
/// (`ev_async_send`); later ones ride on that wake-up, so a burst costs one
/// wake-up, not one per item. The wake-up watcher does not keep the loop
/// running by itself (like libev's own internal watchers): work submitted
/// while ``Loop/run(_:)`` is not running waits for the next run.
///
/// Nothing accepted is ever lost: when the loop is destroyed it first runs
/// everything already queued, then refuses new work with ``EVError/loopClosed``.
///
/// ```swift
/// let executor = loop.executor            // Sendable
/// Thread { try? executor.execute { print("on the loop's thread") } }.start()
/// ```
public final class LoopExecutor: @unchecked Sendable {
    // Sendable because every field other threads touch is either immutable
    // (`loop`, `cAsync`: pointers fixed at init) or inside the `inbox` lock.
    // Other threads use `loop` and `cAsync` only through ev_async_send, the one
    // libev call documented as thread-safe, and only under the lock while
    // `inbox.isOpen`; the loop thread clears `isOpen` under that lock before it
    // stops the watcher and destroys the loop, so no send can reach a freed
    // loop. `batch` is touched only on the loop's thread (in the wake-up
    // callback and in `close`, both called by the loop).

    /// A unit of submitted work.
    enum Work: Sendable {
        case closure(@Sendable () -> Void)
    }

    private struct Inbox {
        var work: [Work] = []
        var isOpen = true
    }

    private let inbox = LockedValue(Inbox())
    private let loop: OpaquePointer
    private let cAsync: UnsafeMutablePointer<ev_async> = .allocate(capacity: 1)
    /// The work being run; swapped with the inbox's array so neither reallocates.
    private var batch: [Work] = []

    init(loop: OpaquePointer) {
        self.loop = loop
        CLibev_async_init(cAsync, Trampoline.wakeup)
        Trampoline.attach(self, to: cAsync)
        ev_async_start(loop, cAsync)
        ev_unref(loop)
    }

    deinit { cAsync.deallocate() }

    /// Runs `work` on the loop's thread, after the work submitted before it.
    ///
    /// - Parameter work: the closure to run; it must be `Sendable`, since it is
    ///   created on one thread and runs on another.
    /// - Throws: ``EVError/loopClosed`` if the loop has been destroyed; the work does not run.
    ///
    /// The corresponding C function is `ev_async_send`.
    public func execute(_ work: @escaping @Sendable () -> Void) throws(EVError) {
        try submit(.closure(work))
    }

    func submit(_ work: Work) throws(EVError) {
        try inbox.withLock { (inbox: inout Inbox) throws(EVError) in
            guard inbox.isOpen else { throw .loopClosed }
            inbox.work.append(work)
            // Only the first item needs a wake-up; the loop takes the whole queue at once.
            if inbox.work.count == 1 { ev_async_send(loop, cAsync) }
        }
    }

    /// The wake-up callback: runs everything queued so far (loop thread).
    func runSubmittedWork() {
        takeBatch()
        runBatch()
    }

    private func takeBatch() {
        inbox.withLock { swap(&$0.work, &batch) }
    }

    private func runBatch() {
        for work in batch {
            switch work {
            case .closure(let body): body()
            }
        }
        batch.removeAll(keepingCapacity: true)
    }

    /// Runs what is queued until the queue is empty, then refuses new work (loop thread, teardown).
    func close() {
        while true {
            let closed = inbox.withLock { inbox in
                if inbox.work.isEmpty {
                    inbox.isOpen = false
                    return true
                }
                swap(&inbox.work, &batch)
                return false
            }
            if closed { return }
            runBatch()
        }
    }

    /// Stops the wake-up watcher before the loop is destroyed (loop thread, after ``close()``).
    func stopWakeup() {
        ev_ref(loop)
        ev_async_stop(loop, cAsync)
    }
}
