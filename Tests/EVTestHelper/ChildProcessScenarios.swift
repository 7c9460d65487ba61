import EV
import Epoll
import EventCore
import Glibc
import TestSupport

/// Child processes an app forgets, on the loop named (`default`, `libev`,
/// `epoll`): 20 children with all three streams, none read or waited for,
/// the objects dropped at once. The loop must reap every one (no zombie)
/// and the dropped streams must leave no descriptor. In a process of its
/// own, so that the descriptor count is this scenario's alone (and the
/// default loop's reaping of every child races no other test).
func forgottenChildren(_ arguments: [String]) throws -> Int32 {
    func scenario<L: EventLoop>(_ loop: L) throws -> (zombies: Int, leaked: Int, exited: Int) {
        let before = openDescriptorCount()
        var pids: [pid_t] = []
        for number in 0..<20 {
            let child = try ChildProcess.spawn("/bin/sh", ["-c", "echo out \(number); echo err >&2; sleep 0.0\(number % 5)"],
                                               standardInput: .stream, standardOutput: .stream, standardError: .stream, on: loop)
            pids.append(child.pid)
        }
        // Every exit watch done: runUntilDone returns (a hang is caught by the caller's watchdog).
        loop.runUntilDone()
        let zombies = pids.filter(isZombie).count
        let exited = pids.filter { access("/proc/\($0)", F_OK) != 0 }.count
        return (zombies, openDescriptorCount() - before, exited)
    }
    let result: (zombies: Int, leaked: Int, exited: Int)
    switch arguments.first {
    case "default":
        let loop = try Loop.defaultLoop()
        try failAfter(20, on: loop, "forgotten children")
        result = try scenario(loop)
    case "libev":
        let loop = try Loop()
        try failAfter(20, on: loop, "forgotten children")
        result = try scenario(loop)
    default:
        let loop = try EpollLoop()
        alarm(20) // a timer of the loop would keep runUntilDone running; SIGALRM ends a hang
        result = try scenario(loop)
    }
    print("zombies=\(result.zombies) leaked-descriptors=\(result.leaked) reaped=\(result.exited)")
    return result.zombies == 0 && result.leaked == 0 && result.exited == 20 ? 0 : 1
}

/// A child process's streams and exit on libev's default loop, where the
/// exit comes through libev's child watcher.
func childProcessOnTheDefaultLoop(_ arguments: [String]) throws -> Int32 {
    let loop = try Loop.defaultLoop()
    try failAfter(20, on: loop, "child process")
    let (line, status) = try loop.run { executor in
        let child = try ChildProcess.spawn("/bin/sh", ["-c", "read line; echo \"got $line\"; exit 3"],
                                           standardInput: .stream, standardOutput: .stream, on: executor.runningLoop)
        try await child.standardInput!.write(Array("hello\n".utf8))
        try child.standardInput!.shutdownWrite()
        let line = try await BufferedReader(child.standardOutput!).readLine()
        let status = try await child.exitStatus()
        child.closeStreams()
        return (line, status)
    }
    print("line=\(line ?? "nil") status=\(status)")
    return 0
}

/// The descriptors open in this process.
func openDescriptorCount() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
        if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
    }
    return count - 1 // the directory's own
}

/// Whether `pid` is a zombie (exited, not reaped).
func isZombie(_ pid: pid_t) -> Bool {
    guard let file = fopen("/proc/\(pid)/stat", "r") else { return false }
    defer { fclose(file) }
    var buffer = [UInt8](repeating: 0, count: 512)
    let count = fread(&buffer, 1, 511, file)
    let text = String(decoding: buffer[..<count], as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return false }
    return text[text.index(close, offsetBy: 2)] == "Z"
}
