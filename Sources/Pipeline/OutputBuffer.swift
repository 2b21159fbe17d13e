/// Where JSON text is written: an array for the tree encoder, an `OutputBuffer` for the
/// snapshot's writer. One escaping routine serves both.
protocol JSONSink: ~Copyable {
    mutating func append(_ byte: UInt8)
    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>)
}

extension JSONSink where Self: ~Copyable {
    @inline(__always)
    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { append($0) }
    }

    /// `String(value)`'s digits, without building the string.
    mutating func appendDecimal(_ value: Int64) {
        if value < 0 {
            append(UInt8(ascii: "-"))
        }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude != 0
            append(UnsafeBufferPointer(rebasing: buffer.bindMemory(to: UInt8.self)[start...]))
        }
    }
}

extension Array: JSONSink where Element == UInt8 {
    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        append(contentsOf: bytes)
    }
}

/// A growable byte buffer written through a pointer, for the snapshot's hot path: appending a
/// few bytes costs a capacity check and a copy, not a trip through `Array`'s generic append.
/// It starts in memory it is lent (the uninitialized storage of the array the bytes end up in,
/// so that nothing is copied when the estimate was right) and moves to memory of its own when it
/// outgrows it.
struct OutputBuffer: ~Copyable, JSONSink {
    private var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int
    /// Whether `base` was allocated here (and is freed here) rather than lent.
    private(set) var ownsStorage: Bool

    /// Writes into `storage`, which must outlive the buffer.
    init(lending storage: UnsafeMutableBufferPointer<UInt8>) {
        if let address = storage.baseAddress, storage.count > 0 {
            base = address
            capacity = storage.count
            ownsStorage = false
        } else {
            capacity = 64
            base = .allocate(capacity: capacity)
            ownsStorage = true
        }
    }

    deinit {
        if ownsStorage {
            base.deallocate()
        }
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        if count == capacity {
            grow(to: count + 1)
        }
        base[count] = byte
        count += 1
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else {
            return
        }
        if count + bytes.count > capacity {
            grow(to: count + bytes.count)
        }
        (base + count).update(from: source, count: bytes.count)
        count += bytes.count
    }

    /// The bytes written, as a new array.
    var array: [UInt8] {
        bytes(from: 0)
    }

    /// The bytes written from `start` on.
    func bytes(from start: Int) -> [UInt8] {
        Array(UnsafeBufferPointer(start: base + start, count: count - start))
    }

    @inline(never)
    private mutating func grow(to needed: Int) {
        let larger = max(needed, capacity * 2)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
        moved.initialize(from: base, count: count)
        if ownsStorage {
            base.deallocate()
        }
        base = moved
        capacity = larger
        ownsStorage = true
    }
}
