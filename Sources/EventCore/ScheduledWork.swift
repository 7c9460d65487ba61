import Synchronization

/// Work scheduled on a loop from any thread (``EventLoopExecutor/schedule(after:_:)``),
/// and the `Sendable` handle that cancels it from any thread and tells what
/// became of it.
///
/// Cancelling before the work has started guarantees it never runs (an
/// atomic decides between the two); the loop's timer is then removed on the
/// loop's thread. Work the loop drops because it closes first is
/// ``Outcome/dropped``, never silently lost.
public final class ScheduledWork: Sendable {
    /// What became of the work.
    public enum Outcome: UInt8, Sendable, Equatable {
        /// Not run yet; it may still run, be cancelled or be dropped.
        case pending
        /// ``cancel()`` won: it never runs.
        case cancelled
        /// It has started (or run) on the loop.
        case started
        /// The loop closed before the work was due; it never runs.
        case dropped
    }

    private let state = Atomic<UInt8>(Outcome.pending.rawValue)
    /// Removes the loop's timer (set on the loop once the timer exists).
    private let removal = LockedValue<(@Sendable () -> Void)?>(nil)

    package init() {}

    /// What became of the work, so far.
    public var outcome: Outcome { Outcome(rawValue: state.load(ordering: .acquiring))! }

    /// Cancels the work unless it has started or been dropped; harmless
    /// twice, from any thread.
    ///
    /// - Returns: true if this call cancelled it (it will never run).
    @discardableResult
    public func cancel() -> Bool {
        guard settle(.cancelled) else { return false }
        takeRemoval()?()
        return true
    }

    /// The removal, let go of: it holds the loop's timer, whose closure holds
    /// this handle - a cycle that must end when the work runs or is cancelled.
    private func takeRemoval() -> (@Sendable () -> Void)? {
        removal.withLock { removal in
            defer { removal = nil }
            return removal
        }
    }

    /// Moves a pending work to `outcome`, once; false if it was settled already.
    private func settle(_ outcome: Outcome) -> Bool {
        state.compareExchange(expected: Outcome.pending.rawValue, desired: outcome.rawValue,
                              ordering: .acquiringAndReleasing).exchanged
    }

    /// Whether ``cancel()`` won: the work will not run.
    public var isCancelled: Bool { outcome == .cancelled }

    /// Claims the right to run, once; false if it was cancelled or dropped (loop thread).
    package func claimRun() -> Bool {
        let claimed = settle(.started)
        if claimed { _ = takeRemoval() }
        return claimed
    }

    /// The loop is gone, or closing, before the work ran: it never will.
    package func drop() {
        if settle(.dropped) { _ = takeRemoval() }
    }

    /// Sets how the loop's timer is removed; removes it at once if the work
    /// was cancelled meanwhile.
    package func setRemoval(_ remove: @escaping @Sendable () -> Void) {
        removal.withLock { $0 = remove }
        if isCancelled { takeRemoval()?() }
    }
}

/// Held by the closure of a scheduled work's timer: when the loop lets go
/// of the timer without running it (its teardown drops every timer), the
/// work is ``ScheduledWork/Outcome/dropped``. After a run or a cancel the
/// handle is settled already, and this does nothing.
final class DropNotice: Sendable {
    let handle: ScheduledWork
    init(_ handle: ScheduledWork) { self.handle = handle }
    deinit { handle.drop() }
}
