// The tutorial's process_way: a pool of 4 processes, one download each.
//
//     p = Pool(4)
//     for i, address in enumerate(addresses):
//         p.apply_async(get_poetry, args=(address, ))
//     p.close()
//     p.join()
//
// Real processes: each download runs in a child started with posix_spawn
// (`crawler fetch-one ADDRESS`), which does the blocking download and passes
// its result back on a pipe; at most 4 run at once.
import EventCore
import Glibc

func processesWay(_ addresses: [SocketAddress], _ rules: DownloadRules) -> [Download] {
    var results = [Download?](repeating: nil, count: addresses.count)
    var running: [(index: Int, child: ChildDownload)] = []
    var next = 0
    while next < addresses.count || !running.isEmpty {
        while running.count < 4 && next < addresses.count {
            running.append((next, ChildDownload(addresses[next], rules)))
            next += 1
        }
        // Collect whichever child reports first (it writes at the end, then exits).
        var fds = running.map { pollfd(fd: $0.child.output, events: Int16(POLLIN), revents: 0) }
        while poll(&fds, nfds_t(fds.count), -1) == -1 && errno == EINTR {}
        let ready = fds.firstIndex { $0.revents != 0 } ?? 0
        let (index, child) = running.remove(at: ready)
        results[index] = child.wait()
    }
    return results.map { $0! }
}

/// A child process downloading one poem, and the pipe its result comes back on.
struct ChildDownload {
    let address: SocketAddress
    let pid: pid_t
    let output: Int32
    let failure: String?

    init(_ address: SocketAddress, _ rules: DownloadRules) {
        self.address = address
        var fds: [Int32] = [-1, -1]
        pipe(&fds)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var arguments = [selfPath(), "fetch-one", address.description]
        if let timeout = rules.timeout { arguments += ["--timeout", String(timeout.inSeconds)] }
        arguments += ["--max-poem-bytes", String(rules.maxBytes)]
        let argv = arguments.map { strdup($0) } + [nil]
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        argv.forEach { free($0) }
        posix_spawn_file_actions_destroy(&actions)
        close(fds[1])
        self.pid = pid
        output = fds[0]
        failure = result == 0 ? nil : "posix_spawn failed: \(result)"
    }

    /// Reads the child's report, reaps it, and rebuilds its ``Download``.
    func wait() -> Download {
        var download = Download(address: address)
        defer { close(output) }
        if let failure {
            download.finish(.child(failure))
            return download
        }
        var report: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(output, &buffer, buffer.count)
            if count > 0 { report.append(contentsOf: buffer[..<count]) } else if count == 0 || errno != EINTR { break }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return ChildReport.decode(report, address: address) ?? {
            var broken = Download(address: address)
            broken.finish(.child("the child process for \(address) ended without a report (status \(status))"))
            return broken
        }()
    }
}

/// The path of this executable, to start copies of it.
func selfPath() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    return String(decoding: buffer[..<max(count, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// How a child passes its download back: a few text lines, then the poem's bytes.
///
///     started 12.345678
///     chunk 12.999 200
///     finished 23.5
///     error connect(127.0.0.1:8000) failed: ...
///     poem 3003
///     <3003 bytes>
enum ChildReport {
    static func encode(_ download: Download) -> [UInt8] {
        var text = "started \(download.started)\n"
        for chunk in download.chunks { text += "chunk \(chunk.at) \(chunk.bytes)\n" }
        text += "finished \(download.finished)\n"
        if let error = download.error { text += "error \(error.description.replacingNewlines())\n" }
        text += "poem \(download.poem.count)\n"
        return Array(text.utf8) + download.poem
    }

    static func decode(_ report: [UInt8], address: SocketAddress) -> Download? {
        var download = Download(address: address)
        var position = 0
        while position < report.count {
            guard let newline = report[position...].firstIndex(of: 10) else { return nil }
            let line = String(decoding: report[position..<newline], as: UTF8.self)
            position = newline + 1
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return nil }
            switch parts[0] {
            case "started": download.started = Double(parts[1]) ?? 0
            case "finished": download.finished = Double(parts[1]) ?? 0
            case "error": download.error = .child(parts[1])
            case "chunk":
                let fields = parts[1].split(separator: " ")
                guard fields.count == 2, let at = Double(fields[0]), let bytes = Int(fields[1]) else { return nil }
                download.chunks.append(.init(at: at, bytes: bytes))
            case "poem":
                guard let count = Int(parts[1]), position + count <= report.count else { return nil }
                download.poem = Array(report[position..<position + count])
                return download
            default: return nil
            }
        }
        return nil
    }
}

extension String {
    func replacingNewlines() -> String { String(map { $0 == "\n" ? " " : $0 }) }
}
