import EventCore
import Glibc
import SystemPackage
import Testing

@Suite("SystemCallError and the errno helpers")
struct SystemCallErrorTests {
    @Test func anErrorNamesTheCallAndTheErrno() {
        let error = SystemCallError(call: "connect(127.0.0.1:9)", errno: .connectionRefused)
        #expect(error.description == "connect(127.0.0.1:9) failed: Connection refused (ECONNREFUSED)")
    }

    @Test func systemCallRetriesNothingButEINTRAndThrowsTheRest() {
        #expect(throws: SystemCallError(call: "close(-1)", errno: .badFileDescriptor)) {
            try systemCall("close(-1)") { close(-1) }
        }
    }

    @Test func wouldBlockIsAResultNotAnError() throws {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        var byte: UInt8 = 0
        #expect(try nonBlockingCall("read") { read(fds[0], &byte, 1) } == .wouldBlock)
        #expect(write(fds[1], "x", 1) == 1)
        #expect(try nonBlockingCall("read") { read(fds[0], &byte, 1) } == .processed(1))
    }

    @Test func aLockedValueIsOnlyReachedUnderItsLock() {
        let value = LockedValue(0)
        for _ in 0..<1000 { value.withLock { $0 += 1 } }
        #expect(value.withLock { $0 } == 1000)
    }
}
