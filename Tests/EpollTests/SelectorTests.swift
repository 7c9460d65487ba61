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
            try selector.register(FileDescriptor(rawValue: a), .read, data: "reader")
            #expect(selector.count == 1)
            #expect(try selector.select(timeout: .zero).isEmpty)
            writeString(b, "x")
            let ready = try selector.select(timeout: .seconds(1))
            #expect(ready.count == 1)
            #expect(ready.first?.key.data == "reader")
            #expect(ready.first?.events == .read)
            try selector.modify(FileDescriptor(rawValue: a), .write, data: "writer")
            #expect(try selector.select(timeout: .seconds(1)).first?.events == .write)
            let key = try selector.unregister(FileDescriptor(rawValue: a))
            #expect(key.data == "writer")
            #expect(selector.count == 0)
            #expect(try selector.select(timeout: .zero).isEmpty)
        }
    }

    @Test func registrationErrorsNameTheDescriptor() throws {
        let selector = try Selector<Int>()
        try withSocketPair { a, _ in
            try selector.register(FileDescriptor(rawValue: a), .read, data: 1)
            let twice = caughtError { try selector.register(FileDescriptor(rawValue: a), .read, data: 2) }
            #expect(twice?.code == .badDescriptor(.alreadyWatched))
            #expect(twice?.description == "epoll_ctl(ADD): descriptor \(a) cannot be watched: this loop watches it already")
            let unknown = FileDescriptor(rawValue: 9999)
            #expect(caughtError { try selector.unregister(unknown) }?.code == .badDescriptor(.notWatched))
            #expect(caughtError { try selector.modify(unknown, .read, data: 0) }?.code == .badDescriptor(.notWatched))
        }
        let negative = caughtError { try selector.register(FileDescriptor(rawValue: -1), .read, data: 0) }
        #expect(negative?.code == .badDescriptor(.notOpen))
        #expect(negative?.descriptor == FileDescriptor(rawValue: -1))
    }

    @Test func aReusedNumberDropsTheStaleKey() throws {
        let selector = try Selector<String>()
        let (a, b) = try makeSocketPair()
        try selector.register(FileDescriptor(rawValue: a), .read, data: "old")
        close(b)
        let (fresh, peer) = try makeSocketPair()
        #expect(duplicate(fresh, onto: a) == a)
        close(fresh)
        defer {
            close(a)
            close(peer)
        }
        let stale = try selector.register(FileDescriptor(rawValue: a), .read, data: "new")
        #expect(stale?.data == "old")
        writeString(peer, "y")
        #expect(try selector.select(timeout: .seconds(1)).map(\.key.data) == ["new"])
    }

    @Test func aTimeoutUnderAMillisecondIsRoundedUpNotDown() throws {
        let selector = try Selector<Int>()
        // 0.3 ms must wait (rounded up to 1 ms), not poll: the loop would spin.
        let start = monotonicSeconds()
        try selector.select(timeout: .microseconds(300)) { _, _ in }
        #expect(monotonicSeconds() - start >= 0.0009)
    }

    @Test func aHangUpIsReportedWithTheInterest() throws {
        let selector = try Selector<Int>()
        let (a, b) = try makeSocketPair()
        defer { close(a) }
        try selector.register(FileDescriptor(rawValue: a), .read, data: 0)
        close(b)
        let ready = try selector.select(timeout: .seconds(1))
        #expect(ready.first?.events.contains(.read) == true, "so the owner reads the end of stream")
    }

    @Test func anUnregisteredDescriptorThatStaysOpenIsNeverReportedAndLeavesTheKernelAtItsFirstEvent() throws {
        let selector = try Selector<String>()
        try withSocketPair { a, b in
            try selector.register(FileDescriptor(rawValue: a), .read, data: "a")
            try selector.unregister(FileDescriptor(rawValue: a))
            writeString(b, "after the unregister")
            var reported = 0
            let first = try selector.select(timeout: .seconds(1)) { _, _ in reported += 1 }
            #expect(first == 1, "the kernel still had it: the first event removes it")
            let second = try selector.select(timeout: .zero) { _, _ in reported += 1 }
            #expect(second == 0, "gone from the kernel")
            #expect(reported == 0)
            // Registering it again takes it over.
            try selector.register(FileDescriptor(rawValue: a), .read, data: "again")
            #expect(try selector.select(timeout: .seconds(1)).map(\.key.data) == ["again"])
        }
    }

    /// A registration whose file stays open through a duplicate when its
    /// number is reused lingers in the kernel: its events carry the old
    /// generation and are dropped, and the instance is made again without it.
    @Test func aRegistrationThatOutlivesItsNumberIsDroppedAndPurged() throws {
        let selector = try Selector<String>()
        let (a, b) = try makeSocketPair()
        let keeper = fcntl(a, F_DUPFD_CLOEXEC, 0) // the old file lives on through this
        try selector.register(FileDescriptor(rawValue: a), .read, data: "old")
        let (fresh, peer) = try makeSocketPair()
        #expect(duplicate(fresh, onto: a) == a)
        close(fresh)
        defer {
            close(a); close(b); close(keeper); close(peer)
        }
        let stale = try selector.register(FileDescriptor(rawValue: a), .read, data: "new")
        #expect(stale?.data == "old", "the kernel took the new file: the old key is stale")
        writeString(b, "to the old file, which stays readable")
        var delivered: [String] = []
        var raw: [Int] = []
        for _ in 0..<4 { raw.append(try selector.select(timeout: .milliseconds(100)) { key, _ in delivered.append(key.data) }) }
        #expect(delivered.isEmpty, "no event of the old file reaches the new key")
        #expect(raw.suffix(2) == [0, 0], "purged: \(raw)")
        writeString(peer, "to the new file")
        #expect(try selector.select(timeout: .seconds(1)).map(\.key.data) == ["new"])
    }
}
