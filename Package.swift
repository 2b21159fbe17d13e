// swift-tools-version:6.0
import PackageDescription

// Strict concurrency is the Swift 6 language mode's default; warnings are errors in CI through
// `make test` (-warnings-as-errors), so the zero-warning rule is enforced, not hoped for.
let package = Package(
    name: "myosicam-agent",
    products: [
        .executable(name: "myosicam-agent", targets: ["Runner"])
    ],
    targets: [
        // System libraries: libcurl (HTTP/TLS) and libcrypto (SHA-256, HMAC, RAND_bytes).
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // Contracts and the snapshot model. Depends on nothing of ours.
        .target(name: "Pipeline"),
        // OScam's own world: file formats, list syntaxes, oscam.version, discovery. Depends on nothing of ours.
        .target(name: "OScam"),
        // Small wrappers over the system libraries, shared by collectors (WebIF) and sinks (panel).
        .target(name: "Platform", dependencies: ["CCurl", "CCrypto"]),
        .target(name: "Collectors", dependencies: ["Pipeline", "OScam", "Platform"]),
        .target(name: "Sinks", dependencies: ["Pipeline", "Platform"]),
        .executableTarget(name: "Runner", dependencies: ["Pipeline", "OScam", "Collectors", "Sinks", "Platform"]),
        // `make bench` only; not shipped.
        .executableTarget(name: "Bench", dependencies: ["Pipeline", "OScam", "Collectors", "Platform"]),

        .target(name: "TestSupport", dependencies: ["Pipeline", "OScam"], path: "Tests/TestSupport"),
        .testTarget(name: "OScamTests", dependencies: ["OScam", "TestSupport"], exclude: ["testdata"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "TestSupport"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform"]),
        .testTarget(name: "CollectorsTests", dependencies: ["Collectors", "TestSupport"], exclude: ["testdata"]),
        .testTarget(name: "SinksTests", dependencies: ["Sinks", "TestSupport"]),
        .testTarget(name: "RunnerTests", dependencies: ["Runner", "TestSupport"], exclude: ["testdata"]),
    ],
    swiftLanguageModes: [.v6]
)
