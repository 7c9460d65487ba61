import CLibev
import EventCore
import Glibc

/// The `Sendable` face of a ``Loop``: other threads hand it work, tasks run
/// on it, and the async awaits (``sleep(seconds:)``, ``readable(_:)``, ...)
/// live on it.
///
/// ## Executor
/// It is the loop's `TaskExecutor`: `Task(executorPreference: loop.executor)`
/// runs a task on the loop's thread, and every nonisolated async function the
/// task calls runs there too, with no hop per call or resume. Its companion
/// ``serialExecutor`` is the loop's `SerialExecutor`: an actor names it
/// (`nonisolated var unownedExecutor { executor.asUnownedSerialExecutor() }`)
/// to run on the loop's thread. They are two objects because Swift's runtime
/// treats a job run "isolated to" a serial executor as actor-isolated: if
/// task jobs ran that way, every call into nonisolated async code would be
/// an executor switch (an enqueue per call, about 80 per round trip of an
/// async ping-pong). Both feed one queue, in one order.
///
/// Prefer tasks with the loop's executor preference (`Loop.run { }`,
/// `Task(executorPreference:)`) for io-heavy code: in Swift 6.3,
/// `withTaskCancellationHandler` runs its operation nonisolated (fixed in
/// later Swift by swiftlang/swift#85518), so an await inside *actor-isolated*
/// code resumes through the global executor before hopping back to the
/// loop - correct, but several times slower than from a task on the loop.
///
/// A job enqueued on the loop's
/// own thread while the loop runs goes on a local queue, without a lock or a
/// wake-up; from any other thread it goes on a locked queue and wakes the
/// loop through `ev_async`. Jobs run in the order enqueued, each exactly once.
/// Jobs enqueued while a batch runs wait for the next iteration, after the
/// loop has polled for io, so a task that keeps re-enqueueing itself cannot
/// starve io.
///
/// ## Submitting closures
/// ``execute(_:)`` runs a `Sendable` closure on the loop's thread, in order.
/// A burst from other threads costs one wake-up: a submission that finds the
/// queue empty sends it, the others ride on it.
///
/// ## Lifetime
/// Nothing accepted is lost: when the loop is destroyed it first ends every
/// pending await with ``EVError/loopClosed``, runs everything already queued,
/// then refuses new work with ``EVError/loopClosed``. Enqueueing a *task job*
/// after that is a programmer error and traps with a message, since a job
/// that cannot run would leave its task suspended forever.
///
/// The wake-up watcher does not keep the loop running by itself (like
/// libev's own internal watchers); `Loop.run { }` with a task and ``LoopThread``
/// keep their loops running while they wait.
public final class LoopExecutor: TaskExecutor, LoopWorkSink, @unchecked Sendable {
    // Sendable because every field other threads touch is either immutable
    // (`loop` and the C structs: pointers fixed at init) or the work queue,
    // whose inbox is locked. Other threads use `loop` and `cAsync` only
    // through ev_async_send, the one libev call documented as thread-safe,
    // and only inside the queue's lock while it is open; the loop thread
    // closes the queue under that lock before it stops the watcher and
    // destroys the loop. `core` and `waits` are touched only on the loop's
    // thread: by the awaits, which run there, and by teardown.

    private let queue = LoopWorkQueue()
    /// The loop as a `SerialExecutor`, for actors.
    public let serialExecutor = LoopSerialExecutor()
    private let unownedSerial: UnownedSerialExecutor
    private let loop: OpaquePointer
    private let cAsync: UnsafeMutablePointer<ev_async> = .allocate(capacity: 1)
    private let cPrepare: UnsafeMutablePointer<ev_prepare> = .allocate(capacity: 1)
    private let cIdle: UnsafeMutablePointer<ev_idle> = .allocate(capacity: 1)
    /// The loop's shared state, for the awaits; nil once the loop is destroyed.
    unowned(unsafe) var core: LoopCore?
    /// The pending awaits of this loop, ended with ``EVError/loopClosed`` at teardown.
    package let waits = PendingWaitList()

    init(loop: OpaquePointer) {
        self.loop = loop
        unownedSerial = UnownedSerialExecutor(ordinary: serialExecutor)
        serialExecutor.sink = self
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

    /// Whether the calling thread is running this loop right now.
    public var isCurrent: Bool {
        CurrentLoop.isCurrent(self)
    }

    // MARK: submitting

    /// Runs `work` on the loop's thread, after the work submitted before it.
    ///
    /// - Parameter work: the closure to run; it must be `Sendable`, since it is
    ///   created on one thread and runs on another.
    /// - Throws: ``EVError/loopClosed`` if the loop has been destroyed; the work does not run.
    ///
    /// The corresponding C function is `ev_async_send`.
    public func execute(_ work: @escaping @Sendable () -> Void) throws(EVError) {
        if isCurrent {
            enqueueLocal(.closure(work))
        } else if !submit(.closure(work)) {
            throw .loopClosed
        }
    }

    /// Runs a task's job on the loop's thread (the `TaskExecutor` requirement).
    public func enqueue(_ job: consuming ExecutorJob) {
        enqueueWork(.taskJob(UnownedJob(job)))
    }

    /// Queues a job (from any thread); traps if the loop is gone, since a
    /// job that cannot run would leave its task suspended forever.
    public func enqueueWork(_ work: LoopWork) {
        if isCurrent {
            enqueueLocal(work)
        } else if !submit(work) {
            fatalError("EV: a task job was enqueued on the executor of a destroyed loop; the task could never resume. Keep the loop (or its LoopThread) alive until its tasks are done.")
        }
    }

    /// The loop's ``serialExecutor`` as an actor's `unownedExecutor`.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        unownedSerial
    }

    private func submit(_ work: LoopWork) -> Bool {
        queue.submit(work) { ev_async_send(loop, cAsync) }
    }

    /// Queues work from the loop's own thread: no lock, no system call.
    private func enqueueLocal(_ work: LoopWork) {
        // Make the wake-up watcher pending: it runs in this round of callbacks
        // (or, before the loop blocks, in the round the prepare watcher causes).
        // During a batch, the work waits for the next iteration instead.
        if queue.enqueueLocal(work) { ev_feed_event(loop, cAsync, Int32(truncatingIfNeeded: EV_CUSTOM)) }
    }

    // MARK: running (loop thread)

    /// The wake-up callback: runs what other threads submitted and what the
    /// loop's thread queued, one batch of each.
    func runSubmittedWork() {
        if queue.runBatches(run) {
            // More arrived during the batch: poll io first (the idle watcher
            // keeps the poll from blocking), then the prepare watcher feeds us again.
            ev_idle_start(loop, cIdle)
        }
    }

    /// Before the loop blocks: leftover local work must run first.
    func beforeBlocking() {
        if queue.hasLocalWork { ev_feed_event(loop, cAsync, Int32(truncatingIfNeeded: EV_CUSTOM)) }
    }

    /// The idle watcher only keeps one poll from blocking.
    func idleOnce() {
        ev_idle_stop(loop, cIdle)
        beforeBlocking()
    }

    private func run(_ work: LoopWork) {
        switch work {
        case .closure(let body): body()
        case .taskJob(let job): job.runSynchronously(on: asUnownedTaskExecutor())
        case .actorJob(let job): job.runSynchronously(on: unownedSerial)
        }
    }

    /// Whether work is waiting on the loop's thread (teardown).
    var hasLocalWork: Bool { queue.hasLocalWork }

    /// Runs all queued work, local and submitted, until both queues are empty (teardown).
    func drain() {
        queue.drain(run)
    }

    /// Refuses new submissions once nothing is queued (teardown, after ``drain()``).
    /// - Returns: false if work arrived meanwhile; drain again, then retry.
    func closeIfIdle() -> Bool {
        queue.closeIfIdle()
    }

    /// Stops the executor's watchers before the loop is destroyed (teardown).
    func stopWatchers() {
        ev_ref(loop)
        ev_async_stop(loop, cAsync)
        ev_ref(loop)
        ev_prepare_stop(loop, cPrepare)
        ev_idle_stop(loop, cIdle)
        core = nil
    }

    /// Ends every pending await with ``EVError/loopClosed`` (teardown).
    func failAllWaits() {
        waits.failAll(EVError.loopClosed)
    }
}

extension LoopExecutor: EventLoopExecutor {
    /// Runs `work` on the loop's thread, after the work submitted before it,
    /// handing it the loop (unless the loop is already gone).
    ///
    /// - Throws: ``EVError/loopClosed`` if the loop has been destroyed.
    ///
    /// The corresponding C function is `ev_async_send`.
    public func execute(_ work: @escaping @Sendable (Loop) -> Void) throws {
        try executeWithLoop(work)
    }

    /// Runs `work` on the loop's thread `seconds` from now, unless the
    /// returned handle cancels it first (from any thread).
    ///
    /// The corresponding C functions are `ev_async_send` and `ev_timer_start`.
    public func schedule(after seconds: Double, _ work: @escaping @Sendable (Loop) -> Void) -> ScheduledWork {
        scheduleWork(after: seconds, work)
    }
}

extension LoopExecutor: AwaitingExecutor {
    /// The loop, while it takes awaits (loop thread); looked up, not held: a
    /// task waiting on a loop must not keep it alive.
    package var loopForAwaits: Loop? {
        guard let core, !core.isClosing else { return nil }
        return core.owner
    }

    package var loopIfAlive: Loop? { core?.owner }

    package var loopClosedError: any Error { EVError.loopClosed }
}
