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
    /// The descriptor watched.
    public let fd: Int32
    /// What the watch waits for; empty pauses it. Setting it takes effect at once.
    public var interest: Interest {
        didSet {
            guard interest != oldValue, let loop else { return }
            loop.update(self)
        }
    }
    /// The loop the watch is registered with; nil once cancelled (or the loop is gone).
    public internal(set) unowned(unsafe) var loop: EpollLoop?

    init(fd: Int32, interest: Interest, loop: EpollLoop, target: Target) {
        self.target = target
        self.fd = fd
        self.interest = interest
        self.loop = loop
    }

    /// Whether the watch is registered.
    public var isActive: Bool { loop.map { $0.selector.key(for: fd)?.data === self } ?? false }

    /// Sets ``interest``; a watch whose descriptor went bad reports it with ``/EventCore/Interest/error``.
    public func setInterest(_ interest: Interest) throws {
        self.interest = interest
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
