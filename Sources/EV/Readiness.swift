import EventCore

extension LoopExecutor: AsyncEventLoop {
    /// Readiness waits on `fd` that keep one io watcher armed between waits.
    ///
    /// The watcher is armed at the first wait and stays armed while waits
    /// keep coming (no system call per wait); when it fires with nobody
    /// waiting, it drops that interest then - the "lazy disarm" SwiftNIO
    /// and asyncio's selector loop use too. ``DescriptorReadiness/cancel()``
    /// stops it before the descriptor is closed.
    public func readiness(for fd: Int32) -> any DescriptorReadiness {
        IOReadiness(executor: self, fd: fd)
    }
}

/// Readiness waits on one descriptor, on a libev loop.
///
/// The hot path of every socket operation, so it does not use the generic
/// ``Suspension`` (an object and two closures per await): the object keeps
/// at most one continuation per direction itself, and registers with the
/// executor (so the loop's destruction can end its waits) only while one is
/// pending. All of its state lives on the loop's thread: a wait from a task
/// that runs elsewhere is armed by a job on the loop, and resumed from there.
final class IOReadiness: PendingWait, DescriptorReadiness {
    private let executor: LoopExecutor
    private let fd: Int32
    private var watcher: IOWatcher?
    private var reader: Waiting?
    private var writer: Waiting?
    private var isRegistered = false
    private var isCancelled = false

    /// A pending wait: its continuation, and the timer of its deadline, if any.
    private struct Waiting {
        var continuation: UnsafeContinuation<Void, any Error>
        var deadline: TimerWatcher?
    }

    init(executor: LoopExecutor, fd: Int32) {
        self.executor = executor
        self.fd = fd
    }

    deinit {
        watcher?.stop()
    }

    nonisolated(nonsending) func waitReadable() async throws { try await wait(write: false) }
    nonisolated(nonsending) func waitWritable() async throws { try await wait(write: true) }

    nonisolated(nonsending) private func wait(write: Bool) async throws {
        let deadline = Deadline.current
        let this = LoopBound(self)
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                if executor.isCurrent {
                    begin(write: write, continuation, deadline, cancelled: Task.isCancelled)
                } else {
                    let cancelled = Task.isCancelled
                    do {
                        try executor.execute { this.value.begin(write: write, continuation, deadline, cancelled: cancelled) }
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            // Cancellation is sticky: if this arrives after the wait has ended
            // and another has begun, that one would be cancelled anyway.
            let readiness = this.value
            if readiness.executor.isCurrent {
                readiness.end(write: write, .failure(CancellationError()))
            } else {
                try? readiness.executor.execute { this.value.end(write: write, .failure(CancellationError())) }
            }
        }
    }

    /// Starts a wait (loop thread).
    /// - Parameter cancelled: whether the task was cancelled when it began to
    ///   wait: a cancellation that came before this point found no wait to
    ///   end; it is sticky, so look again now (one from another thread comes later, as a job).
    private func begin(write: Bool, _ continuation: UnsafeContinuation<Void, any Error>, _ deadline: Deadline?, cancelled: Bool) {
        guard !cancelled else { return continuation.resume(throwing: CancellationError()) }
        guard !isCancelled else { return continuation.resume(throwing: DescriptorClosedError(fd: fd)) }
        guard let core = executor.core, !core.isClosing, let loop = core.owner else {
            return continuation.resume(throwing: EVError.loopClosed)
        }
        precondition((write ? writer : reader) == nil, "EV: two tasks wait on descriptor \(fd) for the same readiness")
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
        let remaining = deadline.remaining
        guard remaining > 0 else { return end(write: write, .failure(TimeoutError(seconds: deadline.timeout))) }
        // unowned(unsafe): the timer is stopped in `end` before this wait can finish.
        let timer = try! loop.timerFromCurrentTime(after: remaining) { [unowned(unsafe) self] _ in
            end(write: write, .failure(TimeoutError(seconds: deadline.timeout)))
        }
        timer.start()
        waiting.deadline = timer
        if write { writer = waiting } else { reader = waiting }
    }

    /// Ends the wait for one direction, once (loop thread); later calls do nothing.
    private func end(write: Bool, _ result: Result<Void, any Error>) {
        guard let waiting = write ? writer : reader else { return }
        if write { writer = nil } else { reader = nil }
        waiting.deadline?.stop()
        if isRegistered && reader == nil && writer == nil {
            isRegistered = false
            executor.waits.remove(self)
        }
        waiting.continuation.resume(with: result)
    }

    /// The loop is being destroyed.
    override func fail(_ error: any Error) {
        end(write: false, .failure(error))
        end(write: true, .failure(error))
    }

    /// Makes sure the watcher waits for `events` (among others).
    private func arm(_ loop: Loop, _ events: Events) throws {
        if let watcher {
            if !watcher.isActive {
                try watcher.set(fd: fd, events: events)
                try watcher.start()
            } else if !watcher.events.contains(events) {
                watcher.events = watcher.events.union(events)
            }
        } else {
            // unowned(unsafe): the watcher is this object's, and is stopped in
            // `cancel` and `deinit`, so its callback never outlives the object.
            let watcher = IOWatcher(loop: loop, fd: fd, events: events) { [unowned(unsafe) self] _, events in
                fired(events)
            }
            try watcher.start()
            self.watcher = watcher
        }
    }

    private var hasReader: Bool { reader != nil }
    private var hasWriter: Bool { writer != nil }
    private func resumeReaders(_ result: Result<Void, any Error>) { end(write: false, result) }
    private func resumeWriters(_ result: Result<Void, any Error>) { end(write: true, result) }

    private func fired(_ events: Events) {
        guard let watcher else { return }
        if events.contains(.error) {
            // The descriptor went bad under the watcher (closed, or reused).
            resumeReaders(.failure(DescriptorClosedError(fd: fd)))
            resumeWriters(.failure(DescriptorClosedError(fd: fd)))
            return
        }
        var unwanted: Events = []
        if events.contains(.read) {
            if hasReader { resumeReaders(.success(())) } else { unwanted.insert(.read) }
        }
        if events.contains(.write) {
            if hasWriter { resumeWriters(.success(())) } else { unwanted.insert(.write) }
        }
        // Lazy disarm: keep the interest of a waiter just resumed (it is likely
        // to wait again at once); drop an interest that fired with nobody waiting.
        guard !unwanted.isEmpty else { return }
        let remaining = watcher.events.subtracting(unwanted)
        if remaining.isEmpty { watcher.stop() } else { watcher.events = remaining }
    }

    func cancel() {
        if executor.isCurrent {
            cancelOnLoop()
        } else {
            // The owning task runs elsewhere; the state is the loop's.
            let this = LoopBound(self)
            try? executor.execute { this.value.cancelOnLoop() }
        }
    }

    private func cancelOnLoop() {
        guard !isCancelled else { return }
        isCancelled = true
        resumeReaders(.failure(DescriptorClosedError(fd: fd)))
        resumeWriters(.failure(DescriptorClosedError(fd: fd)))
        watcher?.stop()
        watcher = nil
    }
}
