import CLibev
import EventCore
import Glibc

/// Watches a file descriptor for readability and writability (`ev_io`).
///
/// The callback runs whenever the descriptor can be read (``Events/read``)
/// or written (``Events/write``) without blocking, for as long as that is
/// true: read until `EAGAIN` or stop the watcher, or it fires again next
/// iteration. Use non-blocking descriptors.
///
/// ## The special problem of closed descriptors
/// Stop a watcher before closing its descriptor - ``stopAndClose()`` does
/// both. The wrapper also protects a program that forgets, where libev
/// (Debian builds it with its assertions on) would abort - with no system
/// call of its own on the way, as C libev makes none:
/// - a descriptor goes to the kernel at the loop's next iteration, as in C;
///   one that is not open by then - never was, or was closed under an active
///   watcher - is found first (one `poll` for all the descriptors whose
///   watchers changed), and its watchers are stopped and receive
///   ``Events/error``. A negative number throws at once;
/// - an epoll instance libev cannot hand to its backend (the loop's own, or
///   one of the package's loops whose epoll watches this one) throws at
///   ``start()`` (``/EventCore/EventLoopError/Code/badDescriptor(_:)``);
/// - when a watcher starts on a number that active watchers of the loop
///   already use, and the number's earlier file has been closed and the
///   number reused, those watchers are stopped and receive ``Events/error``
///   instead of the new file's events (on epoll the kernel tells, on the
///   other backends the file's device and inode);
/// - on backends other than epoll (which forgets closed descriptors itself),
///   every event is checked against the file before the callback runs.
///
/// On the other backends two files with the same anonymous inode (eventfd,
/// timerfd, signalfd, epoll descriptors) cannot be told apart; stop their
/// watchers first.
///
/// The corresponding C type is `ev_io`.
public final class IOWatcher: Watcher {
    /// The closure called with the watcher and the events that occurred.
    public typealias Callback = (IOWatcher, Events) -> Void

    /// What the watcher calls: a closure, or a handler object
    /// (``/EventCore/EventLoop/watchReadiness(_:_:handler:)``, no closure context).
    private enum Target {
        case closure(Callback)
        case handler(any ReadinessHandler)
        /// A handler let go of: cancelled, or the loop closed.
        case released
    }

    private var target: Target

    /// Creates a stopped watcher for `events` (``Events/read``, ``Events/write`` or both) on `fd`.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - descriptor: the descriptor to watch; checked when the watcher starts.
    ///   - events: the readiness to wait for.
    ///   - callback: called with the watcher and what became ready.
    ///
    /// The corresponding C macro is `ev_io_init`.
    public convenience init(loop: Loop, descriptor: FileDescriptor, events: Events, _ callback: @escaping Callback) {
        self.init(loop: loop, fd: descriptor.rawValue, events: events, target: .closure(callback))
    }

    /// A watcher that calls `handler.ready(_:)`; it holds `handler` strongly.
    convenience init(loop: Loop, fd: Int32, events: Events, handler: any ReadinessHandler) {
        self.init(loop: loop, fd: fd, events: events, target: .handler(handler))
    }

    private init(loop: Loop, fd: Int32, events: Events, target: Target) {
        let io: UnsafeMutablePointer<ev_io> = loop.core.memory.allocate()
        self.target = target
        CLibev_io_init(io, Trampoline.callback, fd, events.intersection([.read, .write]).rawValue)
        super.init(core: loop.core, cStruct: io)
    }

    /// The C struct (in the loop's watcher memory; ``Watcher/cWatcher`` typed).
    private var io: UnsafeMutablePointer<ev_io> { cWatcher.assumingMemoryBound(to: ev_io.self) }

    /// The descriptor watched.
    public var descriptor: FileDescriptor { FileDescriptor(rawValue: io.pointee.fd) }

    /// The descriptor's number (libev's `fd`).
    var fd: Int32 { io.pointee.fd }

    /// The readiness waited for: ``Events/read``, ``Events/write`` or both.
    /// Setting it restarts an active watcher.
    public var events: Events {
        get { Events(rawValue: io.pointee.events).intersection([.read, .write]) }
        set {
            let fd = self.fd
            restart { CLibev_io_set(io, fd, newValue.intersection([.read, .write]).rawValue) }
            if isActive { core.noteChange(fd) }
        }
    }

    /// Starts watching.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/Code/badDescriptor(_:)``)
    ///   for a negative number, or an epoll instance the loop's epoll cannot
    ///   hold (its own, or one that watches it); on backends other than
    ///   epoll, for a descriptor that is not open. A descriptor that is not
    ///   open on epoll is reported at the next iteration, as ``Events/error``.
    ///   libev would abort on each.
    ///
    /// The corresponding C function is `ev_io_start`.
    public func start() throws(EventLoopError) {
        guard !isActive else { return }
        try core.claimDescriptor(fd)
        startChecked()
    }

    /// Changes the descriptor and the events, restarting the watcher if it was active.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` if the watcher was active and the
    ///   new descriptor cannot be watched; the watcher is then stopped.
    ///
    /// The corresponding C macro is `ev_io_set`.
    public func set(descriptor: FileDescriptor, events: Events) throws(EventLoopError) {
        let wasActive = isActive
        stop()
        CLibev_io_set(io, descriptor.rawValue, events.intersection([.read, .write]).rawValue)
        if wasActive { try start() }
    }

    /// Stops this watcher and every other active io watcher of its loop on the
    /// same descriptor, then closes the descriptor: the one safe way to close a
    /// watched descriptor.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` if `close` fails (the descriptor is closed anyway on Linux).
    public func stopAndClose() throws(EventLoopError) {
        let fd = self.fd
        stop()
        for case let other as IOWatcher in core.heldWatchers() where other.isStarted && other.fd == fd {
            other.stop()
        }
        if close(fd) == -1 {
            throw EventLoopError.system("close", descriptor: FileDescriptor(rawValue: fd))
        }
    }

    override func cStart(_ loop: OpaquePointer) { ev_io_start(loop, io) }
    override func cStop(_ loop: OpaquePointer) { ev_io_stop(loop, io) }
    override func didStop() { core.releaseDescriptor(fd) }
    override func monitorSource(_ events: Events) -> String { "IOWatcher on descriptor \(fd) (\(events))" }

    override func fire(_ events: Events) {
        if core.verifiesDescriptorsOnEvent, !events.contains(.error), isStarted,
           !core.isStillClaimed(fd) {
            stop()
            call(.error)
            return
        }
        call(events)
    }

    private func call(_ events: Events) {
        switch target {
        case .closure(let callback): callback(self, events)
        case .handler(let handler): handler.ready(Interest(events))
        case .released: break
        }
    }

    /// ``Watcher/stop()``, for the loops' common protocol; a watcher made by
    /// ``/EventCore/EventLoop/watchReadiness(_:_:handler:)`` also lets go of
    /// its handler, which ends the cycle of a handler that keeps its watch.
    public func cancel() {
        stop()
        releaseHandler()
    }

    override func willDetachForTeardown() {
        releaseHandler()
    }

    /// Lets go of a handler (a closure stays: a stopped closure watcher can start again).
    private func releaseHandler() {
        if case .handler = target { target = .released }
    }
}

extension Loop {
    /// Starts watching `descriptor` for `events` and calls `callback` each time it is ready.
    ///
    /// ```swift
    /// try loop.io(socket, .read) { watcher, events in
    ///     let n = read(watcher.descriptor.rawValue, &buffer, buffer.count)
    ///     if n == 0 { try? watcher.stopAndClose() }
    /// }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    /// - Throws: ``/EventCore/EventLoopError/Code/badDescriptor(_:)`` if `descriptor` is not open.
    ///
    /// The corresponding C functions are `ev_io_init` and `ev_io_start`.
    @discardableResult
    public func io(_ descriptor: FileDescriptor, _ events: Events, _ callback: @escaping IOWatcher.Callback) throws(EventLoopError) -> IOWatcher {
        let watcher = IOWatcher(loop: self, descriptor: descriptor, events: events, callback)
        try watcher.start()
        return watcher
    }
}
