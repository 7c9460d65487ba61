@testable import EV
import CLinux
import EventCore
import Glibc
import Testing
import TestSupport

/// Every `assert` of libev 4.33 (ev.c and the backends Debian builds:
/// select, poll, epoll, io_uring), and why no public call of the wrapper can
/// reach it - shown by a test each. Debian builds libev with assertions on,
/// so one that fires kills the process (SIGABRT): each test runs its
/// scenario in a child process (an exit test) and expects it to end well,
/// having seen the wrapper throw where libev would have aborted.
///
/// | libev assertion | where | how the wrapper keeps it from firing | test |
/// |---|---|---|---|
/// | ev_io_start called with negative fd | ev.c:4339 | `start` checks the descriptor (fstat): ``/EventCore/EventLoopError/BadDescriptor/notOpen`` | `ioStartWithANegativeDescriptor` |
/// | ev_io_start called with illegal event mask | ev.c:4340 | events are masked to read and write | `ioStartWithAnIllegalEventMask` |
/// | ev_io_start called on watcher with invalid fd | ev.c:4343 | (not compiled in Debian's build: EV_VERIFY < 1) the descriptor goes to the kernel at the next iteration; one not open is found before (one batched `poll`) and its watcher gets ``Events/error``; the backends other than epoll `fstat` it at `start`: ``/EventCore/EventLoopError/BadDescriptor/notOpen`` | `ioStartOnAClosedDescriptor` |
/// | ev_io_start called with corrupted watcher | ev.c:4352 | the C struct never moves and is started only when inactive | `ioStartTwiceAndRestart` |
/// | ev_io_stop called with illegal fd (must stay constant after start!) | ev.c:4368 | `set(descriptor:events:)` stops before it changes the descriptor | `ioDescriptorChangedWhileActive` |
/// | ev_io_stop called on watcher with invalid fd | ev.c:4371 | (not compiled in Debian's build: EV_VERIFY < 1 there) stopping after a close is harmless | `ioStopAfterTheDescriptorClosed` |
/// | I/O watcher with invalid fd found in epoll_ctl (EBADF) | ev_epoll.c:134 | descriptors whose watchers changed are checked before libev hands them to the kernel; closed ones' watchers get ``Events/error`` | `aDescriptorClosedBeforeTheLoopRuns` |
/// | ... (EINVAL: the loop's own epoll) | ev_epoll.c:134 | ``/EventCore/EventLoopError/BadDescriptor/ownBackend`` | `watchingTheLoopsOwnEpoll` |
/// | ... (ELOOP: two loops watching each other) | ev_epoll.c:134 | tried on the kernel first: ``/EventCore/EventLoopError/BadDescriptor/epollCycle`` | `twoLoopsWatchingEachOther`, `twoLoopsEmbeddingEachOther` |
/// | poll found invalid fd in poll set (POLLNVAL) | ev_poll.c:121 | on the poll backend every watched descriptor is checked before each poll | `pollBackendWithADescriptorClosedUnderItsWatcher` |
/// | fd >= FD_SETSIZE passed to fd_set-based select backend | ev_select.c:85 | not compiled on Linux (NFDBITS is defined, so libev's select uses bit arrays that grow): descriptors of 1024 and more work | `selectBackendTakesHighDescriptors` |
/// | event loop rejected bad fd (io_uring) | ev_iouring.c:525 | the same check as for epoll | `aDescriptorClosedBeforeTheLoopRuns` (io_uring case) |
/// | ev_timer_start called with negative timer repeat value | ev.c:4392 | a negative repeat is ``/EventCore/EventLoopError/Code/invalidArgument``; a delay is clamped to 0...10^15 s (a `Duration` is never NaN) | `negativeAndHugeIntervals` |
/// | negative ev_timer repeat value found while processing timers | ev.c:3823 | `setRepeat` refuses it | `negativeAndHugeIntervals` |
/// | ev_periodic_start called with negative interval value | ev.c:4490 | an interval that is not positive is ``/EventCore/EventLoopError/Code/invalidArgument`` | `negativeAndHugeIntervals` |
/// | ev_periodic reschedule callback returned time in the past | ev.c:3886 | the answer is clamped to `now` | `aRescheduleCallbackThatAnswersThePast` |
/// | ev_signal_start called with illegal signal number | ev.c:4562 | ``/EventCore/EventLoopError/Code/invalidArgument`` | `signalNumbersOutOfRange` |
/// | a signal must not be attached to two different loops | ev.c:4565 | ``/EventCore/EventLoopError/Code/signalOwnedByAnotherLoop`` | `oneSignalOnTwoLoops` |
/// | child watchers are only supported in the default loop | ev.c:4684 | ``/EventCore/EventLoopError/Code/childWatcherNeedsDefaultLoop`` | `childWatcherOnAnotherLoop` |
/// | loop to be embedded is not embeddable | ev.c:5271 | ``/EventCore/EventLoopError/Code/notEmbeddable`` (itself too) | `embeddingWhatCannotBeEmbedded` |
/// | ev_loop recursion during release detected | ev.c:4027 | fires only from release/acquire callbacks (`ev_set_loop_release_cb`), which the wrapper does not expose; nested runs work | `nestedRunsWork` |
/// | pipe_w not active, but pipe not written | ev.c:4165 | internal to `ev_async_send`; exercised from other threads | `asyncSendsFromOtherThreads` |
/// | ev_verify's checks (priorities, heaps, lists, counts) | ev.c:3573-3680 | priorities are clamped to -2...2, structs never move; `verify()` passes after every watcher type | `verifyAfterEveryWatcherType` |
/// | poll_modify index / poll returned illegal result | ev_poll.c:73, 113 | internal consistency of libev and the kernel | covered by the poll tests above |
/// | io_uring internals (submission, timerfd, in-bounds fd) | ev_iouring.c:240, 489, 505 | internal; the in-bounds fd is a started watcher's | covered by the io_uring case above |
/// | linuxaio assertions | ev_linuxaio.c | the backend is not compiled into Debian's libev (not in `Backend.supported`) | `linuxAIOIsNotBuiltIn` |
/// | only socket fds supported in this configuration | ev.c:2423 | Windows only | (not compiled on Linux) |
@Suite("libev's assertions: none is reachable from the wrapper")
struct LibevAssertionTests {
    @Test func ioStartWithANegativeDescriptor() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.ioStartWithANegativeDescriptor()
        }.map(expectCleanExit)
    }

    @Test func ioStartWithAnIllegalEventMask() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.ioStartWithAnIllegalEventMask()
        }.map(expectCleanExit)
    }

    @Test func ioStartOnAClosedDescriptor() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.ioStartOnAClosedDescriptor()
        }.map(expectCleanExit)
    }

    @Test func ioStartTwiceAndRestart() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.ioStartTwiceAndRestart()
        }.map(expectCleanExit)
    }

    @Test func ioDescriptorChangedWhileActive() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.ioDescriptorChangedWhileActive()
        }.map(expectCleanExit)
    }

    @Test func ioStopAfterTheDescriptorClosed() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.ioStopAfterTheDescriptorClosed()
        }.map(expectCleanExit)
    }

    @Test(arguments: [Backend.epoll, .ioUring])
    func aDescriptorClosedBeforeTheLoopRuns(_ backend: Backend) async {
        guard Backend.supported.contains(backend) else { return }
                switch backend {
        case .epoll: await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.aDescriptorClosedBeforeTheLoopRuns(Backend.epoll.rawValue)
        }.map(expectCleanExit)
        default: await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.aDescriptorClosedBeforeTheLoopRuns(Backend.ioUring.rawValue)
        }.map(expectCleanExit)
        }
    }

    @Test func watchingTheLoopsOwnEpoll() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.watchingTheLoopsOwnEpoll()
        }.map(expectCleanExit)
    }

    @Test func twoLoopsWatchingEachOther() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.twoLoopsWatchingEachOther()
        }.map(expectCleanExit)
    }

    @Test func twoLoopsEmbeddingEachOther() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.twoLoopsEmbeddingEachOther()
        }.map(expectCleanExit)
    }

    @Test func pollBackendWithADescriptorClosedUnderItsWatcher() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.pollBackendWithADescriptorClosedUnderItsWatcher()
        }.map(expectCleanExit)
    }

    @Test func selectBackendTakesHighDescriptors() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.selectBackendTakesHighDescriptors()
        }.map(expectCleanExit)
    }

    @Test func negativeAndHugeIntervals() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.negativeAndHugeIntervals()
        }.map(expectCleanExit)
    }

    @Test func aRescheduleCallbackThatAnswersThePast() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.aRescheduleCallbackThatAnswersThePast()
        }.map(expectCleanExit)
    }

    @Test func signalNumbersOutOfRange() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.signalNumbersOutOfRange()
        }.map(expectCleanExit)
    }

    @Test func oneSignalOnTwoLoops() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.oneSignalOnTwoLoops()
        }.map(expectCleanExit)
    }

    @Test func childWatcherOnAnotherLoop() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.childWatcherOnAnotherLoop()
        }.map(expectCleanExit)
    }

    @Test func embeddingWhatCannotBeEmbedded() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.embeddingWhatCannotBeEmbedded()
        }.map(expectCleanExit)
    }

    @Test func nestedRunsWork() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.nestedRunsWork()
        }.map(expectCleanExit)
    }

    @Test func asyncSendsFromOtherThreads() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.asyncSendsFromOtherThreads()
        }.map(expectCleanExit)
    }

    @Test func verifyAfterEveryWatcherType() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.verifyAfterEveryWatcherType()
        }.map(expectCleanExit)
    }

    @Test func linuxAIOIsNotBuiltIn() async {
                await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            try LibevAssertionScenarios.linuxAIOIsNotBuiltIn()
        }.map(expectCleanExit)
    }
}

/// The scenarios, each run in a child process by its test.
enum LibevAssertionScenarios {
    static func ioStartWithANegativeDescriptor() throws {
        let loop = try Loop()
        expectThrows(.badDescriptor(.notOpen)) { try loop.io(FileDescriptor(rawValue: -1), .read) { _, _ in } }
    }

    static func ioStartWithAnIllegalEventMask() throws {
        let loop = try Loop()
        let (reader, writer) = try makePipe()
        let watcher = try loop.io(FileDescriptor(rawValue: reader), Events(rawValue: 0xffff)) { watcher, _ in watcher.stop() }
        precondition(watcher.events == [.read, .write])
        _ = writeString(writer, "x")
        loop.run(.once)
        close(reader)
        close(writer)
    }

    static func ioStartOnAClosedDescriptor() throws {
        let loop = try Loop()
        let (reader, writer) = try makePipe()
        close(reader)
        close(writer)
        var events: [Events] = []
        let watcher = try loop.io(FileDescriptor(rawValue: reader), .read) { _, got in events.append(got) }
        loop.run(.noWait)
        precondition(events == [.error] && !watcher.isActive, "\(events)")
        for backend: Backend in [.poll, .select] {
            let other = try Loop(backends: backend)
            // (Not `reader`: a new loop's eventfd may have taken its number.)
            let closed = FileDescriptor(rawValue: reservedDescriptorNumber())
            expectThrows(.badDescriptor(.notOpen)) { try other.io(closed, .read) { _, _ in } }
            other.run(.noWait)
        }
    }

    static func ioStartTwiceAndRestart() throws {
        let loop = try Loop()
        let (reader, writer) = try makePipe()
        let watcher = IOWatcher(loop: loop, descriptor: FileDescriptor(rawValue: reader), events: .read) { _, _ in }
        try watcher.start()
        try watcher.start()
        watcher.stop()
        try watcher.start()
        loop.run(.noWait)
        loop.verify()
        watcher.stop()
        close(reader)
        close(writer)
    }

    static func ioDescriptorChangedWhileActive() throws {
        let loop = try Loop()
        let (reader, writer) = try makePipe()
        let (other, otherWriter) = try makePipe()
        let watcher = try loop.io(FileDescriptor(rawValue: reader), .read) { _, _ in }
        loop.run(.noWait)
        try watcher.set(descriptor: FileDescriptor(rawValue: other), events: .read)
        loop.run(.noWait)
        watcher.stop()
        loop.run(.noWait)
        [reader, writer, other, otherWriter].forEach { close($0) }
    }

    static func ioStopAfterTheDescriptorClosed() throws {
        let loop = try Loop()
        let (reader, writer) = try makePipe()
        let watcher = try loop.io(FileDescriptor(rawValue: reader), .read) { _, _ in }
        loop.run(.noWait)
        close(reader)
        watcher.stop()
        loop.run(.noWait)
        close(writer)
    }

    static func aDescriptorClosedBeforeTheLoopRuns(_ raw: UInt32) throws {
        let loop = try Loop(backends: Backend(rawValue: raw))
        let (reader, writer) = try makePipe()
        let (second, secondWriter) = try makePipe()
        var events: [Events] = []
        // One watcher started and closed before the loop ever runs; then
        // one whose descriptor closes under it with another watcher left.
        try loop.io(FileDescriptor(rawValue: reader), .read) { watcher, got in events.append(got); watcher.stop() }
        close(reader)
        loop.run(.noWait)
        let readWatch = try loop.io(FileDescriptor(rawValue: second), .read) { _, _ in }
        let writeWatch = try loop.io(FileDescriptor(rawValue: second), .read) { watcher, got in events.append(got); watcher.stop() }
        loop.run(.noWait)
        close(second)
        readWatch.stop() // libev would hand the other watcher's events to the kernel again
        loop.run(.noWait)
        loop.run(.noWait)
        precondition(events.count == 2 && events.allSatisfy { $0.contains(.error) }, "\(events)")
        precondition(!writeWatch.isActive)
        close(writer)
        close(secondWriter)
    }

    static func watchingTheLoopsOwnEpoll() throws {
        let loop = try Loop(backends: .epoll)
        let own = try #require(loop.core.backendDescriptor)
        precondition(FileIdentity.anonymousKind(of: own) == "[eventpoll]")
        expectThrows(.badDescriptor(.ownBackend)) { try loop.io(FileDescriptor(rawValue: own), .read) { _, _ in } }
        loop.run(.noWait)
    }

    static func twoLoopsWatchingEachOther() throws {
        let first = try Loop(backends: .epoll)
        let second = try Loop(backends: .epoll)
        let firstFD = try #require(first.core.backendDescriptor)
        let secondFD = try #require(second.core.backendDescriptor)
        // One way round is fine (an epoll instance may watch another)...
        let watcher = try first.io(FileDescriptor(rawValue: secondFD), .read) { _, _ in }
        first.run(.noWait)
        // ...but not both: a cycle.
        expectThrows(.badDescriptor(.epollCycle)) { try second.io(FileDescriptor(rawValue: firstFD), .read) { _, _ in } }
        second.run(.noWait)
        watcher.stop()
        // Not even before the first loop has run (the check registers at once).
        let third = try Loop(backends: .epoll)
        let fourth = try Loop(backends: .epoll)
        _ = try third.io(try FileDescriptor(rawValue: #require(fourth.core.backendDescriptor)), .read) { _, _ in }
        expectThrows(.badDescriptor(.epollCycle)) { try fourth.io(try FileDescriptor(rawValue: #require(third.core.backendDescriptor)), .read) { _, _ in } }
        third.run(.noWait)
        fourth.run(.noWait)
    }

    static func twoLoopsEmbeddingEachOther() throws {
        let host = try Loop(backends: .epoll)
        let embedded = try Loop(backends: .epoll)
        let embedding = try host.embed(embedded)
        host.run(.noWait)
        expectThrows(.badDescriptor(.epollCycle)) { try embedded.embed(host) }
        embedded.run(.noWait)
        embedding.stop()
    }

    static func pollBackendWithADescriptorClosedUnderItsWatcher() throws {
        let loop = try Loop(backends: .poll)
        let (reader, writer) = try makePipe()
        var events: [Events] = []
        try loop.io(FileDescriptor(rawValue: reader), .read) { watcher, got in events.append(got); watcher.stop() }
        loop.run(.noWait)
        close(reader)
        loop.run(.noWait)
        loop.run(.noWait)
        precondition(events.count == 1 && events[0].contains(.error), "\(events)")
        close(writer)
    }

    static func selectBackendTakesHighDescriptors() throws {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        guard limit.rlim_cur > 1100 || setRaisedLimit() else { return }
        let loop = try Loop(backends: .select)
        let (reader, writer) = try makePipe()
        let high = fcntl(reader, F_DUPFD, 1100)
        precondition(high >= 1100)
        var fired = false
        let watcher = try loop.io(FileDescriptor(rawValue: high), .read) { watcher, _ in fired = true; watcher.stop() }
        _ = writeString(writer, "x")
        loop.run(.once)
        precondition(fired && !watcher.isActive)
        [reader, writer, high].forEach { close($0) }
    }

    static func negativeAndHugeIntervals() throws {
        let loop = try Loop()
        expectThrows(.invalidArgument) { try loop.timer(after: .seconds(1), repeat: .seconds(-1)) { _ in } }
        let timer = try loop.timer(after: .milliseconds(1), repeat: .seconds(1)) { _ in }
        expectThrows(.invalidArgument) { try timer.setRepeat(.seconds(-1)) }
        expectThrows(.invalidArgument) { try loop.periodic(every: .seconds(-5)) { _ in } }
        // The extremes a Duration can hold, clamped where libev's double would overflow its heap.
        let huge = try loop.timer(after: .seconds(Int64.max), repeat: .seconds(Int64.max)) { _ in }
        let past = try loop.timer(after: .seconds(Int64.min)) { _ in }
        let periodic = try loop.periodic(every: .seconds(Int64.max), offset: .seconds(Int64.min)) { _ in }
        let far = loop.periodic(at: WallClock.Instant(sinceEpoch: .seconds(Int64.max))) { _ in }
        loop.run(.once)
        loop.verify()
        [timer, huge, past, periodic, far].forEach { $0.stop() }
    }

    static func aRescheduleCallbackThatAnswersThePast() throws {
        let loop = try Loop()
        var fired = 0
        loop.periodic(reschedule: { _, now in fired == 0 ? now + .milliseconds(10) : now - .seconds(100) }) { watcher in
            fired += 1
            if fired == 3 { watcher.stop() }
        }
        loop.run()
        precondition(fired == 3)
    }

    static func signalNumbersOutOfRange() throws {
        let loop = try Loop()
        for number: Int32 in [0, -1, 65, 1000, SIGKILL, SIGSTOP] {
            expectThrows(.invalidArgument) { try loop.signal(number) { _ in } }
        }
    }

    static func oneSignalOnTwoLoops() throws {
        let first = try Loop()
        let second = try Loop()
        let watcher = try first.signal(SIGTTIN) { _ in }
        expectThrows(.signalOwnedByAnotherLoop) { try second.signal(SIGTTIN) { _ in } }
        watcher.stop()
        let moved = try second.signal(SIGTTIN) { _ in }
        moved.stop()
    }

    static func childWatcherOnAnotherLoop() throws {
        let loop = try Loop()
        expectThrows(.childWatcherNeedsDefaultLoop) { try loop.child(getpid()) { _ in } }
    }

    static func embeddingWhatCannotBeEmbedded() throws {
        let loop = try Loop()
        expectThrows(.notEmbeddable) { try loop.embed(try Loop(backends: .poll)) }
        expectThrows(.notEmbeddable) { try loop.embed(loop) }
    }

    static func nestedRunsWork() throws {
        let loop = try Loop()
        var depths: [UInt32] = []
        try loop.timer(after: .zero) { watcher in
            _ = try? watcher.loop?.timer(after: .zero) { inner in depths.append(inner.loop?.depth ?? 0) }
            watcher.loop?.run(.once)
            depths.append(watcher.loop?.depth ?? 0)
        }
        loop.run()
        precondition(depths == [2, 1], "\(depths)")
    }

    static func asyncSendsFromOtherThreads() throws {
        let loop = try Loop()
        var received = 0
        let watcher = loop.async { _ in received += 1 }
        let sender = watcher.sender
        let threads = (0..<4).map { _ in try! PlainThread { for _ in 0..<10_000 { _ = sender.send() } } }
        let done = try PlainThread { threads.forEach { $0.join() }; _ = sender.send() }
        try loop.timer(after: .milliseconds(500)) { _ in watcher.stop() }
        loop.run()
        done.join()
        precondition(received >= 1)
    }

    static func verifyAfterEveryWatcherType() throws {
        let loop = try Loop()
        let (reader, writer) = try makePipe()
        let io = try loop.io(FileDescriptor(rawValue: reader), .read) { _, _ in }
        io.priority = 10
        precondition(io.priority == 2)
        let timer = try loop.timer(after: .seconds(10)) { _ in }
        timer.priority = -10
        let periodic = loop.periodic(at: Loop.time() + .seconds(10)) { _ in }
        let signal = try loop.signal(SIGTTOU) { _ in }
        let stat = loop.stat("/tmp") { _ in }
        let idle = loop.idle { _ in }
        let prepare = loop.prepare { _ in }
        let check = loop.check { _ in }
        let fork = loop.fork { _ in }
        let cleanup = loop.cleanup { _ in }
        let async = loop.async { _ in }
        let embedded = try loop.embed(try Loop(backends: .epoll))
        loop.verify()
        loop.run(.noWait)
        loop.verify()
        let all: [Watcher] = [io, timer, periodic, signal, stat, idle, prepare, check, fork, cleanup, async, embedded]
        all.forEach { $0.stop() }
        loop.verify()
        close(reader)
        close(writer)
    }

    static func linuxAIOIsNotBuiltIn() throws {
        precondition(!Backend.supported.contains(.linuxAIO), "Debian's libev has linuxaio now: list its assertions")
        expectThrows(.loopCreationFailed) { _ = try Loop(backends: .linuxAIO) }
    }
}


/// Shows what a child process that did not end well printed.
func expectCleanExit(_ result: ExitTest.Result) {
    if result.exitStatus != .exitCode(0) {
        Issue.record("the scenario did not end well: \(String(decoding: result.standardErrorContent, as: UTF8.self))")
    }
}

/// Traps unless `body` throws an ``EventLoopError`` with `code`.
func expectThrows(_ code: EventLoopError.Code, _ body: () throws -> Void) {
    guard let error = caughtError(body) else { preconditionFailure("expected \(code), got another error or none") }
    precondition(error.code == code, "expected \(code), got \(error)")
}

/// A blocking pipe (read end, write end) on reserved numbers
/// (``reservedDescriptorNumber()``): the scenarios close descriptors and
/// then use their numbers, and an exit test's process is not theirs alone -
/// Swift Testing's and Dispatch's threads open descriptors there too
/// (Dispatch's manager makes its timerfd when a timer is first armed), and a
/// number the kernel handed one of them between a scenario's `close` and its
/// watcher would be watched as an open file: no error event, a failed
/// precondition, SIGILL.
func makePipe() throws -> (Int32, Int32) {
    let fds = try makeReservedPipe(nonBlocking: false)
    return (fds[0], fds[1])
}

/// Raises the soft descriptor limit to the hard one; whether it is now above 1100.
func setRaisedLimit() -> Bool {
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    return limit.rlim_cur > 1100
}
