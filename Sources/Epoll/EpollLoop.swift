import CLinux
import EventCore
import Glibc

/// The tutorial's event loop, written by hand on epoll - no libev inside:
///
/// ```python
/// while not stopped:
///     for key, mask in selector.select():
///         key.data(key, mask)
/// ```
///
/// plus what a real loop needs: timers (a heap; ``callLater(_:_:)``),
/// ``callSoon(_:)``, work from other threads woken through an eventfd (written
/// only when the loop may be asleep in `epoll_wait`), signals through a
/// signalfd, and the same async/await surface as the libev loop
/// (``executor``). A peer of `EV.Loop`, not a toy: the servers and clients of
/// the package run on either, through ``/EventCore/EventLoop``.
///
/// ## Threads
/// A loop and its watches belong to the thread that runs them and are not
/// `Sendable`; other threads reach it through ``executor``. Using it from
/// another thread while it runs traps with a message (release builds too).
///
/// ## Lifetime
/// A registered watch, a pending timer, a pending ``callSoon(_:)`` callback,
/// a signal watch and a task on the loop keep ``run()`` running. When the
/// last reference to the loop goes - or at ``close()`` - pending awaits end
/// with ``EpollError/loopClosed``, queued work runs, watches and timers are
/// dropped, and the descriptors are closed. A callback that captures the
/// loop makes a reference cycle; ``close()`` breaks it (asyncio's `loop.close()`).
public final class EpollLoop {
    /// The loop's `Sendable` executor: cross-thread work, tasks and awaits.
    public let executor: EpollExecutor
    let selector: Selector<IOWatch>
    // The timer bookkeeping is @exclusivity(unchecked): the loop's state is
    // used on its thread only (checked), and no access to it can overlap
    // another - the heap's methods call no user code, and the only entries
    // they drop are cancelled ones (no callback left to release) - while the
    // runtime's check cost an access-set insert several times per timer.
    @exclusivity(unchecked) private var timers = TimerHeap()
    @exclusivity(unchecked) private var timerSequence: UInt64 = 0
    private var soon: [() -> Void] = []
    private var soonBatch: [() -> Void] = []
    private var isStopping = false
    private var wakeFD: Int32
    /// The executor's epoll side: the eventfd other threads wake the loop with.
    private let waker: EpollWaker
    private var signalFD: Int32 = -1
    private var signalWatches: [Int32: [SignalWatch]] = [:]
    /// Watches, timers and signal watches the program made (the internal ones not counted).
    @exclusivity(unchecked) private var userWork = 0
    /// Watches, timers and signal watches registered now: the tests' leak check.
    package var heldWatcherCount: Int { userWork }
    /// References that keep ``run()`` running with nothing else to do (tasks of ``run(_:)``).
    var keepAlive = 0
    var runningThread: pthread_t?
    private(set) var isClosing = false
    /// True once ``close()`` (or deinit) has released the kernel state.
    private var isClosed = false

    /// Creates a loop: an epoll instance and an eventfd for wake-ups.
    ///
    /// - Throws: ``/EventCore/SystemCallError`` if the kernel refuses either.
    public init() throws(SystemCallError) {
        ignoreSIGPIPE()
        selector = try Selector()
        wakeFD = try systemCall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        waker = EpollWaker(wakeFD: wakeFD)
        executor = EpollExecutor(waker: waker)
        executor.loop = self
        try registerWakeup()
    }

    deinit {
        teardown()
    }

    /// Closes the loop now, as dropping its last reference would: pending
    /// awaits end with ``EpollError/loopClosed``, queued work runs, watches,
    /// timers and callbacks are dropped (releasing their closures) and the
    /// descriptors are closed. Harmless twice; any other use afterwards traps.
    ///
    /// Call it after ``run()`` returns, not from inside it.
    public func close() {
        checkUsage(runningThread == nil, "Epoll: close() was called while the loop runs; stop() it first.")
        teardown()
    }

    // MARK: watches

    /// Calls `callback` whenever `fd` is ready for `interest` (level-triggered:
    /// for as long as it stays ready), until the watch is cancelled.
    ///
    /// - Returns: the watch; registered until cancelled, so the result can be ignored.
    /// - Throws: ``SelectorError`` if `fd` is not open or already watched.
    @discardableResult
    public func watch(_ fd: Int32, _ interest: Interest, _ callback: @escaping (IOWatch, Interest) -> Void) throws(SelectorError) -> IOWatch {
        try register(IOWatch(fd: fd, interest: interest, loop: self, target: .closure(callback)))
    }

    /// Calls `handler.ready(_:)` whenever `fd` is ready for `interest`, until
    /// the watch is cancelled: ``watch(_:_:_:)`` without a closure context.
    /// The watch holds `handler` strongly (see ``/EventCore/EventLoop/watchReadiness(_:_:handler:)``).
    ///
    /// - Throws: ``SelectorError`` if `fd` is not open or already watched.
    @discardableResult
    public func watch(_ fd: Int32, _ interest: Interest, handler: any ReadinessHandler) throws(SelectorError) -> IOWatch {
        try register(IOWatch(fd: fd, interest: interest, loop: self, target: .handler(handler)))
    }

    private func register(_ watch: IOWatch) throws(SelectorError) -> IOWatch {
        checkThread()
        checkOpen()
        let fd = watch.fd
        let interest = watch.interest
        if let stale = try selector.register(fd, interest, data: watch) {
            // The number's earlier file was closed without cancelling its
            // watch: that watch must never see the new file's events.
            stale.data.invalidate()
            userWork -= 1
            let old = stale.data
            callSoon { old.dispatch(.error) }
        }
        userWork += 1
        return watch
    }

    func update(_ watch: IOWatch) {
        checkThread()
        do {
            try selector.modify(watch.fd, watch.interest, data: watch)
        } catch {
            // Closed under the watch: end it, and tell its owner.
            retire(watch)
        }
    }

    func cancel(_ watch: IOWatch) {
        checkThread()
        guard selector.key(for: watch.fd)?.data === watch else { return }
        _ = try? selector.unregister(watch.fd)
        userWork -= 1
    }

    private func retire(_ watch: IOWatch) {
        cancel(watch)
        watch.invalidate()
        callSoon { watch.dispatch(.error) }
    }

    // MARK: timers and callbacks

    /// Calls `callback` once, `seconds` from now (negative: at the next iteration).
    ///
    /// - Returns: the timer, for ``LoopTimer/cancel()``; it fires even if the result is ignored.
    @discardableResult
    public func callLater(_ seconds: Double, _ callback: @escaping () -> Void) -> LoopTimer {
        callAt(monotonicNow() + (seconds.isFinite ? max(seconds, 0) : .greatestFiniteMagnitude), callback)
    }

    /// Calls `callback` once at `deadline` on the monotonic clock (``/EventCore/monotonicNow()``).
    @discardableResult
    public func callAt(_ deadline: Double, _ callback: @escaping () -> Void) -> LoopTimer {
        checkThread()
        checkOpen()
        timerSequence += 1
        let timer = LoopTimer(deadline: deadline, sequence: timerSequence, loop: self, callback: callback)
        timers.insert(timer)
        userWork += 1
        return timer
    }

    func timerCancelled() {
        userWork -= 1
        timers.noteCancelled()
    }

    /// Calls `callback` in the next iteration, after the io callbacks (asyncio's `call_soon`).
    public func callSoon(_ callback: @escaping () -> Void) {
        checkThread()
        checkOpen()
        soon.append(callback)
    }

    // MARK: signals

    /// Calls `callback` on the loop's thread whenever the process receives
    /// `signal`, read from a signalfd.
    ///
    /// signalfd needs the signal blocked: the loop blocks it in its own
    /// thread. Block it in the other threads of the process too (before
    /// starting them), or the kernel may deliver it to one of them instead.
    ///
    /// - Returns: the watch, for ``SignalWatch/cancel()``.
    /// - Throws: ``EpollError/invalidSignal(_:)``, or ``/EventCore/SystemCallError``.
    @discardableResult
    public func onSignal(_ signal: Int32, _ callback: @escaping (Int32) -> Void) throws -> SignalWatch {
        checkThread()
        checkOpen()
        guard signal > 0, signal < signalNumberLimit, signal != SIGKILL, signal != SIGSTOP else { throw EpollError.invalidSignal(signal) }
        let watch = SignalWatch(signal: signal, loop: self, callback: callback)
        signalWatches[signal, default: []].append(watch)
        try updateSignals()
        userWork += 1
        return watch
    }

    func cancel(_ watch: SignalWatch) {
        guard var list = signalWatches[watch.signal], let index = list.firstIndex(where: { $0 === watch }) else { return }
        list.remove(at: index)
        signalWatches[watch.signal] = list.isEmpty ? nil : list
        userWork -= 1
        try? updateSignals()
    }

    private func updateSignals() throws {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signalWatches.keys { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let fd = try systemCall("signalfd") { signalfd(signalFD, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
        if signalFD < 0 {
            signalFD = fd
            let watch = IOWatch(fd: fd, interest: .read, loop: self, target: .closure { [unowned(unsafe) self] _, _ in readSignals() })
            try selector.register(fd, .read, data: watch)
        }
    }

    private func readSignals() {
        var info = signalfd_siginfo()
        while read(signalFD, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            let signal = Int32(info.ssi_signo)
            for watch in signalWatches[signal] ?? [] { watch.callback(signal) }
        }
    }

    // MARK: running

    /// Runs until ``stop()``, or until nothing is left to wait for: no watch,
    /// timer, callback, signal watch or task of ``run(_:)``.
    public func run() {
        checkOpen()
        runLoop(forever: false)
    }

    /// Runs until nothing is left to wait for, or ``stop()``: ``run()``, for
    /// the loops' common protocol.
    public func runUntilDone() {
        run()
    }

    /// Runs until ``stop()`` (asyncio's `run_forever`), even with nothing to do.
    public func runForever() {
        checkOpen()
        runLoop(forever: true)
    }

    /// Makes ``run()`` return after the current iteration.
    public func stop() {
        isStopping = true
    }

    /// Runs one iteration: waits for events at most `timeout` seconds (nil:
    /// until the next timer, or without limit), then handles what came.
    public func runOnce(timeout: Double? = nil) {
        checkOpen()
        withRunningThread { iterate(maximumWait: timeout) }
    }

    private func runLoop(forever: Bool) {
        withRunningThread {
            isStopping = false
            while !isStopping && (forever || hasWork) {
                iterate(maximumWait: nil)
            }
            isStopping = false
        }
    }

    private func withRunningThread(_ body: () -> Void) {
        checkThread()
        let outer = runningThread
        runningThread = pthread_self()
        defer { runningThread = outer }
        CurrentLoop.with(executor, body)
    }

    private var hasWork: Bool {
        userWork > 0 || keepAlive > 0 || !soon.isEmpty || executor.hasLocalWork || !executor.waits.isEmpty
    }

    /// One turn of the loop: poll, then timers, callbacks and tasks.
    private func iterate(maximumWait: Double?) {
        var timeout: Double? = maximumWait
        if !soon.isEmpty || executor.hasLocalWork {
            timeout = 0
        } else if !timers.isEmpty, let next = timers.nextDeadline() {
            let untilTimer = max(next - monotonicNow(), 0)
            timeout = min(timeout ?? untilTimer, untilTimer)
        }
        let mayBlock = timeout != 0
        if mayBlock {
            // From here, a submission from another thread writes the eventfd.
            waker.isPolling.store(true, ordering: .sequentiallyConsistent)
            if executor.hasSubmittedWork { timeout = 0 }
        }
        do {
            try selector.select(timeout: timeout) { key, events in
                key.data.dispatch(events)
            }
        } catch {
            fatalError("Epoll: the loop cannot continue: \(error)")
        }
        if mayBlock { waker.isPolling.store(false, ordering: .sequentiallyConsistent) }

        if !timers.isEmpty {
            let now = monotonicNow()
            while let timer = timers.popDue(now), let callback = timer.callback {
                timer.callback = nil
                userWork -= 1
                callback()
            }
        }
        if !soon.isEmpty {
            swap(&soon, &soonBatch)
            for callback in soonBatch { callback() }
            soonBatch.removeAll(keepingCapacity: true)
        }
        executor.runBatches()
    }

    private func registerWakeup() throws(SystemCallError) {
        let fd = wakeFD
        let watch = IOWatch(fd: fd, interest: .read, loop: self, target: .closure { _, _ in
            var value: UInt64 = 0
            _ = read(fd, &value, EpollWaker.eventfdIncrement)
        })
        do {
            try selector.register(fd, .read, data: watch)
        } catch {
            if case .system(let error) = error { throw error }
        }
    }

    /// Gives a forked child its own kernel state: a new epoll instance with
    /// every watch registered again, a new eventfd and signalfd. Call it in
    /// the child, before running the loop there.
    public func reinitializeAfterFork() throws(SystemCallError) {
        try selector.reinitialize()
        _ = try? selector.unregister(wakeFD)
        Glibc.close(wakeFD)
        wakeFD = try systemCall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        waker.wakeFD.withLock { $0 = wakeFD }
        try registerWakeup()
        if signalFD >= 0 {
            _ = try? selector.unregister(signalFD)
            Glibc.close(signalFD)
            signalFD = -1
            try? updateSignals()
        }
    }

    // MARK: threads and teardown

    /// Traps when called from a thread other than the one running the loop,
    /// in release builds too (see `EV.LoopCore.checkThread`).
    @inline(__always)
    func checkThread(_ function: StaticString = #function) {
        if let running = runningThread, pthread_equal(running, pthread_self()) == 0 {
            misuse("Epoll: \(function) was called on a thread other than the one running this loop; from other threads use loop.executor.execute { }.")
        }
    }

    private func teardown() {
        guard !isClosed else { return }
        isClosing = true
        CurrentLoop.with(executor) {
            executor.closeAfterDraining {
                for timer in timers.removeAll() { timer.callback = nil }
                soon.removeAll()
            }
        }
        executor.loop = nil
        for key in selector.allKeys {
            key.data.invalidate()
            key.data.release()
        }
        for watch in signalWatches.values.joined() { watch.loop = nil }
        if signalFD >= 0 { Glibc.close(signalFD) }
        Glibc.close(wakeFD)
        selector.close()
        isClosed = true
    }

    /// Traps with a clear message if the loop was closed.
    @inline(__always)
    func checkOpen(_ function: StaticString = #function) {
        if isClosed { closedUse(function) }
    }

    @inline(never)
    private func closedUse(_ function: StaticString) -> Never {
        fatalError("Epoll: \(function) was called after the loop was closed.")
    }
}
