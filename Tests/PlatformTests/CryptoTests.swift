import Platform
import Testing

/// Bytes from lowercase or uppercase hex; the literals below are trusted test data.
func bytes(hex: String) throws -> [UInt8] {
    let digits = Array(hex.utf8)
    try #require(digits.count % 2 == 0)
    func nibble(_ digit: UInt8) throws -> UInt8 {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default:
            Issue.record("not a hex digit: \(digit)")
            return 0
        }
    }
    return try stride(from: 0, to: digits.count, by: 2).map { try nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
}

@Suite struct CryptoTests {
    // MARK: - SHA-256

    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256KnownVectors(_ input: String, _ expected: String) throws {
        #expect(Crypto.sha256Hex(Array(input.utf8)) == expected)
        // Any collection of bytes, not only arrays.
        #expect(Crypto.sha256Hex(input.utf8) == expected)
        #expect(Crypto.sha256(Array(input.utf8)) == (try bytes(hex: expected)))
    }

    @Test func sha256OfAMillionAs() {
        let input = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(Crypto.sha256Hex(input) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(Crypto.sha256Hex(input[1...]) != Crypto.sha256Hex(input))
    }

    // MARK: - HMAC-SHA256 (RFC 4231)

    struct HMACCase: Sendable, CustomTestStringConvertible {
        let number: Int
        let key: [UInt8]
        let data: [UInt8]
        let expected: String

        var testDescription: String {
            "RFC 4231 test case \(number)"
        }
    }

    static let largeKey = [UInt8](repeating: 0xAA, count: 131)

    static let rfc4231: [HMACCase] = [
        HMACCase(number: 1, key: [UInt8](repeating: 0x0B, count: 20), data: Array("Hi There".utf8),
                 expected: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        HMACCase(number: 2, key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8),
                 expected: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        HMACCase(number: 3, key: [UInt8](repeating: 0xAA, count: 20), data: [UInt8](repeating: 0xDD, count: 50),
                 expected: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        HMACCase(number: 4, key: Array(1...25), data: [UInt8](repeating: 0xCD, count: 50),
                 expected: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        // Truncated to 128 bits in the RFC: the prefix is compared.
        HMACCase(number: 5, key: [UInt8](repeating: 0x0C, count: 20), data: Array("Test With Truncation".utf8),
                 expected: "a3b6167473100ee06e0c796c2955552b"),
        HMACCase(number: 6, key: largeKey, data: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                 expected: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        HMACCase(number: 7, key: largeKey,
                 data: Array(("This is a test using a larger than block-size key and a larger than block-size data. "
                              + "The key needs to be hashed before being used by the HMAC algorithm.").utf8),
                 expected: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test(arguments: rfc4231)
    func hmacRFC4231(_ vector: HMACCase) throws {
        let mac = Crypto.hmacSHA256(key: vector.key, message: vector.data)
        #expect(mac.count == 32)
        let expected = try bytes(hex: vector.expected)
        #expect(Array(mac.prefix(expected.count)) == expected)
        #expect(Crypto.hex(mac).hasPrefix(vector.expected))
    }

    @Test func hmacWithEmptyKeyAndMessage() {
        // HMAC-SHA256("", "") from Python's hmac module.
        #expect(Crypto.hex(Crypto.hmacSHA256(key: [], message: [UInt8]()))
                == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test func hmacTakesAnyByteCollection() {
        let key = Array("Jefe".utf8)
        let message = "what do ya want for nothing?"
        #expect(Crypto.hmacSHA256(key: key, message: message.utf8)
                == Crypto.hmacSHA256(key: key, message: Array(message.utf8)))
        #expect(Crypto.hmacSHA256(key: key, message: Array(message.utf8)[...]).count == 32)
    }

    // MARK: - Comparison, randomness, hex

    @Test(arguments: [
        ([UInt8](), [UInt8](), true),
        ([1, 2, 3], [1, 2, 3], true),
        ([1, 2, 3], [1, 2, 4], false),
        ([0, 2, 3], [1, 2, 3], false),
        ([1, 2, 3], [1, 2], false),
        ([1, 2], [1, 2, 3], false),
        ([], [0], false),
        ([UInt8](repeating: 0xFF, count: 64), [UInt8](repeating: 0xFF, count: 64), true),
    ])
    func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8], _ equal: Bool) {
        #expect(Crypto.constantTimeEqual(lhs, rhs) == equal)
        #expect(Crypto.constantTimeEqual(rhs, lhs) == equal)
    }

    @Test(arguments: [0, 1, 16, 32, 4096])
    func randomBytesHaveTheAskedLength(_ count: Int) throws {
        let random = try #require(Crypto.randomBytes(count))
        #expect(random.count == count)
    }

    @Test func randomBytesDoNotRepeat() throws {
        var seen = Set<[UInt8]>()
        for _ in 0..<1000 {
            seen.insert(try #require(Crypto.randomBytes(16)))
        }
        #expect(seen.count == 1000)
        // 32 random bytes are not all one value (probability 2^-248).
        let secret = try #require(Crypto.randomBytes(32))
        #expect(Set(secret).count > 1)
    }

    @Test func hex() {
        #expect(Crypto.hex([UInt8]()) == "")
        #expect(Crypto.hex([0x00, 0x0F, 0xF0, 0xFF, 0xA5]) == "000ff0ffa5")
        let all = Crypto.hex(0...255)
        #expect(all.count == 512)
        #expect(all.hasPrefix("000102"))
        #expect(all.hasSuffix("fdfeff"))
        #expect(all == all.lowercased())
    }
}
