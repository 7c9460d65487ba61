import CLibev
import EventCore

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
