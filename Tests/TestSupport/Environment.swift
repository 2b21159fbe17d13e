import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Paths, temp dirs, files and blocking work for the end-to-end tests, in one place.
public enum TestEnvironment {
    /// The package root: the first parent of this file that holds Package.swift.
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
            url = url.deletingLastPathComponent()
        }
        return "/nonexistent-package-root"
    }()

    /// A fresh, empty directory of our own under the system temp dir.
    public static func makeTempDir(_ label: String = "test") throws -> String {
        var template = Array((NSTemporaryDirectory() + "/myosicam-\(label)-XXXXXX").utf8CString)
        let made: String? = template.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress, mkdtemp(base) != nil else {
                return nil
            }
            return String(cString: base)
        }
        guard let made else {
            throw TestEnvironmentError("mkdtemp failed: errno \(errno)")
        }
        return URL(fileURLWithPath: made).standardizedFileURL.path
    }

    public static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    public static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    public static func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// Runs blocking work on a Dispatch thread and awaits it, so blocking calls never hold the
    /// small cooperative pool that parallel tests share.
    public static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try work() })
            }
        }
    }
}

public struct TestEnvironmentError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// A loopback TCP port bound (not listening) by this process until `release()`, so parallel
/// tests cannot pick the same one; connecting to it is refused.
public final class ReservedPort {
    public let port: Int
    private var fd: Int32

    /// Ports handed out in this test process; the kernel may hand a just-released port out
    /// again, and two parallel tests must not get the same one.
    private static let handedOut = Mutex<Set<Int>>([])

    public init(ipv6: Bool = false) throws {
        for _ in 0..<50 {
            let socketFD = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard socketFD >= 0 else {
                throw TestEnvironmentError("socket() failed: errno \(errno)")
            }
            var bound: Int?
            if ipv6 {
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_addr = in6addr_loopback
                address.sin6_port = 0
                bound = Self.bindAndName(socketFD, &address)
            } else {
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                address.sin_port = 0
                bound = Self.bindAndName(socketFD, &address)
            }
            guard let port = bound else {
                close(socketFD)
                throw TestEnvironmentError("bind() to a loopback port failed: errno \(errno)")
            }
            if Self.handedOut.withLock({ $0.insert(port).inserted }) {
                self.port = port
                fd = socketFD
                return
            }
            close(socketFD)
        }
        throw TestEnvironmentError("no fresh loopback port after 50 tries")
    }

    private static func bindAndName<Address>(_ fd: Int32, _ address: inout Address) -> Int? {
        let size = socklen_t(MemoryLayout<Address>.size)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) }
        }
        guard result == 0 else {
            return nil
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            return nil
        }
        // sin_port and sin6_port sit at the same offset, in network byte order.
        let raw = withUnsafeBytes(of: &storage) { bytes in
            UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        }
        return Int(raw)
    }

    public func release() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }

    deinit {
        release()
    }
}
