import EV
import Glibc
import Testing
import TestSupport

/// fork() is only safe from a single-threaded process, so the forking happens
/// in the helper process; the test runner only checks what it reports.
@Suite("ForkWatcher and Loop.reinitializeAfterFork")
struct ForkWatcherTests {
    @Test(arguments: ["epoll", "poll"])
    func aForkedChildsLoopWorksAndTheParentSeesNoDuplicates(_ backend: String) throws {
        let output = try runHelper("fork-echo", [backend])
        #expect(output.exitCode == 0, "\(output)")
        #expect(output.standardOutput.contains("child fork-callbacks=1 echoed=true"), "\(output)")
        #expect(output.standardOutput.contains("parent spurious=0 bytes=20 fork-callbacks=0 child=exited with code 0"), "\(output)")
    }

    @Test func aForkWatcherRunsOnlyAfterReinitialization() throws {
        let loop = try Loop()
        var forks = 0
        let watcher = loop.fork { _ in forks += 1 }
        watcher.keepAlive = false
        loop.run(.noWait)
        #expect(forks == 0)
        try loop.reinitializeAfterFork()
        loop.run(.noWait)
        #expect(forks == 1, "libev runs fork watchers in the iteration after ev_loop_fork")
        watcher.stop()
    }
}
