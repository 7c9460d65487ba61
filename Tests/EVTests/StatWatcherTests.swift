import EV
import Glibc
import Testing
import TestSupport

@Suite("StatWatcher")
struct StatWatcherTests {
    @Test func noticesAChangeAndARemoval() throws {
        let loop = try Loop()
        let path = temporaryPath("stat")
        let fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        var sizes: [Int64?] = []
        var previousSizes: [Int64?] = []
        let watcher = loop.stat(path, interval: .milliseconds(10)) { watcher in
            sizes.append(watcher.current?.size)
            previousSizes.append(watcher.previous?.size)
            if watcher.current == nil { watcher.stop() }
        }
        #expect(watcher.current?.size == 0)
        #expect(watcher.path == path)
        try loop.timer(after: .milliseconds(50)) { _ in
            writeString(fd, "twelve bytes")
            close(fd)
        }
        try loop.timer(after: .milliseconds(300)) { _ in unlink(path) }
        #expect(runUntilDone(loop))
        #expect(sizes.first == 12, "first change: the write (\(sizes))")
        #expect(sizes.last == .some(nil), "last change: the removal (\(sizes))")
        #expect(previousSizes.last == 12)
    }

    @Test func aMissingPathIsReportedAsMissingAndItsCreationNoticed() throws {
        let loop = try Loop()
        let path = temporaryPath("missing")
        var created = false
        let watcher = loop.stat(path, interval: .milliseconds(10)) { watcher in
            if watcher.previous == nil, watcher.current != nil {
                created = true
                watcher.stop()
            }
        }
        #expect(watcher.current == nil, "libev's nlink 0 surfaces as nil")
        try loop.timer(after: .milliseconds(50)) { _ in close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)) }
        #expect(runUntilDone(loop))
        #expect(created)
        unlink(path)
    }

    @Test func refreshAndSet() throws {
        let loop = try Loop()
        let first = temporaryPath("first")
        let second = temporaryPath("second")
        close(open(second, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644))
        defer { unlink(second) }
        let watcher = StatWatcher(loop: loop, path: first, interval: .seconds(1)) { _ in }
        watcher.start()
        #expect(watcher.current == nil)
        watcher.set(path: second, interval: .seconds(2))
        #expect(watcher.isActive)
        #expect(watcher.path == second)
        #expect(watcher.interval == .seconds(2))
        #expect(watcher.current?.size == 0)
        let text = "abc"
        let fd = open(second, O_WRONLY | O_APPEND | O_CLOEXEC)
        writeString(fd, text)
        close(fd)
        watcher.refresh()
        #expect(watcher.current?.size == 3)
        watcher.stop()
    }

    @Test func aNegativeIntervalIsLibevsChoice() throws {
        let loop = try Loop()
        let negative = loop.stat("/tmp", interval: .seconds(-1)) { _ in }
        let zero = loop.stat("/tmp") { _ in }
        #expect(negative.interval == .zero && zero.interval == .zero, "both leave the interval to libev (about 5 s)")
        #expect(negative.isActive && zero.isActive)
        negative.stop()
        zero.stop()
    }

    @Test func attributesCarryTheOwnerAndTheAccessTime() throws {
        let loop = try Loop()
        let path = temporaryPath("owner")
        close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600))
        defer { unlink(path) }
        var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 250_000_000),
                     timespec(tv_sec: 1_100_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        let watcher = loop.stat(path) { _ in }
        let attributes = try #require(watcher.current)
        #expect(attributes.userID == getuid())
        #expect(attributes.groupID == getgid())
        #expect(attributes.accessTime == WallClock.Instant(sinceEpoch: .seconds(1_000_000_000) + .milliseconds(250)))
        #expect(attributes.modificationTime == WallClock.Instant(sinceEpoch: .seconds(1_100_000_000)))
        watcher.stop()
    }
}
