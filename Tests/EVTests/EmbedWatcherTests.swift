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
            try inner.io(a, .read) { watcher, _ in
                received = readAvailable(watcher.fd)
                watcher.stop()
            }
            let embed = try outer.embed(inner)
            #expect(embed.embedded === inner)
            try outer.timer(after: 0.01) { _ in writeString(b, "via the embedded loop") }
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
            try inner.io(a, .read) { watcher, _ in
                received = readAvailable(watcher.fd)
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
        #expect(throws: EVError.notEmbeddable(.poll)) { try outer.embed(pollLoop) }
        #expect(throws: EVError.cannotEmbedItself) { try outer.embed(outer) }
        #expect(EVError.notEmbeddable(.poll).description.contains("epoll"))
    }

    @Test func setEmbedsAnotherLoopAndRefusesWhatInitRefuses() throws {
        let outer = try Loop(backends: .poll)
        let first = try Loop(backends: .epoll)
        let second = try Loop(backends: .epoll)
        try withSocketPair { a, b in
            var received = ""
            try second.io(a, .read) { watcher, _ in
                received = readAvailable(watcher.fd)
                watcher.stop()
            }
            let embed = try outer.embed(first)
            try embed.set(embedding: second)
            #expect(embed.embedded === second)
            #expect(embed.isActive, "an active watcher stays active")
            #expect(throws: EVError.cannotEmbedItself) { try embed.set(embedding: outer) }
            let poll = try Loop(backends: .poll)
            #expect(throws: EVError.notEmbeddable(.poll)) { try embed.set(embedding: poll) }
            #expect(embed.embedded === second, "a refused set leaves the watcher as it was")
            try outer.timer(after: 0.01) { _ in writeString(b, "via the second loop") }
            #expect(runLoop(outer, until: { !received.isEmpty }))
            #expect(received == "via the second loop")
            embed.stop()
        }
    }
}
