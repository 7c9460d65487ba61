import CCurl
import EV
import EventCore
import Glibc
import HTTP
import Synchronization
import Testing
import TestSupport

/// libcurl's multi-socket API driven by the package's watchers, as curl's
/// own `hiper.c` and `evhiperfifo.c` examples drive it with libev's: curl
/// says which socket wants which events (`CURLMOPT_SOCKETFUNCTION`) and when
/// it next needs the time (`CURLMOPT_TIMERFUNCTION`); an ``IOWatcher`` per
/// socket and one ``TimerWatcher`` hand the readiness and the timeouts back
/// with `curl_multi_socket_action`. Everything runs on the loop's thread.
final class CurlOnLoop {
    /// One download: its URL, the bytes received, then curl's result.
    final class Transfer {
        let url: String
        var body: [UInt8] = []
        var result: CURLcode?
        var status = 0

        init(url: String) { self.url = url }
    }

    let loop: Loop
    private let multi: UnsafeMutableRawPointer
    private var sockets: [curl_socket_t: IOWatcher] = [:]
    private var timer: TimerWatcher!
    private var transfers: [Transfer] = []
    private var running: Int32 = 0
    /// The most sockets curl had the loop watch at once.
    private(set) var mostSockets = 0
    /// Called once every transfer has ended.
    var onFinished: (() -> Void)?

    init(loop: Loop, maximumConnections: Int = 8) throws {
        self.loop = loop
        guard let multi = curl_multi_init() else { throw CurlError("curl_multi_init failed") }
        self.multi = multi
        timer = try TimerWatcher(loop: loop, after: .zero) { [unowned self] _ in
            self.act(on: CCurl_socket_timeout, events: 0)
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        CCurl_multi_setopt_socket_function(multi) { _, socket, what, user, _ in
            Unmanaged<CurlOnLoop>.fromOpaque(user!).takeUnretainedValue().watch(socket, what)
            return 0
        }
        CCurl_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, me)
        CCurl_multi_setopt_timer_function(multi) { _, milliseconds, user in
            Unmanaged<CurlOnLoop>.fromOpaque(user!).takeUnretainedValue().arm(milliseconds)
            return 0
        }
        CCurl_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, me)
        CCurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, maximumConnections)
    }

    deinit {
        timer.stop()
        for watcher in sockets.values { watcher.stop() }
        curl_multi_cleanup(multi)
    }

    /// Starts downloading `url`; its ``Transfer`` fills in as the loop runs.
    @discardableResult
    func get(_ url: String) -> Transfer {
        let transfer = Transfer(url: url)
        transfers.append(transfer)
        let easy = curl_easy_init()!
        CCurl_easy_setopt_string(easy, CURLOPT_URL, url)
        CCurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, Unmanaged.passUnretained(transfer).toOpaque())
        CCurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(transfer).toOpaque())
        CCurl_easy_setopt_write_function(easy) { data, size, count, user in
            let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            transfer.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        CCurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, 20_000)
        curl_multi_add_handle(multi, easy)
        return transfer
    }

    /// curl's socket callback: watch `socket` for `what`, or stop watching it.
    private func watch(_ socket: curl_socket_t, _ what: Int32) {
        if what == CURL_POLL_REMOVE {
            sockets.removeValue(forKey: socket)?.stop()
            return
        }
        var events: Events = []
        if what & CURL_POLL_IN != 0 { events.insert(.read) }
        if what & CURL_POLL_OUT != 0 { events.insert(.write) }
        if let watcher = sockets[socket] {
            watcher.events = events   // ev_io_set on the running watcher
            return
        }
        do {
            sockets[socket] = try loop.io(FileDescriptor(rawValue: socket), events) { [unowned self] watcher, got in
                var flags: Int32 = 0
                if got.contains(.read) { flags |= CURL_CSELECT_IN }
                if got.contains(.write) { flags |= CURL_CSELECT_OUT }
                if got.contains(.error) { flags |= CURL_CSELECT_ERR }
                self.act(on: watcher.descriptor.rawValue, events: flags)
            }
            mostSockets = max(mostSockets, sockets.count)
        } catch {
            Issue.record("curl's socket \(socket) could not be watched: \(error)")
        }
    }

    /// curl's timer callback: call back in `milliseconds` (-1: never).
    private func arm(_ milliseconds: Int) {
        timer.stop()
        guard milliseconds >= 0 else { return }
        try! timer.set(after: .seconds(Double(milliseconds) / 1000))
        timer.start()
    }

    /// Hands readiness (or a timeout) to curl, then collects what ended.
    private func act(on socket: curl_socket_t, events: Int32) {
        curl_multi_socket_action(multi, socket, events, &running)
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let transfer = Unmanaged<Transfer>.fromOpaque(CCurl_easy_private(easy)).takeUnretainedValue()
            transfer.result = message.pointee.data.result
            transfer.status = CCurl_easy_response_code(easy)
            curl_multi_remove_handle(multi, easy)
            curl_easy_cleanup(easy)
        }
        if running == 0, transfers.allSatisfy({ $0.result != nil }) {
            onFinished?()
            onFinished = nil
        }
    }

    /// The sockets watched now.
    var watchedSockets: Int { sockets.count }
}

struct CurlError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The test the README's "C libraries on the same loop" section describes.
@Suite("libcurl on the package's loop")
struct CurlOnTheLoopTests {
    @Test func curlDownloadsFromTheServerWhileSwiftWatchersAndTasksRunOnTheSameLoop() throws {
        #expect(curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK)
        let server = try HTTPServerProcess(engine: "libev", ["--pages", "100"])
        defer { _ = try? server.stop() }
        let site = HTTPSite(pages: 100)
        let loop = try Loop()
        let curl = try CurlOnLoop(loop: loop, maximumConnections: 8)
        var pages: [(Int, CurlOnLoop.Transfer)] = []
        for page in 0..<100 { pages.append((page, curl.get("\(server.url)/page/\(page)"))) }
        let index = curl.get("\(server.url)/")
        let missing = curl.get("\(server.url)/nowhere")
        // A port nothing listens on: that download fails, the others finish.
        let refused = curl.get("http://127.0.0.1:\(try unusedPort())/")

        // Swift on the same loop meanwhile: a repeating timer and a task.
        var ticks = 0
        let tick = try loop.timer(after: .milliseconds(1), repeat: .milliseconds(1)) { _ in ticks += 1 }
        let executor = loop.executor
        let taskSleeps = Atomic(0)
        Task(executorPreference: executor) {
            for _ in 0..<5 {
                try await executor.sleep(for: .milliseconds(2))
                taskSleeps.add(1, ordering: .relaxed)
            }
        }
        var finished = false
        curl.onFinished = {
            finished = true
            tick.stop()
        }
        // curl keeps its connections (and their watchers) open: run until
        // the downloads and the task are done, 30 s at most.
        let deadline = monotonicNow() + 30
        try loop.timer(after: .milliseconds(50), repeat: .milliseconds(50)) { _ in }.keepAlive = false
        while !(finished && taskSleeps.load(ordering: .relaxed) == 5), monotonicNow() < deadline {
            loop.run(.once)
        }

        #expect(finished)
        for (page, transfer) in pages {
            #expect(transfer.result == CURLE_OK, "\(transfer.url): \(String(cString: curl_easy_strerror(transfer.result ?? CURLE_OK)))")
            #expect(transfer.status == 200, "\(transfer.url)")
            #expect(transfer.body == site.html(page: page), "\(transfer.url): the page byte for byte")
        }
        #expect(index.status == 200 && index.body == site.indexHTML)
        #expect(missing.result == CURLE_OK && missing.status == 404)
        #expect(refused.result == CURLE_COULDNT_CONNECT, "\(refused.result.map { String(cString: curl_easy_strerror($0)) } ?? "no result")")
        #expect(curl.mostSockets > 1, "the downloads ran side by side on the loop")
        #expect(curl.watchedSockets <= 8, "curl keeps its connections; only those are watched")
        #expect(ticks > 0, "the Swift timer ran between curl's callbacks")
        let sleeps = taskSleeps.load(ordering: .relaxed)
        #expect(sleeps == 5, "the task on the loop's executor ran to its end")
    }
}
