/// The tasks waiting in `readable(_:)` and `writable(_:)` for one descriptor of one loop: one
/// watch, however many tasks wait, and each wait a node of a list that it
/// leaves in constant time - on the event, a timeout, a cancellation or the
/// loop's close.
///
/// A watch per wait would make N waits on one descriptor N watches; libev
/// keeps the watchers of a descriptor in a singly linked list, so stopping
/// them (cancelling the waits) cost O(N) each - 100,000 cancelled waits on
/// one descriptor took 20 s, against 0.6 s on distinct descriptors - and the
/// epoll loop takes one registration per descriptor, so a second task
/// waiting there failed. Every task waiting for a direction is resumed when
/// it is ready (a wait means "until the descriptor is ready", not "take the
/// next byte").
///
/// Loop thread only: the waits begin there (``LoopExecutorCore/suspend(deadline:_:)``)
/// and everything that ends them runs there.
final class DescriptorWaiters<L: EventLoop> {
    let fd: Int32
    private unowned(unsafe) let executor: LoopExecutorCore<L>
    private var watch: L.Watch?
    private var readers = WaiterList<L>()
    private var writers = WaiterList<L>()

    init(fd: Int32, executor: LoopExecutorCore<L>) {
        self.fd = fd
        self.executor = executor
    }

    /// Adds `suspension` as a waiter for `direction` (``Interest/read`` or
    /// ``Interest/write``) and makes sure the watch waits for it.
    ///
    /// - Returns: the node, for ``remove(_:)``.
    /// - Throws: what the loop throws for a descriptor it cannot watch; the
    ///   waiter is not added then.
    func add(_ suspension: Suspension<Void, L>, for direction: Interest, on loop: L) throws -> Waiter<L> {
        let waiter = Waiter(suspension, write: direction == .write)
        list(write: waiter.write).append(waiter)
        do {
            try update(on: loop)
        } catch {
            remove(waiter)
            throw error
        }
        return waiter
    }

    /// Takes `waiter` out (constant time); harmless when it is out already.
    /// The watch goes with the last waiter.
    func remove(_ waiter: Waiter<L>) {
        guard waiter.isListed else { return }
        list(write: waiter.write).remove(waiter)
        guard let loop = executor.loop else { return dropWatch() }
        try? update(on: loop)
    }

    private func list(write: Bool) -> WaiterList<L> { write ? writers : readers }

    /// What the watch should wait for now: a watch of its own while anyone waits.
    private func update(on loop: L) throws {
        var wanted: Interest = []
        if !readers.isEmpty { wanted.insert(.read) }
        if !writers.isEmpty { wanted.insert(.write) }
        if wanted.isEmpty { return dropWatch() }
        if let watch {
            if watch.interest != wanted { try watch.setInterest(wanted) }
        } else {
            // unowned(unsafe): the watch is cancelled (dropWatch) before this object goes.
            watch = try loop.watchReadiness(FileDescriptor(rawValue: fd), wanted) { [unowned(unsafe) self] events in fired(events) }
        }
    }

    private func dropWatch() {
        watch?.cancel()
        watch = nil
        executor.forgetDescriptorWaiters(self)
    }

    /// What the watch saw: every waiter of a direction that is ready resumes;
    /// `.error` alone means the descriptor went bad under the watch (closed,
    /// or its number reused) and ends every wait with the closed error.
    private func fired(_ events: Interest) {
        if events.contains(.error) && events.isDisjoint(with: [.read, .write]) {
            let error = EventLoopError(.descriptorClosed, descriptor: FileDescriptor(rawValue: fd))
            for waiter in readers.takeAll() + writers.takeAll() { waiter.suspension.finish(.failure(error)) }
        } else {
            let ready = (events.contains(.read) ? readers.takeAll() : []) + (events.contains(.write) ? writers.takeAll() : [])
            for waiter in ready { waiter.suspension.finish(.success(())) }
        }
        if let loop = executor.loop { try? update(on: loop) } else { dropWatch() }
    }
}

/// A task waiting for a descriptor: a node of its ``DescriptorWaiters``' list.
final class Waiter<L: EventLoop> {
    let suspension: Suspension<Void, L>
    let write: Bool
    fileprivate var next: Waiter?
    fileprivate unowned(unsafe) var previous: Waiter?
    fileprivate var isListed = false

    init(_ suspension: Suspension<Void, L>, write: Bool) {
        self.suspension = suspension
        self.write = write
    }
}

/// A doubly linked list of waiters: append, remove and take all, each in
/// constant time per waiter.
final class WaiterList<L: EventLoop> {
    private var first: Waiter<L>?
    private unowned(unsafe) var last: Waiter<L>?

    var isEmpty: Bool { first == nil }

    func append(_ waiter: Waiter<L>) {
        waiter.previous = last
        waiter.next = nil
        if let last { last.next = waiter } else { first = waiter }
        last = waiter
        waiter.isListed = true
    }

    func remove(_ waiter: Waiter<L>) {
        guard waiter.isListed else { return }
        if let previous = waiter.previous { previous.next = waiter.next } else { first = waiter.next }
        if let next = waiter.next { next.previous = waiter.previous } else { last = waiter.previous }
        waiter.next = nil
        waiter.previous = nil
        waiter.isListed = false
    }

    /// Every waiter, in the order they came, and the list emptied.
    func takeAll() -> [Waiter<L>] {
        var all: [Waiter<L>] = []
        while let waiter = first {
            remove(waiter)
            all.append(waiter)
        }
        return all
    }
}

extension LoopExecutorCore {
    /// Waits until `descriptor` can be read without blocking.
    ///
    /// However many tasks wait on one descriptor, the loop keeps one watch
    /// for them, and each wait leaves it in constant time (see
    /// `DescriptorWaiters`); every waiting task resumes when the descriptor
    /// is ready. For repeated waits by one owner, ``readiness(for:)`` keeps
    /// its watch armed between waits, as ``AsyncSocket`` does.
    ///
    /// - Throws: ``EventLoopError``: a descriptor the loop cannot watch, one
    ///   closed under the wait (``EventLoopError/Code/descriptorClosed``), the
    ///   task's deadline, the loop's close; or `CancellationError`.
    public func readable(_ descriptor: FileDescriptor) async throws {
        try await waitForDescriptor(descriptor.rawValue, .read)
    }

    /// Waits until `descriptor` can be written without blocking; see ``readable(_:)``.
    public func writable(_ descriptor: FileDescriptor) async throws {
        try await waitForDescriptor(descriptor.rawValue, .write)
    }

    private func waitForDescriptor(_ fd: Int32, _ direction: Interest) async throws {
        try await suspend { [self] (suspension: Suspension<Void, L>, loop) in
            let waiters = descriptorWaiters(for: fd)
            let waiter = try waiters.add(suspension, for: direction, on: loop)
            suspension.cleanup = { waiters.remove(waiter) }
        }
    }
}
