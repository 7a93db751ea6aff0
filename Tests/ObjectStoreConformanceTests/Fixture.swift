import Foundation
import HTTPTransport
import ObjectStore
import S3Client
import Synchronization
import TestSupport
import Testing

/// The stores every `ObjectClient` test here runs against.
enum Store: String, CaseIterable, CustomTestStringConvertible {
  /// `InMemoryObjectClient`, the fake the filesystem's own tests use.
  case memory
  case localDirectory
  /// `S3ObjectClient` on moto_server, a mock.
  case moto
  /// `S3ObjectClient` on Ceph's RADOS Gateway, a real S3 server (`scripts/rgw`).
  case rgw

  static let s3Servers: [Store] = [.moto, .rgw]

  var testDescription: String { rawValue }

  /// Whether the store can hold `key`. A local directory cannot: a key with an empty path component
  /// (`a//b`) names no file, and a key ending in `/` names a directory, which lists as a prefix.
  func holds(_ key: String) -> Bool {
    guard self == .localDirectory else { return true }
    return !key.hasSuffix("/") && !key.contains("//")
  }

  /// Whether pages are bounded at 1,000 entries by default, as S3 documents. A local directory
  /// answers in one page, because every page would read the directory again.
  var pagesByThousands: Bool { self != .localDirectory }
}

/// The objects every store is given, each written through the store's own back door (files, `put`,
/// signed PUTs), never through the client under test.
enum Fixture {
  static let big = (0..<100_000).map { UInt8(truncatingIfNeeded: ($0 &* 131 &+ 17) % 251) }
  static let tree = ["tree/p1/b1/j1.log", "tree/p1/b2/j2.log", "tree/p2/j3.log", "tree/top.log"]
  /// Keys that need escaping somewhere: in a URL path, in a query, in a listing's XML, or all three.
  /// `dir 100%/` holds a `%` not followed by two hex digits, which RGW echoes unescaped.
  static let names = [
    "names/with space.log", "names/plus+sign.log", "names/percent%41.log", "names/dir 100%/x.log",
    "names/utf8-é-日本.log", "names/amp&eq=q?.log", "names/a//b.log", "names/trail/",
  ]
  /// One more than S3's page of 1,000.
  static let many = (0...1000).map { "many/" + String(1_000_000 + $0).dropFirst(2) + ".log" }

  static var objects: [(key: String, bytes: [UInt8])] {
    [("data/big.log", big), ("data/empty.log", [])]
      + (tree + names.filter { !$0.hasSuffix("/") } + many).map {
        ($0, Array($0.utf8))
      } + [("names/trail/", [])]
  }

  static func bytes(of key: String) -> [UInt8]? { objects.first { $0.key == key }?.bytes }

  /// Runs `body` with a client for `store` holding the fixture; returns without calling it when the
  /// store's server is missing (a recorded failure under CI=true, a printed skip otherwise).
  static func with(_ store: Store, _ body: (any ObjectClient) throws -> Void) throws {
    switch store {
    case .memory:
      let client = InMemoryObjectClient()
      let now = Timestamp(seconds: Int64(Date().timeIntervalSince1970))
      for object in objects { client.put(object.key, object.bytes, lastModified: now) }
      try body(client)
    case .localDirectory:
      try withTemporaryDirectory { root in
        for object in objects where store.holds(object.key) {
          let path = root + "/" + object.key
          try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
          guard FileManager.default.createFile(atPath: path, contents: Data(object.bytes)) else {
            throw ServerError(message: "cannot write \(path)")
          }
        }
        try body(try LocalDirectoryClient(root: root))
      }
    case .moto:
      guard let moto = Moto.require() else { return }
      try body(try s3Client(bucket: try motoBucket.get(), endpoint: moto.endpoint, credentials: testCredentials))
    case .rgw:
      guard let rgw = RGW.require() else { return }
      try body(try s3Client(bucket: try rgwBucket.get(), endpoint: rgw.endpoint, credentials: rgw.credentials))
    }
  }

  /// One bucket per server for the whole run, seeded once: the fixture is only read.
  static let motoBucket = Result { () throws -> String in
    try seed(endpoint: try Moto.shared.get().endpoint, credentials: testCredentials)
  }
  static let rgwBucket = Result { () throws -> String in
    let rgw = try RGW.shared.get()
    return try seed(endpoint: rgw.endpoint, credentials: rgw.credentials)
  }

  /// A bucket per server for the tests that write, holding data/big.log only: the one above is
  /// only read, and its listings are asserted whole.
  static let motoWritableBucket = Result { () throws -> String in
    try seed(endpoint: try Moto.shared.get().endpoint, credentials: testCredentials, only: ["data/big.log"])
  }
  static let rgwWritableBucket = Result { () throws -> String in
    let rgw = try RGW.shared.get()
    return try seed(endpoint: rgw.endpoint, credentials: rgw.credentials, only: ["data/big.log"])
  }

  /// Runs `body` with a client of `store` that may be written: for S3, a bucket of its own.
  static func withWritable(_ store: Store, _ body: (any ObjectClient) throws -> Void) throws {
    switch store {
    case .memory, .localDirectory:
      try with(store, body)
    case .moto:
      guard let moto = Moto.require() else { return }
      try body(
        try s3Client(bucket: try motoWritableBucket.get(), endpoint: moto.endpoint, credentials: testCredentials))
    case .rgw:
      guard let rgw = RGW.require() else { return }
      try body(try s3Client(bucket: try rgwWritableBucket.get(), endpoint: rgw.endpoint, credentials: rgw.credentials))
    }
  }

  private static func seed(endpoint: String, credentials: AWSCredentials, only keys: Set<String>? = nil) throws
    -> String
  {
    let bucket = uniqueBucket("conformance")
    let seeder = Seeder(endpoint: endpoint, credentials: credentials)
    try seeder.createBucket(bucket)
    let objects = objects.filter { object in keys.map { $0.contains(object.key) } ?? true }
    let failures = Mutex<[String]>([])
    let lanes = 8
    DispatchQueue.concurrentPerform(iterations: lanes) { lane in
      for index in stride(from: lane, to: objects.count, by: lanes) {
        do {
          try seeder.putObject(bucket, objects[index].key, objects[index].bytes)
        } catch {
          failures.withLock { $0.append("\(objects[index].key): \(error)") }
        }
      }
    }
    if let first = failures.withLock({ $0.first }) {
      throw ServerError(message: "seeding \(endpoint) failed: \(first)")
    }
    return bucket
  }

  static func s3Client(
    bucket: String, endpoint: String, credentials: AWSCredentials, maxAttempts: Int = 3
  ) throws -> S3ObjectClient {
    try S3ObjectClient(
      configuration: S3Configuration(
        bucket: bucket, endpoint: endpoint, credentials: credentials,
        timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 30), maxAttempts: maxAttempts, retryBaseDelay: 0.02,
        retryMaxDelay: 0.2))
  }

  /// The server and credentials of an S3 store, or nil (after the CI check) when it is missing.
  static func server(_ store: Store) -> (endpoint: String, credentials: AWSCredentials)? {
    switch store {
    case .moto: Moto.require().map { ($0.endpoint, testCredentials) }
    case .rgw: RGW.require().map { ($0.endpoint, $0.credentials) }
    case .memory, .localDirectory: nil
    }
  }
}
