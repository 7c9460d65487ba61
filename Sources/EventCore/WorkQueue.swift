import Synchronization

/// A unit of work for an event loop's thread.
package enum LoopWork: Sendable {
    /// A closure from ``LoopWorkQueue/submit(_:wake:)`` or the loop's own thread.
    case closure(@Sendable () -> Void)
    /// A task's job, to run on the loop as its task executor (not actor-isolated).
    case taskJob(UnownedJob)
    /// An actor's job, to run isolated to the loop's serial executor.
    case actorJob(UnownedJob)

    /// What it is, for a slow-callback report (``LoopMonitor``).
    var source: String {
        switch self {
        case .closure: "work submitted to the loop (execute or a continuation's resumption)"
        case .taskJob(let job): "a step of a task (\(job.description))"
        case .actorJob(let job): "a job of the loop's serial executor (\(job.description))"
        }
    }
}

/// The queues behind both loops' executors: a locked inbox for other
/// threads, a lock-free local queue for the loop's own thread, and the batch
/// being run. One implementation, so that both loops order and run work alike.
///
/// - Work from other threads goes in the inbox; the submission that finds it
///   empty calls `wake` (under the lock), the others ride on that wake-up.
/// - Work from the loop's thread goes in the local queue, no lock, no wake-up.
/// - The loop runs one batch of each at a time. Work queued while a batch runs
///   waits for the next one, after the loop has polled for io, so work that
///   keeps re-queueing itself cannot starve io.
/// - Nothing accepted is lost: ``closeIfIdle()`` refuses new work only once
///   the inbox is empty.
///
/// Not `Sendable` itself: its one owner, ``LoopExecutorCore``, is, and checks
/// the thread at the doors that change the local side (`local`, `batch`,
/// `isRunningBatch`); other threads reach only ``submit(_:wake:)`` and
/// ``hasSubmittedWork``, which touch the locked inbox and an atomic.
package final class LoopWorkQueue {
    fileprivate struct Inbox {
        var work: [LoopWork] = []
        var isOpen = true
    }

    fileprivate let inbox = LockedValue(Inbox())
    /// Whether the inbox may hold work: set under the lock by submissions, so
    /// the loop can skip taking the lock when nothing came from other threads.
    fileprivate let maybeSubmitted = Atomic(false)
    private var local: [LoopWork] = []
    private var batch: [LoopWork] = []
    private var isRunningBatch = false
    /// The most work one batch ran since ``takePeak()`` (loop thread).
    private var peak = 0

    package init() {}

    /// Queues work from another thread.
    ///
    /// - Parameter wake: called, under the queue's lock, when the inbox was
    ///   empty: it must wake the loop (thread-safe, non-blocking).
    /// - Returns: false if the queue is closed; the work was not taken.
    package func submit(_ work: LoopWork, wake: () -> Void) -> Bool {
        inbox.withLock { inbox in
            guard inbox.isOpen else { return false }
            inbox.work.append(work)
            // Sequentially consistent, not just releasing: `wake` may read the
            // loop's "about to sleep" flag, and the loop raises that flag and
            // then reads this one (``hasSubmittedWork``). Each side stores,
            // then loads the other's flag - Dekker's pattern - and only
            // sequential consistency forbids both loads seeing the old values
            // (on x86, a releasing store may still sit in the store buffer when
            // the next load runs: the loop would sleep with work queued and
            // no wake-up written).
            maybeSubmitted.store(true, ordering: .sequentiallyConsistent)
            if inbox.work.count == 1 { wake() }
            return true
        }
    }

    /// Queues work from the loop's own thread.
    ///
    /// - Returns: true if the loop should run a batch in this round of
    ///   callbacks; false while a batch runs (the work waits for the next one).
    package func enqueueLocal(_ work: LoopWork) -> Bool {
        local.append(work)
        return !isRunningBatch
    }

    /// Whether work waits on the loop's thread.
    package var hasLocalWork: Bool { !local.isEmpty }

    /// Work waiting now, queued on the loop and submitted from other threads (loop thread).
    package var depth: Int { local.count + inbox.withLock { $0.work.count } }

    /// The most work one batch ran since the last call, then zero (loop thread).
    package func takePeak() -> Int {
        defer { peak = 0 }
        return peak
    }

    /// Runs one batch of submitted work, then one of local work (loop thread).
    /// - Returns: true if more local work arrived meanwhile (run again after polling io).
    @discardableResult
    package func runBatches(_ run: (LoopWork) -> Void) -> Bool {
        takeSubmitted()
        runBatch(run)
        // Local work that the local work queued runs in the same turn, a few
        // rounds at most, so io is still polled between them: a task resumed
        // onto an actor is queued twice (its task executor, then the actor's),
        // and a turn for each cost an actor on the loop two more polls per
        // wait, in which its descriptor fired again with nobody waiting.
        var rounds = 0
        repeat {
            swap(&local, &batch)
            runBatch(run)
            rounds += 1
        } while !local.isEmpty && rounds < Self.localRoundsPerTurn
        return !local.isEmpty
    }

    /// How many rounds of local work one turn of the loop runs at most.
    static let localRoundsPerTurn = 4

    /// Runs everything queued, local and submitted, until both are empty (teardown).
    package func drain(_ run: (LoopWork) -> Void) {
        while true {
            inbox.withLock { inbox in
                swap(&inbox.work, &batch)
                maybeSubmitted.store(false, ordering: .relaxed)
            }
            let hadRemote = !batch.isEmpty
            runBatch(run)
            swap(&local, &batch)
            let hadLocal = !batch.isEmpty
            runBatch(run)
            if !hadRemote && !hadLocal { return }
        }
    }

    /// Refuses new submissions if nothing is queued (teardown, after ``drain(_:)``).
    /// - Returns: false if work arrived meanwhile: drain again, then retry.
    package func closeIfIdle() -> Bool {
        inbox.withLock { inbox in
            guard inbox.work.isEmpty else { return false }
            inbox.isOpen = false
            return true
        }
    }

    /// Moves the submitted work into `batch`; no lock when nothing was submitted.
    private func takeSubmitted() {
        guard maybeSubmitted.load(ordering: .acquiring) else { return }
        inbox.withLock { inbox in
            swap(&inbox.work, &batch)
            maybeSubmitted.store(false, ordering: .relaxed)
        }
    }

    private func runBatch(_ run: (LoopWork) -> Void) {
        guard !batch.isEmpty else { return }
        if batch.count > peak { peak = batch.count }
        isRunningBatch = true
        for work in batch { run(work) }
        isRunningBatch = false
        batch.removeAll(keepingCapacity: true)
    }
}

/// What a loop's task executor offers its serial companion.
package protocol LoopWorkSink: AnyObject, Sendable {
    /// Queues `work` for the loop's thread (from any thread).
    func enqueueWork(_ work: LoopWork)
    /// Whether the calling thread runs the loop now.
    var isCurrent: Bool { get }
}

/// A loop as a `SerialExecutor`: actors whose executor it is run on the
/// loop's thread, their jobs in the loop's one queue.
///
/// It is a companion of the loop's `TaskExecutor`, not the same object:
/// Swift's runtime treats a job run "isolated to" a serial executor as
/// actor-isolated, so if task jobs ran that way every call into nonisolated
/// async code would be an executor switch.
package final class LoopSerialExecutor: SerialExecutor, @unchecked Sendable {
    // Sendable because its one stored property names a Sendable object and is
    // set once, by `attach`, before the executor is shared (its owner's
    // initializer attaches itself): `attach` traps on a second call, so the
    // property never changes while other threads read it. (It cannot be a
    // `let`: the owner that creates it is its sink, and is not initialized yet.)
    package private(set) unowned var sink: (any LoopWorkSink)!

    package init() {}

    /// Names the loop whose queue runs the actors' jobs; once.
    package func attach(_ sink: any LoopWorkSink) {
        checkUsage(self.sink == nil, "LoopSerialExecutor: attached a second time")
        self.sink = sink
    }

    /// Runs an actor's job on the loop's thread.
    package func enqueue(_ job: consuming ExecutorJob) {
        sink.enqueueWork(.actorJob(UnownedJob(job)))
    }

    /// The executor as Swift's concurrency runtime refers to it.
    package func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Traps unless the calling thread is running the loop (for `assumeIsolated`).
    package func checkIsolated() {
        checkUsage(sink.isCurrent, "expected to run on this loop's thread, inside its run()")
    }
}

extension LoopWorkQueue {
    /// Whether other threads have submitted work the loop has not taken yet.
    ///
    /// Sequentially consistent: a loop that raises its "about to sleep" flag
    /// and then finds this false may sleep, because the submitter will see the
    /// flag (see ``submit(_:wake:)``).
    package var hasSubmittedWork: Bool { maybeSubmitted.load(ordering: .sequentiallyConsistent) }
}
