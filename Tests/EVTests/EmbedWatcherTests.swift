import EV
import Glibc
import Testing
import TestSupport

@Suite("EmbedWatcher")
struct EmbedWatcherTests {
    @Test func anEmbeddedLoopsWatchersRunWhenTheOuterLoopRuns() throws {
        let outer = try Loop(backends: .poll)
        let inner = try Loop(backends: .epoll)
        try withSocketPair { a, b in
            var received = ""
            try inner.io(FileDescriptor(rawValue: a), .read) { watcher, _ in
                received = readAvailable(watcher.descriptor.rawValue)
                watcher.stop()
            }
            let embed = try outer.embed(inner)
            #expect(embed.embedded === inner)
            try outer.timer(after: .milliseconds(10)) { _ in writeString(b, "via the embedded loop") }
            #expect(runLoop(outer, until: { !received.isEmpty }))
            #expect(received == "via the embedded loop")
            embed.stop()
        }
    }

    @Test func aCallbackDecidesWhenToSweep() throws {
        let outer = try Loop(backends: .poll)
        let inner = try Loop(backends: .epoll)
        try withSocketPair { a, b in
            var sweeps = 0
            var received = ""
            try inner.io(FileDescriptor(rawValue: a), .read) { watcher, _ in
                received = readAvailable(watcher.descriptor.rawValue)
                watcher.stop()
            }
            let embed = try outer.embed(inner) { embed in
                sweeps += 1
                embed.sweep()
            }
            // libev applies the inner loop's pending changes (running it once)
            // before the outer loop blocks; after that, only a sweep runs it.
            outer.run(.noWait)
            #expect(received.isEmpty)
            writeString(b, "x")
            #expect(runLoop(outer, until: { !received.isEmpty }))
            #expect(sweeps >= 1)
            embed.stop()
        }
    }

    @Test func onlyEmbeddableLoopsAndNeverItself() throws {
        let outer = try Loop()
        let pollLoop = try Loop(backends: .poll)
        let notEmbeddable = caughtError { try outer.embed(pollLoop) }
        #expect(notEmbeddable?.code == .notEmbeddable)
        #expect(notEmbeddable?.description.contains("epoll") == true, "\(String(describing: notEmbeddable))")
        let itself = caughtError { try outer.embed(outer) }
        #expect(itself?.code == .notEmbeddable)
        #expect(itself?.description.contains("itself") == true)
    }

    @Test func setEmbedsAnotherLoopAndRefusesWhatInitRefuses() throws {
        let outer = try Loop(backends: .poll)
        let first = try Loop(backends: .epoll)
        let second = try Loop(backends: .epoll)
        try withSocketPair { a, b in
            var received = ""
            try second.io(FileDescriptor(rawValue: a), .read) { watcher, _ in
                received = readAvailable(watcher.descriptor.rawValue)
                watcher.stop()
            }
            let embed = try outer.embed(first)
            try embed.set(embedding: second)
            #expect(embed.embedded === second)
            #expect(embed.isActive, "an active watcher stays active")
            #expect(caughtError { try embed.set(embedding: outer) }?.code == .notEmbeddable)
            let poll = try Loop(backends: .poll)
            #expect(caughtError { try embed.set(embedding: poll) }?.code == .notEmbeddable)
            #expect(embed.embedded === second, "a refused set leaves the watcher as it was")
            try outer.timer(after: .milliseconds(10)) { _ in writeString(b, "via the second loop") }
            #expect(runLoop(outer, until: { !received.isEmpty }))
            #expect(received == "via the second loop")
            embed.stop()
        }
    }
}
