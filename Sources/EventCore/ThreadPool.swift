import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A bounded pool of threads for the blocking work an event loop must not
/// do - a file read or write, a database driver's call, a long computation:
/// asyncio's `run_in_executor`, SwiftNIO's `NIOThreadPool`, gevent's
/// threadpool. The loop goes on serving while a pool thread blocks.
///
/// ```swift
/// let pool = ThreadPool(threads: 4)
/// let bytes = try await pool.run { try readWholeFile(path) }   // the task resumes on its loop
/// ```
///
/// - ``run(_:)`` hands the work to a pool thread and suspends the calling
///   task; the result resumes it on its own executor - the loop's, for a
///   task on the loop - so the code after the await runs on the loop again.
/// - ``submit(_:deliveringTo:_:)`` is the callback form: the result is handed
///   to a closure on the loop's thread, with the loop.
///
/// At most `threads` pieces of work run at once; the rest wait in order
/// (submitting 10,000 at once is fine: they queue). Work cancelled before it
/// starts never runs; work that has started runs to its end (a blocking
/// call cannot be interrupted), and ``run(_:)`` then returns its result.
/// After ``shutdown(cancellingPending:)`` new work is refused with
/// ``EventLoopError/Code/loopClosed`` (the pool is closed to work).
///
/// Threads start when work first needs them and live until ``shutdown(cancellingPending:)``
/// (or the pool's last reference goes, which shuts it down).
public final class ThreadPool: Sendable {
    /// The most threads the pool runs.
    public let threadLimit: Int
    private let queue: PoolQueue

    /// A pool of at most `threads` threads (at least one).
    ///
    /// - Parameters:
    ///   - threads: the most threads the pool runs at once; they start as work comes.
    ///   - stackSize: each thread's stack in bytes; nil for the system's default.
    public init(threads: Int = 2, stackSize: Int? = nil) {
        threadLimit = max(threads, 1)
        queue = PoolQueue(threadLimit: threadLimit, stackSize: stackSize)
    }

    deinit { queue.shutdown(cancellingPending: false, join: true) }

    /// Runs `work` on a pool thread and returns what it returns, suspending
    /// the calling task meanwhile; the task resumes on its own executor.
    ///
    /// - Throws: what `work` throws; `CancellationError` if the task is
    ///   cancelled before the work starts (it then never runs);
    ///   ``EventLoopError/Code/timedOut`` when the task's deadline
    ///   (``withTimeout(_:_:)``) passes first - work not yet started then
    ///   never runs, work running runs on and its result is dropped;
    ///   ``EventLoopError`` (``EventLoopError/Code/loopClosed``) if the pool
    ///   is shut down (or shuts down with `cancellingPending` before the
    ///   work starts).
    public func run<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        try Task.checkCancellation()
        try Deadline.checkCurrent()
        let job = PoolJob()
        let queue = self.queue
        let deadline = Deadline.current
        // Suspends where the caller runs (its actor, or the loop it prefers);
        // the pool thread's resume sends the task back there.
        return try await withCancellableContinuation { (continuation: UnsafeContinuation<Result, any Error>) in
            let once = ResumeOnce(continuation)
            job.body = { outcome in
                switch outcome {
                case .run: once.resume(with: Swift.Result { try work() })
                case .cancelled: once.resume(with: .failure(CancellationError()))
                case .refused: once.resume(with: .failure(ThreadPool.shutDownError))
                }
            }
            queue.enqueue(job)
            // The task's deadline (withTimeout) ends the await: work not yet
            // started never runs; work running runs on, its result dropped
            // (a blocking call cannot be interrupted), as asyncio's wait_for
            // around run_in_executor does.
            if let deadline {
                let delay = Duration.nanoseconds(Int64(max(deadline.remaining, 0) * 1e9))
                let expire: @Sendable () -> Void = {
                    if once.resume(with: .failure(deadline.error)) { queue.cancel(job) }
                }
                // A task on a loop is timed by its loop (the global executor's
                // threads may all be busy running loops); another by a sleep.
                if let loop = CurrentLoop.currentExecutor, let timer = try? loop.schedule(after: delay, { _ in expire() }) {
                    once.whenResumed { timer.cancel() }
                } else {
                    let timer = Task.detached {
                        try await Task.sleep(for: delay)
                        expire()
                    }
                    once.whenResumed { timer.cancel() }
                }
            }
        } onCancel: {
            queue.cancel(job)
        }
    }

    /// Runs `work` on a pool thread, then `completion` with its result on
    /// the loop of `executor`, handed the loop: the callback form of ``run(_:)``.
    ///
    /// - Returns: a handle that cancels the work if it has not started.
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/loopClosed``) if the pool is shut down.
    @discardableResult
    public func submit<Result: Sendable, Executor: EventLoopExecutor>(
        _ work: @escaping @Sendable () throws -> Result, deliveringTo executor: Executor,
        _ completion: @escaping @Sendable (Executor.Loop, Swift.Result<Result, any Error>) -> Void
    ) throws(EventLoopError) -> PoolWork {
        let job = PoolJob()
        job.body = { outcome in
            let result: Swift.Result<Result, any Error>
            switch outcome {
            case .run: result = Swift.Result { try work() }
            case .cancelled: result = .failure(CancellationError())
            case .refused: result = .failure(ThreadPool.shutDownError)
            }
            // A closed loop takes nothing: the result has nowhere to go.
            try? executor.execute { loop in completion(loop, result) }
        }
        guard queue.enqueue(job, refusingWhenShutDown: true) else { throw ThreadPool.shutDownError }
        return PoolWork(job: job, queue: queue)
    }

    /// Stops taking work and ends the threads once the queue is done.
    ///
    /// - Parameter cancellingPending: end the work that has not started with
    ///   ``EventLoopError/Code/loopClosed`` instead of running it. Work already
    ///   running runs to its end either way.
    ///
    /// Waits for the threads; call it from outside the pool's own work.
    public func shutdown(cancellingPending: Bool = false) {
        queue.shutdown(cancellingPending: cancellingPending, join: true)
    }

    /// Work queued or running now (tests, metrics).
    public var pendingCount: Int { queue.pendingCount }

    /// What work gets from a pool that was shut down.
    static let shutDownError = EventLoopError(.loopClosed, operation: "ThreadPool", detail: "the pool is shut down and takes no work")
}

/// Submitted work of a ``ThreadPool``: cancels it unless it has started.
public struct PoolWork: Sendable {
    fileprivate let job: PoolJob
    fileprivate let queue: PoolQueue

    /// Cancels the work if it has not started: it never runs, and its
    /// completion gets `CancellationError`. Harmless when started or done.
    ///
    /// - Returns: true if this call cancelled it.
    @discardableResult
    public func cancel() -> Bool { queue.cancel(job) }
}

/// One piece of work: its body, told how it ends (run, cancelled, refused).
final class PoolJob: @unchecked Sendable {
    // Sendable because `body` is written once, before the job is handed to
    // the queue (whose lock publishes it), and then used only by the one
    // thread that took the job out of the queue under that lock (the worker
    // that runs it, a `cancel` that unlinked it, a shutdown that refused it)
    // or, for a job the queue refused, by the submitter that still holds it
    // alone; `next`, `previous` and `isQueued` are touched only under the
    // queue's lock.
    enum Outcome { case run, cancelled, refused }
    var body: (Outcome) -> Void = { _ in }
    var next: PoolJob?
    unowned(unsafe) var previous: PoolJob?
    var isQueued = false
}

/// The queue and threads behind a ``ThreadPool``: a doubly linked list of
/// jobs (cancelling one is constant time) under a pthread mutex, and a
/// condition variable the idle threads wait on.
final class PoolQueue: @unchecked Sendable {
    // Sendable because every stored var is touched only with `mutex` held
    // (`first`, `last`, `count`, `running`, `idle`, `threads`, `isShutDown`),
    // and the rest are immutable.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let threadLimit: Int
    private let stackSize: Int?
    private var first: PoolJob?
    private unowned(unsafe) var last: PoolJob?
    private var count = 0
    private var running = 0
    private var idle = 0
    private var threads: [PlainThread] = []
    private var isShutDown = false

    init(threadLimit: Int, stackSize: Int?) {
        self.threadLimit = threadLimit
        self.stackSize = stackSize
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    var pendingCount: Int { locked { count + running } }

    /// Queues `job` (starting a thread if none is idle and the limit allows);
    /// a shut-down pool refuses it - through its body, or by returning false.
    @discardableResult
    func enqueue(_ job: PoolJob, refusingWhenShutDown: Bool = false) -> Bool {
        let accepted: Bool = locked {
            guard !isShutDown else { return false }
            job.previous = last
            if let last { last.next = job } else { first = job }
            last = job
            job.isQueued = true
            count += 1
            if idle > 0 {
                pthread_cond_signal(condition)
            } else if threads.count < threadLimit, let thread = try? PlainThread(stackSize: stackSize, { [self] in work() }) {
                threads.append(thread)
            }
            return true
        }
        if !accepted && !refusingWhenShutDown { job.body(.refused) }
        return accepted
    }

    /// Takes `job` out if it has not started, and ends it as cancelled.
    @discardableResult
    func cancel(_ job: PoolJob) -> Bool {
        let removed = locked { unlink(job) }
        if removed { job.body(.cancelled) }
        return removed
    }

    /// Unlinks a queued job (lock held); false if it was not queued.
    private func unlink(_ job: PoolJob) -> Bool {
        guard job.isQueued else { return false }
        if let previous = job.previous { previous.next = job.next } else { first = job.next }
        if let next = job.next { next.previous = job.previous } else { last = job.previous }
        job.next = nil
        job.previous = nil
        job.isQueued = false
        count -= 1
        return true
    }

    /// A pool thread: takes jobs in order until the pool is shut down and empty.
    private func work() {
        while true {
            let job: PoolJob? = locked {
                while first == nil && !isShutDown {
                    idle += 1
                    pthread_cond_wait(condition, mutex)
                    idle -= 1
                }
                guard let job = first else { return nil }
                _ = unlink(job)
                running += 1
                return job
            }
            guard let job else { return }
            job.body(.run)
            job.body = { _ in } // let go of what the work held, now
            locked { running -= 1 }
        }
    }

    func shutdown(cancellingPending: Bool, join: Bool) {
        let (cancelled, toJoin): ([PoolJob], [PlainThread]) = locked {
            isShutDown = true
            var cancelled: [PoolJob] = []
            if cancellingPending {
                while let job = first {
                    _ = unlink(job)
                    cancelled.append(job)
                }
            }
            pthread_cond_broadcast(condition)
            let toJoin = threads
            threads = []
            return (cancelled, toJoin)
        }
        for job in cancelled { job.body(.refused) }
        if join { toJoin.forEach { $0.join() } }
    }
}

/// A continuation that the first of several parties resumes (the pool's
/// thread, or the deadline's timer); the others find it done.
final class ResumeOnce<Value: Sendable>: Sendable {
    private struct State {
        var continuation: UnsafeContinuation<Value, any Error>?
        var onResume: (@Sendable () -> Void)?
    }
    private let state: LockedValue<State>

    init(_ continuation: UnsafeContinuation<Value, any Error>) {
        state = LockedValue(State(continuation: continuation))
    }

    /// Runs `action` once the continuation has been resumed (at once if it has).
    func whenResumed(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.continuation == nil { return true }
            state.onResume = action
            return false
        }
        if now { action() }
    }

    /// Resumes with `result` unless another party did first.
    /// - Returns: whether this call resumed it.
    @discardableResult
    func resume(with result: Result<Value, any Error>) -> Bool {
        let (continuation, onResume) = state.withLock { state in
            defer { state.continuation = nil; state.onResume = nil }
            return (state.continuation, state.onResume)
        }
        guard let continuation else { return false }
        continuation.resume(with: result)
        onResume?()
        return true
    }
}
