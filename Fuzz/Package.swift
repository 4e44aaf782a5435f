// swift-tools-version:6.0
import PackageDescription

// libFuzzer targets for the readers of untrusted bytes (README.md, "Fuzzing"). Kept out of the root
// package: each target's main hands its LLVMFuzzerTestOneInput to libFuzzer's driver, so it only
// links with -sanitize=fuzzer (which brings libFuzzer). Build and run them with scripts/fuzz.sh.
let package = Package(
    name: "cnbackup-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "cnbackup", path: ".."),
    ],
    targets: [
        .systemLibrary(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer", .product(name: "CNBackup", package: "cnbackup")]),
        .executableTarget(name: "FuzzSealedReader",
                          dependencies: ["FuzzSupport", .product(name: "CNBackup", package: "cnbackup")]),
        .executableTarget(name: "FuzzManifest",
                          dependencies: ["FuzzSupport", .product(name: "CNBackup", package: "cnbackup"),
                                         .product(name: "CNBackupTesting", package: "cnbackup")]),
        .executableTarget(name: "FuzzS3XML",
                          dependencies: ["FuzzSupport", .product(name: "CNBackupTesting", package: "cnbackup")]),
        .executableTarget(name: "FuzzPipelineDefinition",
                          dependencies: ["FuzzSupport", .product(name: "CNBackup", package: "cnbackup")]),
    ],
    swiftLanguageModes: [.v6]
)
