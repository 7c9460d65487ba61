import EV
import Epoll
import EventCore
import Glibc
import Testing
import TestSupport

/// Pipes and files on the loop (AsyncPipe), and cancellation in the middle
/// of each await of the app-I/O types.
@Suite("AsyncPipe and cancelling the app-I/O awaits")
struct AsyncPipeTests {
    @Test(arguments: LoopKind.allCases)
    func aMegabyteThroughAPipe(_ kind: LoopKind) throws {
        let ends = try makePipe(nonBlocking: false)
        let (reader, writer) = (ends[0], ends[1])
        let received = try kind.run { executor in
            let sender = Task(executorPreference: executor) {
                let output = try AsyncPipe(adopting: FileDescriptor(rawValue: writer), on: executor)
                defer { output.close() }
                let block = [UInt8](repeating: 7, count: 64 * 1024)
                for _ in 0..<16 { try await output.write(block) }
            }
            let input = try AsyncPipe(adopting: FileDescriptor(rawValue: reader), on: executor)
            defer { input.close() }
            var total = 0
            while case let bytes = try await input.read(maximum: 100_000), !bytes.isEmpty { total += bytes.count }
            try await sender.value
            return total
        }
        #expect(received == 1 << 20)
    }

    @Test(arguments: LoopKind.allCases)
    func aRegularFileIsReadAndWrittenWithoutTheLoop(_ kind: LoopKind) throws {
        let path = temporaryPath("file")
        defer { unlink(path) }
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        let (isFile, readBack) = try kind.run { executor in
            let file = try AsyncPipe(adopting: FileDescriptor(rawValue: fd), on: executor)
            defer { file.close() }
            try await file.write(Array("on disk\n".utf8))
            lseek(fd, 0, SEEK_SET)
            return (file.isRegularFile, String(decoding: try await file.read(), as: UTF8.self))
        }
        #expect(isFile)
        #expect(readBack == "on disk\n")
    }

    @Test(arguments: LoopKind.allCases)
    func aPipesFlagsComeBackAtClose(_ kind: LoopKind) throws {
        let ends = try makePipe(nonBlocking: false)
        defer { close(ends[1]) }
        let readEnd = ends[0]
        let (during, after) = try kind.run { executor in
            let input = try AsyncPipe(adopting: FileDescriptor(rawValue: readEnd), on: executor, closesDescriptor: false)
            let during = fcntl(readEnd, F_GETFL) & O_NONBLOCK
            input.close()
            return (during, fcntl(readEnd, F_GETFL) & O_NONBLOCK)
        }
        close(ends[0])
        #expect(during != 0, "non-blocking while on the loop")
        #expect(after == 0, "blocking again, as it was (a terminal's flags are the shell's)")
    }

    @Test(arguments: LoopKind.allCases)
    func socketsAndDirectoriesAreNotPipes(_ kind: LoopKind) throws {
        let (a, b) = try makeSocketPair()
        defer { close(a); close(b) }
        let directory = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(directory) }
        let errors = try kind.run { executor in
            [a, directory].map { fd in
                caughtError { _ = try AsyncPipe(adopting: FileDescriptor(rawValue: fd), on: executor, closesDescriptor: false) }
            }
        }
        #expect(errors.map { $0?.code } == [.invalidArgument, .invalidArgument])
        #expect(errors[0]?.description.contains("a socket is an AsyncSocket") == true)
    }

    /// A read of a pipe, a datagram receive and a line read, each cancelled
    /// while it waits: each throws CancellationError, and the loop holds no
    /// wait afterwards.
    @Test(arguments: LoopKind.allCases)
    func cancellingEachAwaitInTheMiddle(_ kind: LoopKind) throws {
        let ends = try makePipe(nonBlocking: false)
        defer { close(ends[1]) }
        let pipeEnd = ends[0]
        let (outcomes, _, waitsLeft) = try kind.runChecked { executor in
            let (client, server) = try makeSocketPair()
            defer { close(server) }
            let waits: [@Sendable () async throws -> Void] = [
                { _ = try await AsyncPipe(adopting: FileDescriptor(rawValue: pipeEnd), on: executor).read() },
                {
                    let socket = try DatagramSocket(bindingTo: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
                    defer { socket.close() }
                    _ = try await socket.receive()
                },
                {
                    let socket = AsyncSocket(adopting: SocketDescriptor(FileDescriptor(rawValue: client)), peer: nil, loop: executor)
                    defer { socket.close() }
                    _ = try await BufferedReader(socket).readLine()
                },
            ]
            var outcomes: [String] = []
            for wait in waits {
                let task = Task(executorPreference: executor) { try await wait() }
                try await executor.sleep(for: .milliseconds(20))
                task.cancel()
                do {
                    try await task.value
                    outcomes.append("returned")
                } catch {
                    outcomes.append(error is CancellationError ? "cancelled" : "\(error)")
                }
            }
            return outcomes
        }
        #expect(outcomes == ["cancelled", "cancelled", "cancelled"])
        #expect(!waitsLeft)
    }
}
