import CLinux
@_spi(EventLoops) import EventCore
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
/// outlive its file and its number can be reused. The kernel itself tells
/// the two apart, with no system call of the selector's own (no `fstat`, as
/// SwiftNIO does it): when a number the selector has a key for is
/// registered again, `EPOLL_CTL_ADD` succeeding means epoll had forgotten
/// the old file - it was closed - so the key is stale, dropped and returned
/// for the caller to tell its owner; `EEXIST` means the same file is
/// registered already (``/EventCore/EventLoopError/BadDescriptor/alreadyWatched``).
///
/// Each registration carries a generation beside the number in
/// `epoll_data` (`fd | generation << 32`). An event whose generation is not
/// its key's is dropped: it belongs to a registration that a callback ended
/// earlier in the same batch, or to one that outlived its number's reuse -
/// its file still open through a duplicate elsewhere. One seen again in the
/// next `select` is the latter, and the epoll instance is made again
/// without it (libev does the same).
public final class Selector<Data> {
    private var epollFD: Int32
    /// Keys by descriptor number.
    private var keys = DescriptorTable<SelectorKey<Data>>()
    /// The generation of the next registration.
    private var nextGeneration: UInt32 = 1
    /// Set when an event of an outlived registration came twice: the
    /// instance is made again.
    private var mustRebuild = false
    /// The `epoll_data` of the events that carried another generation than
    /// their key's, in the last `select` and this one. One such event is
    /// usually the last of a registration that a callback of the same batch
    /// ended (the number then registered again); seen in two selects in a
    /// row, it comes from a registration still in the kernel.
    /// The loop's monitor, told when each wait in the kernel begins and ends
    /// (set by the loop that owns this selector, once its monitor is made).
    package var monitor: LoopMonitor?
    private var staleBefore: Set<UInt64> = []
    private var staleNow: Set<UInt64> = []
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
        EpollInstances.insert(epollFD)
    }

    deinit {
        close()
        events.deallocate()
    }

    /// Closes the epoll instance and drops every key (and its data); the
    /// selector is unusable afterwards. Harmless twice.
    public func close() {
        guard epollFD >= 0 else { return }
        EpollInstances.remove(epollFD)
        Glibc.close(epollFD)
        epollFD = -1
        keys.removeAll()
    }

    /// How many descriptors are registered.
    public var count: Int { keys.count }

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
        guard fd >= 0 else { throw EventLoopError(.badDescriptor(.notOpen), descriptor: descriptor, operation: "epoll_ctl(ADD)") }
        let generation = nextGeneration
        nextGeneration = nextGeneration == .max ? 1 : nextGeneration + 1
        var event = epoll_event(events: Self.mask(events), data: Self.data(fd, generation))
        if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) != 0 {
            let errno = Errno(rawValue: Glibc.errno)
            guard errno == .fileExists, keys[descriptor] == nil else { throw refusal(errno, descriptor) }
            // Registered in the kernel but not here: a registration that
            // outlived its key (its file kept open elsewhere, the number
            // reused by the same file): take it over.
            _ = try systemCall("epoll_ctl(MOD)", descriptor: descriptor) { epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event) }
        }
        // Added: if the number had a key, epoll had forgotten its file.
        let stale = keys[descriptor]
        keys[descriptor] = SelectorKey(descriptor: descriptor, events: events, data: data, generation: generation)
        return stale
    }

    /// The `epoll_data` of a registration: the number and its generation.
    @inline(__always)
    private static func data(_ fd: Int32, _ generation: UInt32) -> epoll_data_t {
        epoll_data_t(u64: UInt64(UInt32(bitPattern: fd)) | UInt64(generation) << 32)
    }

    /// What `epoll_ctl(ADD)` failing with `errno` means for `descriptor`.
    private func refusal(_ errno: Errno, _ descriptor: FileDescriptor) -> EventLoopError {
        switch errno {
        case .fileExists:
            EventLoopError(.badDescriptor(.alreadyWatched), descriptor: descriptor, operation: "epoll_ctl(ADD)")
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
            var event = epoll_event(events: Self.mask(events), data: Self.data(fd, key.generation))
            _ = try systemCall("epoll_ctl(MOD)", descriptor: descriptor) { epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event) }
        }
        key.events = events
        key.data = data
        keys[descriptor] = key
    }

    /// Unregisters `descriptor`; call before closing it.
    ///
    /// Its events are not reported from then on. The kernel's registration
    /// goes lazily, as libev's does: closing the descriptor drops it (the
    /// common case, a connection's end, costs no system call here); if the
    /// descriptor stays open and reports an event, `select` removes it then
    /// (`EPOLL_CTL_DEL`), and registering it again takes it over.
    ///
    /// - Returns: its key.
    /// - Throws: ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/BadDescriptor/notWatched``).
    @discardableResult
    public func unregister(_ descriptor: FileDescriptor) throws(EventLoopError) -> SelectorKey<Data> {
        guard let key = key(for: descriptor) else {
            throw EventLoopError(.badDescriptor(.notWatched), descriptor: descriptor, operation: "epoll_ctl(DEL)")
        }
        keys[descriptor] = nil
        return key
    }

    /// Every registered key.
    public var allKeys: [SelectorKey<Data>] { keys.values }

    /// The key of `descriptor`, if registered.
    public func key(for descriptor: FileDescriptor) -> SelectorKey<Data>? {
        keys[descriptor]
    }

    @inline(__always)
    func key(for fd: Int32) -> SelectorKey<Data>? {
        keys[FileDescriptor(rawValue: fd)]
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
        monitor?.willBlock()
        let waited = Result { () throws(EventLoopError) in try systemCall("epoll_wait") { epoll_wait(epollFD, events, capacity, milliseconds) } }
        monitor?.didWake()
        let count = try waited.get()
        for index in 0..<Int(count) {
            let event = events[index]
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: event.data.u64))
            guard let key = key(for: fd) else {
                // Unregistered, and still open: its registration goes now.
                // (Unregistered by an earlier callback of this batch - closed
                // or not - the number's registration is gone or harmless.)
                var unused = epoll_event()
                _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &unused)
                continue
            }
            guard key.generation == UInt32(truncatingIfNeeded: event.data.u64 >> 32) else {
                // Another registration of the number than its key's.
                if staleBefore.contains(event.data.u64) { mustRebuild = true }
                staleNow.insert(event.data.u64)
                continue
            }
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
        if !staleBefore.isEmpty || !staleNow.isEmpty {
            swap(&staleBefore, &staleNow)
            staleNow.removeAll()
        }
        if mustRebuild {
            mustRebuild = false
            staleBefore.removeAll()
            try reinitialize()
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
        EpollInstances.remove(epollFD)
        Glibc.close(epollFD)
        epollFD = fresh
        EpollInstances.insert(epollFD)
        for key in keys.values {
            var event = epoll_event(events: Self.mask(key.events), data: Self.data(key.fd, key.generation))
            _ = try systemCall("epoll_ctl(ADD)", descriptor: key.descriptor) { epoll_ctl(epollFD, EPOLL_CTL_ADD, key.fd, &event) }
        }
    }

    private static func mask(_ events: Interest) -> UInt32 {
        (events.contains(.read) ? EPOLLIN.rawValue : 0) | (events.contains(.write) ? EPOLLOUT.rawValue : 0)
    }
}
