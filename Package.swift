// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top; each imports only the ones below it, so a loop is a build error:
//   C system libraries (CZstd, COpenSSL, CCurl, CProcessHardening): each imported by one Swift file only
//   CNBackupCore     errors, byte streams and channels, zstd, the OpenSSL wrapper, keys, the sealed format
//   CNBackupHTTP     the libcurl client and the one retry policy every network caller uses
//   CNBackupStorage  the ObjectStore protocol and its guarantees, the file store, S3, store decorators
//   CNBackupProcess  child processes: launch, stream, reap, kill with their groups
//   CNBackupPostgres everything that talks to PostgreSQL: connections, pass files, client lookup,
//                    scratch and created databases, archive reading and row counting
//   CNBackupCatalog  what a store holds: layout, manifest, signatures, committer, component
//                    reader, incremental chains, the barrier rule, drill receipts
//   CNBackup         the operations: pipeline definition, capture, backup, verify, restore, drill,
//                    recover, retention, metrics, copy
//   cnbackup-cli     the `cnbackup` executable: flags, output, signals, process set-up
//   CNBackupTesting  stores for tests only (in memory, fault-injecting), a product for Fuzz/ alone
//   CNBackupTestKit  the conformance suite, the SeaweedFS fixture and test helpers: in no product
// Symbols that cross a layer without being public API use `package` access.
let package = Package(
    name: "cnbackup",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "CNBackup", targets: ["CNBackupCore", "CNBackupHTTP", "CNBackupStorage", "CNBackupProcess",
                                             "CNBackupPostgres", "CNBackupCatalog", "CNBackup"]),
        .executable(name: "cnbackup", targets: ["cnbackup-cli"]),
        .executable(name: "cnbackup-bench", targets: ["cnbackup-bench"]),
        // For the fuzz package (Fuzz/) only: stores for tests, not part of the CNBackup library.
        .library(name: "CNBackupTesting", targets: ["CNBackupTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CProcessHardening"),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CNBackupCore", dependencies: ["CZstd", "COpenSSL"]),
        .target(name: "CNBackupHTTP", dependencies: ["CNBackupCore", "CCurl"]),
        .target(
            name: "CNBackupStorage",
            dependencies: ["CNBackupCore", "CNBackupHTTP"]
        ),
        .target(name: "CNBackupProcess", dependencies: ["CNBackupCore"]),
        .target(name: "CNBackupPostgres", dependencies: ["CNBackupCore", "CNBackupProcess"]),
        .target(name: "CNBackupCatalog", dependencies: ["CNBackupCore", "CNBackupStorage"]),
        .target(
            name: "CNBackup",
            dependencies: [
                "CNBackupCore", "CNBackupHTTP", "CNBackupStorage", "CNBackupProcess", "CNBackupPostgres", "CNBackupCatalog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "cnbackup-cli",
            dependencies: [
                "CNBackupCore", "CNBackupStorage", "CNBackupProcess", "CNBackupPostgres", "CNBackupCatalog", "CNBackup", "CProcessHardening",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // scripts/bench.sh: times the retention planner over 100,000 synthetic sets.
        .executableTarget(name: "cnbackup-bench", dependencies: ["CNBackupCore", "CNBackupPostgres", "CNBackupCatalog", "CNBackup"]),
        // Stores for tests (in memory; fault-injecting): not in any product.
        .target(name: "CNBackupTesting", dependencies: ["CNBackupCore", "CNBackupStorage"]),
        // Ignores SIGPIPE in the test process, as the executable does (a C constructor).
        .target(name: "TestProcessSetup", path: "Tests/TestProcessSetup"),
        // Test support, in no product: the ObjectStore conformance suite (it imports Testing), the
        // SeaweedFS fixture and small helpers, for every store's tests to reuse.
        .target(
            name: "CNBackupTestKit",
            dependencies: ["CNBackupCore", "CNBackupHTTP", "CNBackupStorage", "CNBackupTesting"],
            path: "Tests/CNBackupTestKit"
        ),
        // One unit-test target per library target, importing only that layer and those below it.
        .testTarget(name: "CNBackupCoreTests", dependencies: ["CNBackupCore", "CNBackupTestKit", "TestProcessSetup"],
                    resources: [.copy("Resources")]),
        .testTarget(name: "CNBackupHTTPTests", dependencies: ["CNBackupCore", "CNBackupHTTP", "TestProcessSetup"]),
        .testTarget(name: "CNBackupStorageTests",
                    dependencies: ["CNBackupCore", "CNBackupHTTP", "CNBackupStorage", "CNBackupTesting", "CNBackupTestKit", "TestProcessSetup"],
                    resources: [.copy("Resources")]),
        .testTarget(name: "CNBackupProcessTests", dependencies: ["CNBackupCore", "CNBackupProcess", "TestProcessSetup"]),
        .testTarget(name: "CNBackupPostgresTests",
                    dependencies: ["CNBackupCore", "CNBackupProcess", "CNBackupPostgres", "CNBackupTestKit", "TestProcessSetup"]),
        .testTarget(name: "CNBackupCatalogTests",
                    dependencies: ["CNBackupCore", "CNBackupStorage", "CNBackupCatalog", "CNBackupTesting", "CNBackupTestKit", "TestProcessSetup"]),
        .testTarget(
            name: "CNBackupTests",
            dependencies: ["CNBackupCore", "CNBackupHTTP", "CNBackupStorage", "CNBackupProcess", "CNBackupPostgres", "CNBackupCatalog",
                           "CNBackup", "CNBackupTesting", "CNBackupTestKit", "TestProcessSetup"],
            resources: [.copy("Resources")]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["CNBackupCore", "CNBackupHTTP", "CNBackupStorage", "CNBackupProcess", "CNBackupPostgres", "CNBackupCatalog",
                           "CNBackup", "CNBackupTesting", "TestProcessSetup"],
            resources: [.copy("Resources")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
