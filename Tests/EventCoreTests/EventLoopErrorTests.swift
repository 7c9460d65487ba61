import EventCore
import Glibc
import SystemPackage
import Testing

@Suite("EventLoopError and the errno helpers")
struct EventLoopErrorTests {
    @Test func anErrorNamesTheCallAndTheErrno() {
        let error = EventLoopError.system("connect(127.0.0.1:9)", .connectionRefused)
        #expect(error.description == "connect(127.0.0.1:9) failed: Connection refused (ECONNREFUSED)")
        #expect(error.errno == .connectionRefused)
    }

    @Test func anErrorNamesTheDescriptorAndPeerItConcerns() throws {
        let peer = try SocketAddress(parsing: "127.0.0.1:9")
        let error = EventLoopError.system("read", .connectionReset).about(descriptor: FileDescriptor(rawValue: 7), peer: peer)
        #expect(error.description == "read (peer 127.0.0.1:9) failed: Connection reset by peer (ECONNRESET)")
        #expect(error.descriptor == FileDescriptor(rawValue: 7), "the number is kept, not printed: the peer names the connection")
        // What the error said first stays: an error about descriptor 3 is not re-addressed.
        #expect(error.about(descriptor: FileDescriptor(rawValue: 9), peer: nil).descriptor == FileDescriptor(rawValue: 7))
    }

    @Test func aCatchNamesTheCodeItHandles() {
        func matches(_ error: any Error) -> Bool {
            switch error {
            case EventLoopError.loopClosed: true
            default: false
            }
        }
        #expect(matches(EventLoopError(.loopClosed, operation: "sleep(for:)")))
        #expect(!matches(EventLoopError(.timedOut)))
        #expect(!matches(CancellationError()))
    }

    @Test(arguments: [
        (EventLoopError(.badDescriptor(.notOpen), descriptor: FileDescriptor(rawValue: 12), operation: "ev_io_start"),
         "ev_io_start: descriptor 12 cannot be watched: it is not open"),
        (EventLoopError(.timedOut, detail: "after 2 s"), "timed out after 2 s"),
        (EventLoopError(.invalidArgument, operation: "signal", detail: "signal 99 cannot be watched"),
         "signal: invalid argument: signal 99 cannot be watched"),
        (EventLoopError.loopClosed, "the loop has been closed and takes no more work"),
    ])
    func everyCodeReadsAsASentence(_ error: EventLoopError, _ sentence: String) {
        #expect(error.description == sentence)
    }

    @Test func systemCallRetriesNothingButEINTRAndThrowsTheRest() {
        #expect(throws: EventLoopError.system("close(-1)", .badFileDescriptor)) {
            try systemCall("close(-1)") { close(-1) }
        }
    }

    @Test func wouldBlockIsAResultNotAnError() throws {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
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
