import CLibev
import EV
import EventCore
import Glibc
import Synchronization
import Testing
import TestSupport

/// `ev_once`, the feeds and the raw loop. The signal tests use SIGPWR, which
/// no other suite watches, and never raise it: feeding is the point.
@Suite("Once, feeds and the raw loop", .serialized)
struct LoopFeedTests {
    @Test func onceFiresWhenTheDescriptorIsReadyAndOnlyOnce() throws {
        let loop = try Loop()
        try withPipe { readEnd, writeEnd in
            var calls: [Events] = []
            try loop.once(FileDescriptor(rawValue: readEnd), events: .read, timeout: .seconds(5)) { calls.append($0) }
            _ = writeString(writeEnd, "ready")
            #expect(runUntilDone(loop), "the once must end: no watcher of it left active")
            #expect(calls == [.read])
            // The data is still there, unread: a once that fired twice would say so.
            runLoop(loop, for: 0.05)
            #expect(calls == [.read])
        }
    }

    @Test func onceTimesOutWithTheTimerEvent() throws {
        let loop = try Loop()
        try withPipe { readEnd, _ in
            var calls: [Events] = []
            let start = monotonicSeconds()
            try loop.once(FileDescriptor(rawValue: readEnd), events: .read, timeout: .milliseconds(50)) { calls.append($0) }
            #expect(runUntilDone(loop))
            #expect(calls == [.timer])
            #expect(monotonicSeconds() - start >= 0.04)
        }
    }

    @Test func onceWithoutADescriptorIsATimerAndWithoutATimeoutWaitsForTheDescriptor() throws {
        let loop = try Loop()
        var timerOnly: [Events] = []
        loop.once(after: .milliseconds(10)) { timerOnly.append($0) }
        #expect(runUntilDone(loop))
        #expect(timerOnly == [.timer])
        try withSocketPair { a, b in
            var ioOnly: [Events] = []
            try loop.once(FileDescriptor(rawValue: a), events: .write) { ioOnly.append($0) }
            #expect(runUntilDone(loop))
            #expect(ioOnly == [.write])
            _ = b
        }
    }

    /// A once with only a timeout lives in a slot of the loop's watcher
    /// memory, reused as soon as it fires: each callback still runs exactly
    /// once, with its own timeout, and a callback may start the next once
    /// (in the very slot it ran from).
    @Test func onceTimersAreReusedAndEachCallbackRunsOnce() throws {
        let loop = try Loop()
        var calls: [Int: Int] = [:]
        var started = 0
        func startOnce(_ number: Int, after seconds: Double) {
            started += 1
            loop.once(after: .seconds(seconds)) { events in
                #expect(events == .timer)
                calls[number, default: 0] += 1
                // A chain: each of the first ten starts a follower from inside its callback.
                if number < 10 { startOnce(number + 100, after: 0) }
            }
        }
        for round in 0..<3 {
            for number in 0..<50 { startOnce(round * 1000 + number, after: Double(number % 5) * 0.001) }
            #expect(runUntilDone(loop))
        }
        // A reused timer keeps no trace of its last timeout.
        let start = monotonicNow()
        var late = false
        loop.once(after: .milliseconds(200)) { _ in late = true }
        #expect(runUntilDone(loop))
        #expect(late && monotonicNow() - start >= 0.15, "a reused timer waited its own 0.2 s")
        #expect(started == 3 * 50 + 10)
        #expect(calls.count == started && calls.values.allSatisfy { $0 == 1 }, "every callback exactly once")
    }

    @Test func onceOnADescriptorThatIsNotOpenIsCalledWithAnError() throws {
        let loop = try Loop()
        let closed = try makeReservedPipe(nonBlocking: true) // stays closed
        close(closed[0]); close(closed[1])
        var calls: [Events] = []
        try loop.once(FileDescriptor(rawValue: closed[0]), timeout: .seconds(5)) { calls.append($0) }
        #expect(runUntilDone(loop, timeout: 10), "nothing of the once stays active")
        #expect(calls == [.error], "once, with the error, not the timeout: \(calls)")
        #expect(caughtError { try loop.once(FileDescriptor(rawValue: -1)) { _ in } }?.code == .badDescriptor(.notOpen))
    }

    @Test func aPendingOnceDroppedWithTheLoopIsNeverCalled() throws {
        let token = Token()
        weak let weakToken = token
        do {
            let loop = try Loop()
            loop.once(after: .seconds(100)) { [token] _ in _ = token }
            loop.close()
        }
        _ = consume token
        #expect(weakToken == nil, "closing the loop let go of the once's callback")
    }

    /// A timeout-only once has no watcher object: the loop must still count
    /// it while it is pending, and its teardown must find a once that the
    /// teardown itself caused (a dropped callback's capture starting another).
    @Test func pendingOncesAreCountedAndOnesStartedDuringTeardownAreDroppedToo() throws {
        final class StartsAOnceWhenReleased {
            unowned(unsafe) let loop: Loop
            let next: Token
            init(_ loop: Loop, _ next: Token) { self.loop = loop; self.next = next }
            deinit { loop.once(after: .seconds(100)) { [next] _ in _ = next } }
        }
        let next = Token()
        weak let weakNext = next
        var called = false
        do {
            let loop = try Loop()
            let starter = StartsAOnceWhenReleased(loop, next)
            loop.once(after: .seconds(100)) { [starter] _ in _ = starter; called = true }
            loop.once(after: .zero) { _ in called = true }
            #expect(loop.heldWatcherCount == 2)
            loop.run(.once)
            #expect(called, "the 0-second once ran")
            called = false
            #expect(loop.heldWatcherCount == 1, "the fired once's slot is free again")
            _ = consume starter
            loop.close()
        }
        _ = consume next
        #expect(!called)
        #expect(weakNext == nil, "the once started while the loop closed was dropped with it")
    }

    @Test func aFedDescriptorEventRunsTheWatcherWithoutIO() throws {
        let loop = try Loop()
        try withPipe { readEnd, _ in
            var seen: [Events] = []
            let watcher = try loop.io(FileDescriptor(rawValue: readEnd), .read) { watcher, events in
                seen.append(events)
                watcher.stop()
            }
            loop.feedDescriptorEvent(FileDescriptor(rawValue: readEnd), .read)
            loop.run(.noWait)
            #expect(seen == [.read], "the pipe is empty: only the feed can have called it")
            #expect(!watcher.isActive)
        }
    }

    @Test func aFedSignalEventRunsTheSignalWatchersWithoutASignal() throws {
        let loop = try Loop()
        var received: [Int32] = []
        let watcher = try loop.signal(SIGPWR) { watcher in received.append(watcher.signal) }
        loop.feedSignalEvent(SIGPWR)
        loop.run(.noWait)
        #expect(received == [SIGPWR])
        // A signal the loop does not watch: nothing happens.
        loop.feedSignalEvent(SIGXFSZ)
        loop.run(.noWait)
        #expect(received == [SIGPWR])
        watcher.stop()
    }

    @Test func feedSignalFromAnotherThreadWakesTheLoopThatWatchesIt() throws {
        let loop = try Loop()
        var received = 0
        let watcher = try loop.signal(SIGPWR) { watcher in
            received += 1
            watcher.stop()
        }
        let feeder = try PlainThread {
            usleep(50_000) // the loop sleeps in the kernel by then
            try? Loop.feedSignal(SIGPWR)
        }
        #expect(runUntilDone(loop))
        feeder.join()
        #expect(received == 1)
        #expect(!watcher.isActive)
    }

    /// libev's `ev_feed_signal` indexes its signal table with the number
    /// unchecked: `ev_feed_signal(INT_MAX)` is a segmentation fault in C.
    @Test(arguments: [0, -1, signalNumberLimit, 1000, Int32.max, Int32.min])
    func feedingASignalNumberOutsideLibevsTableIsRefused(_ signal: Int32) throws {
        let loop = try Loop()
        var received = 0
        let watcher = try loop.signal(SIGPWR) { _ in received += 1 }
        let error = #expect(throws: EventLoopError.self) { try Loop.feedSignal(signal) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.description.contains("signal \(signal) is not in 1..<65") == true)
        loop.run(.noWait)
        #expect(received == 0)
        watcher.stop()
    }

    /// The wrapper finds its loop through libev's user data: C code lent the
    /// loop that replaces it is stopped at once, with a message, rather than
    /// crashing in a later callback.
    @Test func cCodeThatReplacesTheLoopsUserDataTrapsWithAMessage() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let loop = try Loop()
            loop.withUnsafeEVLoop { ev_set_userdata($0, nil) }
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("the loop's user data was replaced"), "\(text)")
        }
    }

    @Test func aCLibraryGetsTheRawLoopAndItsWatchersRunBesideSwiftOnes() throws {
        let loop = try Loop()
        let raw = loop.withUnsafeEVLoop { $0 }
        #expect(ev_backend(raw) == loop.backend.rawValue, "the pointer is the loop's own")
        // A C-style one-shot on the raw loop, beside a Swift timer.
        var swiftFired = false
        try loop.timer(after: .milliseconds(10)) { _ in swiftFired = true }
        cFired.store(false, ordering: .relaxed)
        loop.withUnsafeEVLoop { raw in
            // libev's own ev_once, called as a C library would.
            ev_once(raw, -1, 0, 0.01, { _, _ in cFired.store(true, ordering: .relaxed) }, nil)
        }
        #expect(runUntilDone(loop))
        #expect(swiftFired)
        let cDidFire = cFired.load(ordering: .relaxed)
        #expect(cDidFire)
    }
}

/// What the C callback sets (a C function pointer captures nothing).
let cFired = Atomic(false)
