import CHiredis

/// How big a reply from Redis may be: what a hostile or broken server
/// sends is bounded like what a client sends a server (hiredis 0.14 has no
/// limit of its own - a `$99999999999` header or `*99999999` made a client
/// grow by hundreds of MB a second).
public struct RedisLimits: Sendable, Equatable {
    /// The most bytes one reply may hold: its bulk strings together, and the
    /// bytes of a reply not yet complete that wait in the reader (64 MiB).
    public var maxReplyBytes: Int
    /// The most values one reply may hold, nested arrays' elements counted (1,048,576).
    public var maxElements: Int

    public init(maxReplyBytes: Int = 64 << 20, maxElements: Int = 1 << 20) {
        self.maxReplyBytes = maxReplyBytes
        self.maxElements = maxElements
    }
}

/// hiredis's reply reader (`redisReader`, read.h) building ``RedisReply``
/// values directly, within ``RedisLimits``: the bytes of a connection go in
/// (``feed(_:)``), whole replies come out (``next()``). No I/O, no event
/// loop, no assertion reachable from the bytes - the asynchronous context
/// of hiredis aborts the process on a reply nobody asked for; this reader
/// hands every reply to its owner, who decides.
///
/// hiredis calls back while it parses: each value of a reply is made by one
/// of the reply functions below, an array before its elements. Here an
/// array is a ``ReplyNode`` that its elements fill in; the root node is
/// retained for hiredis until ``next()`` takes it (or hiredis frees it on an
/// error), and every other node is held by its parent.
final class RedisReader {
    private let reader: UnsafeMutablePointer<redisReader>
    let limits: RedisLimits
    /// Values and bytes of the reply being read (reset when one begins).
    fileprivate var elements = 0
    fileprivate var bytes = 0
    /// Why the reply functions refused a value: a limit (hiredis then reports "out of memory").
    fileprivate var refusal: String?

    init(limits: RedisLimits) {
        self.limits = limits
        reader = redisReaderCreateWithFunctions(replyFunctions)
        reader.pointee.privdata = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { redisReaderFree(reader) }

    /// What went wrong with the stream, once something has.
    private(set) var failure: String?

    /// Hands `bytes` to the reader.
    func feed(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil, let base = bytes.baseAddress, bytes.count > 0 else { return }
        if redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count) != REDIS_OK {
            failure = errorText()
        }
    }

    /// The next complete reply, or nil if none is complete yet (or the
    /// stream failed: see ``failure``).
    func next() -> RedisReply? {
        guard failure == nil else { return nil }
        var object: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &object) == REDIS_OK else {
            failure = refusal ?? errorText()
            return nil
        }
        guard let object else {
            // Nothing complete: what waits in hiredis's buffer is part of one reply.
            let waiting = reader.pointee.len - reader.pointee.pos
            if waiting > limits.maxReplyBytes {
                failure = "a reply of more than \(limits.maxReplyBytes) bytes (RedisLimits.maxReplyBytes)"
            }
            return nil
        }
        return Unmanaged<ReplyNode>.fromOpaque(object).takeRetainedValue().reply
    }

    private func errorText() -> String {
        var text = reader.pointee.errstr
        let message = withUnsafeBytes(of: &text) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "not Redis's protocol: \(message)"
    }

    /// Counts a value of `count` bytes (a bulk string; 0 for others) and,
    /// for an array, its `elements` slots - before hiredis allocates them;
    /// false, with the refusal noted, over a limit. A reply's values are its
    /// root and every array's slots, so a value inside an array was counted
    /// with its array.
    fileprivate func admit(root: Bool, bytes count: Int = 0, elements more: Int = 0) -> Bool {
        if root {
            elements = 1
            bytes = 0
        }
        elements += max(more, 0)
        bytes += count
        if elements > limits.maxElements {
            refusal = "a reply of more than \(limits.maxElements) values (RedisLimits.maxElements)"
            return false
        }
        if bytes > limits.maxReplyBytes {
            refusal = "a reply of more than \(limits.maxReplyBytes) bytes (RedisLimits.maxReplyBytes)"
            return false
        }
        return true
    }
}

/// A value of a reply as the reader builds it: an array fills its slots
/// as its elements arrive.
final class ReplyNode {
    var value: RedisReply
    var slots: [ReplyNode?]
    let isArray: Bool

    init(_ value: RedisReply) {
        self.value = value
        slots = []
        isArray = false
    }

    init(arrayOf count: Int) {
        value = .null
        slots = Array(repeating: nil, count: count)
        isArray = true
    }

    /// The value, its array's elements made values too.
    var reply: RedisReply {
        isArray ? .array(slots.map { $0?.reply ?? .null }) : value
    }
}

/// A pointer hiredis takes as "made" for values that need no object of
/// their own for it (they are held by their array): hiredis reads NULL as
/// out of memory, and never dereferences what the functions return.
// nonisolated(unsafe): a constant pointer, never written or dereferenced.
nonisolated(unsafe) private let placedInArray = UnsafeMutableRawPointer(bitPattern: 0x1)!

/// The reply functions hiredis calls while parsing; each reaches its reader
/// through the task's `privdata` (set from the reader's).
// nonisolated(unsafe): written once, by the global's initializer (which
// Swift runs once, thread-safely), then only read by hiredis.
nonisolated(unsafe) private let replyFunctions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
    let functions = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
    functions.initialize(to: redisReplyObjectFunctions())
    functions.pointee.createString = { task, string, length in
        let task = task!.pointee
        let bytes = UnsafeRawBufferPointer(start: string, count: length)
        let value: RedisReply
        switch task.type {
        case REDIS_REPLY_STATUS: value = .status(String(decoding: bytes, as: UTF8.self))
        case REDIS_REPLY_ERROR: value = .error(String(decoding: bytes, as: UTF8.self))
        default: value = .string(Array(bytes))
        }
        return place(task, value, bytes: length)
    }
    functions.pointee.createArray = { task, count in
        let task = task!.pointee
        guard reader(of: task).admit(root: task.parent == nil, elements: Int(count)) else { return nil }
        let node = count < 0 ? ReplyNode(.null) : ReplyNode(arrayOf: Int(count))
        return attach(task, node)
    }
    functions.pointee.createInteger = { task, value in
        place(task!.pointee, .integer(Int(truncatingIfNeeded: value)), bytes: 0)
    }
    functions.pointee.createNil = { task in
        place(task!.pointee, .null, bytes: 0)
    }
    functions.pointee.freeObject = { object in
        // hiredis frees only the root of a reply it gives up on (or never handed out).
        guard let object, object != placedInArray else { return }
        Unmanaged<ReplyNode>.fromOpaque(object).release()
    }
    return functions
}()

private func reader(of task: redisReadTask) -> RedisReader {
    Unmanaged<RedisReader>.fromOpaque(task.privdata!).takeUnretainedValue()
}

/// A leaf value: counted against the limits, then put in its array's slot (or made the root).
private func place(_ task: redisReadTask, _ value: RedisReply, bytes: Int) -> UnsafeMutableRawPointer? {
    guard reader(of: task).admit(root: task.parent == nil, bytes: bytes) else { return nil }
    return attach(task, ReplyNode(value))
}

/// Puts `node` in its parent array's slot (the parent holds it), or hands
/// the root to hiredis retained (``RedisReader/next()`` takes it back).
private func attach(_ task: redisReadTask, _ node: ReplyNode) -> UnsafeMutableRawPointer? {
    guard let parent = task.parent?.pointee.obj else {
        return Unmanaged.passRetained(node).toOpaque()
    }
    let array = Unmanaged<ReplyNode>.fromOpaque(parent).takeUnretainedValue()
    let index = Int(task.idx)
    guard index >= 0 && index < array.slots.count else { return nil }
    array.slots[index] = node
    // An array is its elements' parent: hiredis needs its pointer to make them.
    return node.isArray ? Unmanaged.passUnretained(node).toOpaque() : placedInArray
}
