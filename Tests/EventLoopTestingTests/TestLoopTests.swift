import EventCore
import EventLoopTesting
import Foundation
import Glibc
import Testing

/// A Unix socket pair, non-blocking: real descriptors the test owns.
func socketPair() -> (SocketDescriptor, SocketDescriptor) {
    var pair: [Int32] = [0, 0]
    let result = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair)
    precondition(result == 0, "socketpair: \(errno)")
    return (SocketDescriptor(FileDescriptor(rawValue: pair[0])), SocketDescriptor(FileDescriptor(rawValue: pair[1])))
}

/// An abstract Unix socket name no other test uses.
func uniqueAbstractAddress(_ what: String) throws -> SocketAddress {
    try SocketAddress.unix(abstract: "swift-libev-\(what)-\(getpid())-\(UUID().uuidString.prefix(8))")
}

@Suite("TestLoop: a loop whose clock moves only when told")
struct TestLoopTests {
    @Test func timersFireOnlyWhenTheClockIsAdvancedAndInDeadlineOrder() throws {
        let loop = try TestLoop()
        defer { loop.close() }
        let start = loop.now
        var fired: [String] = []
        loop.schedule(after: .seconds(30)) { fired.append("30 s") }
        loop.schedule(after: .seconds(10)) { fired.append("10 s, first") }
        loop.schedule(after: .seconds(10)) { fired.append("10 s, second") }
        let cancelled = loop.schedule(after: .seconds(5)) { fired.append("cancelled") }
        cancelled.cancel()
        #expect(loop.scheduledTimerCount == 3)
        loop.runPending()
        #expect(fired.isEmpty)
        loop.advance(by: .seconds(10) - .nanoseconds(1))
        #expect(fired.isEmpty, "a nanosecond early")
        loop.advance(by: .nanoseconds(1))
        #expect(fired == ["10 s, first", "10 s, second"])
        // A timer a callback makes inside the window fires in the same
        // advance, at its own deadline, with the clock there.
        var seen: Duration?
        loop.schedule(after: .seconds(5)) {
            loop.schedule(after: .seconds(5)) { seen = start.duration(to: loop.now) }
        }
        loop.advance(by: .seconds(20))
        #expect(fired == ["10 s, first", "10 s, second", "30 s"])
        #expect(seen == .seconds(20))
        #expect(start.duration(to: loop.now) == .seconds(30))
        #expect(loop.scheduledTimerCount == 0)
        loop.advance(to: start) // the past: nothing moves
        #expect(start.duration(to: loop.now) == .seconds(30))
    }

    @Test func theLoopsCodeReadsTheLoopsClock() throws {
        let loop = try TestLoop()
        defer { loop.close() }
        let before = loop.executor.now
        var read: (executor: ContinuousClock.Instant, monotonic: Double)?
        var monotonicAtStart = 0.0
        loop.schedule(after: .zero) { monotonicAtStart = monotonicNow() }
        loop.runPending()
        loop.schedule(after: .seconds(90)) { read = (loop.executor.now, monotonicNow()) }
        loop.advance(by: .seconds(90))
        #expect(read.map { before.duration(to: $0.executor) } == .seconds(90))
        #expect(abs((read?.monotonic ?? 0) - monotonicAtStart - 90) < 1e-6, "the package's clock on the loop's thread")
        // Off the loop's thread, the executor's clock is the loop's; the
        // machine's monotonic clock is the machine's.
        let other = LockedValue<ContinuousClock.Instant?>(nil)
        let executor = loop.executor
        let thread = Thread { other.withLock { $0 = executor.now } }
        thread.start()
        while other.withLock({ $0 }) == nil { usleep(1000) }
        #expect(other.withLock { $0 } == loop.now)
        // The test's thread, not running the loop, keeps the machine's time:
        // what it reads lies between two readings of CLOCK_MONOTONIC.
        func machine() -> Double {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        }
        let machineBefore = machine()
        let onThisThread = monotonicNow()
        let machineAfter = machine()
        #expect(machineBefore <= onThisThread && onThisThread <= machineAfter, "the test's thread keeps the machine's time")
    }

    @Test func aTaskSleepsStepByStepAsTheTestAdvances() throws {
        let loop = try TestLoop()
        defer { loop.close() }
        let executor = loop.executor
        let steps = LockedValue([Int]())
        Task(executorPreference: executor) {
            for step in 1...3 {
                try await executor.sleep(for: .seconds(10))
                steps.withLock { $0.append(step) }
            }
        }
        loop.runPending()
        #expect(steps.withLock { $0 }.isEmpty)
        loop.advance(by: .seconds(10))
        #expect(steps.withLock { $0 } == [1])
        loop.advance(by: .seconds(25))
        #expect(steps.withLock { $0 } == [1, 2, 3])
        #expect(loop.scheduledTimerCount == 0)
    }

    @Test func runJumpsTheClockSoAnHourOfSleepTakesNone() throws {
        let loop = try TestLoop()
        defer { loop.close() }
        // Were the sleeps real, the test would take an hour; no bound on the
        // machine's time is asserted (a loaded machine may hold any test long).
        let slept = try loop.run { executor in
            let start = executor.now
            for _ in 0..<60 { try await executor.sleep(for: .seconds(60)) }
            return start.duration(to: executor.now)
        }
        #expect(slept == .seconds(3600))
    }

    @Test func withTimeoutEndsAWaitAtTheLoopsDeadlineAndRealDataEndsItSooner() throws {
        let loop = try TestLoop()
        defer { loop.close() }
        let executor = loop.executor
        let (mine, peer) = socketPair()
        defer { peer.close() }
        let socket = AsyncSocket(adopting: mine, peer: nil, loop: executor)
        let outcome = LockedValue<String?>(nil)
        func read() {
            outcome.withLock { $0 = nil }
            Task(executorPreference: executor) {
                let result: String
                do {
                    let bytes = try await withTimeout(.seconds(5)) { try await socket.read(maximum: 100) }
                    result = "read " + String(decoding: bytes, as: UTF8.self)
                } catch {
                    result = "\(error)"
                }
                outcome.withLock { $0 = result }
            }
        }
        read()
        loop.runPending()
        loop.advance(by: .seconds(4))
        #expect(outcome.withLock { $0 } == nil)
        loop.advance(by: .seconds(1))
        #expect(outcome.withLock { $0 }?.contains("timed out") == true, "\(outcome.withLock { $0 } ?? "nothing")")
        // Real readiness: the peer writes, the loop's next turn sees it.
        read()
        loop.runPending()
        _ = "hello".utf8CString.withUnsafeBytes { peer.descriptor.rawValue.withBytes($0.prefix(5)) }
        loop.runPending()
        #expect(outcome.withLock { $0 } == "read hello")
        loop.runPending()
        socket.close()
    }

    @Test func readinessFedByTheTestReachesTheWatchesThatWantIt() throws {
        let loop = try TestLoop()
        defer { loop.close() }
        loop.pollsDescriptors = false
        let (mine, peer) = socketPair()
        defer { mine.close(); peer.close() }
        var got: [Interest] = []
        let watch = try loop.watchReadiness(mine.descriptor, .read) { events in
            got.append(events)
            var byte: UInt8 = 0
            _ = Glibc.read(mine.descriptor.rawValue, &byte, 1)
        }
        _ = "x".utf8CString.withUnsafeBytes { peer.descriptor.rawValue.withBytes($0.prefix(1)) }
        loop.runPending()
        #expect(got.isEmpty, "polling is off: only what the test delivers")
        loop.deliver(.write, to: mine.descriptor)
        #expect(got.isEmpty, "the watch does not want writability")
        loop.deliver([.read, .write], to: mine.descriptor)
        #expect(got == [.read])
        loop.deliver(.error, to: mine.descriptor)
        #expect(got == [.read, .error], "an error reaches every watch")
        watch.cancel()
        loop.deliver(.read, to: mine.descriptor)
        #expect(got.count == 2 && loop.watchCount == 0)
    }

    @Test func aDescriptorThatIsNotOpenIsRefusedByName() throws {
        let loop = try TestLoop()
        defer { loop.close() }
        // Far above any number the suite's processes open (no test may
        // rely on a closed number staying free: a parallel test takes it).
        let error = #expect(throws: EventLoopError.self) {
            _ = try loop.watchReadiness(FileDescriptor(rawValue: 1_000_000), .read) { _ in }
        }
        #expect(error?.code == .system(.badFileDescriptor), "\(String(describing: error))")
    }

    @Test func workFromAnotherThreadWakesALoopWaitingForever() throws {
        let loop = try TestLoop()
        defer { loop.close() }
        let executor = loop.executor
        let thread = Thread {
            usleep(20_000)
            try? executor.execute { loop in loop.stop() }
        }
        thread.start()
        loop.runForever() // returns once the other thread's stop runs: no timer, nothing to jump to
        #expect(loop.scheduledTimerCount == 0)
    }
}

extension Int32 {
    /// Writes `bytes` to this descriptor; the count written.
    func withBytes(_ bytes: Slice<UnsafeRawBufferPointer>) -> Int {
        Glibc.write(self, UnsafeRawBufferPointer(rebasing: bytes).baseAddress, bytes.count)
    }
}
