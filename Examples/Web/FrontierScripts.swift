// The shared frontier's steps, as Lua scripts Redis runs atomically.

/// The frontier's Lua scripts: each runs atomically in Redis, on the
/// server's clock (`TIME`), so the processes' clocks need not agree.
struct Script {
    let source: String

    private static let now = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """

    /// KEYS: crawl, leases, seen, queue. ARGV: id, lease ms, resume, the
    /// crawl's name (its start URLs), then each start's URL and job.
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
          local scheduled = 0
          for i = 5, #ARGV - 1, 2 do
            if redis.call('SADD', KEYS[3], ARGV[i]) == 1 then
              redis.call('RPUSH', KEYS[4], ARGV[i + 1])
              scheduled = scheduled + 1
            end
          end
          redis.call('HSET', KEYS[1], 'start', ARGV[4], 'scheduled', scheduled, 'pages', 0)
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

    /// KEYS: the host's next start. ARGV: the delay in ms. The crawl's
    /// requests to a host start at least a delay apart, whichever process
    /// sends them: each asks for the next free start time and waits for it.
    /// Returns the ms to wait.
    static let slot = Script(source: now + """

        local delay = tonumber(ARGV[1])
        local last = tonumber(redis.call('GET', KEYS[1]) or '0')
        local start = math.max(now, last + delay)
        redis.call('SET', KEYS[1], start, 'PX', delay + 60000)
        return start - now
        """)

    static let all = [open, renew, claim, done, leave, slot]

    /// KEYS: leases, queue. ARGV: prefix, id.
    static let leave = Script(source: """
        while redis.call('LMOVE', '{' .. ARGV[1] .. '}:pending:' .. ARGV[2], KEYS[2], 'RIGHT', 'LEFT') do end
        redis.call('ZREM', KEYS[1], ARGV[2])
        return 1
        """)
}
