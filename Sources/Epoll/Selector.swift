import CLinux
import EventCore
import Glibc

/// The tutorial's selector (Python's `selectors.EpollSelector`) on Linux's
/// epoll: ``register(_:_:data:)``, ``modify(_:_:data:)``, ``unregister(_:)``
/// and ``select(timeout:_:)``, each one `epoll_ctl` or `epoll_wait`.
///
/// Level-triggered, like Python's: a descriptor that stays readable is
/// reported by every `select` until it is read. Not thread-safe; one thread
/// uses it.
///
/// ## The special problem of closed descriptors
/// epoll forgets a descriptor when its file is closed, so a registration can
/// outlive its file and its number can be reused. The selector remembers the
/// file (device and inode) each number was registered with, and
/// ``register(_:_:data:)`` refuses only the same file registered twice
/// (``/EventCore/EventLoopError/BadDescriptor/alreadyWatched``); for a
/// reused number it drops the stale key and returns it, so the caller can
/// tell its owner.
public final class Selector<Data> {
    private var epollFD: Int32
    /// Keys by descriptor number (an array: numbers are small and dense).
    private var keys: [SelectorKey<Data>?] = []
    /// The ``/EventCore/FileIdentity/fingerprint`` of each registered descriptor.
    private var identities: [UInt64] = []
    private var events: UnsafeMutablePointer<epoll_event>
    private let capacity: Int32 = 256

    /// Creates an epoll instance.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/Code/system(_:)``)
    ///   if the kernel refuses (`EMFILE`, say).
    ///
    /// The corresponding C function is `epoll_create1`.
    public init() throws(EventLoopError) {
        epollFD = try systemCall("epoll_create1") { epoll_create1(CLinux_O_CLOEXEC) }
        events = .allocate(capacity: Int(capacity))
    }

    deinit {
        close()
        events.deallocate()
    }

    /// Closes the epoll instance and drops every key (and its data); the
    /// selector is unusable afterwards. Harmless twice.
    public func close() {
        guard epollFD >= 0 else { return }
        Glibc.close(epollFD)
        epollFD = -1
        keys = []
        identities = []
        count = 0
    }

    /// How many descriptors are registered.
    public private(set) var count = 0

    /// Registers `descriptor` for `events`, carrying `data`.
    ///
    /// - Returns: a stale key the number had before (its file was closed and
    ///   the number reused without unregistering), which is dropped; nil otherwise.
    /// - Throws: ``/EventCore/EventLoopError`` naming the descriptor:
    ///   ``/EventCore/EventLoopError/BadDescriptor/alreadyWatched`` if this
    ///   file is registered already, ``/EventCore/EventLoopError/BadDescriptor/notOpen``,
    ///   ``/EventCore/EventLoopError/BadDescriptor/ownBackend`` (the selector's
    ///   own epoll instance), ``/EventCore/EventLoopError/BadDescriptor/epollCycle``,
    ///   or ``/EventCore/EventLoopError/Code/system(_:)`` when epoll refuses it
    ///   (`EPERM` for a regular file or a directory).
    ///
    /// The corresponding C function is `epoll_ctl(EPOLL_CTL_ADD)`.
    @discardableResult
    public func register(_ descriptor: FileDescriptor, _ events: Interest, data: Data) throws(EventLoopError) -> SelectorKey<Data>? {
        let fd = descriptor.rawValue
        let identity = try FileIdentity.checked(fd, operation: "epoll_ctl(ADD)")
        var stale: SelectorKey<Data>?
        if let existing = key(for: descriptor) {
            guard identities[Int(fd)] != identity.fingerprint else {
                throw EventLoopError(.badDescriptor(.alreadyWatched), descriptor: descriptor, operation: "epoll_ctl(ADD)")
            }
            stale = existing
            forget(fd)
            // The old file is gone, so epoll has dropped it already; if a dup of
            // it lives on elsewhere, drop it by number anyway (ENOENT is fine).
            var unused = epoll_event()
            _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &unused)
        }
        var event = epoll_event(events: Self.mask(events), data: epoll_data_t(fd: fd))
        if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) != 0 {
            throw refusal(Errno(rawValue: Glibc.errno), descriptor)
        }
        store(SelectorKey(descriptor: descriptor, events: events, data: data), identity)
        return stale
    }

    /// What `epoll_ctl(ADD)` failing with `errno` means for `descriptor`.
    private func refusal(_ errno: Errno, _ descriptor: FileDescriptor) -> EventLoopError {
        switch errno {
        case .invalidArgument where descriptor.rawValue == epollFD:
            EventLoopError(.badDescriptor(.ownBackend), descriptor: descriptor, operation: "epoll_ctl(ADD)")
        case .tooManySymbolicLinkLevels:
            EventLoopError(.badDescriptor(.epollCycle), descriptor: descriptor, operation: "epoll_ctl(ADD)")
        case .badFileDescriptor:
            EventLoopError(.badDescriptor(.notOpen), descriptor: descriptor, operation: "epoll_ctl(ADD)")
        default:
            .system("epoll_ctl(ADD)", errno, descriptor: descriptor)
        }
    }

    /// Changes the events (and data) of a registered descriptor.
    ///
    /// - Throws: ``/EventCore/EventLoopError``: ``/EventCore/EventLoopError/BadDescriptor/notWatched``,
    ///   or ``/EventCore/EventLoopError/Code/system(_:)`` if epoll no longer
    ///   knows the descriptor (closed without unregistering).
    ///
    /// The corresponding C function is `epoll_ctl(EPOLL_CTL_MOD)`.
    public func modify(_ descriptor: FileDescriptor, _ events: Interest, data: Data) throws(EventLoopError) {
        let fd = descriptor.rawValue
        guard var key = key(for: descriptor) else {
            throw EventLoopError(.badDescriptor(.notWatched), descriptor: descriptor, operation: "epoll_ctl(MOD)")
        }
        if key.events != events {
            var event = epoll_event(events: Self.mask(events), data: epoll_data_t(fd: fd))
            _ = try systemCall("epoll_ctl(MOD)", descriptor: descriptor) { epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event) }
        }
        key.events = events
        key.data = data
        keys[Int(fd)] = key
    }

    /// Unregisters `descriptor`; call before closing it.
    ///
    /// - Returns: its key.
    /// - Throws: ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/BadDescriptor/notWatched``).
    ///
    /// The corresponding C function is `epoll_ctl(EPOLL_CTL_DEL)`.
    @discardableResult
    public func unregister(_ descriptor: FileDescriptor) throws(EventLoopError) -> SelectorKey<Data> {
        guard let key = key(for: descriptor) else {
            throw EventLoopError(.badDescriptor(.notWatched), descriptor: descriptor, operation: "epoll_ctl(DEL)")
        }
        forget(descriptor.rawValue)
        var unused = epoll_event()
        // Fails with EBADF or ENOENT when the descriptor was closed first: epoll
        // has forgotten it already, which is what unregistering asks for.
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, descriptor.rawValue, &unused)
        return key
    }

    /// Every registered key.
    public var allKeys: [SelectorKey<Data>] { keys.compactMap { $0 } }

    /// The key of `descriptor`, if registered.
    public func key(for descriptor: FileDescriptor) -> SelectorKey<Data>? {
        key(for: descriptor.rawValue)
    }

    @inline(__always)
    func key(for fd: Int32) -> SelectorKey<Data>? {
        fd >= 0 && Int(fd) < keys.count ? keys[Int(fd)] : nil
    }

    /// Waits for registered descriptors to become ready and calls `ready` with
    /// each key and what is ready (``/EventCore/Interest/error`` for a hang-up
    /// or error, together with the interests registered, so that the owner
    /// reads the EOF or error).
    ///
    /// - Parameters:
    ///   - timeout: how long to wait at most; nil waits without limit, zero
    ///     or less does not wait. Rounded *up* to epoll's millisecond: a
    ///     timer due in 0.4 ms must not become a 0 ms poll, which would spin
    ///     until it is due.
    ///   - ready: called with each ready key and its events, before `select` returns.
    /// - Returns: how many descriptors were ready.
    /// - Throws: ``/EventCore/EventLoopError`` if `epoll_wait` fails (never
    ///   for a signal: it is called again).
    ///
    /// The corresponding C function is `epoll_wait`.
    @discardableResult
    public func select(timeout: Duration?, _ ready: (SelectorKey<Data>, Interest) -> Void) throws(EventLoopError) -> Int {
        try select(seconds: timeout.map(LoopTime.seconds), ready)
    }

    /// Python's `select()`: the ready keys and their events, as a list.
    public func select(timeout: Duration?) throws(EventLoopError) -> [(key: SelectorKey<Data>, events: Interest)] {
        var result: [(key: SelectorKey<Data>, events: Interest)] = []
        try select(timeout: timeout) { key, events in result.append((key, events)) }
        return result
    }

    /// ``select(timeout:_:)`` with the timeout in seconds (nil: no limit;
    /// NaN or less than zero: none), for the loop, which keeps its clock in seconds.
    @discardableResult
    func select(seconds timeout: Double?, _ ready: (SelectorKey<Data>, Interest) -> Void) throws(EventLoopError) -> Int {
        let milliseconds: Int32
        if let timeout {
            milliseconds = timeout > 0 ? Int32(min((timeout * 1000).rounded(.up), Double(Int32.max))) : 0
        } else {
            milliseconds = -1
        }
        let count = try systemCall("epoll_wait") { epoll_wait(epollFD, events, capacity, milliseconds) }
        for index in 0..<Int(count) {
            let event = events[index]
            guard let key = key(for: event.data.fd) else { continue } // unregistered by an earlier callback
            var got: Interest = []
            if event.events & EPOLLIN.rawValue != 0 { got.insert(.read) }
            if event.events & EPOLLOUT.rawValue != 0 { got.insert(.write) }
            if event.events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                got.insert(.error)
                got.formUnion(key.events)
            }
            let wanted = got.intersection(key.events.union(.error))
            if !wanted.isEmpty { ready(key, wanted) }
        }
        return Int(count)
    }

    /// Makes a new epoll instance and registers every key again: after `fork`,
    /// the child's copy of the descriptor is the parent's instance.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` if the kernel refuses the new
    ///   instance or a registration.
    public func reinitialize() throws(EventLoopError) {
        let fresh = try systemCall("epoll_create1") { epoll_create1(CLinux_O_CLOEXEC) }
        Glibc.close(epollFD)
        epollFD = fresh
        for case let key? in keys {
            var event = epoll_event(events: Self.mask(key.events), data: epoll_data_t(fd: key.fd))
            _ = try systemCall("epoll_ctl(ADD)", descriptor: key.descriptor) { epoll_ctl(epollFD, EPOLL_CTL_ADD, key.fd, &event) }
        }
    }

    private func store(_ key: SelectorKey<Data>, _ identity: FileIdentity) {
        let index = Int(key.fd)
        if index >= keys.count {
            // Only up to this descriptor: the arrays' own growth is amortized,
            // and the capacity beyond it stays untouched (not resident) until
            // descriptors get there - at C10k, the difference is tens of bytes
            // per connection.
            let grow = index + 1 - keys.count
            keys.append(contentsOf: repeatElement(nil, count: grow))
            identities.append(contentsOf: repeatElement(0, count: grow))
        }
        keys[index] = key
        identities[index] = identity.fingerprint
        count += 1
    }

    private func forget(_ fd: Int32) {
        keys[Int(fd)] = nil
        count -= 1
    }

    private static func mask(_ events: Interest) -> UInt32 {
        (events.contains(.read) ? EPOLLIN.rawValue : 0) | (events.contains(.write) ? EPOLLOUT.rawValue : 0)
    }
}
