import EventCore

extension LoopExecutor: AsyncEventLoop {
    /// Readiness waits on `fd` that keep one io watcher armed between waits.
    ///
    /// The watcher is armed at the first wait and stays armed while waits
    /// keep coming (no system call per wait); when it fires with nobody
    /// waiting, it drops that interest then - the "lazy disarm" SwiftNIO
    /// and asyncio's selector loop use too. ``DescriptorReadiness/cancel()``
    /// stops it before the descriptor is closed.
    public func readiness(for fd: Int32) -> any DescriptorReadiness {
        IOReadiness(executor: self, fd: fd)
    }
}

/// Readiness waits on one descriptor, on a libev loop.
final class IOReadiness: DescriptorReadiness {
    private let executor: LoopExecutor
    private let fd: Int32
    private var watcher: IOWatcher?
    private var readWaiter: Suspension<Void>?
    private var writeWaiter: Suspension<Void>?
    private var isCancelled = false

    init(executor: LoopExecutor, fd: Int32) {
        self.executor = executor
        self.fd = fd
    }

    deinit {
        watcher?.stop()
    }

    func waitReadable() async throws { try await wait(write: false) }
    func waitWritable() async throws { try await wait(write: true) }

    private func wait(write: Bool) async throws {
        try await executor.onLoop {
            guard !isCancelled else { throw DescriptorClosedError(fd: fd) }
            try await executor.suspend { (suspension: Suspension<Void>, loop) in
                if write { writeWaiter = suspension } else { readWaiter = suspension }
                suspension.cleanup = { [unowned self] in
                    if write { writeWaiter = nil } else { readWaiter = nil }
                }
                try arm(loop, write ? .write : .read)
            }
        }
    }

    /// Makes sure the watcher waits for `events` (among others).
    private func arm(_ loop: Loop, _ events: Events) throws {
        if let watcher {
            if !watcher.isActive {
                try watcher.set(fd: fd, events: events)
                try watcher.start()
            } else if !watcher.events.contains(events) {
                watcher.events = watcher.events.union(events)
            }
        } else {
            let watcher = IOWatcher(loop: loop, fd: fd, events: events) { [unowned self] _, events in
                fired(events)
            }
            try watcher.start()
            self.watcher = watcher
        }
    }

    private func fired(_ events: Events) {
        guard let watcher else { return }
        if events.contains(.error) {
            // The descriptor went bad under the watcher (closed, or reused).
            readWaiter?.finish(.failure(DescriptorClosedError(fd: fd)))
            writeWaiter?.finish(.failure(DescriptorClosedError(fd: fd)))
            return
        }
        var unwanted: Events = []
        if events.contains(.read) {
            if let readWaiter { readWaiter.finish(.success(())) } else { unwanted.insert(.read) }
        }
        if events.contains(.write) {
            if let writeWaiter { writeWaiter.finish(.success(())) } else { unwanted.insert(.write) }
        }
        // Lazy disarm: keep the interest of a waiter just resumed (it is likely
        // to wait again at once); drop an interest that fired with nobody waiting.
        guard !unwanted.isEmpty else { return }
        let remaining = watcher.events.subtracting(unwanted)
        if remaining.isEmpty { watcher.stop() } else { watcher.events = remaining }
    }

    func cancel() {
        guard !isCancelled else { return }
        isCancelled = true
        readWaiter?.finish(.failure(DescriptorClosedError(fd: fd)))
        writeWaiter?.finish(.failure(DescriptorClosedError(fd: fd)))
        watcher?.stop()
        watcher = nil
    }
}
