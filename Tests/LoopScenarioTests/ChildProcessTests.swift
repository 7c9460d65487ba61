import EV
import Epoll
import EventCore
import Glibc
import Testing
import TestSupport

/// Child processes on the loop: real programs (sh, cat, head), their streams
/// as the package's sockets, their exits through a pidfd (the epoll loop, a
/// libev loop other than the default) or libev's child watcher (the default
/// loop, in the helper process: it reaps every child of its process).
@Suite("ChildProcess")
struct ChildProcessTests {
    @Test(arguments: LoopKind.allCases)
    func aChildsStreamsAndExit(_ kind: LoopKind) throws {
        let (line, error, status) = try kind.run { executor in
            let child = try ChildProcess.spawn("sh", ["-c", "read line; echo \"got $line\"; echo oops >&2; exit 3"],
                                               standardInput: .stream, standardOutput: .stream, standardError: .stream,
                                               on: executor.runningLoop)
            defer { child.closeStreams() }
            try await child.standardInput!.write(Array("hello\n".utf8))
            try child.standardInput!.shutdownWrite()
            let line = try await BufferedReader(child.standardOutput!).readLine()
            let error = try await BufferedReader(child.standardError!).readLine()
            return (line, error, try await child.exitStatus())
        }
        #expect(line == "got hello")
        #expect(error == "oops")
        #expect(status == .exited(code: 3))
    }

    /// A child gets descriptors 0, 1 and 2 and nothing else, as Python's
    /// subprocess (`close_fds=True`) and swift-subprocess give it: a
    /// descriptor the app opened without close-on-exec (a listener, a
    /// client's connection, a pipe's end) must not live on in a child that
    /// outlives the app's close of it.
    @Test(arguments: LoopKind.allCases)
    func aChildInheritsNoDescriptorButItsStandardStreams(_ kind: LoopKind) throws {
        // /dev/null, so that another test's child that takes a copy of it
        // while this test runs holds nothing that matters.
        let inheritable = open("/dev/null", O_RDONLY)
        try #require(inheritable > 2 && fcntl(inheritable, F_GETFD) & FD_CLOEXEC == 0)
        defer { close(inheritable) }
        let (output, status) = try kind.run { executor in
            let child = try ChildProcess.spawn("sh", ["-c", "[ -e /proc/$$/fd/\(inheritable) ] && echo inherited || echo closed; [ -e /proc/$$/fd/2 ] && echo stderr"],
                                               standardOutput: .stream, standardError: .null, on: executor.runningLoop)
            defer { child.closeStreams() }
            let output = try await child.standardOutput!.readToEnd(limit: 1000)
            return (String(decoding: output, as: UTF8.self), try await child.exitStatus())
        }
        #expect(output == "closed\nstderr\n", "descriptor \(inheritable): \(output)")
        #expect(status == .exited(code: 0))
    }

    @Test(arguments: LoopKind.allCases)
    func aMegabyteThroughCatBothWaysAtOnce(_ kind: LoopKind) throws {
        let (echoed, status) = try kind.run { executor in
            let child = try ChildProcess.spawn("cat", standardInput: .stream, standardOutput: .stream, on: executor.runningLoop)
            defer { child.closeStreams() }
            let input = child.standardInput!
            // More than the socket buffers hold: the writer waits for cat, cat for the reader.
            let writer = Task(executorPreference: executor) {
                let block = [UInt8](repeating: UInt8(ascii: "x"), count: 64 * 1024)
                for _ in 0..<16 { try await input.write(block) }
                try input.shutdownWrite()
            }
            let total = try await child.standardOutput!.readToEnd(limit: 2 << 20).count
            try await writer.value
            return (total, try await child.exitStatus())
        }
        #expect(echoed == 1 << 20)
        #expect(status == .exited(code: 0))
    }

    @Test(arguments: LoopKind.allCases)
    func aChildThatIgnoresSIGTERMIsKilled(_ kind: LoopKind) throws {
        let (timedOut, status) = try kind.run { executor in
            let child = try ChildProcess.spawn("sh", ["-c", "trap '' TERM; echo ready; while true; do sleep 1; done"],
                                               standardOutput: .stream, on: executor.runningLoop)
            defer { child.closeStreams() }
            _ = try await BufferedReader(child.standardOutput!).readLine()
            child.terminate()
            let timedOut = await #expect(throws: EventLoopError.self) {
                try await withTimeout(.milliseconds(300)) { try await child.exitStatus() }
            }
            #expect(child.status == nil, "SIGTERM ignored: still running")
            child.kill()
            return (timedOut?.code, try await child.exitStatus())
        }
        #expect(timedOut == .timedOut)
        #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
    }

    @Test(arguments: LoopKind.allCases)
    func aChildThatClosesItsOutputEarlyAndAWriteToOneThatHasEnded(_ kind: LoopKind) throws {
        let (line, writeError, status) = try kind.run { executor in
            let child = try ChildProcess.spawn("sh", ["-c", "exec 1>&-; exec 0<&-; sleep 0.1; exit 0"],
                                               standardInput: .stream, standardOutput: .stream, on: executor.runningLoop)
            defer { child.closeStreams() }
            let line = try await BufferedReader(child.standardOutput!).readLine()
            let status = try await child.exitStatus()
            // Its input is gone: a write fails with EPIPE (no SIGPIPE kills this process).
            let error = await #expect(throws: EventLoopError.self) {
                for _ in 0..<64 { try await child.standardInput!.write([UInt8](repeating: 1, count: 65536)) }
            }
            return (line, error?.errno, status)
        }
        #expect(line == nil, "the end of its output, while it still ran")
        #expect(writeError == .brokenPipe || writeError == .connectionReset)
        #expect(status == .exited(code: 0))
    }

    @Test(arguments: LoopKind.allCases)
    func aGigabyteOnAStreamNobodyReadsStaysInTheChild(_ kind: LoopKind) throws {
        let status = try kind.run { executor in
            // 1 GB to a stderr nobody reads: the child blocks on the full
            // socket, and nothing piles up in this process.
            let writer = try ChildProcess.spawn("sh", ["-c", "head -c 1073741824 /dev/zero >&2"], standardError: .stream,
                                                on: executor.runningLoop)
            defer { writer.closeStreams() }
            try await executor.sleep(for: .milliseconds(200))
            #expect(writer.status == nil, "blocked on the full socket")
            writer.kill()
            return try await writer.exitStatus()
        }
        #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
    }

    @Test(arguments: LoopKind.allCases)
    func aCancelledWaitLeavesTheChildToBeReaped(_ kind: LoopKind) throws {
        let (cancelled, status) = try kind.run { executor in
            let reaped = LockedValue<ChildStatus?>(nil)
            // The task's child is dropped when the task ends: its exit still
            // comes, and the callback given before runs.
            let waiter = Task(executorPreference: executor) {
                let child = try ChildProcess.spawn("sleep", ["0.2"], on: executor.runningLoop)
                child.whenExited { result in reaped.withLock { $0 = try? result.get() } }
                do {
                    _ = try await child.exitStatus()
                    return false
                } catch {
                    return error is CancellationError
                }
            }
            try await executor.sleep(for: .milliseconds(20))
            waiter.cancel()
            let cancelled = try await waiter.value
            for _ in 0..<500 where reaped.withLock({ $0 }) == nil { try await executor.sleep(for: .milliseconds(10)) }
            return (cancelled, reaped.withLock { $0 })
        }
        #expect(cancelled)
        #expect(status == .exited(code: 0))
    }

    @Test(arguments: LoopKind.allCases)
    func aProgramThatDoesNotExistIsNamed(_ kind: LoopKind) throws {
        let loop = try kind.make()
        func spawn<L: EventLoop>(_ loop: L) -> EventLoopError? {
            caughtError {
                _ = try ChildProcess.spawn("/no/such/program", standardOutput: .stream, on: loop)
            }
        }
        let error = spawn(loop)
        #expect(error?.errno == .noSuchFileOrDirectory)
        #expect(error?.description.contains("posix_spawn(/no/such/program)") == true, "\(String(describing: error))")
    }

    @Test(arguments: ["default", "libev", "epoll"])
    func forgottenChildrenLeaveNoZombieAndNoDescriptor(_ loop: String) throws {
        let output = try runHelper("forgotten-children", [loop])
        #expect(output.exitCode == 0 && output.standardOutput == "zombies=0 leaked-descriptors=0 reaped=20\n", "\(output)")
    }

    @Test func onTheDefaultLoopTheExitComesThroughLibevsChildWatcher() throws {
        let output = try runHelper("child-process-default-loop")
        #expect(output.exitCode == 0 && output.standardOutput == "line=got hello status=exited with code 3\n", "\(output)")
    }
}
