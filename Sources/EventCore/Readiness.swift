/// Readiness waits on one descriptor, on either loop: the primitive every
/// ``AsyncSocket`` operation is built on, and the hot path of async io, so it
/// does not use the generic ``Suspension`` (an object and two closures per
/// await): it keeps at most one continuation per direction itself, and
/// registers with the loop's pending awaits (so the loop's destruction can
/// end them) only while one is pending.
///
/// Its watch is armed at the first wait and stays armed while waits keep
/// coming (no system call per wait); when it fires with nobody waiting, it
/// drops that interest then - the "lazy disarm" SwiftNIO and asyncio's
/// selector loop use. ``cancel()`` removes it before the descriptor is closed.
///
/// All of its state lives on the loop's thread: a wait from a task that runs
/// elsewhere is begun by a job on the loop, and resumed from there.
package final class Readiness<L: EventLoop>: PendingWait, DescriptorReadiness {
    private let executor: LoopExecutorCore<L>
    private let fd: Int32
    private var watch: L.Watch?
    private var reader: Waiting?
    private var writer: Waiting?
    private var isRegistered = false
    private var isCancelled = false
    /// The directions whose waiter the watch resumed and that have not fired
    /// since: the first firing with nobody waiting keeps the interest (see `fired`).
    private var justResumed: Interest = []

    /// A pending wait: its continuation, and the timer of its deadline, if any.
    private struct Waiting {
        var continuation: UnsafeContinuation<Void, any Error>
        var deadline: (any Cancellable)?
    }

    package init(executor: LoopExecutorCore<L>, fd: Int32) {
        self.executor = executor
        self.fd = fd
    }

    deinit {
        watch?.cancel()
    }

    package nonisolated(nonsending) func waitReadable() async throws { try await wait(write: false) }
    package nonisolated(nonsending) func waitWritable() async throws { try await wait(write: true) }

    nonisolated(nonsending) private func wait(write: Bool) async throws {
        let deadline = Deadline.current
        let executor = self.executor
        // Checked on the loop's thread, where every use of it is.
        let bound = LoopBound(unchecked: self, loop: executor)
        try await withCancellableContinuation { continuation in
            let cancelled = Task.isCancelled
            if executor.isCurrent {
                begin(write: write, continuation, deadline, cancelled: cancelled)
            } else {
                do throws(EventLoopError) {
                    try executor.execute { bound.value.begin(write: write, continuation, deadline, cancelled: cancelled) }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            // Cancellation is sticky: if this arrives after the wait has ended
            // and another has begun, that one would be cancelled anyway.
            executor.onLoop({ bound.value.end(write: write, .failure(CancellationError())) }, failed: { _ in })
        }
    }

    /// Starts a wait (loop thread).
    /// - Parameter cancelled: whether the task was cancelled when it began to
    ///   wait: a cancellation that came before this point found no wait to
    ///   end; it is sticky, so look again now (one from another thread comes later, as a job).
    private func begin(write: Bool, _ continuation: UnsafeContinuation<Void, any Error>, _ deadline: Deadline?, cancelled: Bool) {
        guard !cancelled else { return continuation.resume(throwing: CancellationError()) }
        guard !isCancelled else { return continuation.resume(throwing: closedError) }
        guard let loop = executor.loopForAwaits else { return continuation.resume(throwing: EventLoopError.loopClosed) }
        let remaining = deadline?.remaining ?? 1
        if let deadline, remaining <= 0 {
            return continuation.resume(throwing: deadline.error)
        }
        checkUsage((write ? writer : reader) == nil, "two tasks wait on descriptor \(fd) for the same readiness (one reader and one writer at a time)")
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
        // unowned(unsafe): the timer is cancelled in `end` before this wait can finish.
        waiting.deadline = loop.schedule(after: LoopTime.duration(remaining)) { [unowned(unsafe) self] in
            end(write: write, .failure(deadline.error))
        }
        if write { writer = waiting } else { reader = waiting }
    }

    /// Ends the wait for one direction, once (loop thread); later calls do nothing.
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

    /// What a wait on a descriptor closed under it (or after ``cancel()``) gets.
    private var closedError: EventLoopError {
        EventLoopError(.descriptorClosed, descriptor: FileDescriptor(rawValue: fd))
    }

    /// The loop is being destroyed.
    override package func fail(_ error: any Error) {
        end(write: false, .failure(error))
        end(write: true, .failure(error))
    }

    /// Makes sure the watch waits for `interest` (among others).
    private func arm(_ loop: L, _ interest: Interest) throws {
        if let watch {
            let current = watch.interest
            if !current.isSuperset(of: interest) { try watch.setInterest(current.union(interest)) }
        } else {
            // unowned(unsafe): the watch is this object's, and is cancelled in
            // `cancel` and `deinit`, so its callback never outlives the object.
            watch = try loop.watchReadiness(FileDescriptor(rawValue: fd), interest) { [unowned(unsafe) self] events in fired(events) }
        }
    }

    /// What the watch saw. `.error` alone means the descriptor went bad
    /// under the watch (closed, or reused); with `.read` or `.write` it wakes
    /// those waiters, whose next call reports the error.
    private func fired(_ events: Interest) {
        guard let watch else { return }
        if events.contains(.error) && events.isDisjoint(with: [.read, .write]) {
            end(write: false, .failure(closedError))
            end(write: true, .failure(closedError))
            return
        }
        // Read first, then write (left to right).
        let unwanted = settle(.read, write: false, events).union(settle(.write, write: true, events))
        // Lazy disarm: keep the interest of a waiter just resumed - it is likely
        // to wait again soon, and may need one more turn of the loop to get
        // there (a task resumed onto an actor is queued twice: the loop polls
        // once more first, and level-triggered readiness fires again with
        // nobody waiting); drop an interest that fires a second time with
        // nobody waiting. Disarming at the first cost an actor on the loop an
        // epoll_ctl pair and an fstat per wait (issue 14's actor row).
        if !unwanted.isEmpty {
            disarms += 1
            watch.interest = watch.interest.subtracting(unwanted)
        }
    }

    /// One direction of what the watch saw: wakes its waiter, or forgives
    /// one firing after a waiter was resumed (see `fired`); returns the
    /// direction if its interest should be dropped.
    private func settle(_ direction: Interest, write: Bool, _ events: Interest) -> Interest {
        guard events.contains(direction) else { return [] }
        if (write ? writer : reader) != nil {
            end(write: write, .success(()))
            justResumed.insert(direction)
            return []
        }
        if justResumed.contains(direction) {
            justResumed.remove(direction)
            return []
        }
        return direction
    }

    /// What the watch waits for now (tests).
    package var armedInterest: Interest { watch?.interest ?? [] }
    /// How often an interest was dropped for firing with nobody waiting (tests).
    package private(set) var disarms = 0

    package func cancel() {
        let bound = LoopBound(unchecked: self, loop: executor)
        executor.onLoop({ bound.value.cancelOnLoop() }, failed: { _ in })
    }

    private func cancelOnLoop() {
        guard !isCancelled else { return }
        isCancelled = true
        end(write: false, .failure(closedError))
        end(write: true, .failure(closedError))
        watch?.cancel()
        watch = nil
    }
}
