import EV
import Epoll
import EventCore
import Glibc
import Synchronization
import Testing
import TestSupport

/// The async scenarios: the awaits, AsyncSocket, tasks and actors on the
/// loop's executor - one await core in EventCore under both loops, so each
/// runs on libev and on the hand-written epoll loop.
@Suite("Async on both loops")
struct AsyncScenarioTests {
    /// Spins the CPU for `seconds` without suspending (the loop's clock goes stale).
    func work(_ seconds: Double) {
        let until = monotonicSeconds() + seconds
        while monotonicSeconds() < until {}
    }

    @Test(arguments: LoopKind.allCases)
    func cancellingAnAwaitStopsItsWatch(_ kind: LoopKind) throws {
        try withSocketPair { a, b in
            let outcome = try kind.run { executor in
                let socket = AsyncSocket(adopting: SocketDescriptor(try dupDescriptor(a)), peer: nil, loop: executor)
                let waiter = SocketTask(socket: socket)
                let task = Task(executorPreference: executor) { try await waiter.socket.read() }
                try await executor.sleep(for: .milliseconds(20))
                task.cancel()
                let result = await task.result
                writeString(b, "unread")
                try await executor.sleep(for: .milliseconds(20))
                socket.close()
                switch result {
                case .success: return "resumed"
                case .failure(let error): return String(describing: type(of: error))
                }
            }
            #expect(outcome == "CancellationError")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func timeoutsAndSleeps(_ kind: LoopKind) throws {
        try withSocketPair { a, _ in
            let (timedOut, slept) = try kind.run { executor in
                let socket = AsyncSocket(adopting: SocketDescriptor(try dupDescriptor(a)), peer: nil, loop: executor)
                defer { socket.close() }
                var timedOut = false
                do {
                    _ = try await withTimeout(.milliseconds(30)) { try await socket.read() }
                } catch let error as EventLoopError where error.code == .timedOut {
                    timedOut = true
                }
                let start = monotonicSeconds()
                try await executor.sleep(for: .milliseconds(20))
                return (timedOut, monotonicSeconds() - start)
            }
            #expect(timedOut)
            #expect(slept >= 0.015 && slept < 5)
        }
    }

    @Test(arguments: LoopKind.allCases)
    func awaitsCountFromTheCurrentTimeNotTheLoopsCachedOne(_ kind: LoopKind) throws {
        // Issue "Hardening", 5: a task that works without suspending, then
        // sleeps or sets a timeout, gets the whole time it asked for.
        try withSocketPair { a, _ in
            let (slept, timedOutAfter) = try kind.run { executor in
                let socket = AsyncSocket(adopting: SocketDescriptor(try dupDescriptor(a)), peer: nil, loop: executor)
                defer { socket.close() }
                try await executor.sleep(for: .zero) // the loop's clock is now fresh
                work(1)
                var start = monotonicSeconds()
                try await executor.sleep(for: .milliseconds(1500))
                let slept = monotonicSeconds() - start
                work(1)
                start = monotonicSeconds()
                do {
                    _ = try await withTimeout(.milliseconds(1500)) { try await socket.read() }
                } catch let error as EventLoopError where error.code == .timedOut {}
                return (slept, monotonicSeconds() - start)
            }
            #expect(slept >= 1.45 && slept < 5, "\(kind): slept \(slept) s of 1.5")
            #expect(timedOutAfter >= 1.45 && timedOutAfter < 5, "\(kind): a 1.5 s timeout fired after \(timedOutAfter) s")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func aDeadlineHoldsWhenDataIsAlwaysThere(_ kind: LoopKind) throws {
        // A peer whose bytes keep coming: reads that never wait still end at the deadline.
        try withSocketPair { a, b in
            let writer = try PlainThread {
                let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 4096)
                while true {
                    let sent = chunk.withUnsafeBytes { send(b, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if sent < 0 && errno != EAGAIN && errno != EINTR { return }
                    if sent < 0 { usleep(200) }
                }
            }
            defer { shutdown(b, Int32(SHUT_RDWR)); writer.join() }
            let (timedOut, elapsed, bytes) = try kind.run { executor in
                let socket = AsyncSocket(adopting: SocketDescriptor(try dupDescriptor(a)), peer: nil, loop: executor)
                defer { socket.close() }
                let start = monotonicSeconds()
                var bytes = 0
                do {
                    try await withTimeout(.milliseconds(500)) {
                        // (Bounded, so that a regression fails instead of hanging.)
                        while monotonicSeconds() - start < 10 { bytes += try await socket.read(maximum: 1).count }
                    }
                } catch let error as EventLoopError where error.code == .timedOut {
                    return (true, monotonicSeconds() - start, bytes)
                }
                return (false, monotonicSeconds() - start, bytes)
            }
            #expect(timedOut && elapsed >= 0.45 && elapsed < 3, "\(kind): \(elapsed) s, \(bytes) bytes")
            #expect(bytes > 0)
        }
    }

    @Test(arguments: LoopKind.allCases)
    func anEchoServerAndAThousandClients(_ kind: LoopKind) throws {
        raiseDescriptorLimit()
        let clients = 1000
        let intact = try kind.run { executor in
            try await withThrowingTaskGroup(of: Bool.self) { group in
                let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor)
                let address = listener.localAddress
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { connections in
                        for _ in 0..<clients {
                            let connection = try await listener.accept()
                            connections.addTask {
                                while true {
                                    let chunk = try await connection.read()
                                    if chunk.isEmpty { break }
                                    try await connection.write(chunk)
                                }
                                connection.close()
                            }
                        }
                        try await connections.waitForAll()
                    }
                    listener.close()
                    return true
                }
                for client in 0..<clients {
                    group.addTask {
                        let payload = (0..<(500 + client * 11)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ client) }
                        let socket = try await AsyncSocket.connect(to: address, on: executor)
                        try await socket.write(payload)
                        try socket.shutdownWrite()
                        let echoed = try await socket.readToEnd()
                        socket.close()
                        return echoed == payload
                    }
                }
                var intact = 0
                for try await ok in group where ok { intact += 1 }
                return intact
            }
        }
        #expect(intact == clients + 1)
    }

    @Test(arguments: LoopKind.allCases)
    func aRefusedConnectionNamesTheAddress(_ kind: LoopKind) throws {
        let port = try unusedPort()
        let message = try kind.run { executor in
            do {
                _ = try await AsyncSocket.connect(to: SocketAddress(parsing: "\(port)"), on: executor)
                return "connected"
            } catch {
                return String(describing: error)
            }
        }
        #expect(message == "connect(127.0.0.1:\(port)) failed: Connection refused (ECONNREFUSED)")
    }

    @Test(arguments: LoopKind.allCases)
    func tenThousandConcurrentSleepsEndInDeadlineOrder(_ kind: LoopKind) throws {
        let order = try kind.run { executor in
            try await withThrowingTaskGroup(of: ContinuousClock.Instant.self) { group in
                for _ in 0..<10_000 {
                    let delay = Double.random(in: 0...0.2)
                    group.addTask {
                        // The sleep's own deadline, not the time of the call
                        // plus the delay: the thread may be preempted between
                        // a clock reading here and the one in sleep(for:).
                        let deadline = ContinuousClock.now + .seconds(delay)
                        try await executor.sleep(until: deadline)
                        return deadline
                    }
                }
                var order: [ContinuousClock.Instant] = []
                for try await deadline in group { order.append(deadline) }
                return order
            }
        }
        #expect(order.count == 10_000)
        // Sleeps due in the same iteration may end in any order among
        // themselves; across iterations, a later deadline never ends first.
        let inversions = zip(order, order.dropFirst()).filter { $0 > $1 + .milliseconds(20) }.count
        #expect(inversions == 0, "\(kind)")
    }

    @Test(arguments: LoopKind.allCases)
    func sleepWaitsAtLeastItsTime(_ kind: LoopKind) throws {
        let elapsed = try kind.run { executor in
            let start = monotonicSeconds()
            try await executor.sleep(for: .milliseconds(50))
            return monotonicSeconds() - start
        }
        #expect(elapsed >= 0.045 && elapsed < 5, "\(kind)")
    }

    /// Issue 22, 3a: every time an app can pass means one thing on both
    /// loops - negative, zero or past: at once; beyond 10^15 s: never - and
    /// none is an error, a trap or a hang.
    @Test(arguments: LoopKind.allCases)
    func everyDurationMeansOneThingOnBothLoops(_ kind: LoopKind) throws {
        let (immediate, never, timeouts) = try kind.run { executor in
            // At once: each ends within the first turns of the loop.
            var immediate: [String] = []
            for (name, duration) in [("negative", Duration.seconds(-5)), ("zero", .zero), ("Int64.min s", .seconds(Int64.min)),
                                     ("1 attosecond", .nanoseconds(1) / 1_000_000_000)] {
                let start = monotonicSeconds()
                try await executor.sleep(for: duration)
                if monotonicSeconds() - start < 1 { immediate.append(name) }
            }
            let start = monotonicSeconds()
            try await executor.sleep(until: .now - .seconds(3600))
            try await executor.sleep(until: ContinuousClock.now.advanced(by: .seconds(Int64.min)))
            if monotonicSeconds() - start < 1 { immediate.append("instants in the past") }
            // Never: a sleep for Int64.max seconds is still waiting when a 50 ms timeout ends it.
            var never: [String] = []
            for (name, duration) in [("Int64.max s", Duration.seconds(Int64.max)), ("10^16 s", .seconds(10_000_000_000_000_000))] {
                let outcome: Result<Void, any Error> = await .catching {
                    try await withTimeout(.milliseconds(50)) { try await executor.sleep(for: duration) }
                }
                if (outcome.error as? EventLoopError)?.code == .timedOut { never.append(name) }
            }
            // A timeout that is negative or zero ends the body at its first await.
            var timeouts: [String] = []
            for (name, duration) in [("negative timeout", Duration.seconds(-1)), ("zero timeout", .zero)] {
                let outcome: Result<Void, any Error> = await .catching {
                    try await withTimeout(duration) { try await executor.sleep(for: .seconds(10)) }
                }
                if (outcome.error as? EventLoopError)?.code == .timedOut { timeouts.append(name) }
            }
            let huge: Result<Void, any Error> = await .catching {
                try await withTimeout(.seconds(Int64.max)) { try await executor.sleep(for: .milliseconds(1)) }
            }
            if huge.error == nil { timeouts.append("Int64.max s timeout") }
            return (immediate, never, timeouts)
        }
        #expect(immediate == ["negative", "zero", "Int64.min s", "1 attosecond", "instants in the past"], "\(kind)")
        #expect(never == ["Int64.max s", "10^16 s"], "\(kind)")
        #expect(timeouts == ["negative timeout", "zero timeout", "Int64.max s timeout"], "\(kind)")
    }

    /// The same table for the loops' callbacks: `schedule(after:)` and
    /// `schedule(at:)` of the common protocol.
    @Test(arguments: LoopKind.allCases)
    func everyDurationMeansOneThingToTheCallbacksToo(_ kind: LoopKind) throws {
        let loop = try kind.make()
        var fired: [String] = []
        let cases: [(String, Duration)] = [("negative", .seconds(-5)), ("zero", .zero), ("Int64.min s", .seconds(Int64.min)),
                                           ("Int64.max s", .seconds(Int64.max))]
        var never: [any Cancellable] = []
        for (name, delay) in cases {
            let timer = loop.schedule(after: delay) { fired.append(name) }
            if delay > .seconds(1) { never.append(timer) }
        }
        loop.schedule(at: .now - .seconds(60)) { fired.append("past instant") }
        never.append(loop.schedule(at: ContinuousClock.now.advanced(by: .seconds(Int64.max))) { fired.append("far instant") })
        #expect(loop.runUntil(timeout: 5) { fired.count >= 4 })
        loop.schedule(after: .milliseconds(50)) { loop.stop() }
        loop.runForever()
        #expect(Set(fired) == ["negative", "zero", "Int64.min s", "past instant"], "\(kind): \(fired), none of the far ones")
        #expect(fired.count == 4, "each once")
        never.forEach { $0.cancel() }
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func readableAndWritable(_ kind: LoopKind) throws {
        try withSocketPair { a, b in
            let (text, watches, waitsLeft) = try kind.runChecked { executor in
                try await executor.writable(FileDescriptor(rawValue: b))
                writeString(b, "ready")
                try await executor.readable(FileDescriptor(rawValue: a))
                return readAvailable(a)
            }
            #expect(text == "ready")
            #expect(watches == 0 && !waitsLeft, "\(kind): every await removed its watch")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func readableOnAClosedDescriptorIsAnError(_ kind: LoopKind) throws {
        let closed = reservedDescriptorNumber() // closed, and no other test's
        let outcome = try kind.run { executor in await Result.catching { try await executor.readable(FileDescriptor(rawValue: closed)) } }
        #expect(outcome.error != nil, "\(kind)")
    }

    @Test(arguments: LoopKind.allCases)
    func cancellingAReadableWaitRemovesItsWatchAtOnce(_ kind: LoopKind) throws {
        try withSocketPair { a, b in
            let (outcome, watches, waitsLeft) = try kind.runChecked { executor in
                let waiter = Task(executorPreference: executor) {
                    try await executor.readable(FileDescriptor(rawValue: a))
                    return "woke up"
                }
                try await executor.sleep(for: .milliseconds(20)) // the waiter is now suspended
                waiter.cancel()
                let result = await waiter.result
                // The watch is gone before the task resumed: data now wakes no one.
                writeString(b, "too late")
                try await executor.sleep(for: .milliseconds(20))
                return result
            }
            #expect(throws: CancellationError.self) { try outcome.get() }
            #expect(watches == 0 && !waitsLeft, "\(kind): no watch and no wait left after the cancellation")
            #expect(readAvailable(a) == "too late", "the data is still there, unread")
        }
    }

    /// Issue "Green every time", 4: many tasks waiting on one descriptor
    /// share one watch, and each wait leaves it in constant time. A watch
    /// per wait made cancelling 100,000 waits on one descriptor quadratic on
    /// libev (its watchers of a descriptor are a singly linked list: 20 s,
    /// against 0.6 s on distinct descriptors), and on the epoll loop a
    /// second waiting task failed (one registration per descriptor).
    @Test(arguments: LoopKind.allCases)
    func manyTasksWaitingOnOneDescriptorShareOneWatch(_ kind: LoopKind) throws {
        try withSocketPair { a, b in
            let (outcome, watches, waitsLeft) = try kind.runChecked { executor in
                let woken = LoopBoundBox(0, loop: executor)
                let readers = (0..<1000).map { _ in
                    Task(executorPreference: executor) {
                        try await executor.readable(FileDescriptor(rawValue: a))
                        woken.value += 1
                    }
                }
                let cancelled = (0..<1000).map { _ in Task(executorPreference: executor) { try await executor.readable(FileDescriptor(rawValue: a)) } }
                let writers = (0..<10).map { _ in Task(executorPreference: executor) { try await executor.writable(FileDescriptor(rawValue: a)) } }
                try await executor.sleep(for: .milliseconds(50)) // all of them wait now
                let held = executor.runningLoopHeldWatches
                for task in cancelled { task.cancel() }
                var cancellations = 0
                for task in cancelled where (await task.result).error is CancellationError { cancellations += 1 }
                for task in writers { try await task.value }
                let heldAfterCancelling = executor.runningLoopHeldWatches
                writeString(b, "for everyone")
                for task in readers { try await task.value }
                return (held, cancellations, heldAfterCancelling, woken.value)
            }
            #expect(outcome.0 == 1, "\(kind): 2,010 waits on one descriptor, \(outcome.0) watches")
            #expect(outcome.1 == 1000)
            #expect(outcome.2 == 1, "\(kind): the readers' watch stayed for the 1,000 still waiting")
            #expect(outcome.3 == 1000, "\(kind): every reader woke")
            #expect(watches == 0 && !waitsLeft, "\(kind): the watch went with the last wait")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func cancellingFromAnotherThreadRemovesTheWatchOnTheLoopsThread(_ kind: LoopKind) throws {
        try withSocketPair { a, _ in
            let holder = Confined<Task<Void, any Error>?>(nil)
            let ready = Atomic(false)
            let canceller = try PlainThread {
                while !ready.load(ordering: .acquiring) { usleep(1000) }
                usleep(10_000)
                holder.value?.cancel()
            }
            let (result, watches, waitsLeft) = try kind.runChecked { executor in
                let waiter = Task(executorPreference: executor) { try await executor.readable(FileDescriptor(rawValue: a)) }
                holder.value = waiter
                ready.store(true, ordering: .releasing)
                return await waiter.result
            }
            canceller.join()
            #expect(throws: CancellationError.self) { try result.get() }
            #expect(watches == 0 && !waitsLeft, "\(kind)")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func anAlreadyCancelledTaskDoesNotArm(_ kind: LoopKind) throws {
        let (result, watches, _) = try kind.runChecked { executor in
            let task = Task(executorPreference: executor) {
                withUnsafeCurrentTask { $0?.cancel() }
                try await executor.sleep(for: .seconds(10))
            }
            return await task.result
        }
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(watches == 0, "\(kind)")
    }

    @Test(arguments: LoopKind.allCases)
    func aTimeoutEndsTheWaitAndOnlyIt(_ kind: LoopKind) throws {
        try withSocketPair { a, _ in
            let ((first, second), watches, waitsLeft) = try kind.runChecked { executor in
                let first: Result<Void, any Error> = await .catching { try await withTimeout(.milliseconds(50)) { try await executor.readable(FileDescriptor(rawValue: a)) } }
                // The task is not cancelled: the next await works.
                let second: Result<Void, any Error> = await .catching { try await executor.sleep(for: .milliseconds(1)) }
                return (first, second)
            }
            #expect(timeout(in: first) == "50 ms", "\(kind): \(first)")
            #expect(throws: Never.self) { try second.get() }
            #expect(watches == 0 && !waitsLeft, "\(kind)")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func anExpiredDeadlineEndsAWaitBeforeItIsArmed(_ kind: LoopKind) throws {
        try withSocketPair { a, b in
            writeString(b, "data is there")
            let (outcome, watches, _) = try kind.runChecked { executor in
                await Result.catching {
                    try await withTimeout(.milliseconds(10)) {
                        work(0.05)
                        try await executor.readable(FileDescriptor(rawValue: a))
                    }
                }
            }
            #expect(timeout(in: outcome) == "10 ms", "\(kind): \(outcome)")
            #expect(watches == 0, "\(kind): the wait was never armed")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func nestedTimeoutsKeepTheEarliestDeadline(_ kind: LoopKind) throws {
        let result = try kind.run { executor in
            await Result.catching {
                try await withTimeout(.milliseconds(30)) {
                    try await withTimeout(.seconds(10)) { try await executor.sleep(for: .seconds(5)) }
                }
            }
        }
        #expect(timeout(in: result) == "30 ms", "\(kind): \(result)")
    }

    @Test(arguments: LoopKind.allCases)
    func yieldLetsOtherWorkRun(_ kind: LoopKind) throws {
        let log = try kind.run { executor in
            let log = Confined<[String]>([])
            let other = Task(executorPreference: executor) { log.value.append("other") }
            log.value.append("before yield")
            try await executor.yield()
            log.value.append("after yield")
            await other.value
            return log.value
        }
        #expect(log == ["before yield", "other", "after yield"], "\(kind)")
    }

    @Test(arguments: LoopKind.allCases)
    func awaitsFromOffTheLoopHopOnto(_ kind: LoopKind) async throws {
        let thread = try kind.thread()
        let executor = thread.executor
        // This test runs on Swift's global executor, not on the loop.
        #expect(!executor.isCurrent)
        try await executor.sleep(for: .milliseconds(1))
        let onLoop = await withTaskExecutorPreference(executor) { @concurrent in executor.isCurrent }
        #expect(onLoop, "\(kind)")
        thread.stop()
    }

    @Test(arguments: LoopKind.allCases)
    func aTaskWithTheLoopsExecutorPreferenceRunsOnTheLoopsThread(_ kind: LoopKind) throws {
        let thread = pthread_self()
        let (onLoop, sameThread) = try kind.run { executor in
            (executor.isCurrent, pthread_equal(pthread_self(), thread) != 0)
        }
        #expect(onLoop, "\(kind)")
        #expect(sameThread, "\(kind): run runs the task on the calling thread")
    }

    @Test(arguments: LoopKind.allCases)
    func nonisolatedAsyncFunctionsStayOnTheLoop(_ kind: LoopKind) throws {
        let results = try kind.run { executor in
            var results: [Bool] = []
            for _ in 0..<10 {
                results.append(await isOnLoop(executor))
                try await executor.sleep(for: .zero)
                results.append(executor.isCurrent)
            }
            return results
        }
        #expect(results.allSatisfy { $0 }, "\(kind): no hop off the loop at any await: \(results)")
    }

    @Test(arguments: LoopKind.allCases)
    func runGivesBackTheBodysValueOrError(_ kind: LoopKind) throws {
        #expect(try kind.run { _ in 42 } == 42)
        #expect(throws: Oops()) { try kind.run { _ async throws -> Int in throw Oops() } }
    }

    /// A readiness wait's watch stays armed through one turn of the loop in
    /// which it fires with nobody waiting (the resumed waiter may need that
    /// turn to come back: an actor's task does), and is disarmed at the
    /// second. Disarming at the first cost each wait of an actor on the loop
    /// an epoll_ctl pair and an fstat (issue 14).
    @Test(arguments: LoopKind.allCases)
    func aReadinessWatchOutlivesOneTurnWithNobodyWaiting(_ kind: LoopKind) throws {
        let armed = try kind.run { executor in
            var fds: [Int32] = [-1, -1]
            precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
            defer { close(fds[0]); close(fds[1]) }
            let readiness = executor.readiness(for: FileDescriptor(rawValue: fds[0]))
            defer { readiness.cancel() }
            func interest() -> Interest {
                (readiness as? Readiness<Loop>)?.armedInterest ?? (readiness as? Readiness<EpollLoop>)?.armedInterest ?? []
            }
            var byte: UInt8 = 1
            precondition(write(fds[1], &byte, 1) == 1)
            try await readiness.waitReadable() // readable, and not read: it fires again at every turn
            var seen: [Interest] = []
            for _ in 0..<4 {
                try await executor.yield()
                seen.append(interest())
            }
            return seen
        }
        // A yield's timer and the descriptor fire in the same turn; libev runs
        // the timer's callback (which resumes the task) first, so on libev the
        // task sees one turn more before the watch has fired unwanted.
        let turnsArmed = armed.prefix { $0 == .read }.count
        #expect(turnsArmed == (kind == .libev ? 2 : 1), "\(kind): armed for \(turnsArmed) turns with nobody waiting: \(armed)")
        #expect(armed.last == [], "\(kind): still armed with nobody waiting: \(armed)")
    }

    /// Two tasks isolated to an actor on the loop (with the loop's executor
    /// preference) play ping-pong over a socket pair: each resumed wait is
    /// queued twice (the task executor, then the actor's), and both hops run
    /// in the same turn of the loop, so a descriptor never fires with nobody
    /// waiting and no watch is disarmed and re-armed (issue 14: before, each
    /// wait cost two more polls and an epoll_ctl pair).
    @Test(arguments: LoopKind.allCases)
    func anActorsWaitsComeBackInTheSameTurn(_ kind: LoopKind) async throws {
        let thread = try kind.thread()
        defer { thread.stop() }
        let actor = LoopAwaiter(thread.executor, thread.serialExecutor)
        var fds: [Int32] = [-1, -1]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let (a, b) = (fds[0], fds[1])
        let executor = thread.executor
        let echo = Task(executorPreference: executor) { try await actor.bounce(b, rounds: 500, first: false) }
        let serve = Task(executorPreference: executor) { try await actor.bounce(a, rounds: 500, first: true) }
        let disarms = try await serve.value + echo.value
        #expect(disarms == 0, "\(kind): watches disarmed \(disarms) times in 1,000 waits")
    }

    /// The package's awaits from an actor whose executor is the loop. In
    /// Swift 6.3, withTaskCancellationHandler's operation ran on the global
    /// executor when called from a nonisolated(nonsending) function, so a
    /// `sleep` from such an actor began its wait off the loop's thread: the
    /// executor's thread check trapped, on both loops (issue 14, the actor row).
    @Test(arguments: LoopKind.allCases)
    func anActorOnTheLoopAwaitsWithoutLeavingIt(_ kind: LoopKind) async throws {
        let thread = try kind.thread()
        defer { thread.stop() }
        let actor = LoopAwaiter(thread.executor, thread.serialExecutor)
        let offLoop = try await actor.sleepsAndReads(rounds: 200)
        #expect(offLoop == 0, "\(kind): \(offLoop) of 400 awaits resumed off the loop")
    }

    @Test(arguments: LoopKind.allCases)
    func anActorWhoseExecutorIsTheLoop(_ kind: LoopKind) async throws {
        let thread = try kind.thread()
        let counter = LoopCounter(thread.executor, thread.serialExecutor)
        // Called from the test's own (global) executor: each call hops onto the loop.
        for _ in 0..<100 {
            #expect(await counter.increment())
        }
        // Called from a task on the loop: no hop needed.
        let onLoop = await withTaskExecutorPreference(thread.executor) { @concurrent in
            var all = true
            for _ in 0..<100 { all = await counter.increment() && all }
            return all
        }
        #expect(onLoop, "\(kind)")
        #expect(await counter.count == 200)
        thread.stop()
    }

    @Test(arguments: LoopKind.allCases)
    func aMillionJobsFromOtherThreadsAllRunOnce(_ kind: LoopKind) throws {
        let thread = try kind.thread()
        let executor = thread.executor
        let counts = Confined([0, 0])
        let done = AtomicCounter()
        let perThread = 500_000
        let submitters = (0..<2).map { index in
            try! PlainThread {
                for _ in 0..<perThread {
                    // Each task's first job is enqueued from this (non-loop) thread.
                    Task(executorPreference: executor) {
                        counts.value[index] += 1
                        if counts.value[index] == perThread { done.increment() }
                    }
                }
            }
        }
        submitters.forEach { $0.join() }
        let deadline = monotonicSeconds() + 120
        while done.value < 2 && monotonicSeconds() < deadline { usleep(1000) }
        thread.stop()
        #expect(counts.value == [perThread, perThread], "\(kind): 1,000,000 jobs, each run exactly once")
    }

    @Test(arguments: LoopKind.allCases)
    func jobsQueuedOnTheLoopsOwnThreadDoNotStarveIO(_ kind: LoopKind) throws {
        // A task that re-enqueues itself forever must still let a timer fire.
        let result = try kind.run { executor in
            let spinner = Task(executorPreference: executor) {
                var spins = 0
                while !Task.isCancelled {
                    await Task.yield()
                    spins += 1
                }
                return spins
            }
            try await executor.sleep(for: .milliseconds(50))
            spinner.cancel()
            return await spinner.value
        }
        // How often it spun is the scheduler's business; that it ran and the sleep ended is the point.
        #expect(result > 0, "\(kind): the spinner ran (\(result) times) and the sleep still ended")
    }

    @Test(arguments: LoopKind.allCases)
    func destroyingTheLoopEndsPendingAwaitsWithLoopClosed(_ kind: LoopKind) throws {
        let outcome = Confined<(any Error)?>(nil)
        let thread = try kind.thread()
        let executor = thread.executor
        try executor.execute {
            Task(executorPreference: executor) {
                do {
                    try await executor.sleep(for: .seconds(3600))
                } catch {
                    outcome.value = error
                }
            }
        }
        usleep(50_000)
        thread.stop()
        #expect(kind.isLoopClosed(outcome.value), "\(kind): got \(String(describing: outcome.value))")
    }

    @Test(arguments: LoopKind.allCases)
    func aConnectThatHangsTimesOutNamingTheAddress(_ kind: LoopKind) throws {
        // A listener that never accepts, with the smallest backlog: once its
        // queue is full the kernel drops further SYNs, and connects hang.
        let listener = try SocketDescriptor.listening(on: SocketAddress(parsing: "0"), backlog: 0)
        defer { listener.close() }
        let address = try listener.localAddress()
        let (outcome, watches, _) = try kind.runChecked { executor in
            var held: [AsyncSocket] = []
            for _ in 0..<16 {
                do {
                    held.append(try await AsyncSocket.connect(to: address, on: executor, timeout: .milliseconds(300)))
                } catch {
                    return Result<Void, any Error>.failure(error)
                }
            }
            return .success(())
        }
        #expect(timeout(in: outcome) == "300 ms", "\(kind): \(outcome)")
        #expect(outcome.error.map { "\($0)" }?.hasPrefix("connect(\(address))") == true, "\(kind): \(outcome)")
        #expect(watches == 0, "\(kind): the timed-out connect left no watch behind")
    }

    @Test(arguments: LoopKind.allCases)
    func writingToAVanishedPeerIsEPIPENotSIGPIPE(_ kind: LoopKind) throws {
        let outcome = try kind.run { executor in
            let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor)
            let client = try await AsyncSocket.connect(to: listener.localAddress, on: executor)
            let server = try await listener.accept()
            server.close()
            var failures: [EventLoopError] = []
            for _ in 0..<20 {
                do {
                    try await client.write([UInt8](repeating: 7, count: 65536))
                } catch let error as EventLoopError {
                    failures.append(error)
                    if failures.count >= 2 { break }
                }
            }
            return failures
        }
        #expect(!outcome.isEmpty)
        #expect(outcome.allSatisfy { $0.errno == .brokenPipe || $0.errno == .connectionReset }, "\(kind): \(outcome)")
    }

    @Test(arguments: LoopKind.allCases)
    func closingTwiceIsHarmlessAndClosingEndsAPendingRead(_ kind: LoopKind) throws {
        let (result, watches, waitsLeft) = try kind.runChecked { executor in
            let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor)
            let client = try await AsyncSocket.connect(to: listener.localAddress, on: executor)
            // Shared by two tasks of the same loop (one thread), to close the
            // socket under a pending read: checked on each access.
            let server = LoopBound(try await listener.accept(), loop: executor)
            let reader = Task(executorPreference: executor) { try await server.value.read() }
            try await executor.sleep(for: .milliseconds(10))
            server.value.close()
            server.value.close()
            client.close()
            listener.close()
            listener.close()
            return await reader.result
        }
        #expect((result.error as? EventLoopError)?.code == .descriptorClosed, "\(kind): \(result)")
        #expect(watches == 0 && !waitsLeft, "\(kind)")
    }

    /// After `close()` a socket's number may belong to another connection at
    /// once (here, made so with dup2): every operation of the closed socket
    /// throws the closed error and touches nothing - a read used to return
    /// the other connection's data, and a write to send into it.
    @Test(arguments: LoopKind.allCases)
    func aClosedSocketRefusesEveryOperationEvenWhenItsNumberIsReused(_ kind: LoopKind) throws {
        let (errors, leaked, kept) = try kind.run { executor in
            let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor)
            defer { listener.close() }
            // The socket is on a reserved number: once closed, no other test's
            // new descriptor can take it before the dup2 below (a number that
            // was the lowest free one could be, and dup2 would then replace
            // that test's socket and hand it this test's data).
            let (ours, theirs) = try makeReservedSocketPair()
            defer { close(theirs) }
            let client = AsyncSocket(adopting: SocketDescriptor(FileDescriptor(rawValue: ours)), peer: nil, loop: executor)
            let number = client.descriptor.fd
            let (other, peer) = try makeSocketPair() // before the close: not on the number
            client.close()
            #expect(duplicate(other, onto: number) == number)
            close(other)
            defer { close(number); close(peer) }
            writeString(peer, "for the new connection")
            var errors: [String] = []
            func attempt(_ name: String, _ operation: () async throws -> Void) async {
                do {
                    try await operation()
                    errors.append("\(name): no error")
                } catch let error as EventLoopError where error.code == .descriptorClosed {
                    errors.append("\(name): closed \(error.descriptor?.rawValue == number)")
                } catch {
                    errors.append("\(name): \(error)")
                }
            }
            await attempt("read") { _ = try await client.read() }
            await attempt("read(into:)") {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
                defer { buffer.deallocate() }
                _ = try await client.read(into: buffer)
            }
            await attempt("write") { try await client.write("into the new connection") }
            await attempt("waitReadable") { try await client.waitReadable() }
            await attempt("waitWritable") { try await client.waitWritable() }
            await attempt("shutdownWrite") { try client.shutdownWrite() }
            await attempt("readToEnd") { _ = try await client.readToEnd() }
            listener.close()
            await attempt("accept") { _ = try await listener.accept() }
            return (errors, readAvailable(peer), readAvailable(number))
        }
        let names = ["read", "read(into:)", "write", "waitReadable", "waitWritable", "shutdownWrite", "readToEnd", "accept"]
        #expect(errors == names.map { "\($0): closed \($0 != "accept")" }, "\(kind): \(errors)")
        #expect(leaked == "", "\(kind): the closed socket wrote into the new connection")
        #expect(kept == "for the new connection", "\(kind): the closed socket read the new connection's data")
    }

    @Test(arguments: LoopKind.allCases)
    func readToEndRespectsItsLimit(_ kind: LoopKind) throws {
        let outcome = try kind.run { executor in
            let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor)
            let client = try await AsyncSocket.connect(to: listener.localAddress, on: executor)
            let server = try await listener.accept()
            try await server.write([UInt8](repeating: 1, count: 5000))
            server.close()
            return await Result.catching { try await client.readToEnd(limit: 1000) }
        }
        let error = outcome.error as? EventLoopError
        #expect(error?.errno == .messageTooLong, "\(kind): \(outcome)")
        #expect(error?.description.contains("more than 1000 bytes") == true)
    }

}

/// An actor whose executor is a loop: its methods run on the loop's thread.
actor LoopCounter {
    let executor: any EventLoopExecutor
    let serial: UnownedSerialExecutor
    private(set) var count = 0
    nonisolated var unownedExecutor: UnownedSerialExecutor { serial }

    init(_ executor: any EventLoopExecutor, _ serial: UnownedSerialExecutor) {
        self.executor = executor
        self.serial = serial
    }

    /// Counts one, and says whether it ran on the loop's thread.
    func increment() -> Bool {
        count += 1
        return executor.isCurrent
    }
}

/// An actor on a loop that sleeps and waits for readiness there.
actor LoopAwaiter {
    let executor: any EventLoopExecutor
    let serial: UnownedSerialExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { serial }

    init(_ executor: any EventLoopExecutor, _ serial: UnownedSerialExecutor) {
        self.executor = executor
        self.serial = serial
    }

    /// One side of a ping-pong on `fd`: waits for a byte and sends it back,
    /// `rounds` times (the `first` side sends first); returns how often its
    /// readiness watch was disarmed.
    func bounce(_ fd: Int32, rounds: Int, first: Bool) async throws -> Int {
        let readiness = executor.readiness(for: FileDescriptor(rawValue: fd))
        defer { readiness.cancel() }
        var byte: UInt8 = 1
        if first { precondition(write(fd, &byte, 1) == 1) }
        for round in 0..<rounds {
            try await readiness.waitReadable()
            precondition(read(fd, &byte, 1) == 1)
            if !first || round < rounds - 1 { precondition(write(fd, &byte, 1) == 1) }
        }
        return (readiness as? Readiness<Loop>)?.disarms ?? (readiness as? Readiness<EpollLoop>)?.disarms ?? -1
    }

    /// `rounds` sleeps and `rounds` one-byte reads over a socket pair, each
    /// waiting for a byte another thread writes; returns how many of those
    /// awaits did not resume on the loop's thread.
    func sleepsAndReads(rounds: Int) async throws -> Int {
        var fds: [Int32] = [-1, -1]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        let a = AsyncSocket(adopting: SocketDescriptor(fds[0]), peer: nil, loop: executor)
        defer { a.close(); Glibc.close(fds[1]) }
        let writer = fds[1]
        var offLoop = 0
        for _ in 0..<rounds {
            try await executor.sleep(for: .zero)
            if !executor.isCurrent { offLoop += 1 }
            let sender = Task.detached {
                usleep(200)
                var byte: UInt8 = 1
                precondition(write(writer, &byte, 1) == 1)
            }
            _ = try await a.read(maximum: 1)
            if !executor.isCurrent { offLoop += 1 }
            await sender.value
        }
        return offLoop
    }
}

struct Oops: Error, Equatable {}

/// A counter several threads bump.
final class AtomicCounter: Sendable {
    private let storage = Atomic(0)
    func increment() { storage.add(1, ordering: .releasing) }
    var value: Int { storage.load(ordering: .acquiring) }
}

/// A nonisolated async function: it runs on the task's executor preference.
func isOnLoop(_ executor: any EventLoopExecutor) async -> Bool {
    executor.isCurrent
}

extension Result where Failure == any Error {
    /// The result of an async throwing body.
    static func catching(_ body: () async throws -> Success) async -> Result {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    /// The error, if it failed.
    var error: (any Error)? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// What a timeout error says after "timed out after " ("50 ms"), or why
/// the outcome is not one.
func timeout(in outcome: Result<some Any, any Error>) -> String {
    guard case .failure(let error) = outcome else { return "no error" }
    guard let error = error as? EventLoopError, error.code == .timedOut else { return "another error: \(error)" }
    let parts = error.description.split(separator: "timed out after ", maxSplits: 1, omittingEmptySubsequences: false)
    return parts.count == 2 ? String(parts[1]) : error.description
}
