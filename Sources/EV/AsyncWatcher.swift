import CLibev
import Glibc
import Synchronization
import EventCore

/// Wakes the loop from another thread (`ev_async`).
///
/// The watcher lives on its loop's thread; its ``sender`` is `Sendable` and
/// may be used from any thread, or a signal handler's thread, to make the
/// callback run on the loop's thread. Sends that arrive before the callback
/// runs coalesce into one call: keep the work itself in a queue of your own
/// (or use the executor's `execute(_:)`, which does exactly that).
///
/// The corresponding C type is `ev_async`.
public final class AsyncWatcher: Watcher {
    /// The closure called with the watcher after one or more sends.
    public typealias Callback = (AsyncWatcher) -> Void

    /// Sends to an ``AsyncWatcher`` from any thread.
    public struct Sender: Sendable {
        let signal: AsyncSignal

        /// Wakes the watcher's loop so the callback runs on its thread.
        ///
        /// Safe from any thread and from a signal handler, as
        /// `ev_async_send` is: it takes no lock and allocates nothing.
        ///
        /// - Returns: false, and does nothing, when the watcher is not active
        ///   (stopped, or its loop destroyed); libev drops such sends too.
        ///
        /// The corresponding C function is `ev_async_send`.
        @discardableResult
        public func send() -> Bool { signal.send() }
    }

    private let signal: AsyncSignal
    private let callback: Callback

    /// Creates a stopped watcher.
    ///
    /// - Parameters:
    ///   - loop: the loop whose thread runs the callback.
    ///   - callback: called with the watcher after sends.
    ///
    /// The corresponding C macro is `ev_async_init`.
    public init(loop: Loop, _ callback: @escaping Callback) {
        let cAsync: UnsafeMutablePointer<ev_async> = loop.core.memory.allocate()
        signal = AsyncSignal(cAsync)
        self.callback = callback
        CLibev_async_init(cAsync, Trampoline.callback)
        super.init(core: loop.core, cStruct: cAsync)
    }

    /// The `Sendable` handle other threads send with.
    public var sender: Sender { Sender(signal: signal) }

    /// Whether a send has arrived whose callback has not run yet.
    ///
    /// The corresponding C macro is `ev_async_pending`.
    public var isSendPending: Bool { CLibev_async_pending(signal.cAsync) != 0 }

    /// Starts the watcher; sends before this are dropped.
    ///
    /// The corresponding C function is `ev_async_start`.
    public func start() { startChecked() }

    override func cStart(_ loop: OpaquePointer) {
        ev_async_start(loop, signal.cAsync)
        signal.activate(loop)
    }

    override func cStop(_ loop: OpaquePointer) {
        signal.deactivate()
        ev_async_stop(loop, signal.cAsync)
    }

    override func fire(_ events: Events) { callback(self) }
}

/// The `ev_async` struct and the loop it may be sent to, shared between an
/// ``AsyncWatcher`` and its senders on other threads - and signal handlers:
/// a send takes no lock and calls nothing but atomics and `ev_async_send`,
/// all async-signal-safe.
final class AsyncSignal: @unchecked Sendable {
    // Sendable because the only cross-thread use is `send`, which reads the
    // loop from an atomic and calls ev_async_send - the one libev function
    // documented as safe from any thread (and from signal handlers). The
    // loop is set while the watcher is active; `deactivate` clears it and
    // then waits until no send is in flight, before the watcher is stopped,
    // so a send never reaches a stopped watcher or a freed loop. `cAsync`
    // belongs to the watcher; a sender dereferences it only while the loop
    // is set, so never once the watcher's memory is gone.
    let cAsync: UnsafeMutablePointer<ev_async>
    /// The loop (its address) while the watcher is active; 0 otherwise.
    private let target = Atomic<UInt>(0)
    /// Sends in flight.
    private let sending = Atomic<Int>(0)

    init(_ cAsync: UnsafeMutablePointer<ev_async>) {
        self.cAsync = cAsync
    }

    func send() -> Bool {
        sending.add(1, ordering: .sequentiallyConsistent)
        defer { sending.subtract(1, ordering: .sequentiallyConsistent) }
        let loop = target.load(ordering: .sequentiallyConsistent)
        guard loop != 0, let pointer = OpaquePointer(bitPattern: loop) else { return false }
        ev_async_send(pointer, cAsync)
        return true
    }

    /// The watcher started on `loop` (loop thread).
    func activate(_ loop: OpaquePointer) {
        target.store(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(loop))), ordering: .sequentiallyConsistent)
    }

    /// The watcher is about to stop (loop thread): no new send reaches it,
    /// and the ones in flight finish first. (A signal handler interrupting
    /// this thread runs its send to the end before the wait goes on.)
    func deactivate() {
        target.store(0, ordering: .sequentiallyConsistent)
        while sending.load(ordering: .sequentiallyConsistent) > 0 { sched_yield() }
    }
}

extension Loop {
    /// Starts an ``AsyncWatcher`` whose ``AsyncWatcher/sender`` wakes this loop from any thread.
    ///
    /// ```swift
    /// let wakeup = loop.async { _ in drainMyQueue() }
    /// let sender = wakeup.sender          // Sendable
    /// Thread { enqueue(work); sender.send() }.start()
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_async_init` and `ev_async_start`.
    @discardableResult
    public func async(_ callback: @escaping AsyncWatcher.Callback) -> AsyncWatcher {
        let watcher = AsyncWatcher(loop: self, callback)
        watcher.start()
        return watcher
    }
}
