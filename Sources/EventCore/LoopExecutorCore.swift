/// The executor of an event loop `L` - one class for both loops, `EV.LoopExecutor`
/// (libev) and `Epoll.EpollExecutor` being its two instances: the loop's
/// `Sendable` face, which other threads and tasks hold.
///
/// ## Executor
/// It is the loop's `TaskExecutor`: `Task(executorPreference: executor)`
/// runs a task on the loop's thread, and every nonisolated async function the
/// task calls runs there too, with no hop per call or resume. Its companion
/// serial executor (``asUnownedSerialExecutor()``) is for actors: one names it
/// (`nonisolated var unownedExecutor { executor.asUnownedSerialExecutor() }`)
/// to run on the loop's thread. They are two objects because Swift's runtime
/// treats a job run "isolated to" a serial executor as actor-isolated: if
/// task jobs ran that way, every call into nonisolated async code would be
/// an executor switch. Both feed one queue, in one order.
///
/// A job enqueued on the loop's own thread goes on a local queue, without a
/// lock or a wake-up; from any other thread it goes on a locked queue and
/// wakes the loop (libev's `ev_async`, the epoll loop's eventfd - written only
/// when the loop may be asleep). Jobs run in the order enqueued, each exactly
/// once; jobs enqueued while a batch runs wait for the next iteration, after
/// the loop has polled for io, so a task that keeps re-enqueueing itself
/// cannot starve io.
///
/// ## Lifetime
/// Nothing accepted is lost: when the loop is closed it first ends every
/// pending await with ``EventLoopError/loopClosed``, runs everything already
/// queued, then refuses new work with that error. Enqueueing a *task job*
/// after that traps with a message, since a job that cannot run would leave
/// its task suspended forever. The loop's life - open, running, closing,
/// closed - is its lifecycle, kept here, one for both loops.
///
/// ## The awaits
/// ``sleep(for:)``, ``sleep(until:)``, ``readiness(for:)``, ``readable(_:)``
/// and ``writable(_:)`` are the await core's, written once for both loops:
/// each arms a watch or a timer on the loop's thread and resumes exactly
/// once - on the event; with `CancellationError` when the task is cancelled
/// (the watch is removed at once, on the loop's thread); with
/// ``EventLoopError`` at the ``withTimeout(_:_:)`` deadline (counted from the
/// current time) or when the loop closes.
public final class LoopExecutorCore<L: EventLoop>: TaskExecutor, LoopWorkSink, @unchecked Sendable {
    // Sendable because every field other threads touch is immutable (the
    // serial executor, the waker, whose wake-up is thread-safe by contract,
    // the testing loop's `clock`, a Sendable of atomics read by `now`)
    // or the work queue's inbox side, behind its lock and an atomic
    // (`execute`, `hasSubmittedWork`). `loop`, `lifecycle`, `waits` and the
    // queue's local side (and its peak) are touched only on the loop's thread: by the
    // awaits, which run there, by the loop, and by its teardown - and the
    // doors that change them check it (`checkOnLoop`: `loopForAwaits`,
    // `runBatches`, `queueDepth`, `takeQueuePeak`, `closeAfterDraining`; local work is queued only after
    // `isCurrent` said yes), in release builds too, as `LoopBound` does.
    // `waitersByDescriptor` is the awaits' (`readable`, `writable`), which
    // run on the loop. `monitor` is written by the loops' `monitor`
    // getters, which check the thread that may use the loop
    // (`checkUsable`), and by `close` (the loop's teardown), and read by the
    // jobs the loop runs. The
    // unchecked ones: `hasLocalWork`, read by the loop's own prepare and idle
    // watchers, which run on its thread by construction; `loop`, written only
    // by the loop object itself - when it is made, before this executor is
    // handed to anyone, and when it is destroyed, by the thread destroying
    // it, as the rest of the loop-thread state is in teardown - and read
    // otherwise only by work running on the loop (`execute(_:)` with the
    // loop) or through `loopForAwaits`, which checks; `lifecycle`, whose
    // state the loop changes on its thread only (its own checks enforce it).

    private let queue = LoopWorkQueue()
    private let serialExecutor = LoopSerialExecutor()
    private let unownedSerial: UnownedSerialExecutor
    /// How the loop is woken and told about local work.
    package let waker: any LoopWaker
    /// The loop's life: open, running, closing, closed (loop thread).
    package let lifecycle: LoopLifecycle
    /// The loop, while it exists (loop thread); not retained: a task
    /// waiting on a loop must not keep it alive.
    package unowned(unsafe) var loop: L?
    /// The loop's pending awaits, which its teardown ends (loop thread only).
    package let waits = PendingWaitList()
    /// What closes with the loop: the ``Connection``s and ``Listener``s
    /// open on it (loop thread only; closing the loop closes them, which
    /// also breaks a connection's cycle with its delegate).
    package let closables = PendingWaitList()
    /// The descriptors tasks wait on through ``readable(_:)`` and
    /// ``writable(_:)``, one entry while any task waits (loop thread only).
    private var waitersByDescriptor: [Int32: DescriptorWaiters<L>] = [:]

    /// An executor for the loop `waker` belongs to, named `name` (`EV`,
    /// `Epoll`) in the lifecycle's messages.
    /// A testing loop's clock (`EventLoopTesting`), or nil: the machine's.
    package let clock: VirtualClock?

    package init(waker: any LoopWaker, name: StaticString, clock: VirtualClock? = nil) {
        self.waker = waker
        self.clock = clock
        lifecycle = LoopLifecycle(name: name)
        unownedSerial = UnownedSerialExecutor(ordinary: serialExecutor)
        serialExecutor.attach(self)
        lifecycle.executor = self
    }

    /// Whether the calling thread is running this loop right now.
    public var isCurrent: Bool { CurrentLoop.isCurrent(self) }

    /// The loop's time: the continuous clock's now, or a testing loop's
    /// virtual time (`EventLoopTesting`'s `TestLoop`), which moves only when
    /// the test says. Any thread.
    public var now: ContinuousClock.Instant {
        if let clock { return clock.instant }
        return .now
    }

    /// Whether the loop is closing or closed: awaits then fail.
    package var isClosing: Bool { lifecycle.isClosingOrClosed }

    /// The loop, while it takes awaits; nil once it is closing (loop thread only).
    package var loopForAwaits: L? {
        checkOnLoop()
        return isClosing ? nil : loop
    }

    /// The loop, to a task or actor running on it (asyncio's `get_running_loop()`).
    ///
    /// - Precondition: the calling thread is running the loop, and the loop is
    ///   not closing (a trap with a message otherwise, in release builds too).
    public var runningLoop: L {
        guard let loop = loopForAwaits else {
            misuse("LoopExecutorCore<\(L.self)>.runningLoop: the loop is closing")
        }
        return loop
    }

    /// Traps unless the calling thread is running this loop: the state only
    /// the loop's thread may touch is checked at its doors, not trusted.
    @inline(__always)
    private func checkOnLoop() {
        if !isCurrent { offLoop() }
    }

    @inline(never)
    private func offLoop() -> Never {
        misuse("LoopExecutorCore<\(L.self)>: loop-thread state was touched off the loop's thread")
    }

    // MARK: submitting

    /// Runs `work` on the loop's thread, after the work submitted before it.
    ///
    /// - Parameter work: the closure to run; `Sendable`, since it is made on
    ///   one thread and runs on another.
    /// - Throws: ``EventLoopError/loopClosed`` if the loop has been closed;
    ///   the work does not run.
    public func execute(_ work: @escaping @Sendable () -> Void) throws(EventLoopError) {
        if isCurrent {
            enqueueLocal(.closure(work))
        } else if !queue.submit(.closure(work), wake: waker.wakeFromOtherThread) {
            throw .loopClosed
        }
    }

    /// Runs `work` on the loop's thread, after the work submitted before it,
    /// handing it the loop (which is not `Sendable`, so it cannot be
    /// captured; unless the loop is already gone, when `work` does not run).
    ///
    /// - Throws: ``EventLoopError/loopClosed`` if the loop has been closed.
    public func execute(_ work: @escaping @Sendable (L) -> Void) throws(EventLoopError) {
        try execute { [self] in
            if let loop { work(loop) }
        }
    }

    /// Runs `work` on the loop's thread `delay` from now (counted from this
    /// call), unless the returned handle cancels it first - from any thread.
    /// A loop that closes before the work is due drops it, and the handle's
    /// ``ScheduledWork/outcome`` says so.
    ///
    /// - Throws: ``EventLoopError/loopClosed`` if the loop has been closed;
    ///   the work does not run.
    @discardableResult
    public func schedule(after delay: Duration, _ work: @escaping @Sendable (L) -> Void) throws(EventLoopError) -> ScheduledWork {
        let handle = ScheduledWork()
        let deadline = now.advanced(by: delay)
        let arm: @Sendable () -> Void = { [self] in
            guard let loop = loopForAwaits else { return handle.drop() }
            guard !handle.isCancelled else { return }
            // The loop holds the timer while it waits; the handle reaches it
            // weakly, and the timer's closure the loop weakly, so that
            // nothing is left in a cycle when the work runs, is cancelled or
            // the loop closes first (then the notice marks it dropped).
            let notice = DropNotice(handle)
            let timer = loop.schedule(at: deadline) { [weak loop] in
                if let loop, notice.handle.claimRun() { work(loop) }
            }
            let bound = LoopBound(WeakCancellable(timer), loop: self)
            handle.setRemoval { [self] in onLoop({ bound.value.target?.cancel() }, failed: { _ in }) }
        }
        if isCurrent {
            if isClosing { throw .loopClosed }
            arm()
        } else {
            try execute(arm)
        }
        return handle
    }

    /// Runs a task's job on the loop's thread (the `TaskExecutor` requirement).
    public func enqueue(_ job: consuming ExecutorJob) {
        enqueueWork(.taskJob(UnownedJob(job)))
    }

    /// Queues a job (from any thread); traps if the loop is gone, since a
    /// job that cannot run would leave its task suspended forever.
    package func enqueueWork(_ work: LoopWork) {
        if isCurrent {
            enqueueLocal(work)
        } else if !queue.submit(work, wake: waker.wakeFromOtherThread) {
            misuse("a task job was enqueued on the executor of a closed loop; the task could never resume. Keep the loop (or its thread) alive until its tasks are done.")
        }
    }

    /// The loop as an actor's `unownedExecutor`: the actor runs on the loop's thread.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        unownedSerial
    }

    /// Queues work from the loop's own thread: no lock, no system call.
    private func enqueueLocal(_ work: LoopWork) {
        if queue.enqueueLocal(work) { waker.localWorkQueued() }
    }

    /// Runs `body` on the loop's thread: at once if the caller is there,
    /// else as a job (the caller goes on). The loop's refusal goes to `failed`.
    @inline(__always)
    package func onLoop(_ body: @escaping @Sendable () -> Void, failed: (EventLoopError) -> Void) {
        if isCurrent {
            body()
        } else {
            do throws(EventLoopError) { try execute(body) } catch { failed(error) }
        }
    }

    // MARK: the awaits (the await core's, for both loops)

    /// Suspends for `duration`, counted from the call (zero or negative lets
    /// everything else ready now run first, io included).
    ///
    /// - Throws: `CancellationError`; ``EventLoopError``: the task's deadline
    ///   (``EventLoopError/Code/timedOut``), the loop's close.
    public func sleep(for duration: Duration) async throws {
        try await sleep(until: now.advanced(by: duration))
    }

    /// Suspends until `deadline` (in the past: lets everything else ready
    /// now run first, io included).
    ///
    /// - Throws: as ``sleep(for:)``.
    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await suspend { (suspension: Suspension<Void, L>, loop) in
            let timer = loop.schedule(at: deadline) { suspension.finish(.success(())) }
            suspension.cleanup = { timer.cancel() }
        }
    }

    /// The waiters of `fd` (loop thread; see ``readable(_:)``).
    func descriptorWaiters(for fd: Int32) -> DescriptorWaiters<L> {
        if let waiters = waitersByDescriptor[fd] { return waiters }
        let waiters = DescriptorWaiters(fd: fd, executor: self)
        waitersByDescriptor[fd] = waiters
        return waiters
    }

    /// `waiters` has no task left, and no watch.
    func forgetDescriptorWaiters(_ waiters: DescriptorWaiters<L>) {
        if waitersByDescriptor[waiters.fd] === waiters { waitersByDescriptor[waiters.fd] = nil }
    }

    /// Readiness waits on `descriptor` that keep one watch armed between waits
    /// (see ``DescriptorReadiness``).
    public func readiness(for descriptor: FileDescriptor) -> any DescriptorReadiness {
        Readiness(executor: self, fd: descriptor.rawValue)
    }

    // MARK: running work (loop thread)

    /// Runs one batch of submitted and one of local work.
    /// - Returns: true if more local work arrived meanwhile (run again after polling io).
    @discardableResult
    package func runBatches() -> Bool {
        checkOnLoop()
        return queue.runBatches(run)
    }

    /// Whether work waits on the loop's thread.
    /// Read by the loop's own watchers (prepare, idle) on its thread, where
    /// the current-loop mark may not be set: not checked, unlike the doors
    /// that change the local side.
    package var hasLocalWork: Bool { queue.hasLocalWork }

    /// Work waiting now (loop thread): the executor's queue depth.
    package var queueDepth: Int {
        checkOnLoop()
        return queue.depth
    }

    /// The most work one turn took from the queue at once since the last
    /// call (loop thread): the queue's depth at its deepest.
    package func takeQueuePeak() -> Int {
        checkOnLoop()
        return queue.takePeak()
    }

    /// Whether other threads have submitted work the loop has not taken yet
    /// (sequentially consistent: see ``LoopWorkQueue/hasSubmittedWork``).
    package var hasSubmittedWork: Bool { queue.hasSubmittedWork }

    /// The loop's monitor, once made: each job is measured while it is on.
    package var monitor: LoopMonitor?

    private func run(_ work: LoopWork) {
        LoopMonitor.measure(monitor, work.source) { runUnmeasured(work) }
    }

    private func runUnmeasured(_ work: LoopWork) {
        switch work {
        case .closure(let body): body()
        case .taskJob(let job): job.runSynchronously(on: asUnownedTaskExecutor())
        case .actorJob(let job): job.runSynchronously(on: unownedSerial)
        }
    }

    /// Closes the loop: its ``lifecycle`` closes, draining here - every
    /// pending await ends with ``EventLoopError/loopClosed``, the work
    /// already accepted (from other threads and tasks) runs and
    /// `dropWatches` lets the loop's watches and timers go, round after
    /// round, until nothing is queued or pending, then new submissions are
    /// refused - and `release` frees the loop's kernel state. Harmless twice.
    ///
    /// - Precondition: the loop is not running.
    package func close(_ function: StaticString, dropWatches: () -> Void, release: () -> Void) {
        lifecycle.close(function, drain: {
            // The monitor's probe first: on libev it is a watcher, whose
            // reference to the loop's core made a cycle (core, executor,
            // monitor, probe, core) that outlived the closed loop.
            monitor?.stop()
            monitor = nil
            repeat {
                repeat {
                    waits.failAll(EventLoopError.loopClosed)
                    closables.failAll(EventLoopError.loopClosed)
                    queue.drain(run)
                    dropWatches()
                } while queue.hasLocalWork || !waits.isEmpty
            } while !queue.closeIfIdle()
        }, release: release)
    }
}

extension LoopExecutorCore: EventLoopExecutor {
    public typealias Loop = L
}

/// What a loop gives its ``LoopExecutorCore``: how to wake it.
package protocol LoopWaker: AnyObject, Sendable {
    /// Wakes the loop from another thread; called under the work queue's
    /// lock when the inbox was empty. Thread-safe and non-blocking.
    func wakeFromOtherThread()
    /// Work was queued on the loop's thread outside a batch: the loop should
    /// run a batch in this round of callbacks.
    func localWorkQueued()
}

/// A weak reference to a loop's timer (see ``LoopExecutorCore/schedule(after:_:)``).
final class WeakCancellable {
    weak var target: (any Cancellable)?
    init(_ target: any Cancellable) { self.target = target }
}
