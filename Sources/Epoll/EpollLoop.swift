import CLinux
@_spi(EventLoops) import EventCore
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
/// with ``/EventCore/EventLoopError/loopClosed``, queued work runs, watches and timers are
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
    /// The loop's life (``/EventCore/LoopLifecycle``, kept by its executor):
    /// the running thread every entry point checks, and the teardown's order.
    /// (Kept here too, so that each check reaches it in one load.)
    private let lifecycle: LoopLifecycle
    private var wakeFD: Int32
    /// The executor's epoll side: the eventfd other threads wake the loop with.
    private let waker: EpollWaker
    private var signalFD: Int32 = -1
    private var signalWatches: [Int32: [SignalWatch]] = [:]
    /// Watches, timers and signal watches the program made (the internal ones not counted).
    @exclusivity(unchecked) private var userWork = 0
    /// Watches, timers and signal watches registered now: the tests' leak check.
    package var heldWatcherCount: Int { userWork }

    /// Creates a loop: an epoll instance and an eventfd for wake-ups.
    ///
    /// Like `EV.Loop`, the first loop made ignores `SIGPIPE` for the process
    /// (see ``/EventCore/ProcessSettings/ignoresSIGPIPE``).
    ///
    /// - Throws: ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/Code/system(_:)``)
    ///   if the kernel refuses either (`EMFILE`, say).
    public init() throws(EventLoopError) {
        ignoreSIGPIPE()
        selector = try Selector()
        do {
            wakeFD = try systemCall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        } catch {
            selector.close()
            throw error
        }
        waker = EpollWaker(wakeFD: wakeFD)
        executor = EpollExecutor(waker: waker, name: "Epoll")
        lifecycle = executor.lifecycle
        executor.loop = self
        registerWakeup()
    }

    deinit {
        teardown()
    }

    /// Closes the loop now, as dropping its last reference would: pending
    /// awaits end with ``/EventCore/EventLoopError/loopClosed``, queued work runs, watches,
    /// timers and callbacks are dropped (releasing their closures) and the
    /// descriptors are closed. Harmless twice; any other use afterwards traps.
    ///
    /// Call it after ``run()`` returns, not from inside it.
    public func close() {
        teardown()
    }

    // MARK: watches

    /// Calls `callback` whenever `descriptor` is ready for `interest`
    /// (level-triggered: for as long as it stays ready), until the watch is cancelled.
    ///
    /// - Returns: the watch; registered until cancelled, so the result can be ignored.
    /// - Throws: ``/EventCore/EventLoopError`` naming the descriptor if it is
    ///   not open, already watched by this loop, or refused by epoll (see
    ///   ``Selector/register(_:_:data:)``).
    @discardableResult
    public func watch(_ descriptor: FileDescriptor, _ interest: Interest,
                      _ callback: @escaping (IOWatch, Interest) -> Void) throws(EventLoopError) -> IOWatch {
        try register(IOWatch(fd: descriptor.rawValue, interest: interest, loop: self, target: .closure(callback)))
    }

    /// Calls `handler.ready(_:)` whenever `descriptor` is ready for
    /// `interest`, until the watch is cancelled: ``watch(_:_:_:)`` without a
    /// closure context. The watch holds `handler` strongly (see
    /// ``/EventCore/EventLoop/watchReadiness(_:_:handler:)``).
    ///
    /// - Throws: what ``watch(_:_:_:)`` throws.
    @discardableResult
    public func watch(_ descriptor: FileDescriptor, _ interest: Interest, handler: any ReadinessHandler) throws(EventLoopError) -> IOWatch {
        try register(IOWatch(fd: descriptor.rawValue, interest: interest, loop: self, target: .handler(handler)))
    }

    private func register(_ watch: IOWatch, _ function: StaticString = #function) throws(EventLoopError) -> IOWatch {
        lifecycle.checkUsable(function)
        if let stale = try selector.register(watch.descriptor, watch.interest, data: watch) {
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

    /// Hands a watch's new interest to epoll; a watch whose descriptor was
    /// closed under it is retired (cancelled, and sent the error) and the
    /// error thrown.
    func update(_ watch: IOWatch, _ function: StaticString = #function) throws(EventLoopError) {
        lifecycle.checkUsable(function)
        do {
            try selector.modify(watch.descriptor, watch.interest, data: watch)
        } catch {
            retire(watch)
            throw error
        }
    }

    func cancel(_ watch: IOWatch, _ function: StaticString = #function) {
        lifecycle.checkThread(function)
        guard selector.key(for: watch.fd)?.data === watch else { return }
        _ = try? selector.unregister(watch.descriptor)
        userWork -= 1
    }

    private func retire(_ watch: IOWatch) {
        cancel(watch)
        watch.invalidate()
        callSoon { watch.dispatch(.error) }
    }

    // MARK: timers and callbacks

    /// Calls `callback` once, `delay` from now (asyncio's `call_later`).
    ///
    /// A delay of zero or less fires in the next iteration, after the io
    /// callbacks; a delay beyond 10^15 seconds (`.seconds(Int64.max)`, say)
    /// never fires, but keeps the loop running until cancelled.
    ///
    /// - Returns: the timer, for ``LoopTimer/cancel()``; it fires even if the result is ignored.
    @discardableResult
    public func callLater(_ delay: Duration, _ callback: @escaping () -> Void) -> LoopTimer {
        schedule(due: monotonicNow() + LoopTime.delay(delay), callback)
    }

    /// Calls `callback` once at `deadline` (asyncio's `call_at`); a deadline
    /// in the past fires in the next iteration.
    ///
    /// - Returns: the timer, for ``LoopTimer/cancel()``; it fires even if the result is ignored.
    @discardableResult
    public func callAt(_ deadline: ContinuousClock.Instant, _ callback: @escaping () -> Void) -> LoopTimer {
        schedule(due: LoopTime.monotonicSeconds(of: deadline), callback)
    }

    /// A timer due at `due` seconds of ``/EventCore/monotonicNow()``; one
    /// that does not keep the loop running is the monitor's probe.
    private func schedule(due: Double, keepsLoopAlive: Bool = true, _ callback: @escaping () -> Void,
                          _ function: StaticString = #function) -> LoopTimer {
        lifecycle.checkUsable(function)
        timerSequence += 1
        let timer = LoopTimer(due: due, sequence: timerSequence, loop: self, keepsLoopAlive: keepsLoopAlive, callback: callback)
        timers.insert(timer)
        if keepsLoopAlive { userWork += 1 }
        return timer
    }

    func timerCancelled(_ keptLoopAlive: Bool) {
        if keptLoopAlive { userWork -= 1 }
        timers.noteCancelled()
    }

    /// The loop's monitor (``/EventCore/LoopMonitor``): off until started,
    /// then its iterations, time blocked in `epoll_wait` and running, its
    /// delay (a probe timer that does not keep the loop running) and every
    /// readiness callback, timer, `callSoon` callback or task step that
    /// held it over the threshold, named.
    ///
    /// Made on first use; use it on the loop's thread.
    public var monitor: LoopMonitor {
        lifecycle.checkUsable("monitor")
        if let monitor = executor.monitor { return monitor }
        let monitor = LoopMonitor(lifecycle) { [weak self] interval, tick in
            guard let self, !lifecycle.isClosingOrClosed else { return nil }
            let probe = ProbeTimer(loop: self, interval: LoopTime.delay(interval), tick: tick)
            probe.timer = schedule(due: monotonicNow() + probe.interval, keepsLoopAlive: false, probe.fire)
            return probe
        }
        executor.monitor = monitor
        lifecycle.monitor = monitor
        selector.monitor = monitor
        return monitor
    }

    /// Puts a fired timer back in the heap, due at `due` (the probe's re-arm).
    fileprivate func rearm(_ timer: LoopTimer, due: Double, _ callback: @escaping () -> Void) {
        timerSequence += 1
        timer.due = due
        timer.sequence = timerSequence
        timer.callback = callback
        timers.insert(timer)
    }

    /// Runs `body`, measured by the monitor when it is on.
    @inline(__always)
    private func measured(_ source: @autoclosure () -> String, _ body: () -> Void) {
        LoopMonitor.measure(selector.monitor, source(), body)
    }

    /// Calls `callback` in the next iteration, after the io callbacks (asyncio's `call_soon`).
    public func callSoon(_ callback: @escaping () -> Void) {
        lifecycle.checkUsable("callSoon(_:)")
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
    /// - Throws: ``/EventCore/EventLoopError``: ``/EventCore/EventLoopError/Code/invalidArgument``
    ///   for a number outside 1..<65, `SIGKILL` or `SIGSTOP`; ``/EventCore/EventLoopError/Code/system(_:)``
    ///   if the kernel refuses the signalfd.
    @discardableResult
    public func onSignal(_ signal: Int32, _ callback: @escaping (Int32) -> Void) throws(EventLoopError) -> SignalWatch {
        lifecycle.checkUsable("onSignal(_:_:)")
        if let error = EventLoopError.unwatchable(signal: signal, operation: "onSignal") { throw error }
        let watch = SignalWatch(signal: signal, loop: self, callback: callback)
        signalWatches[signal, default: []].append(watch)
        do {
            try updateSignals()
        } catch {
            signalWatches[signal]?.removeLast()
            if signalWatches[signal]?.isEmpty == true { signalWatches[signal] = nil }
            throw error
        }
        userWork += 1
        return watch
    }

    func cancel(_ watch: SignalWatch) {
        lifecycle.checkThread("SignalWatch.cancel()")
        guard var list = signalWatches[watch.signal], let index = list.firstIndex(where: { $0 === watch }) else { return }
        list.remove(at: index)
        signalWatches[watch.signal] = list.isEmpty ? nil : list
        userWork -= 1
        try? updateSignals()
    }

    private func updateSignals() throws(EventLoopError) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signalWatches.keys { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let fd = try systemCall("signalfd") { signalfd(signalFD, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
        if signalFD < 0 {
            signalFD = fd
            registerInternal(fd) { [unowned(unsafe) self] in readSignals() }
        }
    }

    /// Registers one of the loop's own descriptors (eventfd, signalfd), which
    /// is open and new to the selector: the registration cannot fail but for
    /// a kernel out of memory, which the loop cannot run without.
    private func registerInternal(_ fd: Int32, _ ready: @escaping () -> Void) {
        let watch = IOWatch(fd: fd, interest: .read, loop: self, target: .closure { _, _ in ready() })
        do {
            try selector.register(watch.descriptor, .read, data: watch)
        } catch {
            fatalError("Epoll: the loop cannot watch its own descriptor: \(error)")
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
        runLoop(forever: false)
    }

    /// Runs until nothing is left to wait for, or ``stop()``: ``run()``, for
    /// the loops' common protocol.
    public func runUntilDone() {
        run()
    }

    /// Runs until ``stop()`` (asyncio's `run_forever`), even with nothing to do.
    public func runForever() {
        runLoop(forever: true)
    }

    /// Makes ``run()`` return after the current iteration.
    public func stop() {
        isStopping = true
    }

    /// Runs one iteration: waits for events at most `timeout` (nil: until
    /// the next timer, or without limit; zero: not at all), then handles what came.
    public func runOnce(timeout: Duration? = nil) {
        lifecycle.run("runOnce(timeout:)") { iterate(maximumWait: timeout.map(LoopTime.seconds)) }
    }

    private func runLoop(forever: Bool, _ function: StaticString = #function) {
        lifecycle.run(function) {
            isStopping = false
            while !isStopping && (forever || hasWork) {
                iterate(maximumWait: nil)
            }
            isStopping = false
        }
    }

    private var hasWork: Bool {
        userWork > 0 || !soon.isEmpty || executor.hasLocalWork || !executor.waits.isEmpty
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
            try selector.select(seconds: timeout) { key, events in
                measured("a readiness callback on descriptor \(key.fd) (\(events))") { key.data.dispatch(events) }
            }
        } catch {
            fatalError("Epoll: the loop cannot continue: \(error)")
        }
        if mayBlock { waker.isPolling.store(false, ordering: .sequentiallyConsistent) }

        if !timers.isEmpty {
            let now = monotonicNow()
            while let timer = timers.popDue(now), let callback = timer.callback {
                timer.callback = nil
                if timer.keepsLoopAlive { userWork -= 1 }
                measured("a timer") { callback() }
            }
        }
        if !soon.isEmpty {
            swap(&soon, &soonBatch)
            for callback in soonBatch { measured("a callSoon callback") { callback() } }
            soonBatch.removeAll(keepingCapacity: true)
        }
        executor.runBatches()
    }

    private func registerWakeup() {
        let fd = wakeFD
        registerInternal(fd) {
            var value: UInt64 = 0
            _ = read(fd, &value, EpollWaker.eventfdIncrement)
        }
    }

    /// Gives a forked child its own kernel state: a new epoll instance with
    /// every watch registered again, a new eventfd and signalfd. Call it in
    /// the child, before running the loop there.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` if the kernel refuses the new
    ///   epoll instance, eventfd or signalfd, or a watch's registration (a
    ///   descriptor the child closed: cancel its watch first).
    public func reinitializeAfterFork() throws(EventLoopError) {
        lifecycle.checkUsable("reinitializeAfterFork()")
        try selector.reinitialize()
        let fresh = try systemCall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        _ = try? selector.unregister(FileDescriptor(rawValue: wakeFD))
        Glibc.close(wakeFD)
        wakeFD = fresh
        waker.wakeFD.withLock { $0 = wakeFD }
        registerWakeup()
        if signalFD >= 0 {
            _ = try? selector.unregister(FileDescriptor(rawValue: signalFD))
            Glibc.close(signalFD)
            signalFD = -1
            try updateSignals()
        }
    }

    // MARK: teardown

    /// Closes the loop through its lifecycle: pending awaits end with
    /// ``/EventCore/EventLoopError/loopClosed``, the work already accepted
    /// runs until none is left, watches, timers and callbacks are dropped
    /// (their closures released); then the descriptors are closed.
    private func teardown(_ function: StaticString = #function) {
        executor.close(function, dropWatches: {
            for timer in timers.removeAll() { timer.callback = nil }
            soon.removeAll()
            for key in selector.allKeys {
                key.data.invalidate()
                key.data.release()
            }
            for watch in signalWatches.values.joined() { watch.loop = nil }
        }, release: {
            executor.loop = nil
            if signalFD >= 0 { Glibc.close(signalFD) }
            Glibc.close(wakeFD)
            selector.close()
        })
    }
}

/// The monitor's probe on the epoll loop: one timer that keeps no loop
/// running, re-armed after each tick - nothing is allocated per tick
/// (loop thread only, as the loop).
private final class ProbeTimer: Cancellable {
    unowned let loop: EpollLoop
    /// Seconds between ticks.
    let interval: Double
    let tick: () -> Void
    var timer: LoopTimer?
    private var cancelled = false

    init(loop: EpollLoop, interval: Double, tick: @escaping () -> Void) {
        self.loop = loop
        self.interval = interval
        self.tick = tick
    }

    /// The timer's callback, made once.
    private(set) lazy var fire: () -> Void = { [unowned self] in
        guard !cancelled else { return }
        tick()
        guard !cancelled, let timer else { return }
        loop.rearm(timer, due: monotonicNow() + interval, fire)
    }

    func cancel() {
        cancelled = true
        timer?.cancel()
    }
}
