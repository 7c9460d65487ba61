import CLinux
import EventCore
import Glibc

/// A readiness watch of an ``EpollLoop``.
public final class IOWatch: IOWatching {
    /// What a watch calls.
    enum Target {
        case closure((IOWatch, Interest) -> Void)
        case handler(any ReadinessHandler)
        /// Cancelled, or its loop closed: the closure or handler is let go.
        case released
    }

    // The order of the stored properties is the layout: 17 bytes of target,
    // then the descriptor and interest in its padding (56 bytes in all, one
    // 64-byte malloc chunk per watch).
    private(set) var target: Target
    /// The descriptor watched (its number).
    let fd: Int32
    /// What the watch waits for; empty pauses it. Setting it takes effect at
    /// once; a watch whose descriptor was closed meanwhile is cancelled and
    /// receives ``/EventCore/Interest/error`` (``setInterest(_:)`` throws instead).
    public var interest: Interest {
        get { currentInterest }
        set {
            do {
                try setInterest(newValue)
            } catch {
                // Retired by the loop, which sends the error.
            }
        }
    }
    private var currentInterest: Interest
    /// The loop the watch is registered with; nil once cancelled (or the loop is gone).
    public internal(set) unowned(unsafe) var loop: EpollLoop?

    init(fd: Int32, interest: Interest, loop: EpollLoop, target: Target) {
        self.target = target
        self.fd = fd
        currentInterest = interest
        self.loop = loop
    }

    /// The descriptor watched.
    public var descriptor: FileDescriptor { FileDescriptor(rawValue: fd) }

    /// Whether the watch is registered.
    public var isActive: Bool { loop.map { $0.selector.key(for: fd)?.data === self } ?? false }

    /// Sets ``interest``.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` naming the descriptor if epoll
    ///   no longer knows it (it was closed under the watch); the watch is
    ///   then cancelled, and its callback receives ``/EventCore/Interest/error``
    ///   in the next iteration.
    public func setInterest(_ interest: Interest) throws(EventLoopError) {
        guard interest != currentInterest else { return }
        currentInterest = interest
        guard let loop else { return }
        try loop.update(self)
    }

    /// Unregisters the watch and lets go of its closure or handler; call
    /// before closing the descriptor. Harmless when done already.
    public func cancel() {
        loop?.cancel(self)
        loop = nil
        release()
    }

    /// Lets go of the closure or handler (the loop closed).
    func release() { target = .released }

    func invalidate() { loop = nil }

    func dispatch(_ events: Interest) {
        switch target {
        case .closure(let callback): callback(self, events)
        case .handler(let handler): handler.ready(events)
        case .released: break
        }
    }
}
