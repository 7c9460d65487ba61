import EventCore
import EV
import Glibc
import Testing
import TestSupport

/// Signals are process-wide, so these tests run one at a time; no other suite
/// raises SIGUSR1 or SIGUSR2 (see SignalAwaitTests for who owns which).
@Suite("SignalWatcher", .serialized)
struct SignalWatcherTests {
    @Test func aSignalFromKillRunsTheCallbackOnTheLoop() throws {
        let loop = try Loop()
        var received: [Int32] = []
        let watcher = try loop.signal(SIGUSR1) { watcher in
            received.append(watcher.signal)
            watcher.stop()
        }
        #expect(watcher.signal == SIGUSR1)
        try loop.timer(after: .milliseconds(10)) { _ in kill(getpid(), SIGUSR1) }
        #expect(runUntilDone(loop))
        #expect(received == [SIGUSR1])
    }

    @Test func aSignalFromAnotherThreadWakesABlockedLoop() throws {
        let loop = try Loop()
        var received = 0
        try loop.signal(SIGUSR2) { watcher in
            received += 1
            watcher.stop()
        }
        let sender = try PlainThread {
            usleep(50_000)
            kill(getpid(), SIGUSR2)
        }
        #expect(runUntilDone(loop))
        sender.join()
        #expect(received == 1)
    }

    @Test func aSignalBelongsToOneLoopAtATime() throws {
        let first = try Loop()
        let second = try Loop()
        let watcher = try first.signal(SIGUSR1) { _ in }
        let alsoFirst = try first.signal(SIGUSR1) { _ in }
        let owned = caughtError { try second.signal(SIGUSR1) { _ in } }
        #expect(owned?.code == .signalOwnedByAnotherLoop)
        #expect(owned?.description.contains("signal \(SIGUSR1)") == true)
        watcher.stop()
        #expect(caughtError { try second.signal(SIGUSR1) { _ in } }?.code == .signalOwnedByAnotherLoop,
                "still owned while one watcher is left")
        alsoFirst.stop()
        let moved = try second.signal(SIGUSR1) { _ in }
        #expect(moved.isActive, "free again once the first loop's watchers stopped")
        moved.stop()
    }

    @Test func aDestroyedLoopReleasesItsSignals() throws {
        do {
            let loop = try Loop()
            try loop.signal(SIGUSR2) { _ in }
        }
        let next = try Loop()
        let watcher = try next.signal(SIGUSR2) { _ in }
        #expect(watcher.isActive)
        watcher.stop()
    }

    @Test func badSignalNumbersAreRefused() throws {
        let loop = try Loop()
        for number: Int32 in [0, -1, 65, 1000, SIGKILL, SIGSTOP] {
            let error = caughtError { try loop.signal(number) { _ in } }
            #expect(error?.code == .invalidArgument)
            #expect(error?.description.contains("signal \(number) cannot be watched") == true, "\(String(describing: error))")
        }
    }

    @Test func aSignalWatcherNeedNotKeepTheLoopAlive() throws {
        let loop = try Loop()
        let watcher = try loop.signal(SIGUSR1) { _ in }
        watcher.keepAlive = false
        #expect(loop.run() == false)
        #expect(watcher.isActive)
        watcher.stop()
    }
}
