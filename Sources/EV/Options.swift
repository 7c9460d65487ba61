import CLibev

// libev's constants, converted once into Swift option sets and enums.

/// The kernel interfaces a ``Loop`` can wait with.
///
/// Ask libev which exist on this machine with ``supported``, which it
/// recommends with ``recommended`` and which can be embedded into another
/// loop with ``embeddable``; ``Loop/backend`` tells which one a loop uses.
public struct Backend: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    /// Creates a set from libev's `EVBACKEND_*` bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `select(2)`: available everywhere, slow with many descriptors. `EVBACKEND_SELECT`.
    public static let select = Backend(rawValue: UInt32(EVBACKEND_SELECT))
    /// `poll(2)`. `EVBACKEND_POLL`.
    public static let poll = Backend(rawValue: UInt32(EVBACKEND_POLL))
    /// Linux `epoll(7)`, the usual choice here. `EVBACKEND_EPOLL`.
    public static let epoll = Backend(rawValue: UInt32(EVBACKEND_EPOLL))
    /// Linux AIO (4.19+); libev never picks it on its own. `EVBACKEND_LINUXAIO`.
    public static let linuxAIO = Backend(rawValue: UInt32(EVBACKEND_LINUXAIO))
    /// Linux `io_uring` (5.1+); libev never picks it on its own. `EVBACKEND_IOURING`.
    public static let ioUring = Backend(rawValue: UInt32(EVBACKEND_IOURING))
    /// BSD `kqueue`. `EVBACKEND_KQUEUE`.
    public static let kqueue = Backend(rawValue: UInt32(EVBACKEND_KQUEUE))
    /// Solaris 10 event ports. `EVBACKEND_PORT`.
    public static let port = Backend(rawValue: UInt32(EVBACKEND_PORT))

    /// The backends compiled into libev and usable on this system.
    ///
    /// The corresponding C function is `ev_supported_backends`.
    public static var supported: Backend { Backend(rawValue: ev_supported_backends()) }

    /// The backends libev recommends on this system: those it picks when asked for none.
    ///
    /// The corresponding C function is `ev_recommended_backends`.
    public static var recommended: Backend { Backend(rawValue: ev_recommended_backends()) }

    /// The backends whose loops can be embedded into another loop with ``EmbedWatcher``.
    ///
    /// The corresponding C function is `ev_embeddable_backends`.
    public static var embeddable: Backend { Backend(rawValue: ev_embeddable_backends()) }

    private static let names: [(Backend, String)] = [
        (.select, "select"), (.poll, "poll"), (.epoll, "epoll"), (.linuxAIO, "linuxaio"),
        (.ioUring, "io_uring"), (.kqueue, "kqueue"), (.port, "port"),
    ]

    /// The backends' names, `"epoll"` or `"poll|epoll"`; `"none"` for the empty set.
    public var description: String {
        let parts = Self.names.filter { contains($0.0) }.map(\.1)
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }
}

/// Options for creating a ``Loop``, beside its backend.
public struct LoopFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    /// Creates a set from libev's `EVFLAG_*` bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Ignore the `LIBEV_FLAGS` environment variable. `EVFLAG_NOENV`.
    public static let noEnvironment = LoopFlags(rawValue: UInt32(EVFLAG_NOENV))
    /// Check for a fork in each iteration (a `getpid()` call) and reinitialise
    /// the loop in the child on its own. `EVFLAG_FORKCHECK`.
    public static let forkCheck = LoopFlags(rawValue: UInt32(EVFLAG_FORKCHECK))
    /// Never use inotify for ``StatWatcher``s; poll instead. `EVFLAG_NOINOTIFY`.
    public static let noInotify = LoopFlags(rawValue: UInt32(EVFLAG_NOINOTIFY))
    /// Receive signals through `signalfd`. `EVFLAG_SIGNALFD`.
    public static let signalfd = LoopFlags(rawValue: UInt32(EVFLAG_SIGNALFD))
    /// Never change the signal mask. `EVFLAG_NOSIGMASK`.
    public static let noSignalMask = LoopFlags(rawValue: UInt32(EVFLAG_NOSIGMASK))
    /// Never create a timerfd to notice wall-clock jumps. `EVFLAG_NOTIMERFD`.
    public static let noTimerfd = LoopFlags(rawValue: UInt32(EVFLAG_NOTIMERFD))
}

/// The events a watcher can receive: libev's `revents` bits.
///
/// An ``IOWatcher`` receives ``read`` and ``write``; each other watcher its
/// own kind (``timer``, ``signal``, ...). ``error`` means libev stopped the
/// watcher because it can no longer work (for an ``IOWatcher``: its
/// descriptor was closed, or closed and reused by another file).
public struct Events: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int32
    /// Creates a set from libev's `EV_*` bits.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The descriptor can be read without blocking. `EV_READ`.
    public static let read = Events(rawValue: Int32(truncatingIfNeeded: EV_READ))
    /// The descriptor can be written without blocking. `EV_WRITE`.
    public static let write = Events(rawValue: Int32(truncatingIfNeeded: EV_WRITE))
    /// A ``TimerWatcher`` expired. `EV_TIMER`.
    public static let timer = Events(rawValue: Int32(truncatingIfNeeded: EV_TIMER))
    /// A ``PeriodicWatcher`` expired. `EV_PERIODIC`.
    public static let periodic = Events(rawValue: Int32(truncatingIfNeeded: EV_PERIODIC))
    /// A signal arrived. `EV_SIGNAL`.
    public static let signal = Events(rawValue: Int32(truncatingIfNeeded: EV_SIGNAL))
    /// A child process changed status. `EV_CHILD`.
    public static let child = Events(rawValue: Int32(truncatingIfNeeded: EV_CHILD))
    /// A path's attributes changed. `EV_STAT`.
    public static let stat = Events(rawValue: Int32(truncatingIfNeeded: EV_STAT))
    /// The loop has nothing else to do. `EV_IDLE`.
    public static let idle = Events(rawValue: Int32(truncatingIfNeeded: EV_IDLE))
    /// The loop is about to block. `EV_PREPARE`.
    public static let prepare = Events(rawValue: Int32(truncatingIfNeeded: EV_PREPARE))
    /// The loop has just woken up. `EV_CHECK`.
    public static let check = Events(rawValue: Int32(truncatingIfNeeded: EV_CHECK))
    /// An embedded loop needs a sweep. `EV_EMBED`.
    public static let embed = Events(rawValue: Int32(truncatingIfNeeded: EV_EMBED))
    /// The loop resumed in a forked child. `EV_FORK`.
    public static let fork = Events(rawValue: Int32(truncatingIfNeeded: EV_FORK))
    /// The loop is being destroyed. `EV_CLEANUP`.
    public static let cleanup = Events(rawValue: Int32(truncatingIfNeeded: EV_CLEANUP))
    /// An ``AsyncWatcher`` was sent to. `EV_ASYNC`.
    public static let async = Events(rawValue: Int32(truncatingIfNeeded: EV_ASYNC))
    /// Free for the program's own use with ``Watcher/feed(_:)``. `EV_CUSTOM`.
    public static let custom = Events(rawValue: Int32(truncatingIfNeeded: EV_CUSTOM))
    /// libev stopped the watcher because it cannot work any more. `EV_ERROR`.
    public static let error = Events(rawValue: Int32(truncatingIfNeeded: EV_ERROR))

    private static let names: [(Events, String)] = [
        (.read, "read"), (.write, "write"), (.timer, "timer"), (.periodic, "periodic"),
        (.signal, "signal"), (.child, "child"), (.stat, "stat"), (.idle, "idle"),
        (.prepare, "prepare"), (.check, "check"), (.embed, "embed"), (.fork, "fork"),
        (.cleanup, "cleanup"), (.async, "async"), (.custom, "custom"), (.error, "error"),
    ]

    /// The events' names, `"read|write"`; `"none"` for the empty set.
    public var description: String {
        let parts = Self.names.filter { contains($0.0) }.map(\.1)
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }
}

/// How long ``Loop/run(_:)`` runs.
public enum RunMode: Sendable {
    /// Until no active watcher keeps the loop alive, or ``Loop/break(_:)``. `ev_run(loop, 0)`.
    case untilDone
    /// Wait for events once (blocking if needed), handle them, return. `EVRUN_ONCE`.
    case once
    /// Handle what is ready now without waiting, return. `EVRUN_NOWAIT`.
    case noWait

    var flags: Int32 {
        switch self {
        case .untilDone: 0
        case .once: Int32(EVRUN_ONCE)
        case .noWait: Int32(EVRUN_NOWAIT)
        }
    }
}

/// Which ``Loop/run(_:)`` calls ``Loop/break(_:)`` ends.
public enum BreakMode: Sendable {
    /// The innermost `run` returns after this iteration. `EVBREAK_ONE`.
    case one
    /// Every nested `run` returns. `EVBREAK_ALL`.
    case all
    /// Cancels an earlier break that has not taken effect yet. `EVBREAK_CANCEL`.
    case cancel

    var how: Int32 {
        switch self {
        case .one: Int32(EVBREAK_ONE)
        case .all: Int32(EVBREAK_ALL)
        case .cancel: Int32(EVBREAK_CANCEL)
        }
    }
}
