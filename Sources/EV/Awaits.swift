import CLibev
import EventCore
import Glibc

// The async awaits of a libev loop. Each arms a watcher on the loop's thread
// and resumes exactly once: on the event; with `CancellationError` when the
// task is cancelled (the watcher is stopped at once, on the loop's thread);
// with `EventLoopError` when the `withTimeout` deadline passes or the loop
// is closed. Called from a task that
// is not on the loop, they move it there (task executor preference) first.

extension LoopExecutorCore where L == EV.Loop {
    /// Suspends until the wall clock (``Loop/now``'s) reaches `time`. It
    /// waits on an `ev_periodic`, which follows the real-time clock: if the
    /// clock is set forward past `time`, the sleep ends then; set back, it
    /// waits on until the clock reaches `time`. (A `sleep(for:)` counts
    /// elapsed time, whatever the clock says.)
    ///
    /// - Throws: as the other awaits.
    ///
    /// The corresponding C function is `ev_periodic_start`.
    public func sleep(until time: WallClock.Instant) async throws {
        try await suspend { (suspension: Suspension<Void, Loop>, loop) in
            let periodic = loop.periodic(at: time) { _ in suspension.finish(.success(())) }
            suspension.cleanup = { periodic.stop() }
        }
    }

    /// Waits for the next delivery of `signal`.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` for an invalid signal or one another loop owns, and as the other awaits.
    ///
    /// The corresponding C function is `ev_signal_start`.
    public func signal(_ signal: Int32) async throws {
        try await suspend { (suspension: Suspension<Void, Loop>, loop) in
            let watcher = try loop.signal(signal) { _ in suspension.finish(.success(())) }
            suspension.cleanup = { watcher.stop() }
        }
    }

    /// The deliveries of `signal`, as an async sequence; the watcher stays
    /// active while the sequence is iterated, so no delivery between two
    /// `next()` calls is lost (several may coalesce into one, as signals do).
    public func signals(_ signal: Int32) -> SignalSequence {
        SignalSequence(executor: self, signal: signal)
    }

    /// Waits until the child `pid` exits or is killed, and returns how.
    ///
    /// - Throws: ``/EventCore/EventLoopError/Code/childWatcherNeedsDefaultLoop`` unless this is the default loop's executor.
    ///
    /// The corresponding C function is `ev_child_start`.
    public func childExit(_ pid: pid_t) async throws -> ChildWatcher.Status {
        try await suspend { (suspension: Suspension<ChildWatcher.Status, Loop>, loop) in
            let watcher = try loop.child(pid) { watcher in suspension.finish(.success(watcher.status)) }
            suspension.cleanup = { watcher.stop() }
        }
    }

    /// The status changes of the child `pid`, as an async sequence: stopped
    /// and continued (traced) and, last, how it ended (exited or killed),
    /// after which the sequence ends. The watcher stays active while the
    /// sequence is iterated, so no change between two `next()` calls is lost.
    ///
    /// Only the default loop watches children (``/EventCore/EventLoopError/Code/childWatcherNeedsDefaultLoop``
    /// otherwise): run it on a thread of its own with `LoopThread.defaultLoop(setUp:)`.
    public func childStatuses(_ pid: pid_t) -> ChildStatusSequence {
        ChildStatusSequence(executor: self, pid: pid)
    }

    /// The changes of `path`'s attributes, as an async sequence of
    /// (previous, current) pairs; nil stands for "did not exist".
    ///
    /// - Parameters:
    ///   - path: the file or directory to watch; it need not exist yet.
    ///   - interval: the polling interval; zero lets libev choose.
    public func fileChanges(_ path: String, interval: Duration = .zero) -> FileChangeSequence {
        FileChangeSequence(executor: self, path: path, interval: interval)
    }
}

/// A watcher that stays active while an async sequence is iterated, queueing
/// what it sees until `next()` takes it.
final class PersistentWatch<Event: Sendable, Element> {
    // Used from one task at a time, on the loop's thread, like every watcher.
    private let executor: LoopExecutor
    private let element: (Event) -> Element
    private let start: (Loop, @escaping (Event) -> Void) throws -> Watcher
    private var watcher: Watcher?
    private var queued: [Event] = []
    private var waiting: Suspension<Event, Loop>?

    init(executor: LoopExecutor, element: @escaping (Event) -> Element,
         start: @escaping (Loop, @escaping (Event) -> Void) throws -> Watcher) {
        self.executor = executor
        self.element = element
        self.start = start
    }

    func next() async throws -> Element? {
        // Everything runs on the loop's thread, in `arm`: the watcher, the
        // queue and the waiting suspension are loop state.
        let event = try await executor.suspend { [unowned self] (suspension: Suspension<Event, Loop>, loop) in
            if watcher == nil { watcher = try start(loop) { [unowned self] event in deliver(event) } }
            if !queued.isEmpty {
                suspension.finish(.success(queued.removeFirst()))
                return
            }
            waiting = suspension
            suspension.cleanup = { [unowned self] in waiting = nil }
        }
        return element(event)
    }

    private func deliver(_ event: Event) {
        if let waiting { waiting.finish(.success(event)) } else { queued.append(event) }
    }

    deinit {
        if let watcher {
            // The iterator ends on the loop's thread in practice (its task runs
            // there); stop() is harmless if the loop is already gone.
            watcher.stop()
        }
    }
}
