/// Where a loop's watchers keep their libev structs, and which watchers the
/// loop holds alive.
///
/// Every libev struct of a loop lives in a slot of this allocator: a 16-byte
/// header, then the struct. The header's first word holds the loop's
/// reference to the watcher while libev needs it (active or pending), its
/// second the slot's size class (or, once freed, the next free slot); holding and releasing
/// a watcher touches only memory libev has just touched, and destroying the
/// loop finds every held watcher by walking the chunks. Slots of one size
/// come from chunks allocated together, so the structs of a million timers
/// lie side by side as in a C array, and freeing one costs no `free()`: its
/// slot goes on an intrusive free list for the next watcher of that size.
/// The memory goes back to the system when the loop and its last watcher are gone.
///
/// A slot may also hold a struct with no watcher object at all (a
/// ``OnceTimer``): its header's first word is then a mark, not a reference,
/// so that the loop's teardown can find and drop it.
struct WatcherMemory: ~Copyable {
    private static let headerSize = 16
    private static let slotsPerChunk = 256

    private struct SizeClass {
        var slotSize: Int
        var chunks: [UnsafeMutableRawPointer] = []
        /// Next never-used slot in the newest chunk, and how many remain there.
        var nextFresh: UnsafeMutableRawPointer?
        var freshLeft = 0
        /// Freed slots, linked through their headers.
        var freeList: UnsafeMutableRawPointer?
    }

    private var classes: [SizeClass] = []

    /// A slot for a `T` struct, returned as a pointer to the struct (past the header).
    mutating func allocate<T>(_ type: T.Type = T.self) -> UnsafeMutablePointer<T> {
        let index = sizeClassIndex(MemoryLayout<T>.size)
        let slot: UnsafeMutableRawPointer
        if let free = classes[index].freeList {
            classes[index].freeList = free.load(fromByteOffset: 8, as: UnsafeMutableRawPointer?.self)
            slot = free
        } else {
            if classes[index].freshLeft == 0 { addChunk(index) }
            slot = classes[index].nextFresh!
            classes[index].nextFresh = slot + classes[index].slotSize
            classes[index].freshLeft -= 1
        }
        slot.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
        // While the slot is in use, its header's second word says its size
        // class (free, it links the free list), so a watcher need not keep it.
        slot.storeBytes(of: index, toByteOffset: 8, as: Int.self)
        return (slot + Self.headerSize).bindMemory(to: T.self, capacity: 1)
    }

    /// Returns the slot of a struct to its free list.
    mutating func free(_ cStruct: UnsafeMutableRawPointer) {
        let slot = cStruct - Self.headerSize
        let index = slot.load(fromByteOffset: 8, as: Int.self)
        slot.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
        slot.storeBytes(of: classes[index].freeList, toByteOffset: 8, as: UnsafeMutableRawPointer?.self)
        classes[index].freeList = slot
    }

    /// Records the loop's reference to the watcher whose struct is `cStruct`.
    static func setHeld(_ reference: Unmanaged<Watcher>?, for cStruct: UnsafeMutableRawPointer) {
        (cStruct - headerSize).storeBytes(of: reference?.toOpaque(), as: UnsafeMutableRawPointer?.self)
    }

    /// The loop's reference to the watcher whose struct is `cStruct`, if it holds one.
    static func held(for cStruct: UnsafeMutableRawPointer) -> Unmanaged<Watcher>? {
        (cStruct - headerSize).load(as: UnsafeMutableRawPointer?.self).map { Unmanaged.fromOpaque($0) }
    }

    /// The header word of a slot that holds a live struct with no watcher
    /// object (no object lies at address 1).
    private static var structMark: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 1)! }

    /// Marks the slot of `cStruct` as holding a live struct that no watcher
    /// object owns; ``free(_:)`` clears the mark.
    static func markLive(_ cStruct: UnsafeMutableRawPointer) {
        (cStruct - headerSize).storeBytes(of: structMark, as: UnsafeMutableRawPointer.self)
    }

    /// Every watcher the loop holds, as strong references (a snapshot).
    func heldWatchers() -> [Watcher] {
        var result: [Watcher] = []
        forEachUsedSlot { cStruct, word in
            if let word, word != Self.structMark {
                result.append(Unmanaged<Watcher>.fromOpaque(word).takeUnretainedValue())
            }
        }
        return result
    }

    /// Every live marked struct of type `T` (a snapshot).
    func liveStructs<T>(_ type: T.Type) -> [UnsafeMutablePointer<T>] {
        let slotSize = Self.slotSize(forStructOf: MemoryLayout<T>.size)
        var result: [UnsafeMutablePointer<T>] = []
        forEachUsedSlot(slotSize: slotSize) { cStruct, word in
            if word == Self.structMark { result.append(cStruct.assumingMemoryBound(to: T.self)) }
        }
        return result
    }

    /// Calls `body` with each slot handed out so far (the struct's address
    /// and the header's first word), of one slot size or of all.
    private func forEachUsedSlot(slotSize: Int? = nil, _ body: (UnsafeMutableRawPointer, UnsafeMutableRawPointer?) -> Void) {
        for sizeClass in classes where slotSize == nil || sizeClass.slotSize == slotSize {
            for (number, chunk) in sizeClass.chunks.enumerated() {
                // The newest chunk is used only up to its first fresh slot.
                let isNewest = number == sizeClass.chunks.count - 1
                let used = isNewest ? Self.slotsPerChunk - sizeClass.freshLeft : Self.slotsPerChunk
                for slot in 0..<used {
                    let header = chunk + slot * sizeClass.slotSize
                    body(header + Self.headerSize, header.load(as: UnsafeMutableRawPointer?.self))
                }
            }
        }
    }

    deinit {
        for sizeClass in classes {
            for chunk in sizeClass.chunks { chunk.deallocate() }
        }
    }

    /// The slot of a struct of `size` bytes: the header, then the struct
    /// rounded up to 16 bytes.
    private static func slotSize(forStructOf size: Int) -> Int {
        headerSize + (size + 15) / 16 * 16
    }

    private mutating func sizeClassIndex(_ size: Int) -> Int {
        let slotSize = Self.slotSize(forStructOf: size)
        if let index = classes.firstIndex(where: { $0.slotSize == slotSize }) { return index }
        classes.append(SizeClass(slotSize: slotSize))
        return classes.count - 1
    }

    private mutating func addChunk(_ index: Int) {
        let size = classes[index].slotSize
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: size * Self.slotsPerChunk, alignment: 16)
        chunk.initializeMemory(as: UInt8.self, repeating: 0, count: size * Self.slotsPerChunk)
        classes[index].chunks.append(chunk)
        classes[index].nextFresh = chunk
        classes[index].freshLeft = Self.slotsPerChunk
    }
}
