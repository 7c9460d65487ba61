import Epoll
import EventCore
import Glibc
import Testing
import TestSupport

@Suite("Selector (the tutorial's selectors module, on epoll)")
struct SelectorTests {
    @Test func registerSelectModifyUnregister() throws {
        let selector = try Selector<String>()
        try withSocketPair { a, b in
            try selector.register(a, .read, data: "reader")
            #expect(selector.count == 1)
            #expect(try selector.select(timeout: 0).isEmpty)
            writeString(b, "x")
            let ready = try selector.select(timeout: 1)
            #expect(ready.count == 1)
            #expect(ready.first?.key.data == "reader")
            #expect(ready.first?.events == .read)
            try selector.modify(a, .write, data: "writer")
            #expect(try selector.select(timeout: 1).first?.events == .write)
            let key = try selector.unregister(a)
            #expect(key.data == "writer")
            #expect(selector.count == 0)
            #expect(try selector.select(timeout: 0).isEmpty)
        }
    }

    @Test func registrationErrorsNameTheDescriptor() throws {
        let selector = try Selector<Int>()
        try withSocketPair { a, _ in
            try selector.register(a, .read, data: 1)
            #expect(throws: SelectorError.alreadyRegistered(a)) { try selector.register(a, .read, data: 2) }
            #expect(throws: SelectorError.notRegistered(9999)) { try selector.unregister(9999) }
            #expect(throws: SelectorError.notRegistered(9999)) { try selector.modify(9999, .read, data: 0) }
        }
        #expect(throws: SelectorError.self) { try selector.register(-1, .read, data: 0) }
        #expect(SelectorError.alreadyRegistered(5).description == "descriptor 5 is already registered")
    }

    @Test func aReusedNumberDropsTheStaleKey() throws {
        let selector = try Selector<String>()
        let (a, b) = try makeSocketPair()
        try selector.register(a, .read, data: "old")
        close(b)
        let (fresh, peer) = try makeSocketPair()
        #expect(dup2(fresh, a) == a)
        close(fresh)
        defer {
            close(a)
            close(peer)
        }
        let stale = try selector.register(a, .read, data: "new")
        #expect(stale?.data == "old")
        writeString(peer, "y")
        #expect(try selector.select(timeout: 1).map(\.key.data) == ["new"])
    }

    @Test func aTimeoutUnderAMillisecondIsRoundedUpNotDown() throws {
        let selector = try Selector<Int>()
        // 0.3 ms must wait (rounded up to 1 ms), not poll: the loop would spin.
        let start = monotonicSeconds()
        try selector.select(timeout: 0.0003) { _, _ in }
        #expect(monotonicSeconds() - start >= 0.0009)
    }

    @Test func aHangUpIsReportedWithTheInterest() throws {
        let selector = try Selector<Int>()
        let (a, b) = try makeSocketPair()
        defer { close(a) }
        try selector.register(a, .read, data: 0)
        close(b)
        let ready = try selector.select(timeout: 1)
        #expect(ready.first?.events.contains(.read) == true, "so the owner reads the end of stream")
    }
}
