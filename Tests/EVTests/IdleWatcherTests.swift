import EV
import Glibc
import Testing
import TestSupport

@Suite("IdleWatcher")
struct IdleWatcherTests {
    @Test func idleRunsOnlyWhenNothingElseIsPending() throws {
        let loop = try Loop()
        try withSocketPair { a, b in
            var log: [String] = []
            // Three bytes, one read per callback: the reader is pending for
            // three iterations, and the idle watcher must wait until it is not.
            try loop.io(FileDescriptor(rawValue: a), .read) { watcher, _ in
                var byte: UInt8 = 0
                if read(watcher.descriptor.rawValue, &byte, 1) == 1 { log.append("read") }
            }
            loop.idle { idle in
                log.append("idle")
                idle.loop!.break(.all)
            }
            writeString(b, "abc")
            #expect(runUntilDone(loop))
            #expect(log == ["read", "read", "read", "idle"])
        }
    }

    @Test func anActiveIdleWatcherKeepsTheLoopFromBlocking() throws {
        let loop = try Loop()
        var idles = 0
        try loop.timer(after: .seconds(10)) { _ in }
        loop.idle { idle in
            idles += 1
            if idles == 1000 { idle.loop!.break(.all) }
        }
        let start = monotonicSeconds()
        loop.run()
        #expect(idles == 1000)
        #expect(monotonicSeconds() - start < 5, "the 10 s timer never made it wait")
    }

    @Test func aLowerPriorityIdleWaitsForHigherPriorityIdles() throws {
        let loop = try Loop()
        var log: [String] = []
        let low = IdleWatcher(loop: loop) { idle in
            log.append("low")
            idle.loop!.break(.all)
        }
        low.priority = -1
        low.start()
        var high = 0
        let busy = IdleWatcher(loop: loop) { idle in
            high += 1
            log.append("high")
            if high == 3 { idle.stop() }
        }
        busy.priority = 1
        busy.start()
        #expect(runUntilDone(loop))
        #expect(log == ["high", "high", "high", "low"])
    }
}
