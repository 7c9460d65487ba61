import Synchronization

/// Work scheduled on a loop from any thread (``EventLoopExecutor/schedule(after:_:)``),
/// and the `Sendable` handle that cancels it from any thread.
///
/// Cancelling before the work has started guarantees it never runs (an
/// atomic decides between the two); the loop's timer is then removed on the
/// loop's thread.
public final class ScheduledWork: Sendable {
    private static let waiting: UInt8 = 0, cancelled: UInt8 = 1, started: UInt8 = 2
    private let state = Atomic<UInt8>(ScheduledWork.waiting)
    /// Removes the loop's timer (set on the loop once the timer exists).
    private let removal = LockedValue<(@Sendable () -> Void)?>(nil)

    package init() {}

    /// Cancels the work unless it has started; harmless twice, from any thread.
    ///
    /// - Returns: true if this call cancelled it (it will never run).
    @discardableResult
    public func cancel() -> Bool {
        guard state.compareExchange(expected: Self.waiting, desired: Self.cancelled, ordering: .acquiringAndReleasing).exchanged else {
            return false
        }
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

    /// Whether ``cancel()`` won: the work will not run.
    public var isCancelled: Bool { state.load(ordering: .acquiring) == Self.cancelled }

    /// Claims the right to run, once; false if it was cancelled (loop thread).
    package func claimRun() -> Bool {
        let claimed = state.compareExchange(expected: Self.waiting, desired: Self.started, ordering: .acquiringAndReleasing).exchanged
        if claimed { _ = takeRemoval() }
        return claimed
    }

    /// Sets how the loop's timer is removed; removes it at once if the work
    /// was cancelled meanwhile.
    package func setRemoval(_ remove: @escaping @Sendable () -> Void) {
        removal.withLock { $0 = remove }
        if isCancelled { takeRemoval()?() }
    }
}
