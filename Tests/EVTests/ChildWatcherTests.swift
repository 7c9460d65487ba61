import EV
import Glibc
import Testing
import TestSupport

/// libev reaps every child of a process whose default loop runs, so the real
/// child processes are watched in the single-threaded helper process.
@Suite("ChildWatcher")
struct ChildWatcherTests {
    @Test func exitStatusesOfRealChildren() throws {
        let output = try runHelper("child-status")
        #expect(output.exitCode == 0, "\(output)")
        let lines = output.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.contains("exiting pid-match=true exited with code 7"), "\(output)")
        #expect(lines.contains("killed pid-match=true killed by signal 9"), "\(output)")
        #expect(lines.contains("traced stopped by signal 19"), "\(output)")
        #expect(lines.contains("traced continued"), "\(output)")
        #expect(lines.contains("traced exited with code 0"), "\(output)")
        let any = lines.first { $0.hasPrefix("any-child callbacks=") }
        let count = any.flatMap { Int($0.split(separator: "=").last!) } ?? 0
        #expect(count >= 3, "the pid-0 watcher saw every child: \(output)")
    }

    @Test func awaitingAChildsExit() throws {
        let output = try runHelper("child-exit-await")
        #expect(output.exitCode == 0, "\(output)")
        #expect(output.standardOutput == "status exited with code 3\nstatus killed by signal 9\n", "\(output)")
    }

    @Test func onlyTheDefaultLoopWatchesChildren() throws {
        let loop = try Loop()
        #expect(caughtError { try loop.child(0) { _ in } }?.code == .childWatcherNeedsDefaultLoop)
        let watcher = ChildWatcher(loop: loop, pid: 1) { _ in }
        #expect(caughtError { try watcher.start() }?.code == .childWatcherNeedsDefaultLoop)
        #expect(!watcher.isActive)
    }

    @Test func theDefaultLoopIsOneObjectThatOwnsSIGCHLD() throws {
        let output = try runHelper("default-loop")
        #expect(output.exitCode == 0, "\(output)")
        let text = output.standardOutput
        #expect(text.contains("same-object=true is-default=true"), "\(output)")
        #expect(text.contains("other-is-default=false"), "\(output)")
        #expect(text.contains("sigchld-on-other=signal 17 is already watched by another loop; libev lets one loop watch a signal\n"), "\(output)")
        #expect(text.contains("child-on-other=child: child watchers work only on the default loop"), "\(output)")
        #expect(text.contains("same-while-referenced=true"), "\(output)")
    }

    @Test func droppingTheDefaultLoopDestroysIt() throws {
        let output = try runHelper("default-loop-recreated")
        #expect(output.exitCode == 0, "\(output)")
        #expect(output.standardOutput.contains("dropped-destroyed=true fresh-runs=true"), "\(output)")
    }

    @Test func waitStatusDecoding() {
        #expect(ChildWatcher.Status(waitStatus: 3 << 8) == .exited(code: 3))
        #expect(ChildWatcher.Status(waitStatus: 9) == .signaled(signal: 9, coreDumped: false))
        #expect(ChildWatcher.Status(waitStatus: 0x80 | 6) == .signaled(signal: 6, coreDumped: true))
        #expect(ChildWatcher.Status(waitStatus: (19 << 8) | 0x7f) == .stopped(signal: 19))
        #expect(ChildWatcher.Status(waitStatus: 0xffff) == .continued)
    }

    /// The default loop on a thread of its own takes child watchers; a
    /// watcher moved to another child with `set(pid:trace:)` reports that
    /// one; `childStatuses` reports a stop, a continue and the exit.
    @Test func theDefaultLoopOnAThreadWatchesChildrenAndTheirStatusChanges() throws {
        let output = try runHelper("child-statuses-on-a-thread")
        #expect(output.exitCode == 0, "\(output)")
        let lines = output.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.contains("default-loop=true on-loop=true"), "\(output)")
        #expect(lines.contains("set pid=true trace=true"), "\(output)")
        #expect(lines.contains("moved pid-match=true exited with code 4"), "\(output)")
        #expect(lines.contains("statuses stopped by signal 19, continued, exited with code 3"), "\(output)")
        #expect(lines.contains("childExit exited with code 5"), "\(output)")
    }
}
