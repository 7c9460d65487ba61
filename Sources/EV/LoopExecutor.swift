import CLibev
import EventCore
import Glibc

/// The `Sendable` face of a ``Loop``: other threads hand it work, tasks run
/// on it, and the async awaits (`sleep(for:)`, `readable(_:)`,
/// ``EventCore/LoopExecutorCore/signal(_:)``, ...) live on it.
///
/// It is ``/EventCore/LoopExecutorCore`` for libev - the executor both loops
/// share, with libev's wake-up: work from another thread wakes the loop
/// through `ev_async` (a burst costs one wake-up: a submission that finds
/// the queue empty sends it, the others ride on it); work queued on the
/// loop's own thread makes that watcher pending, with no system call.
///
/// Prefer tasks with the loop's executor preference (`Loop.run { }`,
/// `Task(executorPreference:)`) for io-heavy code. An actor whose executor
/// is the loop works - its awaits begin and resume on the loop's thread (in
/// Swift 6.3 `withTaskCancellationHandler` runs its operation off the
/// caller's actor, swiftlang/swift#85518; the package's awaits work around
/// it) - and is fast when the tasks that call it have the loop's executor
/// preference too (`Task(executorPreference: executor) { await actor.f() }`):
/// a resumed wait goes to the task's executor, then to the actor's, both on
/// the loop in one turn. A plain `Task { }` has no preference (it does not
/// inherit its creator's), so each of its waits resumes on a thread of the
/// global executor and hops back: about 3.5x slower (`ev-bench`'s actor rows).
///
/// The wake-up watcher does not keep the loop running by itself (like
/// libev's own internal watchers); `Loop.run { }` with a task and
/// ``LoopThread`` keep their loops running while they wait.
public typealias LoopExecutor = LoopExecutorCore<Loop>

/// libev's side of a ``LoopExecutor``: the `ev_async` other threads wake the
/// loop with, a prepare watcher that runs work left over before the loop
/// blocks, and an idle watcher that keeps one poll from blocking when work
/// keeps arriving.
final class LibevWaker: LoopWaker, @unchecked Sendable {
    // Sendable because other threads use it only through
    // wakeFromOtherThread: `ev_async_send` on `loop` and `cAsync` (pointers
    // fixed at init), the one libev call documented as thread-safe, called
    // only inside the work queue's lock while the queue is open; the loop
    // thread closes the queue under that lock before it stops the watchers
    // and destroys the loop. Everything else runs on the loop's thread;
    // `executor` is set once, by `start(for:)` (a second call traps), before
    // the loop runs or the executor is shared.
    private let loop: OpaquePointer
    private let cAsync: UnsafeMutablePointer<ev_async> = .allocate(capacity: 1)
    private let cPrepare: UnsafeMutablePointer<ev_prepare> = .allocate(capacity: 1)
    private let cIdle: UnsafeMutablePointer<ev_idle> = .allocate(capacity: 1)
    /// The executor whose work the watchers run (set once, before the loop runs).
    unowned(unsafe) var executor: LoopExecutor!

    init(loop: OpaquePointer) {
        self.loop = loop
    }

    /// Starts the watchers; the executor is their callbacks' `data`.
    func start(for executor: LoopExecutor) {
        checkUsage(self.executor == nil, "LibevWaker: started a second time")
        self.executor = executor
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        CLibev_async_init(cAsync, Trampoline.executorWakeup)
        CLibev_set_data(cAsync, opaque)
        CLibev_prepare_init(cPrepare, Trampoline.executorPrepare)
        CLibev_set_data(cPrepare, opaque)
        CLibev_idle_init(cIdle, Trampoline.executorIdle)
        CLibev_set_data(cIdle, opaque)
        // These watchers serve the loop; none of them keeps it running (ev_unref).
        ev_async_start(loop, cAsync)
        ev_unref(loop)
        ev_prepare_start(loop, cPrepare)
        ev_unref(loop)
    }

    deinit {
        cAsync.deallocate()
        cPrepare.deallocate()
        cIdle.deallocate()
    }

    func wakeFromOtherThread() {
        ev_async_send(loop, cAsync)
    }

    /// Makes the wake-up watcher pending: it runs in this round of callbacks
    /// (or, before the loop blocks, in the round the prepare watcher causes).
    func localWorkQueued() {
        ev_feed_event(loop, cAsync, Int32(truncatingIfNeeded: EV_CUSTOM))
    }

    /// The wake-up callback: runs what other threads submitted and what the
    /// loop's thread queued, one batch of each.
    func runSubmittedWork() {
        if executor.runBatches() {
            // More arrived during the batch: poll io first (the idle watcher
            // keeps the poll from blocking), then the prepare watcher feeds us again.
            ev_idle_start(loop, cIdle)
        }
    }

    /// Before the loop blocks: leftover local work must run first.
    func beforeBlocking() {
        if executor.hasLocalWork { localWorkQueued() }
    }

    /// The idle watcher only keeps one poll from blocking.
    func idleOnce() {
        ev_idle_stop(loop, cIdle)
        beforeBlocking()
    }

    /// Stops the watchers before the loop is destroyed (teardown).
    func stopWatchers() {
        ev_ref(loop)
        ev_async_stop(loop, cAsync)
        ev_ref(loop)
        ev_prepare_stop(loop, cPrepare)
        ev_idle_stop(loop, cIdle)
    }
}
