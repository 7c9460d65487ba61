import CLibev
import EventCore

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
