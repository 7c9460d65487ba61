import EventCore
import EV
import Glibc
import Synchronization
import Testing
import TestSupport

@Suite("Lifetime")
struct LifetimeTests {
    @Test func aFireAndForgetTimerStillFires() throws {
        let loop = try Loop()
        var fired = false
        try loop.timer(after: .milliseconds(1)) { _ in fired = true } // result dropped
        #expect(runUntilDone(loop))
        #expect(fired)
    }

    @Test func aCallbackReceivesItsWatcherSoNoCaptureIsNeeded() throws {
        let loop = try Loop()
        weak var seen: TimerWatcher?
        var count = 0
        try loop.timer(after: .milliseconds(1), repeat: .milliseconds(1)) { timer in
            seen = timer
            count += 1
            if count == 3 { timer.stop() }
        }
        #expect(runUntilDone(loop))
        #expect(count == 3)
        #expect(seen == nil, "stopped in its own callback, the watcher is released")
    }

    @Test func aStoppedWatcherAndItsClosureAreReleased() throws {
        let loop = try Loop()
        weak var weakWatcher: TimerWatcher?
        weak var weakCapture: Token?
        do {
            let token = Token()
            weakCapture = token
            let timer = try loop.timer(after: .seconds(60)) { _ in _ = token }
            weakWatcher = timer
        }
        #expect(weakWatcher != nil, "an active watcher is kept alive by its loop")
        weakWatcher?.stop()
        #expect(weakWatcher == nil)
        #expect(weakCapture == nil, "the closure's captures go with it")
    }

    @Test func aFiredOneShotTimerIsReleased() throws {
        let loop = try Loop()
        weak var weakWatcher: TimerWatcher?
        do {
            weakWatcher = try loop.timer(after: .milliseconds(1)) { _ in }
        }
        #expect(weakWatcher != nil)
        #expect(runUntilDone(loop))
        #expect(weakWatcher == nil)
    }

    @Test func droppingALoopWithActiveWatchersStopsAndReleasesThem() throws {
        weak var weakLoop: Loop?
        weak var weakTimer: TimerWatcher?
        weak var weakIO: IOWatcher?
        weak var weakCapture: Token?
        var survivor: SignalWatcher?
        let (a, b) = try makeSocketPair()
        defer {
            close(a)
            close(b)
        }
        do {
            let loop = try Loop()
            weakLoop = loop
            let token = Token()
            weakCapture = token
            // Closures that capture the loop weakly, as they should.
            weakTimer = try loop.timer(after: .seconds(60), repeat: .seconds(1)) { [weak loop] _ in _ = (token, loop) }
            weakIO = try loop.io(FileDescriptor(rawValue: a), .read) { _, _ in }
            survivor = try loop.signal(SIGWINCH) { _ in }
            loop.run(.noWait)
        }
        #expect(weakLoop == nil, "active watchers do not keep their loop alive")
        #expect(weakTimer == nil)
        #expect(weakIO == nil)
        #expect(weakCapture == nil)
        let kept = try #require(survivor)
        #expect(!kept.isActive, "a watcher the program still holds is stopped")
        #expect(kept.loop == nil)
        kept.stop() // harmless
        #expect(!kept.isPending)
    }

    @Test func aLoopCapturedStronglyByAnActiveWatcherIsACycleUntilTheWatcherStops() throws {
        weak var weakLoop: Loop?
        do {
            let loop = try Loop()
            weakLoop = loop
            try loop.timer(after: .milliseconds(1)) { _ in _ = loop }
            #expect(runUntilDone(loop))
        }
        #expect(weakLoop == nil, "a one-shot timer stops by itself, which breaks the cycle")
    }

    @Test func startingAndStoppingInEveryOrderLeaksNothing() throws {
        weak var weakLoop: Loop?
        var weakWatchers: [() -> AnyObject?] = []
        do {
            let loop = try Loop()
            weakLoop = loop
            try withSocketPair { a, b in
                for round in 0..<50 {
                    let timer = try TimerWatcher(loop: loop, after: .seconds(0.0001 * Double(round % 5))) { _ in }
                    let io = IOWatcher(loop: loop, descriptor: FileDescriptor(rawValue: a), events: .write) { io, _ in io.stop() }
                    let idle = IdleWatcher(loop: loop) { idle in idle.stop() }
                    weak let t = timer, i = io, d = idle
                    weakWatchers.append { t }
                    weakWatchers.append { i }
                    weakWatchers.append { d }
                    switch round % 4 {
                    case 0: timer.start(); try io.start(); idle.start()
                    case 1: timer.start(); timer.stop(); try io.start(); idle.feed(.custom)
                    case 2: idle.start(); idle.stop(); timer.feed(.timer); timer.start()
                    default: try io.start(); io.stop(); try io.start(); timer.start(); timer.clearPending()
                    }
                    loop.run(.noWait)
                }
                _ = b
                #expect(runUntilDone(loop))
            }
        }
        #expect(weakLoop == nil)
        #expect(weakWatchers.allSatisfy { $0() == nil })
    }
}

@Suite("Misuse traps with a clear message")
struct MisuseTests {
    @Test func usingALoopFromAnotherThreadWhileItRunsTraps() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let loop = try! Loop()
            try! loop.timer(after: .seconds(30)) { _ in }
            let running = Atomic(false)
            // Set from inside run(), so the check below happens while it runs
            // (a fixed sleep was a guess a loaded machine could beat).
            try! loop.timer(after: .zero) { _ in running.store(true, ordering: .releasing) }
            let box = UncheckedLoop(loop)
            let runner = try PlainThread { box.loop.run() }
            while !running.load(ordering: .acquiring) { usleep(1000) }
            _ = loop.now // the wrong thread
            runner.join()
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("while thread"))
            #expect(text.contains("is running this loop"))
        }
    }

    @Test func startingAWatcherAfterItsLoopIsGoneTraps() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var loop: Loop? = try! Loop()
            let timer = try! TimerWatcher(loop: loop!, after: .seconds(1)) { _ in }
            loop = nil
            timer.start()
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("after its loop was closed"), "\(text)")
        }
    }

    /// Each misuse the helper knows (`EVTestHelper misuse --list`) ends in a
    /// trap whose message says what was wrong; `make release-checks` runs the
    /// same scenarios with the release build, where `precondition` would have
    /// dropped the message.
    @Test func everyMisuseTrapsWithItsMessage() throws {
        let list = try runHelper("misuse", ["--list"])
        let scenarios = list.standardOutput.split(separator: "\n").map { $0.split(separator: "\t", maxSplits: 1).map(String.init) }
        #expect(scenarios.count >= 7, "\(list)")
        for scenario in scenarios {
            let output = try runHelper("misuse", [scenario[0]], timeout: 120)
            #expect(output.exitCode != 0 && output.exitCode != 1, "\(scenario[0]) trapped: \(output)")
            #expect(output.standardError.contains(scenario[1]), "\(scenario[0]): \(output)")
        }
    }

    @Test func aFailedSystemCallInsideLibevNamesTheCall() throws {
        let output = try runHelper("syserr")
        #expect(output.exitCode != 0 && output.exitCode != 1, "the process is stopped, not left running: \(output)")
        #expect(output.standardError.contains("libev cannot continue: the system call (libev) epoll_wait failed: Bad file descriptor (EBADF)"), "\(output)")
    }
}

/// Deliberately breaks the thread rule, for the test that checks it traps.
final class UncheckedLoop: @unchecked Sendable {
    // Not actually safe to share: that is what the test demonstrates.
    let loop: Loop
    init(_ loop: Loop) { self.loop = loop }
}
