import CLinux
@_spi(EventLoops) import EventCore
import Glibc

/// The executor of a ``TestLoop``: the package's one executor core, with
/// the loop's virtual clock.
public typealias TestLoopExecutor = LoopExecutorCore<TestLoop>

/// An event loop for tests whose clock moves only when the test says:
/// SwiftNIO's `EmbeddedEventLoop` and `NIOAsyncTestingEventLoop`, for this
/// package's ``/EventCore/EventLoop``.
///
/// It runs the same callback and async code an app runs on `Loop` or
/// `EpollLoop` - timers, readiness watches, `Connection`s, tasks on its
/// ``executor``, `withTimeout` - on the thread that drives it, and only
/// when driven:
///
/// - ``runPending()`` runs what is ready now: queued work and tasks, timers
///   due at the loop's time, descriptors ready now. The clock stays put.
/// - ``advance(by:)`` and ``advance(to:)`` move the clock, stopping at each
///   timer's deadline to run it and what it made ready, in deadline order.
/// - ``deliver(_:to:)`` hands readiness to a descriptor's watches, for a
///   test that plays the kernel.
/// - ``runUntilDone()``, ``runForever()`` and ``run(_:)`` - the protocol's
///   ways to run - jump the clock to the next timer whenever nothing else
///   can run (trio's `MockClock` with `autojump_threshold=0`), so code that
///   sleeps, paces or times out runs to its end at once.
///
/// Time is virtual for everything the loop's code reads through the
/// package: the loop's timers, `executor.now`, `withTimeout`'s
/// deadlines and the package's own rates and timeouts follow ``now``, which
/// starts at the machine's time and counts whole nanoseconds.
///
/// Readiness is real too: each turn polls the watched descriptors without
/// waiting (``pollsDescriptors``), so a test can put a real socket pair or a
/// Unix socket under the code and get the same answers the kernel gives a
/// real loop. Unix sockets and pipes are ready as soon as the peer's write
/// returns, on any machine; loopback TCP usually is, but the kernel may defer
/// its delivery, so a test that needs the order of readiness and timers
/// exact puts its peers on Unix sockets (or sets ``autoAdvanceDelay``).
///
/// ```swift
/// let loop = try TestLoop()
/// var fired = false
/// loop.schedule(after: .seconds(30)) { fired = true }
/// loop.advance(by: .seconds(29))   // fired == false
/// loop.advance(by: .seconds(1))    // fired == true, and no time passed
/// ```
///
/// Like the package's other loops, a test loop belongs to the thread that
/// drives it while it runs; other threads reach it through ``executor``.
public final class TestLoop {
    /// The loop's executor: tasks (`Task(executorPreference:)`), work from
    /// other threads, and the awaits, all run when the loop is driven.
    public let executor: TestLoopExecutor
    private let lifecycle: LoopLifecycle
    private let clock: VirtualClock
    private let waker: TestLoopWaker
    /// Unsorted: a test has a few timers, and the earliest is found by a scan.
    private var timers: [TestTimer] = []
    private var timerSequence: UInt64 = 0
    private var keepAliveTimers = 0
    private var watches: [TestWatch] = []
    private var isStopping = false

    /// Whether each turn polls the watched descriptors (without waiting);
    /// `false` leaves readiness to ``deliver(_:to:)`` alone. On by default.
    public var pollsDescriptors = true

    /// How long, in the machine's time, ``runUntilDone()`` and its kin wait
    /// for a watched descriptor before jumping the clock to the next timer:
    /// zero by default (every peer on the loop itself); a peer in another
    /// thread or process needs the time its answer takes (trio's
    /// `autojump_threshold`).
    public var autoAdvanceDelay: Duration = .zero

    /// A loop at the machine's time, not running.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` if the kernel refuses its
    ///   eventfd (the wake-up of work from other threads).
    public init() throws(EventLoopError) {
        let wakeFD = try systemCall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        clock = VirtualClock()
        waker = TestLoopWaker(fd: wakeFD)
        executor = TestLoopExecutor(waker: waker, name: "TestLoop", clock: clock)
        lifecycle = executor.lifecycle
        executor.loop = self
    }

    deinit {
        teardown()
    }

    /// The loop's time: where the test has moved it.
    public var now: ContinuousClock.Instant { clock.instant }

    /// Timers waiting (the monitor's probe, which keeps no loop running, not counted).
    public var scheduledTimerCount: Int { keepAliveTimers }

    /// Readiness watches not cancelled, with an interest or not.
    public var watchCount: Int { watches.count }

    // MARK: driving

    /// Runs everything ready at the loop's time - queued work, tasks, due
    /// timers, ready descriptors - until nothing is; the clock does not move.
    public func runPending() {
        drive("runPending()") { runUntilQuiet() }
    }

    /// Moves the clock forward by `duration`, running each timer at its
    /// deadline, in deadline order (the order made for equal ones), with
    /// what each makes ready; then what is ready at the end.
    ///
    /// - Precondition: `duration` is not negative.
    public func advance(by duration: Duration) {
        checkUsage(duration >= .zero, "TestLoop.advance(by:): the clock moves forward only (\(duration))")
        advance(toNanoseconds: clock.nanoseconds + VirtualClock.nanoseconds(duration))
    }

    /// Moves the clock to `deadline` as ``advance(by:)`` does; a deadline in
    /// the past only runs what is ready.
    public func advance(to deadline: ContinuousClock.Instant) {
        advance(toNanoseconds: clock.nanoseconds(of: deadline))
    }

    private func advance(toNanoseconds target: Int64) {
        drive("advance(by:)") {
            runUntilQuiet()
            while let next = nextDeadline(), next <= target {
                clock.set(nanoseconds: next)
                runUntilQuiet()
            }
            clock.set(nanoseconds: target)
            runUntilQuiet()
        }
    }

    /// Hands `events` to the watches of `descriptor` that want them (an
    /// error to every one), then runs what that made ready: readiness a test
    /// feeds instead of the kernel.
    public func deliver(_ events: Interest, to descriptor: FileDescriptor) {
        drive("deliver(_:to:)") {
            for watch in watches where watch.fd == descriptor.rawValue {
                let wanted = events.intersection(watch.currentInterest.union(.error))
                if !wanted.isEmpty { watch.dispatch(wanted) }
            }
            runUntilQuiet()
        }
    }

    /// Runs `body` now as a callback of the loop - on its thread, at its
    /// time, where loop-bound state may be made and touched (what a real
    /// loop's `executor.execute { loop in ... }` is for) - then what it made
    /// ready (``runPending()``).
    ///
    /// - Returns: what `body` returns.
    public func runOnLoop<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        var result: Result<T, E>?
        drive("runOnLoop(_:)") {
            do throws(E) { result = .success(try body()) } catch { result = .failure(error) }
            runUntilQuiet()
        }
        return try result!.get()
    }

    /// The loop's running scope, with its clock as the thread's.
    private func drive(_ function: StaticString, _ body: () -> Void) {
        VirtualClock.with(clock) { lifecycle.run(function, body) }
    }

    /// Turns until one runs nothing.
    private func runUntilQuiet() {
        var turns = 0
        while !isStopping && turn() {
            turns += 1
            if turns == 1_000_000 {
                misuse("TestLoop: still busy after a million turns at one instant: a watch always ready (a writable socket watched for .write with nothing to write?) or work that queues itself forever")
            }
        }
    }

    /// One turn at the loop's time: due timers, ready descriptors, queued
    /// work. Whether anything ran.
    private func turn() -> Bool {
        var ran = false
        let now = clock.nanoseconds
        while let timer = popTimer(dueBy: now) {
            ran = true
            measured("a timer") { timer.fire() }
        }
        if pollsDescriptors && !watches.isEmpty {
            ran = poll(milliseconds: 0) || ran
        }
        if executor.hasLocalWork || executor.hasSubmittedWork {
            ran = true
            waker.drain()
            executor.runBatches()
        }
        return ran
    }

    /// Polls the watched descriptors (and the wake-up, when it may wait) for
    /// up to `milliseconds` (-1: without limit) and dispatches what is
    /// ready. Whether any watch was called.
    private func poll(milliseconds: Int32) -> Bool {
        var descriptors: [pollfd] = []
        var owners: [[TestWatch]] = []
        for watch in watches where !watch.currentInterest.isEmpty {
            var wanted: Int16 = 0
            if watch.currentInterest.contains(.read) { wanted |= Int16(POLLIN) }
            if watch.currentInterest.contains(.write) { wanted |= Int16(POLLOUT) }
            if let index = descriptors.firstIndex(where: { $0.fd == watch.fd }) {
                descriptors[index].events |= wanted
                owners[index].append(watch)
            } else {
                descriptors.append(pollfd(fd: watch.fd, events: wanted, revents: 0))
                owners.append([watch])
            }
        }
        if milliseconds != 0 { descriptors.append(pollfd(fd: waker.fd, events: Int16(POLLIN), revents: 0)) }
        guard !descriptors.isEmpty else { return false }
        let blocking = milliseconds != 0
        if blocking { lifecycle.monitor?.willBlock() }
        let count = Glibc.poll(&descriptors, nfds_t(descriptors.count), milliseconds)
        if blocking { lifecycle.monitor?.didWake() }
        guard count > 0 else { return false }
        var called = false
        for (index, owners) in owners.enumerated() {
            let revents = Int32(descriptors[index].revents)
            if revents == 0 || revents & POLLNVAL != 0 { continue } // closed under its watch: nothing to say
            var got: Interest = []
            if revents & POLLIN != 0 { got.insert(.read) }
            if revents & POLLOUT != 0 { got.insert(.write) }
            if revents & (POLLERR | POLLHUP) != 0 { got.insert(.error) }
            for watch in owners where !watch.isCancelled {
                let wanted = got.intersection(watch.currentInterest.union(.error))
                guard !wanted.isEmpty else { continue }
                called = true
                measured("a readiness callback on descriptor \(watch.fd) (\(wanted))") { watch.dispatch(wanted) }
            }
        }
        return called
    }

    @inline(__always)
    private func measured(_ source: @autoclosure () -> String, _ body: () -> Void) {
        LoopMonitor.measure(lifecycle.monitor, source(), body)
    }

    // MARK: running, as the protocol runs a loop

    /// Runs until nothing is left to wait for (no timer, watch with an
    /// interest, queued work or pending await) or ``stop()``, jumping the
    /// clock to the next timer whenever nothing else can run.
    public func runUntilDone() {
        runLoop(forever: false, "runUntilDone()")
    }

    /// Runs until ``stop()``, jumping the clock to the next timer whenever
    /// nothing else can run, and waiting (in the machine's time) for a
    /// watched descriptor or work from another thread when no timer is left.
    public func runForever() {
        runLoop(forever: true, "runForever()")
    }

    /// Makes the running ``runUntilDone()`` or ``runForever()`` return after
    /// the current turn.
    public func stop() {
        isStopping = true
    }

    private func runLoop(forever: Bool, _ function: StaticString) {
        drive(function) {
            isStopping = false
            while !isStopping {
                runUntilQuiet()
                if isStopping || (!forever && !hasWork) { break }
                if let next = nextDeadline() {
                    if autoAdvanceDelay > .zero, !watches.isEmpty,
                       poll(milliseconds: Int32(clamping: VirtualClock.nanoseconds(autoAdvanceDelay) / 1_000_000)) {
                        continue
                    }
                    clock.set(nanoseconds: max(next, clock.nanoseconds))
                } else {
                    _ = poll(milliseconds: -1)
                }
            }
            isStopping = false
        }
    }

    private var hasWork: Bool {
        keepAliveTimers > 0 || watches.contains { !$0.currentInterest.isEmpty }
            || executor.hasLocalWork || executor.hasSubmittedWork || !executor.waits.isEmpty
    }

    // MARK: timers

    private func nextDeadline() -> Int64? {
        timers.lazy.map(\.due).min()
    }

    private func popTimer(dueBy now: Int64) -> TestTimer? {
        var earliest: Int? = nil
        for (index, timer) in timers.enumerated() where timer.due <= now {
            if let current = earliest, (timers[current].due, timers[current].sequence) <= (timer.due, timer.sequence) { continue }
            earliest = index
        }
        guard let earliest else { return nil }
        let timer = timers.remove(at: earliest)
        timer.isScheduled = false
        if timer.keepsLoopAlive { keepAliveTimers -= 1 }
        return timer
    }

    fileprivate func add(_ timer: TestTimer) {
        timerSequence += 1
        timer.sequence = timerSequence
        timer.isScheduled = true
        timers.append(timer)
        if timer.keepsLoopAlive { keepAliveTimers += 1 }
    }

    fileprivate func remove(_ timer: TestTimer) {
        guard timer.isScheduled, let index = timers.firstIndex(where: { $0 === timer }) else { return }
        timers.remove(at: index)
        timer.isScheduled = false
        if timer.keepsLoopAlive { keepAliveTimers -= 1 }
    }

    private func makeTimer(dueIn nanoseconds: Int64, keepsLoopAlive: Bool = true, _ function: StaticString,
                           _ callback: @escaping () -> Void) -> TestTimer {
        lifecycle.checkUsable(function)
        let timer = TestTimer(loop: self, due: clock.nanoseconds &+ max(nanoseconds, 0), keepsLoopAlive: keepsLoopAlive,
                              callback: callback)
        add(timer)
        return timer
    }

    /// The monitor's probe: a timer that keeps no loop running, re-armed each tick.
    fileprivate func rearm(_ timer: TestTimer, after nanoseconds: Int64) {
        timer.due = clock.nanoseconds &+ nanoseconds
        add(timer)
    }

    // MARK: watches

    fileprivate func cancel(_ watch: TestWatch) {
        lifecycle.checkThread("TestWatch.cancel()")
        watches.removeAll { $0 === watch }
    }

    private func register(_ watch: TestWatch, _ function: StaticString) throws(EventLoopError) -> TestWatch {
        lifecycle.checkUsable(function)
        if fcntl(watch.fd, F_GETFD) == -1 {
            throw EventLoopError.system("watchReadiness", Errno(rawValue: errno), descriptor: FileDescriptor(rawValue: watch.fd))
        }
        watches.append(watch)
        return watch
    }

    // MARK: teardown

    /// Closes the loop: pending awaits end with
    /// ``/EventCore/EventLoopError/loopClosed``, the work already accepted
    /// runs, watches and timers are dropped; then its eventfd is closed.
    /// Harmless when closed already.
    public func close() {
        teardown()
    }

    private func teardown() {
        VirtualClock.with(clock) {
            executor.close("close()", dropWatches: {
                for timer in timers { timer.isScheduled = false; timer.callback = nil }
                timers.removeAll()
                keepAliveTimers = 0
                for watch in watches { watch.release() }
                watches.removeAll()
            }, release: {
                executor.loop = nil
                Glibc.close(waker.fd)
            })
        }
    }
}

extension TestLoop: EventLoop {
    /// Calls `callback` with what `descriptor` is ready for, each turn it is
    /// ready for `interest` (polled without waiting), or when the test
    /// delivers readiness to it (``deliver(_:to:)``), until cancelled.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` (`EBADF`) if `descriptor` is not open.
    public func watchReadiness(_ descriptor: FileDescriptor, _ interest: Interest,
                               _ callback: @escaping (Interest) -> Void) throws(EventLoopError) -> TestWatch {
        try register(TestWatch(fd: descriptor.rawValue, interest: interest, loop: self, target: .closure(callback)),
                     "watchReadiness(_:_:_:)")
    }

    /// As ``watchReadiness(_:_:_:)``, calling `handler`.
    ///
    /// - Throws: as ``watchReadiness(_:_:_:)``.
    public func watchReadiness(_ descriptor: FileDescriptor, _ interest: Interest,
                               handler: any ReadinessHandler) throws(EventLoopError) -> TestWatch {
        try register(TestWatch(fd: descriptor.rawValue, interest: interest, loop: self, target: .handler(handler)),
                     "watchReadiness(_:_:handler:)")
    }

    /// Calls `callback` once, `delay` after the loop's time now: when the
    /// test advances the clock to it (or ``run(_:)`` jumps there).
    ///
    /// - Returns: the timer, for `cancel()`; it fires even if the result is ignored.
    @discardableResult
    public func schedule(after delay: Duration, _ callback: @escaping () -> Void) -> any Cancellable {
        makeTimer(dueIn: VirtualClock.nanoseconds(delay), "schedule(after:_:)", callback)
    }

    /// Calls `callback` once at `deadline` on the loop's clock; a deadline
    /// in the past fires at the next turn.
    ///
    /// - Returns: the timer, for `cancel()`; it fires even if the result is ignored.
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, _ callback: @escaping () -> Void) -> any Cancellable {
        makeTimer(dueIn: clock.nanoseconds(of: deadline) &- clock.nanoseconds, "schedule(at:_:)", callback)
    }

    /// Nothing to renew: the loop holds no kernel state a fork shares but its eventfd.
    public func reinitializeAfterFork() throws(EventLoopError) {
        lifecycle.checkUsable("reinitializeAfterFork()")
    }

    /// Runs `body` as a task on the loop's executor and drives the loop -
    /// jumping the clock past every wait - until it returns.
    public func run<T: Sendable>(_ body: sending @escaping (TestLoopExecutor) async throws -> T) throws -> T {
        lifecycle.checkUsable("TestLoop.run(_:)")
        lifecycle.checkNotRunning("TestLoop.run(_:) with a task", "await the work instead")
        return try executor.runTask(on: self, body)
    }

    /// The loop's monitor; its probe runs on the loop's virtual time, its
    /// measurements (time running callbacks, a slow callback) on the machine's.
    public var monitor: LoopMonitor {
        lifecycle.checkUsable("monitor")
        if let monitor = executor.monitor { return monitor }
        let monitor = LoopMonitor(lifecycle) { [weak self] interval, tick in
            guard let self, !lifecycle.isClosingOrClosed else { return nil }
            let every = VirtualClock.nanoseconds(interval)
            let probe = TestTimer(loop: self, due: 0, keepsLoopAlive: false, callback: nil)
            probe.callback = { [unowned self, unowned probe] in
                tick()
                if probe.callback != nil { rearm(probe, after: every) }
            }
            rearm(probe, after: every)
            return probe
        }
        executor.monitor = monitor
        lifecycle.monitor = monitor
        return monitor
    }
}

extension TestLoop: LoopGauges {
    package var heldWatcherCount: Int { keepAliveTimers + watches.count { !$0.currentInterest.isEmpty } }
}

/// A timer of a ``TestLoop``, for ``cancel()``.
public final class TestTimer: Cancellable {
    fileprivate unowned(unsafe) let loop: TestLoop
    fileprivate var due: Int64
    fileprivate var sequence: UInt64 = 0
    fileprivate let keepsLoopAlive: Bool
    fileprivate var isScheduled = false
    fileprivate var callback: (() -> Void)?

    fileprivate init(loop: TestLoop, due: Int64, keepsLoopAlive: Bool, callback: (() -> Void)?) {
        self.loop = loop
        self.due = due
        self.keepsLoopAlive = keepsLoopAlive
        self.callback = callback
    }

    fileprivate func fire() {
        callback?()
    }

    /// Stops the timer before it fires; harmless after.
    public func cancel() {
        callback = nil
        if isScheduled { loop.remove(self) }
    }
}

/// A readiness watch of a ``TestLoop``.
public final class TestWatch: IOWatching {
    fileprivate enum Target {
        case closure((Interest) -> Void)
        case handler(any ReadinessHandler)
        case released
    }

    fileprivate let fd: Int32
    fileprivate var currentInterest: Interest
    private var target: Target
    private unowned(unsafe) var loop: TestLoop?

    fileprivate init(fd: Int32, interest: Interest, loop: TestLoop, target: Target) {
        self.fd = fd
        currentInterest = interest
        self.loop = loop
        self.target = target
    }

    /// The descriptor watched.
    public var descriptor: FileDescriptor { FileDescriptor(rawValue: fd) }

    /// What the watch waits for; an empty interest pauses it.
    public var interest: Interest {
        get { currentInterest }
        set { currentInterest = newValue }
    }

    /// Sets ``interest``.
    public func setInterest(_ interest: Interest) throws(EventLoopError) {
        currentInterest = interest
    }

    /// Stops the watch; harmless twice.
    public func cancel() {
        loop?.cancel(self)
        loop = nil
        release()
    }

    fileprivate var isCancelled: Bool { loop == nil }

    fileprivate func release() {
        target = .released
        loop = nil
    }

    fileprivate func dispatch(_ events: Interest) {
        switch target {
        case .closure(let callback): callback(events)
        case .handler(let handler): handler.ready(events)
        case .released: break
        }
    }
}

/// Wakes a ``TestLoop`` waiting in ``TestLoop/runForever()`` for work from
/// another thread: an eventfd in its poll.
final class TestLoopWaker: LoopWaker, Sendable {
    let fd: Int32

    init(fd: Int32) {
        self.fd = fd
    }

    func wakeFromOtherThread() {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, MemoryLayout<UInt64>.size)
    }

    func localWorkQueued() {}

    func drain() {
        var value: UInt64 = 0
        _ = Glibc.read(fd, &value, MemoryLayout<UInt64>.size)
    }
}
