import CHiredis
import EV
import Epoll
import EventCore
import Redis
import Testing
import TestSupport

/// Which loop, and which adapter between hiredis and it.
enum Attachment: String, CaseIterable, CustomTestStringConvertible {
    /// The package's adapter (``RedisClient``'s hooks) on libev's loop.
    case ours_libev
    /// The package's adapter on the epoll loop.
    case ours_epoll
    /// hiredis's own `adapters/libev.h` on libev's loop (the C loop behind `EV.Loop`).
    case hiredis_libev

    var testDescription: String { rawValue }

    /// Runs `scenario` on a new loop of this kind; an error it throws is
    /// logged and ends the run.
    func run(_ scenario: @escaping (ScenarioRun) throws -> Void) throws -> [String] {
        switch self {
        case .ours_libev:
            return try ScenarioRun.run(try Loop(), attach: nil, scenario)
        case .ours_epoll:
            return try ScenarioRun.run(try EpollLoop(), attach: nil, scenario)
        case .hiredis_libev:
            let loop = try Loop()
            return try ScenarioRun.run(loop, attach: { context in loop.withUnsafeEVLoop { CHiredis_attach_libev(UnsafeMutableRawPointer($0), context) } }, scenario)
        }
    }
}

/// A scenario's view of its loop: make clients, log what happened, end.
final class ScenarioRun {
    let makeClient: (UInt16, Double?) throws -> AnyClient
    let stop: () -> Void
    let after: (Double, @escaping () -> Void) -> Void
    var log: [String] = []

    init(makeClient: @escaping (UInt16, Double?) throws -> AnyClient, stop: @escaping () -> Void, after: @escaping (Double, @escaping () -> Void) -> Void) {
        self.makeClient = makeClient
        self.stop = stop
        self.after = after
    }

    static func run<L: EventLoop>(_ loop: L, attach: ((UnsafeMutablePointer<redisAsyncContext>) -> Int32)?,
                                  _ scenario: @escaping (ScenarioRun) throws -> Void) throws -> [String] {
        let run = ScenarioRun(
            makeClient: { port, replyTimeout in
                let client = try RedisClient(loop: loop, host: "127.0.0.1", port: port, connectTimeout: 5, attach: attach)
                client.replyTimeout = replyTimeout
                return AnyClient(send: client.send, close: client.close, onClose: { client.onClose = $0 }, keep: client)
            },
            stop: { loop.stop() },
            after: { seconds, work in _ = loop.schedule(after: seconds, work) })
        let guardTimer = loop.schedule(after: 30) { run.log.append("scenario timed out"); loop.stop() }
        do {
            try scenario(run)
        } catch {
            run.log.append("\(error)")
            loop.stop()
        }
        loop.runForever()
        guardTimer.cancel()
        loop.close()
        return run.log
    }
}

/// A client of either loop, for a scenario written once.
struct AnyClient {
    let send: ([String], @escaping (Result<RedisReply, RedisError>) -> Void) -> Void
    let close: () -> Void
    let onClose: (((RedisError?) -> Void)?) -> Void
    let keep: AnyObject
}

@Suite("hiredis on the package's loops, against a real redis-server", .serialized)
struct HiredisOnTheLoopTests {
    @Test(arguments: Attachment.allCases)
    func setGetAndAPipelineOf10000Commands(_ attachment: Attachment) throws {
        let redis = try RedisServer()
        let log = try attachment.run { run in
            let client = try run.makeClient(redis.port, nil)
            client.onClose { run.log.append("closed: \($0.map { "\($0)" } ?? "cleanly")"); run.stop() }
            client.send(["SET", "greeting", "hello, 世界"]) { run.log.append("SET: \($0)") }
            client.send(["GET", "greeting"]) { run.log.append("GET: \($0)") }
            client.send(["GET", "missing"]) { run.log.append("GET missing: \($0)") }
            client.send(["NOSUCHCOMMAND"]) { result in
                if case .failure(let error) = result { run.log.append("error: \(error.kind) \(error.message.prefix(22))") }
            }
            // 10,000 commands sent in one turn of the loop: replies in order.
            var replies: [Int] = []
            for _ in 0..<10_000 {
                client.send(["INCR", "counter"]) { result in
                    replies.append((try? result.get())?.integer ?? -1)
                    if replies.count == 10_000 {
                        run.log.append("pipeline: \(replies == Array(1...10_000) ? "in order" : "out of order")")
                        client.send(["LRANGE", "nothing", "0", "-1"]) { run.log.append("LRANGE: \($0)") }
                        client.close()
                    }
                }
            }
        }
        #expect(log == [
            "SET: success(OK)", "GET: success(\"hello, 世界\")", "GET missing: success((nil))",
            "error: server ERR unknown command 'N", "pipeline: in order", "LRANGE: success([])", "closed: cleanly",
        ], "\(attachment)")
        #expect(try redis.cli(["GET", "counter"]) == "10000")
    }

    @Test(arguments: Attachment.allCases)
    func aRefusedConnectionFailsItsCommandsAndNamesTheServer(_ attachment: Attachment) throws {
        let port = try unusedPort()
        let log = try attachment.run { run in
            let client = try run.makeClient(port, nil)
            client.onClose { run.log.append("closed: \($0.map { "\($0)" } ?? "cleanly")"); run.stop() }
            client.send(["PING"]) { run.log.append("PING: \($0)") }
        }
        let server = "redis://127.0.0.1:\(port)"
        #expect(log == ["PING: failure(cannot connect to \(server): Connection refused)", "closed: cannot connect to \(server): Connection refused"],
                "\(attachment)")
    }

    @Test(arguments: Attachment.allCases)
    func theServerClosingTheConnectionFailsTheWaitingCommand(_ attachment: Attachment) throws {
        let redis = try RedisServer()
        let log = try attachment.run { run in
            let victim = try run.makeClient(redis.port, nil)
            let killer = try run.makeClient(redis.port, nil)
            // Three things happen, in any order: then the scenario is over.
            func note(_ line: String) {
                run.log.append(line)
                if run.log.count == 3 { run.stop() }
            }
            victim.onClose { note("victim closed: \($0.map { "\($0.kind): \($0.message)" } ?? "cleanly")") }
            victim.send(["CLIENT", "ID"]) { result in
                guard let id = (try? result.get())?.integer else { return run.log.append("no id: \(result)") }
                // Waits for a list nobody fills: the reply never comes.
                victim.send(["BLPOP", "never", "20"]) { result in
                    switch result {
                    case .success(let reply): note("BLPOP: \(reply)")
                    case .failure(let error): note("BLPOP: \(error.kind)")
                    }
                }
                run.after(0.1) {
                    killer.send(["CLIENT", "KILL", "ID", "\(id)"]) { note("KILL: \($0)"); killer.close() }
                }
            }
        }
        #expect(log.count == 3 && log.contains("KILL: success((integer) 1)") && log.contains("BLPOP: disconnected"),
                "\(attachment): \(log)")
        #expect(log.contains { $0.hasPrefix("victim closed: disconnected: ") }, "\(attachment): \(log)")
    }

    /// A TCP server that is not Redis: Python, answering each read with `answer` (or nothing).
    func startImpostor(answer: String?) throws -> (SpawnedProcess, UInt16) {
        let script = """
        import socket, sys
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        print(s.getsockname()[1], flush=True)
        held = []
        while True:
            c, _ = s.accept()
            held.append(c)
            c.recv(65536)
            if sys.argv[1] != "-":
                c.sendall(sys.argv[1].encode())
        """
        let impostor = try SpawnedProcess("/usr/bin/env", ["python3", "-c", script, answer ?? "-"])
        let port = UInt16(impostor.waitForOutput(containing: "\n").split(separator: "\n").first ?? "") ?? 0
        return (impostor, port)
    }

    @Test(arguments: Attachment.allCases)
    func aServerThatIsNotRedisEndsTheConnectionWithAProtocolError(_ attachment: Attachment) throws {
        let (impostor, port) = try startImpostor(answer: "HTTP/1.1 400 Bad Request\r\n\r\n")
        defer { impostor.send(SIGKILL); _ = try? impostor.wait(timeout: 5) }
        let log = try attachment.run { run in
            let client = try run.makeClient(port, nil)
            client.onClose { run.log.append("closed: \($0.map { "\($0.kind)" } ?? "cleanly")"); run.stop() }
            client.send(["PING"]) { result in
                if case .failure(let error) = result { run.log.append("PING: \(error.kind): \(error.message)") }
            }
        }
        #expect(log.count == 2 && log[0].hasPrefix("PING: disconnected: Protocol error") && log[1] == "closed: disconnected",
                "\(attachment): \(log)")
    }

    @Test(arguments: Attachment.allCases)
    func aServerThatStopsAnsweringTimesOutAndFailsEveryWaitingCommand(_ attachment: Attachment) throws {
        let (impostor, port) = try startImpostor(answer: nil)
        defer { impostor.send(SIGKILL); _ = try? impostor.wait(timeout: 5) }
        let start = monotonicSeconds()
        let log = try attachment.run { run in
            let client = try run.makeClient(port, 0.3)
            client.onClose { run.log.append("closed: \($0.map { "\($0)" } ?? "cleanly")"); run.stop() }
            for command in ["PING", "GET"] {
                client.send([command]) { result in
                    if case .failure(let error) = result { run.log.append("\(command): \(error.kind)") }
                }
            }
        }
        let seconds = monotonicSeconds() - start
        #expect(log == ["PING: timeout", "GET: timeout", "closed: redis://127.0.0.1:\(port) stopped answering: no reply within 0.3 s"],
                "\(attachment)")
        #expect(seconds > 0.25 && seconds < 10, "gave up after \(seconds) s")
    }

    @Test(arguments: [true, false])
    func theAsyncEngineAwaitsReplies(_ libev: Bool) throws {
        let redis = try RedisServer()
        func scenario<L: EventLoop>(_ loop: L) throws -> [String] {
            let port = redis.port
            let replies = try loop.run { executor in
                let client = LoopBound(try RedisClient(loop: executor.runningLoop, host: "127.0.0.1", port: port), loop: executor)
                var replies: [String] = []
                replies.append("\(try await client.value.command(["SET", "k", "v"]))")
                replies.append("\(try await client.value.command(["GET", "k"]))")
                do throws(RedisError) {
                    _ = try await client.value.command(["INCR", "k"])
                } catch {
                    replies.append("\(error.kind)")
                }
                client.value.close()
                do throws(RedisError) {
                    _ = try await client.value.command(["GET", "k"])
                } catch {
                    replies.append("\(error.kind)")
                }
                return replies
            }
            loop.close()
            return replies
        }
        let replies = libev ? try scenario(try Loop()) : try scenario(try EpollLoop())
        #expect(replies == ["OK", "\"v\"", "server", "closed"])
    }
}
