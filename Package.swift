// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top: C system libraries (CZstd, COpenSSL, CCurl) -> the CNBackup library,
// where only the Swift file that wraps a C library imports it -> the thin `cnbackup` executable.
let package = Package(
    name: "cnbackup",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "CNBackup", targets: ["CNBackup"]),
        .executable(name: "cnbackup", targets: ["cnbackup-cli"]),
        .executable(name: "cnbackup-bench", targets: ["cnbackup-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CMalloc"),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(
            name: "CNBackup",
            dependencies: [
                "CZstd", "COpenSSL", "CCurl", "CMalloc",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "cnbackup-cli",
            dependencies: [
                "CNBackup",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // scripts/bench.sh: times the retention planner over 100,000 synthetic sets.
        .executableTarget(name: "cnbackup-bench", dependencies: ["CNBackup"]),
        .testTarget(
            name: "CNBackupTests",
            dependencies: ["CNBackup"],
            resources: [.copy("Resources")]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["CNBackup"],
            resources: [.copy("Resources")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
