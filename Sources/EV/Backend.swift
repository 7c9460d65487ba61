import CLibev
import EventCore

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
