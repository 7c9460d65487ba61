/// A pending await of a loop, in the loop's list of them, so that destroying
/// the loop can end it. Subclasses end their wait in ``fail(_:)``.
package class PendingWait {
    var next: PendingWait?
    unowned(unsafe) var previous: PendingWait?

    package init() {}

    /// Ends the await with `error` (the loop is being destroyed).
    package func fail(_ error: any Error) {}
}

/// A loop's pending awaits (loop thread only).
package final class PendingWaitList {
    private var first: PendingWait?

    package init() {}

    /// Whether any await is pending.
    package var isEmpty: Bool { first == nil }

    package func insert(_ wait: PendingWait) {
        wait.next = first
        first?.previous = wait
        first = wait
    }

    package func remove(_ wait: PendingWait) {
        if let previous = wait.previous { previous.next = wait.next } else if first === wait { first = wait.next }
        wait.next?.previous = wait.previous
        wait.previous = nil
        wait.next = nil
    }

    /// Ends every pending await with `error` (each removes itself as it ends).
    package func failAll(_ error: any Error) {
        while let wait = first {
            wait.fail(error)
            if first === wait { remove(wait) } // in case it did not
        }
    }
}

