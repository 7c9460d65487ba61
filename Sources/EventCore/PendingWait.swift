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


/// A ``Connection`` or ``Listener`` in its loop's list of what closes with
/// it: told once, when the loop closes, unless it left the list first.
package protocol ClosesWithLoop: AnyObject {
    /// The loop is closing: close, telling the owner `error`.
    func loopClosing(_ error: EventLoopError)
}

/// The node of a ``ClosesWithLoop`` object in its loop's
/// ``LoopExecutorCore/closables`` (an object of its own: a public class
/// cannot subclass ``PendingWait``).
package final class LoopCloseObserver: PendingWait {
    private weak var owner: (any ClosesWithLoop)?

    /// Enters `owner` in the list of `loop`'s executor (both loops' executor
    /// is a ``LoopExecutorCore``; another executor has no such list).
    package init?<L: EventLoop>(_ owner: any ClosesWithLoop, on loop: L) {
        guard let executor = loop.executor as? LoopExecutorCore<L> else { return nil }
        self.owner = owner
        self.list = executor.closables
        super.init()
        executor.closables.insert(self)
    }

    private weak var list: PendingWaitList?

    /// Leaves the list (the owner closed by itself).
    package func leave() {
        list?.remove(self)
        list = nil
    }

    override package func fail(_ error: any Error) {
        leave()
        owner?.loopClosing(error as? EventLoopError ?? .loopClosed)
    }
}
