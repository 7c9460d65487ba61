import EventCore
import Glibc

// The async awaits of the epoll loop: the same surface and the same rules as
// the libev loop's (EV/Awaits.swift). Each arms a watch or a timer on the
// loop's thread and resumes exactly once: on the event; with
// CancellationError when the task is cancelled (the watch is removed at once,
// on the loop's thread); with TimeoutError at the `withTimeout` deadline;
// with EpollError.loopClosed when the loop is destroyed.

/// One await on the epoll loop, resumed exactly once.
final class EpollSuspension<Value: Sendable>: PendingWait, @unchecked Sendable {
    // Sendable only so the task's cancellation handler can capture it; every
    // stored property is touched on the loop's thread alone (a cancellation
    // from another thread submits `cancelOnLoop` as a job, which the loop runs
    // after `begin`).
    private enum State {
        case new, cancelledEarly, finished
        case waiting(UnsafeContinuation<Value, any Error>)
    }

    private var state = State.new
    let executor: EpollExecutor
    /// Stops what `arm` started; called once, when the suspension finishes.
    var cleanup: (() -> Void)?
    private var deadlineTimer: LoopTimer?

    init(executor: EpollExecutor) { self.executor = executor }

    func begin(_ continuation: UnsafeContinuation<Value, any Error>, deadline: Deadline?, cancelled: Bool,
               arm: (EpollSuspension<Value>, EpollLoop) throws -> Void) {
        guard case .new = state, !cancelled else {
            state = .finished
            return continuation.resume(throwing: CancellationError())
        }
        guard let loop = executor.loop, !loop.isClosing else {
            state = .finished
            return continuation.resume(throwing: EpollError.loopClosed)
        }
        state = .waiting(continuation)
        executor.waits.insert(self)
        do { try arm(self, loop) } catch { return finish(.failure(error)) }
        guard case .waiting = state, let deadline else { return }
        guard deadline.remaining > 0 else { return finish(.failure(TimeoutError(seconds: deadline.timeout))) }
        // unowned(unsafe): the timer is cancelled in `finish`, before this object can go.
        deadlineTimer = loop.callLater(deadline.remaining) { [unowned(unsafe) self] in
            finish(.failure(TimeoutError(seconds: deadline.timeout)))
        }
    }

    func finish(_ result: Result<Value, any Error>) {
        guard case .waiting(let continuation) = state else { return }
        state = .finished
        executor.waits.remove(self)
        deadlineTimer?.cancel()
        deadlineTimer = nil
        let cleanup = self.cleanup
        self.cleanup = nil
        cleanup?()
        continuation.resume(with: result)
    }

    override func fail(_ error: any Error) { finish(.failure(error)) }

    func cancel() {
        if executor.isCurrent { cancelOnLoop() } else { try? executor.execute { self.cancelOnLoop() } }
    }

    private func cancelOnLoop() {
        switch state {
        case .new: state = .cancelledEarly
        case .waiting: finish(.failure(CancellationError()))
        case .cancelledEarly, .finished: break
        }
    }
}

/// A value that only the loop's thread uses, carried there by a job.
struct LoopBound<Value>: @unchecked Sendable {
    // Sendable because it is created by a task and then used only on the
    // loop's thread, while that task waits, suspended, for the loop to resume it.
    let value: Value
    init(_ value: Value) { self.value = value }
}

extension EpollExecutor {
    /// Suspends the current task until `arm`'s watches finish the suspension
    /// (or the deadline, cancellation or the loop's destruction does). `arm`
    /// runs on the loop's thread: at once from a task on the loop, otherwise
    /// as a job while the task waits where it is.
    nonisolated(nonsending) func suspend<Value: Sendable>(
        deadline: Deadline? = Deadline.current,
        _ arm: @escaping (EpollSuspension<Value>, EpollLoop) throws -> Void
    ) async throws -> Value {
        let suspension = EpollSuspension<Value>(executor: self)
        let job = LoopBound(arm)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                let cancelled = Task.isCancelled
                if isCurrent {
                    suspension.begin(continuation, deadline: deadline, cancelled: cancelled, arm: job.value)
                } else {
                    do {
                        try execute { suspension.begin(continuation, deadline: deadline, cancelled: cancelled, arm: job.value) }
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            suspension.cancel()
        }
    }

    /// Suspends for `seconds` (0 yields to everything else ready now, io included).
    public func sleep(seconds: Double) async throws {
        guard seconds.isFinite else { throw TimeoutError(seconds: seconds) }
        try await suspend { (suspension: EpollSuspension<Void>, loop) in
            let timer = loop.callLater(seconds) { suspension.finish(.success(())) }
            suspension.cleanup = { timer.cancel() }
        }
    }

    /// Suspends for `duration`.
    public func sleep(for duration: Duration) async throws {
        let (seconds, attoseconds) = duration.components
        try await sleep(seconds: Double(seconds) + Double(attoseconds) / 1e18)
    }

    /// Lets every other ready task, callback and io event run before going on.
    public func yield() async throws {
        try await sleep(seconds: 0)
    }

    /// Waits until `fd` can be read without blocking (one watch per call;
    /// ``readiness(for:)`` keeps one armed between waits).
    public func readable(_ fd: Int32) async throws {
        try await waitForIO(fd, .read)
    }

    /// Waits until `fd` can be written without blocking.
    public func writable(_ fd: Int32) async throws {
        try await waitForIO(fd, .write)
    }

    private func waitForIO(_ fd: Int32, _ interest: Interest) async throws {
        try await suspend { (suspension: EpollSuspension<Void>, loop) in
            let watch = try loop.watch(fd, interest) { _, _ in suspension.finish(.success(())) }
            suspension.cleanup = { watch.cancel() }
        }
    }
}

extension EpollExecutor: AsyncEventLoop {
    /// Readiness waits on `fd` that keep one watch registered between waits
    /// (lazy disarm, as on the libev loop).
    public func readiness(for fd: Int32) -> any DescriptorReadiness {
        EpollReadiness(executor: self, fd: fd)
    }
}

/// Readiness waits on one descriptor, on the epoll loop. Like the libev
/// loop's: one watch, kept between waits, its interest dropped when it fires
/// with nobody waiting; at most one continuation per direction; all state
/// on the loop's thread.
final class EpollReadiness: PendingWait, DescriptorReadiness {
    private let executor: EpollExecutor
    private let fd: Int32
    private var watch: IOWatch?
    private var reader: Waiting?
    private var writer: Waiting?
    private var isRegistered = false
    private var isCancelled = false

    private struct Waiting {
        var continuation: UnsafeContinuation<Void, any Error>
        var deadline: LoopTimer?
    }

    init(executor: EpollExecutor, fd: Int32) {
        self.executor = executor
        self.fd = fd
    }

    deinit { watch?.cancel() }

    nonisolated(nonsending) func waitReadable() async throws { try await wait(write: false) }
    nonisolated(nonsending) func waitWritable() async throws { try await wait(write: true) }

    nonisolated(nonsending) private func wait(write: Bool) async throws {
        let deadline = Deadline.current
        let this = LoopBound(self)
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                let cancelled = Task.isCancelled
                if executor.isCurrent {
                    begin(write: write, continuation, deadline, cancelled: cancelled)
                } else {
                    do {
                        try executor.execute { this.value.begin(write: write, continuation, deadline, cancelled: cancelled) }
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            // Cancellation is sticky: ending a later wait by mistake ends one
            // that would be cancelled anyway.
            let readiness = this.value
            if readiness.executor.isCurrent {
                readiness.end(write: write, .failure(CancellationError()))
            } else {
                try? readiness.executor.execute { this.value.end(write: write, .failure(CancellationError())) }
            }
        }
    }

    private func begin(write: Bool, _ continuation: UnsafeContinuation<Void, any Error>, _ deadline: Deadline?, cancelled: Bool) {
        guard !cancelled else { return continuation.resume(throwing: CancellationError()) }
        guard !isCancelled else { return continuation.resume(throwing: DescriptorClosedError(fd: fd)) }
        guard let loop = executor.loop, !loop.isClosing else { return continuation.resume(throwing: EpollError.loopClosed) }
        precondition((write ? writer : reader) == nil, "Epoll: two tasks wait on descriptor \(fd) for the same readiness")
        var waiting = Waiting(continuation: continuation, deadline: nil)
        if write { writer = waiting } else { reader = waiting }
        if !isRegistered {
            isRegistered = true
            executor.waits.insert(self)
        }
        do {
            try arm(loop, write ? .write : .read)
        } catch {
            return end(write: write, .failure(error))
        }
        guard let deadline else { return }
        guard deadline.remaining > 0 else { return end(write: write, .failure(TimeoutError(seconds: deadline.timeout))) }
        // unowned(unsafe): the timer is cancelled in `end` before this wait can finish.
        waiting.deadline = loop.callLater(deadline.remaining) { [unowned(unsafe) self] in
            end(write: write, .failure(TimeoutError(seconds: deadline.timeout)))
        }
        if write { writer = waiting } else { reader = waiting }
    }

    private func end(write: Bool, _ result: Result<Void, any Error>) {
        guard let waiting = write ? writer : reader else { return }
        if write { writer = nil } else { reader = nil }
        waiting.deadline?.cancel()
        if isRegistered && reader == nil && writer == nil {
            isRegistered = false
            executor.waits.remove(self)
        }
        waiting.continuation.resume(with: result)
    }

    override func fail(_ error: any Error) {
        end(write: false, .failure(error))
        end(write: true, .failure(error))
    }

    private func arm(_ loop: EpollLoop, _ interest: Interest) throws {
        if let watch, watch.loop != nil {
            if !watch.interest.contains(interest) { watch.interest.formUnion(interest) }
        } else {
            // unowned(unsafe): the watch is this object's and is cancelled in
            // `cancel` and `deinit`, so its callback never outlives the object.
            watch = try loop.watch(fd, interest) { [unowned(unsafe) self] _, events in fired(events) }
        }
    }

    private func fired(_ events: Interest) {
        guard let watch else { return }
        if events.contains(.error) && !events.contains(.read) && !events.contains(.write) {
            end(write: false, .failure(DescriptorClosedError(fd: fd)))
            end(write: true, .failure(DescriptorClosedError(fd: fd)))
            return
        }
        var unwanted: Interest = []
        if events.contains(.read) {
            if reader != nil { end(write: false, .success(())) } else { unwanted.insert(.read) }
        }
        if events.contains(.write) {
            if writer != nil { end(write: true, .success(())) } else { unwanted.insert(.write) }
        }
        if !unwanted.isEmpty { watch.interest.subtract(unwanted) }
    }

    func cancel() {
        if executor.isCurrent {
            cancelOnLoop()
        } else {
            let this = LoopBound(self)
            try? executor.execute { this.value.cancelOnLoop() }
        }
    }

    private func cancelOnLoop() {
        guard !isCancelled else { return }
        isCancelled = true
        end(write: false, .failure(DescriptorClosedError(fd: fd)))
        end(write: true, .failure(DescriptorClosedError(fd: fd)))
        watch?.cancel()
        watch = nil
    }
}

extension EpollLoop {
    /// Runs `body` as a task on this loop, on the current thread, until it
    /// returns - asyncio's `run`. See `EV.Loop.run(_:)`; the same contract.
    public func run<T: Sendable>(_ body: sending @escaping (EpollExecutor) async throws -> T) throws -> T {
        precondition(runningThread == nil, "Epoll: run(_:) with a task cannot be called while the loop runs")
        let outcome = EpollRunOutcome<T>()
        let executor = self.executor
        keepAlive += 1
        defer { keepAlive -= 1 }
        Task(executorPreference: executor) {
            let result: Result<T, any Error>
            do { result = .success(try await body(executor)) } catch { result = .failure(error) }
            outcome.result = result
            executor.loop?.stop()
        }
        while outcome.result == nil { run() }
        return try outcome.result!.get()
    }
}

/// The result of an `EpollLoop.run(_:)` task, handed back to the thread running the loop.
private final class EpollRunOutcome<T: Sendable>: @unchecked Sendable {
    // Sendable because `result` is written by the task, on the loop's thread
    // (its executor preference), and read by `run` on that same thread.
    var result: Result<T, any Error>?
}
