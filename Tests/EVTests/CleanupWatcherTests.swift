import EV
import Glibc
import Testing
import TestSupport

@Suite("CleanupWatcher")
struct CleanupWatcherTests {
    @Test func runsWhenTheLoopIsDestroyed() throws {
        var log: [String] = []
        weak var watcherAfter: CleanupWatcher?
        do {
            let loop = try Loop()
            let timer = try loop.timer(after: .seconds(60)) { _ in log.append("timer") }
            let cleanup = loop.cleanup { cleanup in
                log.append("cleanup active=\(cleanup.isActive) loop-gone=\(cleanup.loop == nil)")
            }
            watcherAfter = cleanup
            #expect(log.isEmpty)
            _ = timer
        }
        #expect(log == ["cleanup active=true loop-gone=true"])
        #expect(watcherAfter == nil, "released once the loop is gone")
    }

    @Test func doesNotKeepTheLoopRunning() throws {
        let loop = try Loop()
        var ran = false
        let cleanup = loop.cleanup { _ in ran = true }
        #expect(loop.run() == false)
        #expect(!ran)
        cleanup.stop()
    }

    @Test func aStoppedCleanupWatcherDoesNotRun() throws {
        var ran = false
        do {
            let loop = try Loop()
            let cleanup = loop.cleanup { _ in ran = true }
            cleanup.stop()
        }
        #expect(!ran)
    }
}
