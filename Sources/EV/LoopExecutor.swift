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
public final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    // Sendable because every field other threads touch is either immutable
    // (`loop` and the C structs: pointers fixed at init) or inside the `inbox`
    // lock. Other threads use `loop` and `cAsync` only through ev_async_send,
    // the one libev call documented as thread-safe, and only under the lock
    // while `inbox.isOpen`; the loop thread clears `isOpen` under that lock
    // before it stops the watcher and destroys the loop. Every other stored
    // property (`local`, `batch`, `suspensions`, `core`...) is touched only on
    // the loop's thread: by `enqueue` when `CurrentLoop` says this thread runs
    // the loop, and by the callbacks and teardown, which the loop runs.

    /// A unit of submitted work.
    enum Work: Sendable {
        case closure(@Sendable () -> Void)
        /// A task's job, run on the loop as its task executor (not actor-isolated).
        case taskJob(UnownedJob)
        /// An actor's job, run isolated to ``serialExecutor``.
        case actorJob(UnownedJob)
    }

    private struct Inbox {
        var work: [Work] = []
        var isOpen = true
    }

    private let inbox = LockedValue(Inbox())
    /// The loop as a `SerialExecutor`, for actors.
    public let serialExecutor: LoopSerialExecutor
    private var unownedSerial: UnownedSerialExecutor!
    private let loop: OpaquePointer
    private let cAsync: UnsafeMutablePointer<ev_async> = .allocate(capacity: 1)
    private let cPrepare: UnsafeMutablePointer<ev_prepare> = .allocate(capacity: 1)
    private let cIdle: UnsafeMutablePointer<ev_idle> = .allocate(capacity: 1)

    // Loop thread only:
    /// Work enqueued on the loop's thread since the last batch.
    private var local: [Work] = []
    /// The work being run; swapped with `local` or the inbox's array so none reallocates.
    private var batch: [Work] = []
    /// True while a batch runs: work enqueued then waits for the next iteration.
    private var isRunningBatch = false
    /// The loop's shared state, for the awaits; nil once the loop is destroyed.
    unowned(unsafe) var core: LoopCore?
    /// The suspended awaits of this loop, ended with ``EVError/loopClosed`` at teardown.
    var firstSuspension: SuspensionBase?

    init(loop: OpaquePointer) {
        self.loop = loop
        serialExecutor = LoopSerialExecutor()
        serialExecutor.loopExecutor = self
        unownedSerial = UnownedSerialExecutor(ordinary: serialExecutor)
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
        CurrentLoop.executor == Unmanaged.passUnretained(self).toOpaque()
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
        } else {
            try submit(.closure(work))
        }
    }

    /// Runs a task's job on the loop's thread (the `TaskExecutor` requirement).
    public func enqueue(_ job: consuming ExecutorJob) {
        enqueueJob(.taskJob(UnownedJob(job)))
    }

    func enqueueJob(_ work: Work) {
        if isCurrent {
            enqueueLocal(work)
        } else {
            do {
                try submit(work)
            } catch {
                fatalError("EV: a task job was enqueued on the executor of a destroyed loop; the task could never resume. Keep the loop (or its LoopThread) alive until its tasks are done.")
            }
        }
    }

    /// The loop's ``serialExecutor`` as an actor's `unownedExecutor`.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        unownedSerial
    }

    private func submit(_ work: Work) throws(EVError) {
        try inbox.withLock { (inbox: inout Inbox) throws(EVError) in
            guard inbox.isOpen else { throw .loopClosed }
            inbox.work.append(work)
            // Only the first item needs a wake-up; the loop takes the whole queue at once.
            if inbox.work.count == 1 { ev_async_send(loop, cAsync) }
        }
    }

    /// Queues work from the loop's own thread: no lock, no system call.
    private func enqueueLocal(_ work: Work) {
        local.append(work)
        // Make the wake-up watcher pending: it runs in this round of callbacks
        // (or, before the loop blocks, in the round the prepare watcher causes).
        // During a batch, wait for the next iteration instead (see runBatches).
        if !isRunningBatch { ev_feed_event(loop, cAsync, Int32(truncatingIfNeeded: EV_CUSTOM)) }
    }

    // MARK: running (loop thread)

    /// The wake-up callback: runs what other threads submitted and what the
    /// loop's thread queued, one batch of each.
    func runSubmittedWork() {
        inbox.withLock { swap(&$0.work, &batch) }
        runBatch()
        swap(&local, &batch)
        runBatch()
        if !local.isEmpty {
            // More arrived during the batch: poll io first (the idle watcher
            // keeps the poll from blocking), then the prepare watcher feeds us again.
            ev_idle_start(loop, cIdle)
        }
    }

    /// Before the loop blocks: leftover local work must run first.
    func beforeBlocking() {
        if !local.isEmpty { ev_feed_event(loop, cAsync, Int32(truncatingIfNeeded: EV_CUSTOM)) }
    }

    /// The idle watcher only keeps one poll from blocking.
    func idleOnce() {
        ev_idle_stop(loop, cIdle)
        beforeBlocking()
    }

    private func runBatch() {
        guard !batch.isEmpty else { return }
        isRunningBatch = true
        for work in batch {
            switch work {
            case .closure(let body): body()
            case .taskJob(let job): job.runSynchronously(on: asUnownedTaskExecutor())
            case .actorJob(let job): job.runSynchronously(on: unownedSerial)
            }
        }
        isRunningBatch = false
        batch.removeAll(keepingCapacity: true)
    }

    /// Whether work is waiting on the loop's thread (teardown).
    var hasLocalWork: Bool { !local.isEmpty }

    /// Runs all queued work, local and submitted, until both queues are empty (teardown).
    func drain() {
        while true {
            inbox.withLock { swap(&$0.work, &batch) }
            let hadRemote = !batch.isEmpty
            runBatch()
            swap(&local, &batch)
            let hadLocal = !batch.isEmpty
            runBatch()
            if !hadRemote && !hadLocal { return }
        }
    }

    /// Refuses new submissions once nothing is queued (teardown, after ``drain()``).
    /// - Returns: false if work arrived meanwhile; drain again, then retry.
    func closeIfIdle() -> Bool {
        inbox.withLock { inbox in
            guard inbox.work.isEmpty else { return false }
            inbox.isOpen = false
            return true
        }
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

    // MARK: suspensions

    func register(_ suspension: SuspensionBase) {
        suspension.next = firstSuspension
        firstSuspension?.previous = suspension
        firstSuspension = suspension
    }

    func unregister(_ suspension: SuspensionBase) {
        if let previous = suspension.previous { previous.next = suspension.next } else if firstSuspension === suspension { firstSuspension = suspension.next }
        suspension.next?.previous = suspension.previous
        suspension.previous = nil
        suspension.next = nil
    }

    /// Ends every pending await with ``EVError/loopClosed`` (teardown).
    func failAllSuspensions() {
        while let suspension = firstSuspension {
            suspension.fail(EVError.loopClosed)
        }
    }
}

/// The loop as a `SerialExecutor`: actors whose executor it is run on the
/// loop's thread, their jobs in the loop's one queue. See ``LoopExecutor``.
public final class LoopSerialExecutor: SerialExecutor, @unchecked Sendable {
    // Sendable because its one stored property is set once, before the object
    // is shared, and the LoopExecutor it names is Sendable.
    unowned var loopExecutor: LoopExecutor!

    /// Runs an actor's job on the loop's thread.
    public func enqueue(_ job: consuming ExecutorJob) {
        loopExecutor.enqueueJob(.actorJob(UnownedJob(job)))
    }

    /// The executor as Swift's concurrency runtime refers to it.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Traps unless the calling thread is running this loop (for `assumeIsolated`).
    public func checkIsolated() {
        precondition(loopExecutor.isCurrent, "EV: expected to run on this loop's thread, inside its run()")
    }
}
