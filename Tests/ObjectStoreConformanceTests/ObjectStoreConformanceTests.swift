import Foundation
import ObjectStore
import S3Client
import TestSupport
import Testing

/// What every `ObjectClient` must do, checked the same way on each store: the fakes the other tests
/// stand on must answer as S3 does, and the S3 client as a real S3 server (RGW) expects. Where the
/// stores differ, S3's documented behaviour is the reference.
@Suite struct ObjectStoreConformanceTests {
  /// The shared block cache's calls, on the stores that can be written (all but a local directory).
  @Test(arguments: Store.allCases)
  func writtenObjectsAreReadBackWhole(_ store: Store) throws {
    try Fixture.withWritable(store) { client throws in
      guard let writable = client as? any WritableObjectClient else {
        #expect(store == .localDirectory)
        return
      }
      let key = "shared/bklogfs-blocks/v1/" + String(repeating: "ab", count: 32)
      #expect(try writable.getObject(key: key, limit: 1 << 20) == nil)
      try writable.put(key: key, bytes: Fixture.big)
      #expect(try writable.getObject(key: key, limit: 1 << 20) == Fixture.big)
      #expect(try writable.getBytes(key: key, range: 10..<20) == Array(Fixture.big[10..<20]))
      // Written again: replaced whole.
      try writable.put(key: key, bytes: [1, 2, 3])
      #expect(try writable.getObject(key: key, limit: 1 << 20) == [1, 2, 3])
      #expect(try writable.listAll(prefix: "shared/", delimiter: nil).objects.map(\.key) == [key])
      let tooLong = #expect(throws: ObjectStoreError.self) {
        try writable.getObject(key: "data/big.log", limit: 1000)
      }
      #expect(tooLong?.kind == .invalidResponse)
    }
  }

  @Test(arguments: Store.allCases)
  func listingWithADelimiter(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let root = try client.listAll(prefix: "", delimiter: "/")
      #expect(root.commonPrefixes == ["data/", "many/", "names/", "tree/"])
      #expect(root.objects.isEmpty)

      let tree = try client.listAll(prefix: "tree/", delimiter: "/")
      #expect(tree.commonPrefixes == ["tree/p1/", "tree/p2/"])
      #expect(tree.objects.map(\.key) == ["tree/top.log"])
      #expect(tree.objects.first?.size == UInt64("tree/top.log".utf8.count))

      // A prefix that ends inside a path component.
      let partial = try client.listAll(prefix: "tree/p", delimiter: "/")
      #expect(partial.commonPrefixes == ["tree/p1/", "tree/p2/"])
      #expect(partial.objects.isEmpty)

      let nothing = try client.listAll(prefix: "absent/", delimiter: "/")
      #expect(nothing.objects.isEmpty && nothing.commonPrefixes.isEmpty)
    }
  }

  @Test(arguments: Store.allCases)
  func listingWithoutADelimiter(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let tree = try client.listAll(prefix: "tree/", delimiter: nil)
      #expect(tree.commonPrefixes.isEmpty)
      #expect(tree.objects.map(\.key) == Fixture.tree)
      for object in tree.objects {
        #expect(object.size == UInt64(object.key.utf8.count), "\(object.key)")
        #expect(!object.etag.isEmpty, "\(object.key)")
      }
    }
  }

  @Test(arguments: Store.allCases)
  func paginationPastAThousandKeys(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let first = try client.listPage(ListRequest(prefix: "many/", delimiter: nil))
      if store.pagesByThousands {
        #expect(first.objects.count == 1000)
        #expect(first.nextContinuationToken != nil)
      }
      #expect(try client.listAll(prefix: "many/", delimiter: nil).objects.map(\.key) == Fixture.many)

      let small = try pages(client, ListRequest(prefix: "many/", delimiter: nil, maxKeys: 400))
      #expect(small.map(\.objects.count) == [400, 400, 201])
      #expect(small.flatMap(\.objects).map(\.key) == Fixture.many)

      // Pages of one entry, common prefixes among them.
      let rolled = try pages(client, ListRequest(prefix: "", delimiter: "/", maxKeys: 1))
      #expect(rolled.count == 4)
      #expect(rolled.flatMap(\.commonPrefixes) == ["data/", "many/", "names/", "tree/"])
    }
  }

  @Test(arguments: Store.allCases)
  func startAfter(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let tail = try client.listPage(ListRequest(prefix: "many/", delimiter: nil, startAfter: "many/00995.log"))
      #expect(tail.objects.map(\.key) == Array(Fixture.many.suffix(5)))
      #expect(tail.nextContinuationToken == nil)

      let tree = try client.listPage(ListRequest(prefix: "tree/", delimiter: nil, startAfter: "tree/p1/b2/j2.log"))
      #expect(tree.objects.map(\.key) == ["tree/p2/j3.log", "tree/top.log"])

      // A start-after that is no key, and one holding a '%' that is no escape (RGW echoes it raw).
      let between = try client.listPage(ListRequest(prefix: "tree/", delimiter: nil, startAfter: "tree/p1/b1/zzz"))
      #expect(between.objects.map(\.key) == ["tree/p1/b2/j2.log", "tree/p2/j3.log", "tree/top.log"])
      let percent = try client.listPage(
        ListRequest(prefix: "names/", delimiter: nil, startAfter: "names/dir 100%/x.log"))
      let expected = Fixture.names.filter { store.holds($0) && utf8Less("names/dir 100%/x.log", $0) }
      #expect(percent.objects.map(\.key) == expected.sorted(by: utf8Less))
    }
  }

  /// Space, '+', '%' (a valid escape's look-alike and a bare one), non-ASCII, '&', '=', '?', an
  /// empty path component and a trailing '/', as far as the store can hold them (`Store.holds`).
  @Test(arguments: Store.allCases)
  func awkwardNames(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let held = Fixture.names.filter { store.holds($0) }
      let listed = try client.listAll(prefix: "names/", delimiter: nil)
      #expect(listed.objects.map(\.key) == held.sorted(by: utf8Less))
      #expect(listed.undecodableKeys.isEmpty)
      for key in held {
        let bytes = Fixture.bytes(of: key) ?? []
        let info = try client.head(key: key)
        #expect(info.size == UInt64(bytes.count), "\(key)")
        #expect(try client.getBytes(key: key, range: 0..<info.size) == bytes, "\(key)")
      }

      // Continuation tokens that are (on RGW) these very keys, passed back one page at a time.
      let single = try pages(client, ListRequest(prefix: "names/", delimiter: nil, maxKeys: 1))
      #expect(single.flatMap(\.objects).map(\.key) == held.sorted(by: utf8Less))

      let rolled = try client.listAll(prefix: "names/", delimiter: "/")
      let expectedPrefixes = ["names/a/", "names/dir 100%/", "names/trail/"].filter { prefix in
        held.contains { $0.hasPrefix(prefix) }
      }
      #expect(rolled.commonPrefixes == expectedPrefixes)
      #expect(rolled.objects.map(\.key) == held.filter { !$0.dropFirst(6).contains("/") }.sorted(by: utf8Less))

      // Prefixes that need escaping, echoed back by the server.
      let percent = try client.listAll(prefix: "names/dir 100%/", delimiter: "/")
      #expect(percent.objects.map(\.key) == ["names/dir 100%/x.log"])
      let plus = try client.listAll(prefix: "names/plus+", delimiter: "/")
      #expect(plus.objects.map(\.key) == ["names/plus+sign.log"])
      let utf8 = try client.listAll(prefix: "names/utf8-é", delimiter: "/")
      #expect(utf8.objects.map(\.key) == ["names/utf8-é-日本.log"])
      if store.holds("names/a//b.log") {
        let slashes = try client.listAll(prefix: "names/a/", delimiter: "/")
        #expect(slashes.commonPrefixes == ["names/a//"])
        #expect(try client.listAll(prefix: "names/a//", delimiter: "/").objects.map(\.key) == ["names/a//b.log"])
      }
    }
  }

  @Test(arguments: Store.allCases)
  func emptyObjects(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let info = try client.head(key: "data/empty.log")
      #expect(info.size == 0)
      #expect(try client.getBytes(key: "data/empty.log", range: 0..<0) == [])
      let listed = try client.listAll(prefix: "data/", delimiter: "/")
      #expect(listed.objects.map(\.key) == ["data/big.log", "data/empty.log"])
      #expect(listed.objects.last?.size == 0)
      let pastEnd = #expect(throws: ObjectStoreError.self) { try client.getBytes(key: "data/empty.log", range: 0..<1) }
      #expect(pastEnd?.kind == .invalidRequest)
    }
  }

  @Test(arguments: Store.allCases)
  func ranges(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let big = Fixture.big
      let size = UInt64(big.count)
      #expect(try client.getBytes(key: "data/big.log", range: 1000..<50_000) == Array(big[1000..<50_000]))
      #expect(try client.getBytes(key: "data/big.log", range: 0..<size) == big)
      // Ranges that end at the last byte (what a suffix-only store serves).
      #expect(try client.getBytes(key: "data/big.log", range: 90_000..<size) == Array(big[90_000...]))
      #expect(try client.getBytes(key: "data/big.log", range: size - 1..<size) == [big.last!])
      #expect(try client.getBytes(key: "data/big.log", range: 10..<10) == [])

      // Past the end is the caller's mistake (S3 answers 416), whole or in part.
      for range in [size..<size + 10, size + 1000..<size + 2000, size - 10..<size + 10] {
        let error = #expect(throws: ObjectStoreError.self) { try client.getBytes(key: "data/big.log", range: range) }
        #expect(error?.kind == .invalidRequest, "\(range)")
      }
    }
  }

  @Test(arguments: Store.allCases)
  func ifMatch(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let info = try client.head(key: "data/big.log")
      #expect(try client.getBytes(key: "data/big.log", range: 5..<9, ifMatch: info.etag) == Array(Fixture.big[5..<9]))
      let changed = #expect(throws: ObjectStoreError.self) {
        try client.getBytes(key: "data/big.log", range: 0..<10, ifMatch: "\"0123456789abcdef0123456789abcdef\"")
      }
      #expect(changed?.kind == .preconditionFailed)
    }
  }

  @Test(arguments: Store.allCases)
  func head(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let info = try client.head(key: "data/big.log")
      #expect(info.key == "data/big.log")
      #expect(info.size == UInt64(Fixture.big.count))
      #expect(info.etag.count > 2 && info.etag.hasPrefix("\"") && info.etag.hasSuffix("\""))
      #expect(abs(Double(info.lastModified.seconds) - Date().timeIntervalSince1970) < 3600)
      // The listing describes the same object (S3 lists times to the millisecond, HEAD to the second).
      let listed = try client.listAll(prefix: "data/big", delimiter: "/").objects
      #expect(listed.map(\.etag) == [info.etag])
      #expect(listed.map(\.size) == [info.size])
      #expect(listed.map(\.lastModified.seconds) == [info.lastModified.seconds])
    }
  }

  @Test(arguments: Store.allCases)
  func missingKey(_ store: Store) throws {
    try Fixture.with(store) { client throws in
      let headError = #expect(throws: ObjectStoreError.self) { try client.head(key: "data/absent.log") }
      #expect(headError?.kind == .notFound)
      let getError = #expect(throws: ObjectStoreError.self) {
        try client.getBytes(key: "data/absent.log", range: 0..<10)
      }
      #expect(getError?.kind == .notFound)
      // A key that is a prefix of others is no object.
      let prefixError = #expect(throws: ObjectStoreError.self) { try client.head(key: "tree/p1") }
      #expect(prefixError?.kind == .notFound)
    }
  }

  /// The in-memory store has no buckets; a local directory's bucket is its root, checked when the
  /// client is made.
  @Test(arguments: [Store.localDirectory, .moto, .rgw])
  func missingBucket(_ store: Store) throws {
    if store == .localDirectory {
      let error = #expect(throws: ObjectStoreError.self) {
        try LocalDirectoryClient(root: "/nonexistent-\(UUID().uuidString)")
      }
      #expect(error?.kind == .notFound)
      return
    }
    guard let server = Fixture.server(store) else { return }
    let client = try Fixture.s3Client(
      bucket: uniqueBucket("absent"), endpoint: server.endpoint, credentials: server.credentials)
    let listError = #expect(throws: ObjectStoreError.self) { try client.listPage(ListRequest(prefix: "")) }
    #expect(listError?.kind == .noSuchBucket)
    let getError = #expect(throws: ObjectStoreError.self) { try client.getBytes(key: "a.log", range: 0..<10) }
    #expect(getError?.kind == .noSuchBucket)
    // A HEAD's 404 has no body to tell a missing bucket from a missing key.
    let headError = #expect(throws: ObjectStoreError.self) { try client.head(key: "a.log") }
    #expect(headError?.kind == .notFound)
  }

  /// Checked on RGW only: moto in its default mode accepts any signature (SignatureVerificationTests
  /// runs the signer against moto with its IAM checks switched on).
  @Test(arguments: [Store.rgw])
  func wrongCredentials(_ store: Store) throws {
    guard let server = Fixture.server(store) else { return }
    let bucket = try Fixture.rgwBucket.get()
    let good = server.credentials
    let cases = [
      (
        "SignatureDoesNotMatch",
        AWSCredentials(accessKeyID: good.accessKeyID, secretAccessKey: good.secretAccessKey + "x")
      ),
      (
        "InvalidAccessKeyId", AWSCredentials(accessKeyID: "AKIDNOSUCHKEY0000000", secretAccessKey: good.secretAccessKey)
      ),
    ]
    for (code, credentials) in cases {
      let client = try Fixture.s3Client(bucket: bucket, endpoint: server.endpoint, credentials: credentials)
      let listError = #expect(throws: ObjectStoreError.self) { try client.listPage(ListRequest(prefix: "")) }
      #expect(listError?.kind == .accessDenied, "\(code)")
      #expect(listError?.message.contains(code) == true, "\(listError?.message ?? "")")
      // RGW's <Message> is empty: the client's own hint says which key is wrong, and where it is set.
      #expect(listError?.message.contains("key is probably wrong") == true, "\(listError?.message ?? "")")
      #expect(listError?.message.contains("check AWS_") == true, "\(listError?.message ?? "")")
      let getError = #expect(throws: ObjectStoreError.self) { try client.getBytes(key: "data/big.log", range: 0..<10) }
      #expect(getError?.kind == .accessDenied, "\(code)")
      let headError = #expect(throws: ObjectStoreError.self) { try client.head(key: "data/big.log") }
      #expect(headError?.kind == .accessDenied, "\(code)")
      for error in [listError, getError, headError] {
        #expect(error?.message.contains(good.secretAccessKey) == false)
      }
    }
  }

  /// Every page of `request`'s listing, in order.
  private func pages(_ client: any ObjectClient, _ request: ListRequest) throws -> [ListPage] {
    var request = request
    var all: [ListPage] = []
    while true {
      let page = try client.listPage(request)
      if let maxKeys = request.maxKeys { #expect(page.objects.count + page.commonPrefixes.count <= maxKeys) }
      all.append(page)
      guard let token = page.nextContinuationToken, all.count <= 2000 else { return all }
      request.continuationToken = token
    }
  }
}
