import CLinux
import EventCore
import Glibc

/// What a finished child process left: its exit status and its output.
public struct ProcessOutput: Sendable, CustomStringConvertible {
    /// The exit code, or nil if a signal killed it.
    public var exitCode: Int32?
    /// The signal that killed it, if any.
    public var signal: Int32?
    public var standardOutput: String
    public var standardError: String
    /// Standard output byte for byte (`standardOutput` decodes it as UTF-8,
    /// which would mangle binary output such as gzip's).
    public var standardOutputBytes: [UInt8]

    public var description: String {
        "exit \(exitCode.map(String.init) ?? "-") signal \(signal.map(String.init) ?? "-")\n--- stdout\n\(standardOutput)--- stderr\n\(standardError)"
    }
}

/// Runs a program to completion with posix_spawn, capturing stdout and stderr.
///
/// Output is read on the calling thread with poll, so a chatty child never
/// blocks on a full pipe; `timeout` kills it (SIGKILL) if it runs too long.
public func runProcess(_ path: String, _ arguments: [String], environment: [String: String] = [:],
                       timeout: Double = 60) throws -> ProcessOutput {
    let process = try SpawnedProcess(path, arguments, environment: environment)
    return try process.wait(timeout: timeout)
}

/// A child process started with posix_spawn, its stdout and stderr on pipes.
public final class SpawnedProcess {
    public let pid: pid_t
    private var outputs: [Int32]
    private var captured: [[UInt8]] = [[], []]

    public init(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        let out = try makePipe(nonBlocking: false)
        let err = try makePipe(nonBlocking: false)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        // And nothing else of the test runner's: a descriptor another test
        // holds (even one made without close-on-exec) is not kept open by
        // this child for as long as it runs.
        _ = CLinux_spawn_addclosefrom(&actions, 3)
        // The child starts with default signal handling and an empty mask,
        // whatever this (multi-threaded, libev-using) process has set.
        var attributes = ChildSpawnAttributes()
        defer { attributes.destroy() }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // The environment: this process's, with `environment` laid over it.
        var merged: [String: String] = [:]
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { merged[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            index += 1
        }
        for (key, value) in environment { merged[key] = value }
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, path, &actions, &attributes.value, argv, envp)
        close(out[1])
        close(err[1])
        guard result == 0 else {
            close(out[0])
            close(err[0])
            throw EventLoopError.system("posix_spawn(\(path))", Errno(rawValue: result))
        }
        pid = child
        outputs = [out[0], err[0]]
    }

    /// Reads standard output until it contains `text` (or `timeout` passes);
    /// returns what was read so far. The text stays for ``wait(timeout:)``.
    @discardableResult
    public func waitForOutput(containing text: String, timeout: Double = 10) -> String {
        let deadline = monotonicSeconds() + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let sofar = String(decoding: captured[0], as: UTF8.self)
            if sofar.contains(text) || monotonicSeconds() > deadline { return sofar }
            var fd = pollfd(fd: outputs[0], events: Int16(POLLIN), revents: 0)
            if poll(&fd, 1, 100) > 0 {
                let n = read(outputs[0], &buffer, buffer.count)
                if n > 0 { captured[0].append(contentsOf: buffer[..<n]) } else { return sofar }
            }
        }
    }

    /// Sends `signal` to the child.
    public func send(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Reads the output until both pipes close, then reaps the child.
    public func wait(timeout: Double = 60) throws -> ProcessOutput {
        let deadline = monotonicSeconds() + timeout
        var open = outputs
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let left = deadline - monotonicSeconds()
            if left <= 0 {
                kill(pid, SIGKILL)
                break
            }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(left, 1) * 1000))
            if ready <= 0 { continue }
            for entry in fds where entry.revents != 0 {
                let n = read(entry.fd, &buffer, buffer.count)
                let slot = entry.fd == outputs[0] ? 0 : 1
                if n > 0 {
                    captured[slot].append(contentsOf: buffer[..<n])
                } else {
                    open.removeAll { $0 == entry.fd }
                }
            }
        }
        outputs.forEach { close($0) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let low = status & 0x7f
        return ProcessOutput(
            exitCode: low == 0 ? (status >> 8) & 0xff : nil,
            signal: low == 0 ? nil : low,
            standardOutput: String(decoding: captured[0], as: UTF8.self),
            standardError: String(decoding: captured[1], as: UTF8.self),
            standardOutputBytes: captured[0])
    }
}

/// The directory holding the test binary and the package's other built products.
public func builtProductsDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path = String(decoding: buffer[..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
}

/// Runs the single-threaded test helper (Tests/EVTestHelper) with a scenario name.
public func runHelper(_ scenario: String, _ arguments: [String] = [], environment: [String: String] = [:],
                      timeout: Double = 60) throws -> ProcessOutput {
    // No crash backtracer: a scenario that ends in a trap should end at once.
    try runProcess(builtProductsDirectory() + "/EVTestHelper", [scenario] + arguments,
                   environment: environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { mine, _ in mine },
                   timeout: timeout)
}

/// Whether this process runs under ThreadSanitizer or AddressSanitizer
/// (`make test`'s second and third stages): their runtimes export
/// `__tsan_init` and `__asan_init`.
public let sanitizerIsActive: Bool = threadSanitizerIsActive || addressSanitizerIsActive

/// Whether this process runs under ThreadSanitizer (`__tsan_init` is linked in).
public let threadSanitizerIsActive: Bool = dlsym(nil, "__tsan_init") != nil

/// Whether this process runs under AddressSanitizer (`__asan_init` is linked in).
public let addressSanitizerIsActive: Bool = dlsym(nil, "__asan_init") != nil
