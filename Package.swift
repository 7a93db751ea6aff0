// swift-tools-version: 6.1
import PackageDescription

// Layers, each depending only on those listed before it (doc/ARCHITECTURE.md draws the graph):
//   C shims (CFuse, CCurl, CCrypto, CSQLite, CLinux)
//   SystemBase                    — system calls (on swift-system), threads, the clock, latency histograms, the calendar and ISO 8601
//   LogText                       — a job log as plain text (what a terminal finally shows)
//   Digests                       — hashes, checksums and gzip over libcrypto and zlib
//   HTTPTransport                 — libcurl transfers with timeouts, and the one retry engine
//   ObjectStore                   — the object-client protocol, its errors and the local-directory client
//   S3Client                      — SigV4, ListObjectsV2, ranged GET over HTTPTransport
//   BlockCache                    — memory and disk block caches
//   BuildkiteAPI                  — the Buildkite REST client over HTTPTransport
//   Catalog                       — names learned from Buildkite, kept in SQLite
//   LogFS                         — the filesystem core (no FUSE types)
//   BuildkiteNames                — the org/pipeline/build/job tree, a LogFS namespace
//   FuseAdapter                   — libfuse low-level callbacks over LogFS
//   bklogfs                       — the command line
let strictSettings: [SwiftSetting] = [
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
  name: "bklogfs",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "bklogfs", targets: ["bklogfs"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
  ],
  targets: [
    .systemLibrary(name: "CFuse", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
    .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
    .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
    .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto zlib", providers: [.apt(["libssl-dev", "zlib1g-dev"])]),

    .target(name: "CLinux"),

    .target(
      name: "SystemBase", dependencies: ["CLinux", .product(name: "SystemPackage", package: "swift-system")],
      swiftSettings: strictSettings),
    .target(name: "LogText", dependencies: ["SystemBase"], swiftSettings: strictSettings),
    .target(name: "Digests", dependencies: ["CCrypto"], swiftSettings: strictSettings),
    .target(
      name: "HTTPTransport",
      dependencies: ["CCurl", "SystemBase", .product(name: "Logging", package: "swift-log")],
      swiftSettings: strictSettings),
    .target(
      name: "ObjectStore",
      dependencies: [
        "SystemBase", .product(name: "SystemPackage", package: "swift-system"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
    .target(
      name: "S3Client",
      dependencies: [
        "Digests", "HTTPTransport", "ObjectStore", "SystemBase", .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
    .target(
      name: "BuildkiteAPI",
      dependencies: ["HTTPTransport", "SystemBase", .product(name: "Logging", package: "swift-log")],
      swiftSettings: strictSettings),
    .target(
      name: "Catalog",
      dependencies: [
        "CSQLite", "Digests", "SystemBase", .product(name: "SystemPackage", package: "swift-system"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
    .target(
      name: "BlockCache",
      dependencies: [
        "Digests", "ObjectStore", "SystemBase", .product(name: "SystemPackage", package: "swift-system"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
    .target(
      name: "LogFS",
      dependencies: [
        "ObjectStore", "BlockCache", "Digests", "LogText", "SystemBase",
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
    .target(
      name: "BuildkiteNames",
      dependencies: [
        "LogFS", "BuildkiteAPI", "Catalog", "ObjectStore", "Digests", "SystemBase",
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
    .target(
      name: "FuseAdapter",
      dependencies: ["CFuse", "LogFS", "ObjectStore", "SystemBase", .product(name: "Logging", package: "swift-log")],
      swiftSettings: strictSettings),
    .executableTarget(
      name: "bklogfs",
      dependencies: [
        "FuseAdapter", "LogFS", "LogText", "S3Client", "ObjectStore", "BlockCache", "HTTPTransport", "BuildkiteNames",
        "BuildkiteAPI", "Catalog", "SystemBase", .product(name: "SystemPackage", package: "swift-system"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),

    // Helpers shared by test targets (the in-memory object store and the fault-injecting wrapper,
    // child servers on loopback, moto_server, RGW, S3 seeding, test data); only test targets depend
    // on it, so none of it ships in the binary.
    .target(
      name: "TestSupport",
      dependencies: [
        "HTTPTransport", "ObjectStore", "S3Client", "Digests", "SystemBase",
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Tests/TestSupport", swiftSettings: strictSettings),

    .testTarget(
      name: "TestSupportTests", dependencies: ["TestSupport", "ObjectStore", "SystemBase"],
      swiftSettings: strictSettings),

    .testTarget(
      name: "SystemBaseTests",
      dependencies: ["SystemBase", "TestSupport", .product(name: "SystemPackage", package: "swift-system")],
      swiftSettings: strictSettings),
    .testTarget(name: "LogTextTests", dependencies: ["LogText", "TestSupport"], swiftSettings: strictSettings),
    .testTarget(name: "DigestsTests", dependencies: ["Digests", "TestSupport"], swiftSettings: strictSettings),
    .testTarget(
      name: "HTTPTransportTests",
      dependencies: ["HTTPTransport", "SystemBase", "TestSupport", .product(name: "Logging", package: "swift-log")],
      swiftSettings: strictSettings),
    .testTarget(
      name: "S3ClientTests",
      dependencies: ["S3Client", "ObjectStore", "HTTPTransport", "Digests", "SystemBase", "TestSupport"],
      swiftSettings: strictSettings),
    // One suite every ObjectClient must pass: the in-memory fake, a local directory, S3 on moto_server
    // and S3 on Ceph's RADOS Gateway (scripts/rgw).
    .testTarget(
      name: "ObjectStoreConformanceTests",
      dependencies: ["ObjectStore", "S3Client", "HTTPTransport", "TestSupport"], swiftSettings: strictSettings),
    .testTarget(
      name: "BuildkiteAPITests",
      dependencies: [
        "BuildkiteAPI", "HTTPTransport", "SystemBase", "TestSupport", .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
    .testTarget(
      name: "BuildkiteNamesTests",
      dependencies: [
        "BuildkiteNames", "BuildkiteAPI", "Catalog", "LogFS", "ObjectStore", "BlockCache", "HTTPTransport",
        "SystemBase",
        "TestSupport",
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
    .testTarget(
      name: "CatalogTests",
      dependencies: ["Catalog", "TestSupport", .product(name: "Logging", package: "swift-log")],
      swiftSettings: strictSettings),
    .testTarget(
      name: "BlockCacheTests",
      dependencies: [
        "BlockCache", "Digests", "ObjectStore", "TestSupport", .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
    .testTarget(
      name: "LogFSTests",
      dependencies: [
        "LogFS", "LogText", "ObjectStore", "BlockCache", "SystemBase", "TestSupport",
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSettings),
  ]
)

// Fuzz targets (Fuzz/), one per parser family of server and disk input, run by scripts/fuzz. They
// exist only when BKLOGFS_FUZZ=1, because they link libFuzzer's driver and so build only with
// `-sanitize=fuzzer` (into their own build path); a plain `swift build` or `swift test` never sees them.
if Context.environment["BKLOGFS_FUZZ"] == "1" {
  package.targets += [
    .target(name: "FuzzDriver", path: "Fuzz/FuzzDriver", swiftSettings: strictSettings),
    .executableTarget(
      name: "FuzzS3XML", dependencies: ["FuzzDriver", "S3Client", "ObjectStore"], path: "Fuzz/FuzzS3XML",
      swiftSettings: strictSettings),
    .executableTarget(
      name: "FuzzBuildkiteJSON", dependencies: ["FuzzDriver", "BuildkiteAPI", "SystemBase"],
      path: "Fuzz/FuzzBuildkiteJSON", swiftSettings: strictSettings),
    .executableTarget(
      name: "FuzzGzip", dependencies: ["FuzzDriver", "Digests"], path: "Fuzz/FuzzGzip", swiftSettings: strictSettings),
    .executableTarget(
      name: "FuzzPlainText", dependencies: ["FuzzDriver", "LogText"], path: "Fuzz/FuzzPlainText",
      swiftSettings: strictSettings),
    .executableTarget(
      name: "FuzzBlockFile",
      dependencies: ["FuzzDriver", "BlockCache", .product(name: "Logging", package: "swift-log")],
      path: "Fuzz/FuzzBlockFile",
      swiftSettings: strictSettings),
  ]
}
