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
/// ``register(_:_:data:)`` throws ``SelectorError/alreadyRegistered(_:)`` only
/// when the same file is registered twice; for a reused number it drops the
/// stale key and returns it, so the caller can tell its owner.
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
    /// The corresponding C function is `epoll_create1`.
    public init() throws(SystemCallError) {
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

    /// Registers `fd` for `events`, carrying `data`.
    ///
    /// - Returns: a stale key the number had before (its file was closed and
    ///   the number reused without unregistering), which is dropped; nil otherwise.
    /// - Throws: ``SelectorError/alreadyRegistered(_:)`` if this file is
    ///   registered already; ``SelectorError/system(_:)`` if `fd` is not open or
    ///   epoll refuses it (a regular file, say).
    ///
    /// The corresponding C function is `epoll_ctl(EPOLL_CTL_ADD)`.
    @discardableResult
    public func register(_ fd: Int32, _ events: Interest, data: Data) throws(SelectorError) -> SelectorKey<Data>? {
        let identity: FileIdentity
        do { identity = try FileIdentity.of(fd) } catch { throw .system(error) }
        var stale: SelectorKey<Data>?
        if let existing = key(for: fd) {
            guard identities[Int(fd)] != identity.fingerprint else { throw .alreadyRegistered(fd) }
            stale = existing
            forget(fd)
            // The old file is gone, so epoll has dropped it already; if a dup of
            // it lives on elsewhere, drop it by number anyway (ENOENT is fine).
            var unused = epoll_event()
            _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &unused)
        }
        var event = epoll_event(events: Self.mask(events), data: epoll_data_t(fd: fd))
        do {
            _ = try systemCall("epoll_ctl(ADD, \(fd))") { epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) }
        } catch {
            throw .system(error)
        }
        store(SelectorKey(fd: fd, events: events, data: data), identity)
        return stale
    }

    /// Changes the events (and data) of a registered descriptor.
    ///
    /// - Throws: ``SelectorError/notRegistered(_:)``, or ``SelectorError/system(_:)``
    ///   if epoll no longer knows the descriptor (closed without unregistering).
    ///
    /// The corresponding C function is `epoll_ctl(EPOLL_CTL_MOD)`.
    public func modify(_ fd: Int32, _ events: Interest, data: Data) throws(SelectorError) {
        guard var key = key(for: fd) else { throw .notRegistered(fd) }
        if key.events != events {
            var event = epoll_event(events: Self.mask(events), data: epoll_data_t(fd: fd))
            do {
                _ = try systemCall("epoll_ctl(MOD, \(fd))") { epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event) }
            } catch {
                throw .system(error)
            }
        }
        key.events = events
        key.data = data
        keys[Int(fd)] = key
    }

    /// Unregisters `fd`; call before closing it.
    ///
    /// - Returns: its key.
    /// - Throws: ``SelectorError/notRegistered(_:)``.
    ///
    /// The corresponding C function is `epoll_ctl(EPOLL_CTL_DEL)`.
    @discardableResult
    public func unregister(_ fd: Int32) throws(SelectorError) -> SelectorKey<Data> {
        guard let key = key(for: fd) else { throw .notRegistered(fd) }
        forget(fd)
        var unused = epoll_event()
        // Fails with EBADF or ENOENT when the descriptor was closed first: epoll
        // has forgotten it already, which is what unregistering asks for.
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &unused)
        return key
    }

    /// Every registered key.
    public var allKeys: [SelectorKey<Data>] { keys.compactMap { $0 } }

    /// The key of `fd`, if registered.
    public func key(for fd: Int32) -> SelectorKey<Data>? {
        fd >= 0 && Int(fd) < keys.count ? keys[Int(fd)] : nil
    }

    /// Waits for registered descriptors to become ready and calls `ready` with
    /// each key and what is ready (``/EventCore/Interest/error`` for a hang-up
    /// or error, together with the interests registered, so that the owner
    /// reads the EOF or error).
    ///
    /// - Parameters:
    ///   - timeout: seconds to wait at most; nil waits without limit, 0 does
    ///     not wait. Rounded *up* to epoll's millisecond: a timer due in
    ///     0.4 ms must not become a 0 ms poll, which would spin until it is due.
    ///   - ready: called with each ready key and its events, before `select` returns.
    /// - Returns: how many descriptors were ready.
    ///
    /// The corresponding C function is `epoll_wait`.
    @discardableResult
    public func select(timeout: Double?, _ ready: (SelectorKey<Data>, Interest) -> Void) throws(SystemCallError) -> Int {
        let milliseconds: Int32
        if let timeout {
            milliseconds = timeout <= 0 ? 0 : Int32(min((timeout * 1000).rounded(.up), Double(Int32.max)))
        } else {
            milliseconds = -1
        }
        let count = try systemCall("epoll_wait") { epoll_wait(epollFD, events, capacity, milliseconds) }
        for index in 0..<Int(count) {
            let event = events[index]
            let fd = event.data.fd
            guard let key = key(for: fd) else { continue } // unregistered by an earlier callback
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

    /// Python's `select()`: the ready keys and their events, as a list.
    public func select(timeout: Double?) throws(SystemCallError) -> [(key: SelectorKey<Data>, events: Interest)] {
        var result: [(key: SelectorKey<Data>, events: Interest)] = []
        try select(timeout: timeout) { key, events in result.append((key, events)) }
        return result
    }

    /// Makes a new epoll instance and registers every key again: after `fork`,
    /// the child's copy of the descriptor is the parent's instance.
    public func reinitialize() throws(SystemCallError) {
        let fresh = try systemCall("epoll_create1") { epoll_create1(CLinux_O_CLOEXEC) }
        Glibc.close(epollFD)
        epollFD = fresh
        for case let key? in keys {
            var event = epoll_event(events: Self.mask(key.events), data: epoll_data_t(fd: key.fd))
            _ = try systemCall("epoll_ctl(ADD, \(key.fd))") { epoll_ctl(epollFD, EPOLL_CTL_ADD, key.fd, &event) }
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
