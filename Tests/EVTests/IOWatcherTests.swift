import EV
import EventCore
import Glibc
import Testing
import TestSupport

@Suite("IOWatcher")
struct IOWatcherTests {
    @Test func readinessOnASocketPair() throws {
        let loop = try Loop()
        try withSocketPair { a, b in
            var received = ""
            var events: Events = []
            try loop.io(FileDescriptor(rawValue: a), .read) { watcher, revents in
                events = revents
                received += readAvailable(watcher.descriptor.rawValue)
                watcher.stop()
            }
            runLoop(loop, for: 0.05)
            #expect(received.isEmpty, "nothing to read yet")
            writeString(b, "hello")
            #expect(runUntilDone(loop))
            #expect(received == "hello")
            #expect(events == .read)
        }
    }

    @Test func readinessOnAPipe() throws {
        let loop = try Loop()
        try withPipe { readEnd, writeEnd in
            var chunks: [String] = []
            try loop.io(FileDescriptor(rawValue: readEnd), .read) { watcher, _ in
                chunks.append(readAvailable(watcher.descriptor.rawValue))
                if chunks.joined() == "chunk1chunk2chunk3" { watcher.stop() }
            }
            var sent = 0
            try loop.timer(after: .milliseconds(5), repeat: .milliseconds(5)) { timer in
                sent += 1
                writeString(writeEnd, "chunk\(sent)")
                if sent == 3 { timer.stop() }
            }
            #expect(runUntilDone(loop))
            #expect(chunks.joined() == "chunk1chunk2chunk3")
            #expect(!chunks.contains(""), "every callback had something to read")
        }
    }

    @Test func writabilityAndBothInterests() throws {
        let loop = try Loop()
        try withSocketPair { a, b in
            var seen: [Events] = []
            let watcher = try loop.io(FileDescriptor(rawValue: a), [.read, .write]) { watcher, revents in
                seen.append(revents)
                watcher.stop()
            }
            #expect(watcher.events == [.read, .write])
            #expect(runUntilDone(loop))
            #expect(seen == [.write], "an empty socket is writable, not readable")
            _ = b
        }
    }

    @Test func changingEventsRestartsAnActiveWatcher() throws {
        let loop = try Loop()
        try withSocketPair { a, b in
            var seen: [Events] = []
            let watcher = try loop.io(FileDescriptor(rawValue: a), .read) { watcher, revents in
                seen.append(revents)
                watcher.stop()
            }
            watcher.events = .write
            #expect(watcher.isActive)
            #expect(watcher.events == .write)
            #expect(runUntilDone(loop))
            #expect(seen == [.write])
            _ = b
        }
    }

    @Test func setMovesTheWatcherToAnotherDescriptor() throws {
        let loop = try Loop()
        try withSocketPair { a, b in
            try withSocketPair { c, d in
                var from: Int32 = -1
                let watcher = try loop.io(FileDescriptor(rawValue: a), .read) { watcher, _ in
                    from = watcher.descriptor.rawValue
                    _ = readAvailable(watcher.descriptor.rawValue)
                    watcher.stop()
                }
                try watcher.set(descriptor: FileDescriptor(rawValue: c), events: .read)
                #expect(watcher.isActive && watcher.descriptor.rawValue == c)
                writeString(b, "to a")
                writeString(d, "to c")
                #expect(runUntilDone(loop))
                #expect(from == c)
            }
        }
    }

    @Test func readinessRepeatsUntilDrained() throws {
        let loop = try Loop()
        try withSocketPair { a, b in
            var calls = 0
            try loop.io(FileDescriptor(rawValue: a), .read) { watcher, _ in
                calls += 1
                var byte: UInt8 = 0
                _ = read(watcher.descriptor.rawValue, &byte, 1) // one byte per callback: level-triggered
                if calls == 5 { watcher.stop() }
            }
            writeString(b, "12345")
            #expect(runUntilDone(loop))
            #expect(calls == 5)
        }
    }

    // MARK: descriptor safety

    /// On epoll, as in C libev, a descriptor goes to the kernel at the next
    /// iteration, with no system call at `start`: one that is not open is
    /// reported then, as an error event to its stopped watcher - where
    /// Debian's libev would abort.
    @Test func aClosedDescriptorIsAnErrorEventAtTheNextIterationOnEpoll() throws {
        let loop = try Loop()
        let (a, b) = try makeReservedSocketPair() // stays closed: no other test is handed the number
        close(a)
        close(b)
        var seen: [Events] = []
        let watcher = try loop.io(FileDescriptor(rawValue: a), .read) { _, events in seen.append(events) }
        let far = try loop.io(FileDescriptor(rawValue: 1 << 20), .write) { _, events in seen.append(events) }
        loop.run(.noWait)
        #expect(seen == [.error, .error], "\(seen)")
        #expect(!watcher.isActive && !far.isActive)
        loop.verify()
        let negative = caughtError { try loop.io(FileDescriptor(rawValue: -1), .read) { _, _ in } }
        #expect(negative?.code == .badDescriptor(.notOpen))
        #expect(negative?.description.contains("descriptor -1 cannot be watched: it is not open") == true, "\(String(describing: negative))")
    }

    /// The backends that fingerprint the file look at it at `start`: a
    /// descriptor that is not open is refused there, by name.
    @Test(arguments: [Backend.poll, .select])
    func aClosedDescriptorIsRefusedAtStartOnTheOtherBackends(_ backend: Backend) throws {
        let loop = try Loop(backends: backend)
        let (a, b) = try makeReservedSocketPair()
        close(a)
        close(b)
        let error = caughtError { try loop.io(FileDescriptor(rawValue: a), .read) { _, _ in } }
        #expect(error?.code == .badDescriptor(.notOpen))
        #expect(error?.descriptor == FileDescriptor(rawValue: a))
        #expect(error?.description.contains("descriptor \(a) cannot be watched: it is not open") == true, "\(String(describing: error))")
    }

    @Test func aRefusedWatcherStaysStoppedAndTheLoopStaysHealthy() throws {
        let loop = try Loop(backends: .poll)
        let watcher = IOWatcher(loop: loop, descriptor: FileDescriptor(rawValue: reservedDescriptorNumber()), events: .read) { _, _ in }
        #expect(caughtError { try watcher.start() }?.code == .badDescriptor(.notOpen))
        #expect(!watcher.isActive)
        loop.verify()
        var fired = false
        try loop.timer(after: .zero) { _ in fired = true }
        #expect(runUntilDone(loop))
        #expect(fired)
    }

    /// The misroute libev allows: a watcher's descriptor is closed without
    /// stopping it, the kernel hands the same number to a new socket, and a new
    /// watcher starts on it. The old watcher must get an error, never the new
    /// socket's data; the new watcher must get the data.
    @Test(arguments: [Backend.epoll, .poll, .select])
    func aClosedAndReusedDescriptorNeverReachesTheOldWatcher(_ backend: Backend) throws {
        let loop = try Loop(backends: backend)
        let (oldA, oldB) = try makeSocketPair()
        var oldEvents: [Events] = []
        var oldData = ""
        let old = try loop.io(FileDescriptor(rawValue: oldA), .read) { watcher, events in
            oldEvents.append(events)
            if !events.contains(.error) { oldData += readAvailable(watcher.descriptor.rawValue) }
        }
        loop.run(.noWait)
        // The mistake: the descriptor is closed without stopping the watcher,
        // and its number reused for a new socket.
        close(oldB)
        let (newA, newB) = try reuseNumber(oldA)
        defer {
            close(newA)
            close(newB)
        }
        var newData = ""
        let fresh = try loop.io(FileDescriptor(rawValue: newA), .read) { watcher, _ in
            newData += readAvailable(watcher.descriptor.rawValue)
            watcher.stop()
        }
        writeString(newB, "for the new socket")
        #expect(runLoop(loop, until: { !newData.isEmpty }))
        runLoop(loop, for: 0.05)
        #expect(newData == "for the new socket")
        #expect(oldData == "", "the old watcher never saw the new socket's data")
        #expect(oldEvents.allSatisfy { $0.contains(.error) })
        #expect(!old.isActive)
        _ = fresh
    }

    /// Without a new watcher on the reused number, poll and select would still
    /// report the new file's readiness to the old watcher; the per-event check catches it.
    @Test(arguments: [Backend.poll, .select])
    func aReusedDescriptorIsCaughtAtTheEventOnPollBackends(_ backend: Backend) throws {
        let loop = try Loop(backends: backend)
        let (oldA, oldB) = try makeSocketPair()
        var oldEvents: [Events] = []
        let old = try loop.io(FileDescriptor(rawValue: oldA), .read) { _, events in oldEvents.append(events) }
        loop.run(.noWait)
        close(oldB)
        let (newA, newB) = try reuseNumber(oldA)
        defer {
            close(newA)
            close(newB)
        }
        writeString(newB, "data nobody asked the old watcher to read")
        #expect(runLoop(loop, until: { !oldEvents.isEmpty }))
        #expect(oldEvents == [.error])
        #expect(!old.isActive)
    }

    /// Closes the file open as `fd` and opens a new socket under the same
    /// number, in one atomic step (dup2), so no other thread of the test runner
    /// can take the number in between.
    /// - Returns: the new socket (numbered `fd`) and its peer.
    private func reuseNumber(_ fd: Int32) throws -> (Int32, Int32) {
        let (fresh, peer) = try makeSocketPair()
        #expect(duplicate(fresh, onto: fd) == fd)
        close(fresh)
        return (fd, peer)
    }

    @Test func stopAndCloseStopsEveryWatcherOnTheDescriptor() throws {
        let loop = try Loop()
        let (a, b) = try makeReservedSocketPair() // looked at after it is closed
        defer { close(b) }
        let reader = try loop.io(FileDescriptor(rawValue: a), .read) { _, _ in }
        let writer = try loop.io(FileDescriptor(rawValue: a), .write) { _, _ in }
        try reader.stopAndClose()
        #expect(!reader.isActive)
        #expect(!writer.isActive)
        #expect(fcntl(a, F_GETFD) == -1, "the descriptor is closed")
        #expect(loop.run() == false, "nothing is left to keep the loop running")
    }

    @Test func sigpipeNeverKillsAWriter() throws {
        _ = try Loop() // creating a loop ignores SIGPIPE
        for _ in 0..<20 {
            let (a, b) = try makeSocketPair()
            close(b)
            let result = writeString(a, "nobody listens")
            #expect(result == -1 && errno == EPIPE)
            close(a)
        }
    }

    /// The protocol's `interest` setter cannot throw: a watcher that cannot
    /// start again (its descriptor closed meanwhile) is told with an error
    /// event, as the epoll loop tells its watches, instead of silently staying stopped.
    @Test func settingTheInterestOfAWatcherWhoseDescriptorClosedReportsAnError() throws {
        let loop = try Loop()
        // Reserved numbers: closed, they stay closed while the test looks
        // (another test's new socket took a low one once, and the watcher started on it).
        let (a, b) = try makeReservedSocketPair()
        var seen: [Events] = []
        let watcher = try loop.io(FileDescriptor(rawValue: a), .read) { watcher, events in
            seen.append(events)
            watcher.stop()
        }
        watcher.interest = []
        #expect(!watcher.isActive)
        close(a)
        close(b)
        watcher.interest = .read // handed to the kernel at the next iteration, which finds it closed
        #expect(runLoop(loop, until: { !seen.isEmpty }, timeout: 5))
        #expect(seen == [.error])
        #expect(!watcher.isActive)
    }
}
