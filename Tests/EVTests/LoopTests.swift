import EV
import Glibc
import Testing
import TestSupport

@Suite("Loop")
struct LoopTests {
    @Test func libevVersionIsDebians() {
        #expect(Loop.libevVersion.major == 4)
        #expect(Loop.libevVersion.minor >= 33)
    }

    @Test func backendSetsComeFromLibev() {
        #expect(Backend.supported.contains(.epoll))
        #expect(Backend.supported.contains(.poll))
        #expect(Backend.supported.contains(.select))
        #expect(Backend.recommended.isSubset(of: .supported))
        #expect(Backend.recommended.contains(.epoll))
        #expect(Backend.embeddable.contains(.epoll))
        #expect(Backend([.poll, .epoll]).description == "poll|epoll")
    }

    @Test(arguments: [Backend.select, .poll, .epoll])
    func eachBackendCanBeChosen(_ backend: Backend) throws {
        let loop = try Loop(backends: backend)
        #expect(loop.backend == backend)
        var fired = false
        try loop.timer(after: .milliseconds(1)) { _ in fired = true }
        #expect(runUntilDone(loop))
        #expect(fired)
    }

    @Test func ioUringIfTheKernelAllowsIt() throws {
        guard Backend.supported.contains(.ioUring) else { return }
        let loop = try Loop(backends: .ioUring)
        #expect(loop.backend == .ioUring)
    }

    @Test func defaultChoiceIsEpoll() throws {
        #expect(try Loop().backend == .epoll)
        #expect(try Loop(flags: [.noEnvironment]).backend == .epoll)
        #expect(try !Loop().isDefault)
    }

    @Test func anUnsupportedBackendIsAnError() {
        let error = caughtError { _ = try Loop(backends: .kqueue) }
        #expect(error?.code == .loopCreationFailed)
        #expect(error?.description.contains("kqueue") == true, "\(String(describing: error))")
    }

    @Test func runWithoutWatchersReturnsAtOnce() throws {
        let loop = try Loop()
        #expect(loop.run() == false)
        #expect(loop.run(.once) == false)
        #expect(loop.run(.noWait) == false)
    }

    @Test func noWaitDoesNotBlock() throws {
        let loop = try Loop()
        var fired = false
        try loop.timer(after: .seconds(60)) { _ in fired = true }
        let start = monotonicSeconds()
        #expect(loop.run(.noWait) == true)
        #expect(monotonicSeconds() - start < 30, "it did not wait for the 60 s timer")
        #expect(!fired)
    }

    @Test func onceWaitsForOneRoundOfEvents() throws {
        let loop = try Loop()
        var fired = 0
        try loop.timer(after: .milliseconds(10)) { _ in fired += 1 }
        try loop.timer(after: .seconds(5)) { _ in fired += 100 }
        // A round may end with no callback of ours (ev_run's manual: "an
        // event internal to libev itself" - a signal such as the SIGCHLD of
        // another test's child process): run rounds until the first timer
        // fires. Each returns after its round, long before the 5 s timer.
        let start = monotonicSeconds()
        var rounds = 0
        while fired == 0 && monotonicSeconds() - start < 4 {
            loop.run(.once)
            rounds += 1
        }
        #expect(fired == 1, "after \(rounds) rounds")
    }

    @Test func breakOneEndsTheInnermostRun() throws {
        let loop = try Loop()
        var log: [String] = []
        var keep: TimerWatcher?
        try loop.timer(after: .milliseconds(1)) { timer in
            // A nested run, broken from inside: only the inner run returns.
            let inner = try! TimerWatcher(loop: timer.loop!, after: .milliseconds(1)) { inner in
                log.append("inner depth \(inner.loop!.depth)")
                inner.loop!.break(.one)
            }
            inner.start()
            timer.loop!.run()
            log.append("back in outer")
            // Started now, so that however late the loop runs it cannot fire
            // inside the inner run (a timer 200 ms from the start could).
            keep = try! timer.loop!.timer(after: .milliseconds(1)) { _ in log.append("outer timer") }
        }
        loop.run()
        #expect(log == ["inner depth 2", "back in outer", "outer timer"])
        #expect(keep != nil)
    }

    @Test func breakAllEndsEveryNestedRun() throws {
        let loop = try Loop()
        var log: [String] = []
        try loop.timer(after: .milliseconds(1)) { timer in
            try! timer.loop!.timer(after: .milliseconds(1)) { inner in inner.loop!.break(.all) }
            timer.loop!.run()
            log.append("inner run returned")
        }
        let pending = try loop.timer(after: .seconds(30)) { _ in log.append("never") }
        let stillActive = loop.run()
        #expect(log == ["inner run returned"])
        #expect(stillActive)
        #expect(pending.isActive)
    }

    @Test func breakCancelTakesBackABreak() throws {
        let loop = try Loop()
        var fired = 0
        try loop.timer(after: .milliseconds(1)) { timer in
            timer.loop!.break(.all)
            timer.loop!.break(.cancel)
        }
        try loop.timer(after: .milliseconds(50)) { _ in fired += 1 }
        loop.run()
        #expect(fired == 1)
    }

    @Test func nowFollowsTheClock() throws {
        let loop = try Loop()
        let before = loop.now
        #expect((.seconds(-5) ... .seconds(5)).contains(before.duration(to: Loop.time())))
        usleep(20_000)
        #expect(loop.now == before, "now is the time of the last wake-up")
        loop.updateNow()
        #expect(loop.now >= before + .milliseconds(15))
    }

    @Test func iterationAndDepth() throws {
        let loop = try Loop()
        #expect(loop.depth == 0)
        let start = loop.iteration
        var depthInside: UInt32 = 0
        try loop.timer(after: .milliseconds(1)) { timer in depthInside = timer.loop!.depth }
        loop.run()
        #expect(depthInside == 1)
        #expect(loop.iteration > start)
        #expect(loop.depth == 0)
    }

    @Test func pendingCountAndInvokePending() throws {
        let loop = try Loop()
        var calls = 0
        let idle = IdleWatcher(loop: loop) { _ in calls += 1 }
        let check = CheckWatcher(loop: loop) { _ in calls += 10 }
        idle.feed(.idle)
        check.feed(.check)
        #expect(loop.pendingCount == 2)
        loop.invokePending()
        #expect(calls == 11)
        #expect(loop.pendingCount == 0)
    }

    @Test func suspendAndResumeKeepTimersRelative() throws {
        // A 5 s timer, 1 s suspended: counted, it would have 4 s left; not
        // counted, about 5. The bound between leaves a loaded machine half
        // a second of time that does count.
        let loop = try Loop()
        var fired = false
        let timer = try loop.timer(after: .seconds(5)) { _ in fired = true }
        loop.suspend()
        usleep(1_000_000)
        loop.resume()
        loop.run(.noWait)
        #expect(!fired, "time spent suspended does not count for timers")
        #expect(timer.remaining > .milliseconds(4500), "\(timer.remaining) left")
        timer.stop()
    }

    @Test func verifyPassesInsideCallbacks() throws {
        let loop = try Loop()
        var verified = 0
        try withSocketPair { a, b in
            try loop.io(FileDescriptor(rawValue: a), .read) { watcher, _ in
                watcher.loop!.verify()
                verified += 1
                watcher.stop()
            }
            try loop.timer(after: .milliseconds(1)) { timer in
                timer.loop!.verify()
                verified += 1
                writeString(b, "x")
            }
            #expect(runUntilDone(loop))
        }
        loop.verify()
        #expect(verified == 2)
    }

    @Test func collectIntervalsTakeEffectAndANegativeOneIsZero() throws {
        let loop = try Loop()
        loop.setIOCollectInterval(.seconds(-1))
        loop.setTimeoutCollectInterval(.seconds(-1))
        var fired = false
        try loop.timer(after: .zero) { _ in fired = true }
        #expect(runUntilDone(loop, timeout: 5))
        #expect(fired, "a negative collect interval did not stop the loop")
        // Positive ones are taken: a ready descriptor is still handled.
        loop.setIOCollectInterval(.milliseconds(5))
        loop.setTimeoutCollectInterval(.milliseconds(5))
        try withSocketPair { a, b in
            writeString(b, "x")
            var seen = false
            try loop.io(FileDescriptor(rawValue: a), .read) { watcher, _ in seen = true; watcher.stop() }
            #expect(runUntilDone(loop, timeout: 5))
            #expect(seen)
        }
    }
}
