import EventCore
import HTTP
import Redis
#if canImport(Glibc)
import Glibc
#endif

/// Where crawler processes share a crawl: `redis://[[USER]:PASSWORD@]HOST[:PORT][/PREFIX]`
/// (port 6379 and prefix `crawler` when left out). Every key of the crawl
/// starts with `{PREFIX}:` - in braces, Redis Cluster's hash tag, so a
/// crawl's keys live in one slot and its scripts may touch them all.
///
/// A password in the URL (percent-encoded where it holds `@`, `:`, `/` or
/// `%`) is sent with `AUTH` - with a user, Redis 6's ACL form; without one
/// in the URL, the `REDISCLI_AUTH` environment variable's, as `redis-cli`
/// takes it. The password is never printed: the description leaves the
/// credentials out.
public struct FrontierAddress: Sendable, CustomStringConvertible {
    /// Redis's host: a name, an IPv4 address or an IPv6 one (in brackets in the URL).
    public var host: String
    /// Redis's port (6379 unless given).
    public var port: UInt16
    /// What every key of the crawl starts with, in braces (`crawler` unless given).
    public var prefix: String
    /// The ACL user, if the URL names one.
    public var user: String?
    /// The password, from the URL or `REDISCLI_AUTH`; never printed.
    public var password: String?

    /// Why a frontier URL was refused.
    public struct ParseError: Error, CustomStringConvertible {
        /// The URL as given, its password masked.
        public let text: String
        /// What is wrong with it.
        public let reason: String
        /// The error in a sentence, with the expected form.
        public var description: String {
            "invalid frontier \"\(text)\": \(reason) (expected redis://[[USER]:PASSWORD@]HOST:PORT[/PREFIX])"
        }
    }

    /// Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/PREFIX]`; with no
    /// password in it, takes `environment["REDISCLI_AUTH"]` if set.
    ///
    /// - Throws: ``ParseError`` naming the URL (its password masked) and what is wrong with it.
    public init(_ text: String, environment: [String: String] = [:]) throws(ParseError) {
        let shown = FrontierAddress.masked(text)
        guard text.hasPrefix("redis://") else { throw ParseError(text: shown, reason: "not a redis:// URL") }
        var rest = Substring(text.dropFirst("redis://".count))
        var prefix = "crawler"
        if let slash = rest.firstIndex(of: "/") {
            prefix = String(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
            guard !prefix.isEmpty, prefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0)) }) else {
                throw ParseError(text: shown, reason: "the prefix must be letters, digits and - _ . :")
            }
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = credentials.firstIndex(of: ":") else {
                throw ParseError(text: shown, reason: "a user without a password (the form is USER:PASSWORD@, or :PASSWORD@)")
            }
            guard let user = FrontierAddress.percentDecoded(credentials[..<colon]),
                  let password = FrontierAddress.percentDecoded(credentials[credentials.index(after: colon)...]) else {
                throw ParseError(text: shown, reason: "a bad percent-encoding in the credentials")
            }
            guard !password.isEmpty else { throw ParseError(text: shown, reason: "an empty password") }
            self.user = user.isEmpty ? nil : user
            self.password = password
        } else {
            user = nil
            password = environment["REDISCLI_AUTH"].flatMap { $0.isEmpty ? nil : $0 }
        }
        var host = rest
        var port: UInt16 = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw ParseError(text: shown, reason: "no ] after an IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = UInt16(after.dropFirst()), value > 0 else { throw ParseError(text: shown, reason: "invalid port") }
                port = value
            } else if !after.isEmpty {
                throw ParseError(text: shown, reason: "unexpected text after the address")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let value = UInt16(rest[rest.index(after: colon)...]), value > 0 else { throw ParseError(text: shown, reason: "invalid port") }
            port = value
        }
        guard !host.isEmpty else { throw ParseError(text: shown, reason: "no host") }
        guard !host.contains(where: { $0 == ":" || $0 == "@" || $0.isWhitespace }) || rest.hasPrefix("[") else {
            throw ParseError(text: shown, reason: "an invalid host")
        }
        self.host = String(host)
        self.port = port
        self.prefix = prefix
    }

    /// The frontier as a URL, port and prefix spelled out - with the user,
    /// if any, never the password.
    public var description: String {
        let who = user.map { "\($0)@" } ?? ""
        return "redis://\(who)\(host.contains(":") ? "[\(host)]" : host):\(port)/\(prefix)"
    }

    /// `text` with the password of its credentials replaced by `***`, for messages.
    static func masked(_ text: String) -> String {
        guard text.hasPrefix("redis://") else { return text }
        let rest = text.dropFirst("redis://".count)
        let authority = rest.prefix { $0 != "/" }
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return text }
        return "redis://" + authority[...colon] + "***" + rest[at...]
    }

    /// `text` with its `%XX` escapes decoded; nil for a bad escape or invalid UTF-8.
    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard let high = utf8.next().flatMap(hexValue), let low = utf8.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// The crawl's frontier and seen-set in Redis, shared by every process
/// started with the same ``FrontierAddress`` (scrapy-redis's design, with a
/// reliable queue). Each step is one Lua script, atomic in Redis:
///
/// - **open**: starts the crawl (the start URL seen and queued) or joins it,
///   and takes a lease for this process.
/// - **claim**: renews the lease and moves up to N jobs from the queue to
///   this process's in-flight list (`LMOVE`); when the queue is empty, first
///   gives the in-flight jobs of processes whose lease expired back to the
///   queue, and says how many jobs live processes still hold.
/// - **done**: the jobs that ended in one turn of the loop (fetched, failed,
///   redirected) leave the in-flight list; their links are scheduled -
///   `SADD` to the seen-set gates each, the page budget (`--max-pages`) is
///   counted in Redis - in the same script, so a crash between the two
///   cannot lose or double a URL.
/// - **leave**: the lease goes (and any job still held returns to the queue).
///
/// A process killed with its jobs leased loses nothing: once its lease
/// expires the others take them back. Used on the loop's thread.
final class RedisFrontier {
    /// A job as Redis keeps it: the URL, then the redirect chain that led
    /// to it, separated by spaces (no URL has one). The first word is the
    /// URL the seen-set holds.
    static func encode(_ job: CrawlJob) -> String {
        job.chain.isEmpty ? job.url.description : ([job.url] + job.chain).map(\.description).joined(separator: " ")
    }

    /// The job `text` holds, or why it holds none: each word must be an
    /// http:// URL the crawler may send, as a link must (scheme, host,
    /// port, length).
    static func decode(_ text: String) -> Result<CrawlJob, WebURL.ParseError> {
        let parts = text.split(separator: " ")
        guard let first = parts.first else { return .failure(WebURL.ParseError(text: text, reason: "empty")) }
        do throws(WebURL.ParseError) {
            var job = CrawlJob(url: try WebURL(String(first)))
            for part in parts.dropFirst() { job.chain.append(try WebURL(String(part))) }
            return .success(job)
        } catch {
            return .failure(error)
        }
    }

    let address: FrontierAddress
    private let send: ([String], @escaping (Result<RedisReply, RedisError>) -> Void) -> Void
    private let closeConnection: () -> Void
    private let after: (Duration, @escaping () -> Void) -> any Cancellable
    /// This process in the crawl: host, pid and a random tag.
    let id: String
    let lease: Duration
    let resume: Bool
    weak var crawl: Crawl?

    private var opened = false
    private var claiming = false
    private var pollDelay = Duration.milliseconds(5)
    private var poll: (any Cancellable)?
    private var heartbeat: (any Cancellable)?
    private var leaving = false
    /// The crawl is over for this process: finished everywhere, or the frontier failed.
    private(set) var isOver = false
    /// Pages fetched by every process of the crawl, as Redis last said.
    private(set) var crawlPages = 0
    /// Why the frontier failed (Redis unreachable, gone, or refused the crawl).
    private(set) var failure: String?
    /// Commands sent, for the figures (commands per page).
    private(set) var commands = 0

    private func key(_ name: String) -> String { "{\(address.prefix)}:\(name)" }

    /// Connects to Redis on `loop`, with the crawl's lease.
    init<L: EventLoop>(loop: L, address: FrontierAddress, lease: Duration, resume: Bool) throws(RedisError) {
        let client = try RedisClient(loop: loop, host: address.host, port: address.port, user: address.user,
                                     password: address.password, connectTimeout: .seconds(5))
        // A process that cannot renew its lease in time gives up: by then the
        // others may take its jobs back.
        client.replyTimeout = max(lease, .seconds(1))
        self.address = address
        send = client.send
        closeConnection = client.close
        after = { delay, work in loop.schedule(after: delay, work) }
        self.lease = lease
        self.resume = resume
        var name = [UInt8](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        id = "\(String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
        client.onClose = { [weak self] error in
            guard let self, let error else { return }
            fail(error)
        }
    }

    private var leaseMilliseconds: String { "\(Int((lease / .milliseconds(1)).rounded()))" }

    /// Each script's SHA1 once Redis has it (`SCRIPT LOAD` at open): then a
    /// step sends `EVALSHA` and the digest, not the script.
    private var digests: [String: String] = [:]

    private func run(_ script: Script, keys: [String], _ arguments: [String], _ reply: @escaping (RedisReply) -> Void) {
        commands += 1
        let digest = digests[script.source]
        let command = digest.map { ["EVALSHA", $0] } ?? ["EVAL", script.source]
        send(command + ["\(keys.count)"] + keys + arguments) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let value):
                reply(value)
            case .failure(let error) where error.kind == .server && error.message.hasPrefix("NOSCRIPT") && digest != nil:
                // The server's script cache was flushed: send the script itself.
                digests[script.source] = nil
                commands -= 1
                run(script, keys: keys, arguments, reply)
            case .failure(let error):
                fail(error)
            }
        }
    }

    /// Loads the scripts (pipelined ahead of the first step).
    private func loadScripts() {
        for script in Script.all {
            commands += 1
            send(["SCRIPT", "LOAD", script.source]) { [weak self] result in
                if case .success(let reply) = result, let digest = reply.text { self?.digests[script.source] = digest }
            }
        }
    }

    private func fail(_ error: RedisError) {
        fail("the frontier at \(address): \(error)")
    }

    private func fail(_ message: String) {
        guard failure == nil, !isOver else { return }
        failure = message
        isOver = true
        poll?.cancel()
        heartbeat?.cancel()
        closeConnection()
        // The jobs not started stay leased in Redis: a later --resume fetches them.
        crawl?.frontierFailed()
    }

    // MARK: the steps

    /// Opens (or joins) the crawl, then claims the first jobs.
    func open(start: CrawlJob) {
        loadScripts()
        run(.open, keys: [key("crawl"), key("leases"), key("seen"), key("queue")],
            [id, leaseMilliseconds, resume ? "1" : "0", start.url.description, Self.encode(start)]) { [self] reply in
            guard let fields = reply.elements, fields.count == 2, let verdict = fields[0].text else {
                return fail("the frontier at \(address) answered open with \(reply)")
            }
            guard verdict == "ok" else { return fail("the frontier at \(address): \(fields[1].text ?? "refused")") }
            crawlPages = fields[1].integer ?? 0
            opened = true
            beat()
            claim()
        }
    }

    private func beat() {
        heartbeat = after(lease / 3) { [weak self] in
            guard let self, !isOver else { return }
            run(.renew, keys: [key("leases")], [id, leaseMilliseconds]) { _ in }
            beat()
        }
    }

    /// Claims jobs when this process has room for them: up to twice the
    /// concurrency fetched or waiting, so the next batch is here before the
    /// connections are idle.
    func claim() {
        claimWanted = true
        scheduleFlush()
    }

    private func sendClaim() {
        guard opened, !claiming, !isOver, !leaving, let crawl else { return }
        let held = crawl.localJobs + crawl.report.inFlight
        let wanted = 2 * crawl.options.concurrency - held
        guard wanted > 0 && (held == 0 || wanted >= max(1, crawl.options.concurrency / 2)) else { return }
        claiming = true
        poll?.cancel()
        poll = nil
        run(.claim, keys: [key("queue"), key("leases"), key("crawl")], [id, leaseMilliseconds, "\(wanted)", address.prefix]) { [self] reply in
            claiming = false
            guard let crawl = self.crawl else { return }
            guard let fields = reply.elements, fields.count >= 2 else { return fail("the frontier at \(address) answered claim with \(reply)") }
            crawlPages = fields[0].integer ?? crawlPages
            let busy = fields[1].integer ?? 0
            var jobs: [CrawlJob] = []
            for entry in fields.dropFirst(2) {
                guard let text = entry.text else { continue }
                switch Self.decode(text) {
                case .success(let job) where crawl.isSameSite(job.url):
                    jobs.append(job)
                case .success(let job):
                    // Planted for another site: never requested from this one
                    // (it would go with a foreign Host); skipped by reason,
                    // and taken off this process's in-flight list.
                    crawl.foreignJob(job)
                    finished += [text, "0", "0"]
                    scheduleFlush()
                case .failure(let error):
                    // Not a job a crawler wrote: reported, and taken off this
                    // process's in-flight list (else the crawl never ends).
                    crawl.badEntry(text, error.reason)
                    finished += [text, "0", "0"]
                    scheduleFlush()
                }
            }
            if !jobs.isEmpty {
                pollDelay = .milliseconds(5)
                crawl.received(jobs)
                claim()
            } else if fields.count > 2 {
                // Only bad entries came (Redis did not count what is left): again.
                claim()
            } else if busy == 0 && crawl.localJobs == 0 && crawl.report.inFlight == 0 {
                leave()
            } else if crawl.localJobs == 0 {
                // Others (or our own fetches) may still find links: ask again soon.
                poll = after(pollDelay) { [weak self] in self?.claim() }
                pollDelay = min(pollDelay * 2, .milliseconds(200))
            }
        }
    }

    /// What a fetch found: the links and redirects to schedule.
    enum Found {
        /// A link of a page: seen-set and page budget.
        case link(CrawlJob)
        /// A redirect's target: seen-set only (redirects are not pages).
        case redirect(CrawlJob)
        /// A redirect within its own chain: queued again, to end at the limit.
        case again(CrawlJob)
    }

    /// A job ended (a page, a redirect, a failure): it leaves the in-flight
    /// list and what it found is scheduled, in one script.
    func done(_ job: CrawlJob, page: Bool, found: [Found]) {
        guard opened, !isOver else { return }
        finished += [Self.encode(job), page ? "1" : "0", "\(found.count)"]
        for item in found {
            switch item {
            case .link(let next): finished += ["link", Self.encode(next)]
            case .redirect(let next): finished += ["redirect", Self.encode(next)]
            case .again(let next): finished += ["again", Self.encode(next)]
            }
        }
        claim()
    }

    /// The jobs that ended since the last flush, as the done script takes
    /// them: (job, page, count, then count x (kind, job)) each.
    private var finished: [String] = []
    private var flushScheduled = false
    private var claimWanted = false

    /// Sends what this turn of the loop gathered on the next: every job that
    /// ended in one script, then a claim if one is wanted - in that order, so
    /// the claim sees the links they found.
    private func scheduleFlush() {
        guard !flushScheduled, !isOver else { return }
        flushScheduled = true
        _ = after(.zero) { [weak self] in self?.flush() }
    }

    private func flush() {
        flushScheduled = false
        guard opened, !isOver, let crawl else { return }
        if !finished.isEmpty {
            let arguments = [address.prefix, id, "\(crawl.options.maxPages)"] + finished
            finished = []
            run(.done, keys: [key("crawl"), key("seen"), key("queue")], arguments) { [weak self] reply in
                self?.crawlPages = reply.integer ?? self?.crawlPages ?? 0
            }
        }
        if claimWanted {
            claimWanted = false
            sendClaim()
        }
    }

    private func leave() {
        guard !leaving else { return }
        leaving = true
        heartbeat?.cancel()
        run(.leave, keys: [key("leases"), key("queue")], [address.prefix, id]) { [self] _ in
            isOver = true
            closeConnection()
            crawl?.frontierFinished()
        }
    }
}

/// The frontier's Lua scripts: each runs atomically in Redis, on the
/// server's clock (`TIME`), so the processes' clocks need not agree.
struct Script {
    let source: String

    private static let now = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """

    /// KEYS: crawl, leases, seen, queue. ARGV: id, lease ms, resume, start URL, start job.
    static let open = Script(source: now + """

        local start = redis.call('HGET', KEYS[1], 'start')
        if start then
          if start ~= ARGV[4] then
            return {'refused', 'it holds a crawl of ' .. start .. ', not ' .. ARGV[4]}
          end
          if ARGV[3] ~= '1' and redis.call('ZCOUNT', KEYS[2], now, '+inf') == 0 then
            return {'refused', 'it holds an earlier crawl that no process is running (' ..
              (redis.call('HGET', KEYS[1], 'pages') or '0') .. ' pages): pass --resume to continue it, or use another prefix'}
          end
        else
          if ARGV[3] == '1' then return {'refused', 'it holds no crawl to resume'} end
          redis.call('HSET', KEYS[1], 'start', ARGV[4], 'scheduled', 1, 'pages', 0)
          redis.call('SADD', KEYS[3], ARGV[4])
          redis.call('RPUSH', KEYS[4], ARGV[5])
        end
        redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
        return {'ok', tonumber(redis.call('HGET', KEYS[1], 'pages'))}
        """)

    /// KEYS: leases. ARGV: id, lease ms.
    static let renew = Script(source: now + """

        redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
        return 1
        """)

    /// KEYS: queue, leases, crawl. ARGV: id, lease ms, how many, prefix.
    /// Returns the crawl's pages, the jobs live processes hold (when none
    /// was claimed; else 0), then the jobs.
    static let claim = Script(source: now + """

        local prefix = '{' .. ARGV[4] .. '}:pending:'
        local mine = prefix .. ARGV[1]
        redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
        local jobs = {}
        local function take()
          for i = #jobs + 1, tonumber(ARGV[3]) do
            local job = redis.call('LMOVE', KEYS[1], mine, 'LEFT', 'RIGHT')
            if not job then return end
            jobs[#jobs + 1] = job
          end
        end
        take()
        local busy = 0
        if #jobs == 0 then
          for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)) do
            while redis.call('LMOVE', prefix .. dead, KEYS[1], 'RIGHT', 'LEFT') do end
            redis.call('ZREM', KEYS[2], dead)
          end
          take()
          if #jobs == 0 then
            for _, live in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
              busy = busy + redis.call('LLEN', prefix .. live)
            end
          end
        end
        return {tonumber(redis.call('HGET', KEYS[3], 'pages')), busy, unpack(jobs)}
        """)

    /// KEYS: crawl, seen, queue. ARGV: prefix, id, max pages, then for each
    /// job that ended: the job, page (1 or 0), how many things it found, and
    /// (kind, job) for each - a job's first word is its URL. Returns the
    /// crawl's pages.
    static let done = Script(source: """
        local pending = '{' .. ARGV[1] .. '}:pending:' .. ARGV[2]
        local budget = tonumber(ARGV[3])
        local scheduled = tonumber(redis.call('HGET', KEYS[1], 'scheduled'))
        local pages = 0
        local i = 4
        while i <= #ARGV do
          redis.call('LREM', pending, 1, ARGV[i])
          if ARGV[i + 1] == '1' then pages = pages + 1 end
          local last = i + 2 + 2 * tonumber(ARGV[i + 2])
          for j = i + 3, last, 2 do
            local kind, job = ARGV[j], ARGV[j + 1]
            local url = string.match(job, '^[^ ]+')
            if kind == 'again' then
              redis.call('RPUSH', KEYS[3], job)
            elseif kind == 'redirect' then
              if redis.call('SADD', KEYS[2], url) == 1 then redis.call('RPUSH', KEYS[3], job) end
            elseif scheduled < budget and redis.call('SADD', KEYS[2], url) == 1 then
              scheduled = scheduled + 1
              redis.call('RPUSH', KEYS[3], job)
            end
          end
          i = last + 1
        end
        redis.call('HSET', KEYS[1], 'scheduled', scheduled)
        return redis.call('HINCRBY', KEYS[1], 'pages', pages)
        """)

    static let all = [open, renew, claim, done, leave]

    /// KEYS: leases, queue. ARGV: prefix, id.
    static let leave = Script(source: """
        while redis.call('LMOVE', '{' .. ARGV[1] .. '}:pending:' .. ARGV[2], KEYS[2], 'RIGHT', 'LEFT') do end
        redis.call('ZREM', KEYS[1], ARGV[2])
        return 1
        """)
}
