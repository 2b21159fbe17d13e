/// gzip (RFC 1952) with DEFLATE (RFC 1951) using LZ77 and the fixed Huffman codes, for request
/// bodies over 8 KiB (PANEL-API.md "Transport"). The system libraries the agent may use (libcurl,
/// libcrypto) offer no compressor for request bodies, so this small, deterministic encoder does
/// it; the tests decompress its output with Python's zlib and compare.
public enum Gzip {
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        // Header: magic, deflate, no flags, mtime 0 (deterministic bytes), no extra flags, Unix.
        var out: [UInt8] = [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]
        out += Deflate.fixed(input)
        let crc = CRC32.checksum(input)
        let size = UInt32(truncatingIfNeeded: input.count)
        for shift in stride(from: 0, to: 32, by: 8) {
            out.append(UInt8(truncatingIfNeeded: crc >> UInt32(shift)))
        }
        for shift in stride(from: 0, to: 32, by: 8) {
            out.append(UInt8(truncatingIfNeeded: size >> UInt32(shift)))
        }
        return out
    }
}

enum CRC32 {
    static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 {
            value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1
        }
        return value
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }
}

enum Deflate {
    static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
                                    115, 131, 163, 195, 227, 258]
    static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
                                      1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11,
                                       12, 12, 13, 13]
    static let window = 32768
    static let minMatch = 3
    static let maxMatch = 258
    static let maxChain = 64
    static let hashBits = 15

    /// One final block with the fixed Huffman codes.
    static func fixed(_ input: [UInt8]) -> [UInt8] {
        var writer = BitWriter()
        writer.write(1, bits: 1)  // BFINAL
        writer.write(1, bits: 2)  // BTYPE = 01, fixed Huffman
        let count = input.count
        var head = [Int32](repeating: -1, count: 1 << hashBits)
        var previous = [Int32](repeating: -1, count: window)
        func hash(_ position: Int) -> Int {
            let value = Int(input[position]) << 16 | Int(input[position + 1]) << 8 | Int(input[position + 2])
            return (value &* 2_654_435_761) >> (32 - hashBits) & ((1 << hashBits) - 1)
        }
        func insert(_ position: Int) {
            guard position + minMatch <= count else {
                return
            }
            let key = hash(position)
            previous[position & (window - 1)] = head[key]
            head[key] = Int32(position)
        }
        var position = 0
        while position < count {
            var bestLength = 0
            var bestDistance = 0
            if position + minMatch <= count {
                var candidate = Int(head[hash(position)])
                var chain = maxChain
                let limit = min(maxMatch, count - position)
                while candidate >= 0, position - candidate <= window, chain > 0 {
                    if input[candidate + bestLength] == input[position + bestLength] || bestLength == 0 {
                        var length = 0
                        while length < limit, input[candidate + length] == input[position + length] {
                            length += 1
                        }
                        if length > bestLength {
                            bestLength = length
                            bestDistance = position - candidate
                            if length == limit {
                                break
                            }
                        }
                    }
                    let next = Int(previous[candidate & (window - 1)])
                    guard next < candidate else {
                        break
                    }
                    candidate = next
                    chain -= 1
                }
            }
            if bestLength >= minMatch {
                writer.writeLength(bestLength)
                writer.writeDistance(bestDistance)
                for offset in 0..<bestLength {
                    insert(position + offset)
                }
                position += bestLength
            } else {
                writer.writeLiteral(Int(input[position]))
                insert(position)
                position += 1
            }
        }
        writer.writeLiteral(256)  // end of block
        return writer.finish()
    }
}

/// DEFLATE packs bits from the least significant end; Huffman codes go in most significant bit
/// first, so they are reversed before writing.
struct BitWriter {
    private var bytes: [UInt8] = []
    private var buffer: UInt64 = 0
    private var used = 0

    mutating func write(_ value: Int, bits: Int) {
        buffer |= UInt64(value) << UInt64(used)
        used += bits
        while used >= 8 {
            bytes.append(UInt8(truncatingIfNeeded: buffer))
            buffer >>= 8
            used -= 8
        }
    }

    mutating func writeCode(_ code: Int, bits: Int) {
        var reversed = 0
        var value = code
        for _ in 0..<bits {
            reversed = reversed << 1 | (value & 1)
            value >>= 1
        }
        write(reversed, bits: bits)
    }

    /// A literal/length symbol with its fixed code.
    mutating func writeLiteral(_ symbol: Int) {
        switch symbol {
        case 0...143: writeCode(0x30 + symbol, bits: 8)
        case 144...255: writeCode(0x190 + symbol - 144, bits: 9)
        case 256...279: writeCode(symbol - 256, bits: 7)
        default: writeCode(0xC0 + symbol - 280, bits: 8)
        }
    }

    mutating func writeLength(_ length: Int) {
        var index = Deflate.lengthBase.count - 1
        while Deflate.lengthBase[index] > length {
            index -= 1
        }
        writeLiteral(257 + index)
        let extra = Deflate.lengthExtra[index]
        if extra > 0 {
            write(length - Deflate.lengthBase[index], bits: extra)
        }
    }

    mutating func writeDistance(_ distance: Int) {
        var index = Deflate.distanceBase.count - 1
        while Deflate.distanceBase[index] > distance {
            index -= 1
        }
        writeCode(index, bits: 5)
        let extra = Deflate.distanceExtra[index]
        if extra > 0 {
            write(distance - Deflate.distanceBase[index], bits: extra)
        }
    }

    mutating func finish() -> [UInt8] {
        if used > 0 {
            bytes.append(UInt8(truncatingIfNeeded: buffer))
        }
        buffer = 0
        used = 0
        return bytes
    }
}
