import Foundation
import HTTPTransport
import ObjectStore
import S3Client
import SystemBase
import TestSupport
import Testing

/// Integration tests against a real `moto_server` on loopback (and fault proxies in front of it).
@Suite struct S3ObjectClientTests {
  func client(
    _ bucket: String, endpoint: String, maxAttempts: Int = 5, region: String = "us-east-1",
    credentials: AWSCredentials? = testCredentials
  ) throws -> S3ObjectClient {
    try S3ObjectClient(
      configuration: S3Configuration(
        bucket: bucket, region: region, endpoint: endpoint, credentials: credentials,
        timeouts: HTTPTimeouts(connect: 2, stall: 5, total: 20), maxAttempts: maxAttempts, retryBaseDelay: 0.02,
        retryMaxDelay: 0.2))
  }

  /// moto with a new bucket holding `a.log`; nil when moto is missing (the test is then skipped).
  func bucketWithALog(
    _ name: String, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation
  ) throws -> (moto: ChildServer, bucket: String)? {
    guard let moto = Moto.require(sourceLocation: sourceLocation) else { return nil }
    let bucket = uniqueBucket(name)
    let seed = Seeder(endpoint: moto.endpoint)
    try seed.createBucket(bucket)
    try seed.putObject(bucket, "a.log", bytes)
    return (moto, bucket)
  }

  @Test func listWithDelimiterAndContinuation() throws {
    guard let moto = Moto.require() else { return }
    let bucket = uniqueBucket("list")
    let seed = Seeder(endpoint: moto.endpoint)
    try seed.createBucket(bucket)
    let keys =
      ["org/p1/b1/j1.log", "org/p1/b1/j2.log", "org/p1/b2/j3.log", "org/p2/b3/j4.log", "org/top.log"]
      + (0..<9).map { "flat/\($0).log" }
    for key in keys { try seed.putObject(bucket, key, Array(key.utf8)) }
    let s3 = try client(bucket, endpoint: moto.endpoint)

    let root = try s3.listAll(prefix: "", delimiter: "/")
    #expect(root.commonPrefixes == ["flat/", "org/"])
    #expect(root.objects.isEmpty)

    let org = try s3.listAll(prefix: "org/", delimiter: "/")
    #expect(org.commonPrefixes == ["org/p1/", "org/p2/"])
    #expect(org.objects.map(\.key) == ["org/top.log"])
    #expect(org.objects.first?.size == UInt64("org/top.log".utf8.count))
    #expect(org.objects.first?.etag.hasPrefix("\"") == true)

    // Pages of 2, with continuation tokens, then start-after.
    var request = ListRequest(prefix: "flat/", delimiter: nil, maxKeys: 2)
    var seen: [String] = []
    var pages = 0
    while true {
      let page = try s3.listPage(request)
      pages += 1
      #expect(page.objects.count <= 2)
      seen += page.objects.map(\.key)
      guard let token = page.nextContinuationToken else { break }
      request.continuationToken = token
    }
    #expect(pages == 5)
    #expect(seen == (0..<9).map { "flat/\($0).log" })
    let after = try s3.listPage(ListRequest(prefix: "flat/", delimiter: nil, startAfter: "flat/6.log"))
    #expect(after.objects.map(\.key) == ["flat/7.log", "flat/8.log"])
    #expect(s3.counters.snapshot.lists == 2 + pages + 1)
    #expect(s3.counters.snapshot.failures == 0)
  }

  @Test func awkwardKeysRoundTrip() throws {
    guard let moto = Moto.require() else { return }
    let bucket = uniqueBucket("keys")
    let seed = Seeder(endpoint: moto.endpoint)
    try seed.createBucket(bucket)
    // (moto cannot store a key holding a newline: its router answers 404 to %0A in a path.)
    let keys = [
      "k/with space.log", "k/plus+sign.log", "k/percent%41.log", "k/utf8-é-日本.log", "k/amp&eq=q?.log",
      "k/tilde~star*.log", "k/double//slash.log",
    ]
    for (index, key) in keys.enumerated() { try seed.putObject(bucket, key, pattern(100 + index)) }
    let s3 = try client(bucket, endpoint: moto.endpoint)
    let listed = try s3.listAll(prefix: "k/", delimiter: nil)
    #expect(Set(listed.objects.map(\.key)) == Set(keys))
    let rolled = try s3.listAll(prefix: "k/", delimiter: "/")
    #expect(rolled.commonPrefixes == ["k/double/"])
    for (index, key) in keys.enumerated() {
      let info = try s3.head(key: key)
      #expect(info.size == UInt64(100 + index), "\(key)")
      #expect(try s3.getBytes(key: key, range: 0..<info.size) == pattern(100 + index), "\(key)")
    }
    let prefixed = try s3.listAll(prefix: "k/plus+", delimiter: "/")
    #expect(prefixed.objects.map(\.key) == ["k/plus+sign.log"])
  }

  @Test func headAndRangedGet() throws {
    guard let moto = Moto.require() else { return }
    let bucket = uniqueBucket("get")
    let seed = Seeder(endpoint: moto.endpoint)
    try seed.createBucket(bucket)
    let bytes = pattern(300_000)
    try seed.putObject(bucket, "big.log", bytes)
    let s3 = try client(bucket, endpoint: moto.endpoint)

    let info = try s3.head(key: "big.log")
    #expect(info.size == 300_000)
    #expect(info.etag.hasPrefix("\"") && info.etag.hasSuffix("\""))
    #expect(abs(Double(info.lastModified.seconds) - Date().timeIntervalSince1970) < 3600)

    #expect(try s3.getBytes(key: "big.log", range: 1000..<200_000) == Array(bytes[1000..<200_000]))
    #expect(try s3.getBytes(key: "big.log", range: 0..<300_000) == bytes)
    #expect(try s3.getBytes(key: "big.log", range: 299_999..<300_000) == [bytes[299_999]])
    #expect(try s3.getBytes(key: "big.log", range: 5..<6, ifMatch: info.etag) == [bytes[5]])
    #expect(try s3.getBytes(key: "big.log", range: 10..<10) == [])

    let changed = #expect(throws: ObjectStoreError.self) {
      try s3.getBytes(key: "big.log", range: 0..<10, ifMatch: "\"0123456789abcdef0123456789abcdef\"")
    }
    #expect(changed?.kind == .preconditionFailed)
    let pastEnd = #expect(throws: ObjectStoreError.self) {
      try s3.getBytes(key: "big.log", range: 400_000..<400_010)
    }
    #expect(pastEnd?.kind == .invalidRequest)
    let straddling = #expect(throws: ObjectStoreError.self) {
      try s3.getBytes(key: "big.log", range: 299_990..<300_010)
    }
    #expect(straddling?.kind == .invalidRequest)
    #expect(straddling?.message.contains("300000 bytes") == true)

    let snapshot = s3.counters.snapshot
    #expect(snapshot.heads == 1)
    #expect(snapshot.gets == 8)
    #expect(snapshot.bytesFetched == 199_000 + 300_000 + 1 + 1)
    #expect(snapshot.retries == 0)
    #expect(snapshot.failures == 3)
    // Every call has its duration recorded, the failed ones too.
    #expect(snapshot.headLatency.count == 1)
    #expect(snapshot.getLatency.count == 8)
  }

  @Test func missingBucketAndKey() throws {
    guard let moto = Moto.require() else { return }
    let bucket = uniqueBucket("present")
    try Seeder(endpoint: moto.endpoint).createBucket(bucket)
    let s3 = try client(bucket, endpoint: moto.endpoint)
    try s3.checkBucket()

    let headMissing = #expect(throws: ObjectStoreError.self) { try s3.head(key: "nope.log") }
    #expect(headMissing?.kind == .notFound)
    #expect(headMissing?.message.contains("s3://\(bucket)/nope.log") == true)
    let getMissing = #expect(throws: ObjectStoreError.self) { try s3.getBytes(key: "nope.log", range: 0..<1) }
    #expect(getMissing?.kind == .notFound)
    #expect(getMissing?.message.contains("NoSuchKey") == true)

    let absent = try client(uniqueBucket("absent"), endpoint: moto.endpoint)
    let listAbsent = #expect(throws: ObjectStoreError.self) { try absent.listPage(ListRequest(prefix: "")) }
    #expect(listAbsent?.kind == .noSuchBucket)
    let checkAbsent = #expect(throws: ObjectStoreError.self) { try absent.checkBucket() }
    #expect(checkAbsent?.kind == .noSuchBucket)
    #expect(checkAbsent?.message.contains("NoSuchBucket") == true)
    #expect(absent.counters.snapshot.retries == 0)
  }

  @Test func unreachableEndpointFailsQuickly() throws {
    let port = try freeLoopbackPort()
    let s3 = try client("any", endpoint: "http://127.0.0.1:\(port)", maxAttempts: 3)
    let start = Date()
    let error = #expect(throws: ObjectStoreError.self) { try s3.head(key: "x") }
    #expect(error?.kind == .unreachable)
    #expect(error?.message.contains("after 3 attempts") == true)
    #expect(Date().timeIntervalSince(start) < 3)
    #expect(s3.counters.snapshot.retries == 2)
    #expect(s3.counters.snapshot.failures == 1)

    let check = #expect(throws: ObjectStoreError.self) { try s3.checkBucket() }
    #expect(check?.kind == .unreachable)
  }

  @Test func slowDownIsRetried() throws {
    let bytes = pattern(50_000)
    guard case let (moto, bucket)? = try bucketWithALog("slow", bytes) else { return }
    let proxy = try FaultProxy.start(upstream: moto, faults: ["503", "503"])
    let s3 = try client(bucket, endpoint: proxy.endpoint)
    #expect(try s3.getBytes(key: "a.log", range: 100..<40_000) == Array(bytes[100..<40_000]))
    #expect(s3.counters.snapshot.retries == 2)
    #expect(s3.counters.snapshot.bytesFetched == 39_900)
    // A call and its retries are one sample: what the reader waited for.
    #expect(s3.counters.snapshot.getLatency.count == 1)

    // More SlowDowns than attempts: a server error naming the code.
    let stubborn = try FaultProxy.start(upstream: moto, faults: Array(repeating: "503", count: 10))
    let s3b = try client(bucket, endpoint: stubborn.endpoint, maxAttempts: 3)
    let error = #expect(throws: ObjectStoreError.self) { try s3b.getBytes(key: "a.log", range: 0..<10) }
    #expect(error?.kind == .serverError)
    #expect(
      error?.message
        == "GET s3://\(bucket)/a.log bytes 0-9 failed: SlowDown (503): Please reduce your request rate. after 3 attempts"
    )
  }

  /// A SlowDown's `Retry-After` is the wait, on the client's clock (here a manual one: no real
  /// sleeping); one longer than the mount check's budget fails the check at once.
  @Test func slowDownWaitsAsRetryAfterSays() throws {
    guard case let (moto, bucket)? = try bucketWithALog("wait", pattern(100)) else { return }
    let proxy = try FaultProxy.start(upstream: moto, faults: ["503:3", "503:3"])
    let clock = FakeClock()
    let s3 = try S3ObjectClient(
      configuration: S3Configuration(
        bucket: bucket, endpoint: proxy.endpoint, credentials: testCredentials, maxAttempts: 5), clock: clock)
    #expect(try s3.getBytes(key: "a.log", range: 0..<10) == Array(pattern(100)[0..<10]))
    #expect(clock.sleeps == [3, 3])
    #expect(s3.counters.snapshot.retries == 2)

    let stubborn = try FaultProxy.start(upstream: moto, faults: ["503:30"])
    let checkClock = FakeClock()
    let check = try S3ObjectClient(
      configuration: S3Configuration(bucket: bucket, endpoint: stubborn.endpoint, credentials: testCredentials),
      clock: checkClock)
    let error = #expect(throws: ObjectStoreError.self) { try check.checkBucket() }
    #expect(error?.kind == .serverError)
    #expect(error?.message.contains("the server asked to wait 30 s") == true, "\(String(describing: error))")
    #expect(checkClock.sleeps.isEmpty)
  }

  /// Backoff runs on the injected clock: a long one costs no real time, and stays within its bounds.
  @Test func backoffRunsOnTheInjectedClock() throws {
    let port = try freeLoopbackPort()
    let clock = FakeClock()
    let s3 = try S3ObjectClient(
      configuration: S3Configuration(
        bucket: "any", endpoint: "http://127.0.0.1:\(port)", maxAttempts: 4, retryBaseDelay: 10, retryMaxDelay: 25),
      clock: clock)
    let start = Date()
    let error = #expect(throws: ObjectStoreError.self) { try s3.head(key: "x") }
    #expect(error?.message.contains("after 4 attempts") == true)
    #expect(Date().timeIntervalSince(start) < 3)
    let sleeps = clock.sleeps
    #expect(sleeps.count == 3)
    for (index, sleep) in sleeps.enumerated() { #expect(sleep >= 0 && sleep <= min(25, 10 * Double(1 << index))) }
  }

  @Test func cutBodyResumesExactly() throws {
    let bytes = pattern(1 << 20)
    guard case let (moto, bucket)? = try bucketWithALog("cut", bytes) else { return }
    let proxy = try FaultProxy.start(upstream: moto, faults: ["short"])
    let s3 = try client(bucket, endpoint: proxy.endpoint)
    var chunks = 0
    var received = [UInt8]()
    try s3.get(key: "a.log", range: 1000..<(1 << 20), ifMatch: nil) { chunk in
      chunks += 1
      received.append(contentsOf: chunk)
    }
    #expect(received.count == (1 << 20) - 1000)
    #expect(received == Array(bytes[1000...]))
    #expect(s3.counters.snapshot.retries == 1)
    #expect(s3.counters.snapshot.bytesFetched == (1 << 20) - 1000)
  }

  @Test func overlongBodyIsRefusedThenRetried() throws {
    let bytes = pattern(10_000)
    guard case let (moto, bucket)? = try bucketWithALog("long", bytes) else { return }
    let proxy = try FaultProxy.start(upstream: moto, faults: ["long"])
    let s3 = try client(bucket, endpoint: proxy.endpoint)
    #expect(try s3.getBytes(key: "a.log", range: 10..<5000) == Array(bytes[10..<5000]))
    #expect(s3.counters.snapshot.retries == 1)
  }

  @Test func followsTheBucketToItsRegion() throws {
    guard case let (moto, bucket)? = try bucketWithALog("region", pattern(10)) else { return }
    let proxy = try FaultProxy.start(upstream: moto, faults: ["redirect"], redirectRegion: "eu-west-3")
    let s3 = try client(bucket, endpoint: proxy.endpoint)
    #expect(try s3.head(key: "a.log").size == 10)
    #expect(s3.region == "eu-west-3")
    #expect(s3.counters.snapshot.retries == 1)
  }

  /// A policy that refuses a listing asking for restore states (`x-amz-optional-object-attributes`)
  /// costs one more request, not the listing: it is asked again without, and never asked again.
  @Test func aListingRefusedWithRestoreStatusIsAskedWithout() throws {
    guard case let (moto, bucket)? = try bucketWithALog("optional", pattern(10)) else { return }
    let proxy = try FaultProxy.start(upstream: moto, faults: ["403"])
    let s3 = try client(bucket, endpoint: proxy.endpoint)
    #expect(try s3.listPage(ListRequest(prefix: "")).objects.map(\.key) == ["a.log"])
    #expect(try s3.listPage(ListRequest(prefix: "")).objects.map(\.key) == ["a.log"])
    #expect(s3.counters.snapshot.failures == 1)
    // Refused without them too: the refusal stands.
    let refused = try FaultProxy.start(upstream: moto, faults: ["403", "403"])
    let denied = try client(bucket, endpoint: refused.endpoint)
    #expect(throws: ObjectStoreError.self) { try denied.listPage(ListRequest(prefix: "")) }
  }

  @Test func virtualHostedAddressing() throws {
    guard let moto = Moto.require() else { return }
    let bucket = uniqueBucket("vhost")
    let seed = Seeder(endpoint: moto.endpoint)
    try seed.createBucket(bucket)
    try seed.putObject(bucket, "d/a b.log", pattern(1000))
    // libcurl resolves *.localhost to loopback, and moto takes the bucket from the Host header.
    let s3 = try S3ObjectClient(
      configuration: S3Configuration(
        bucket: bucket, endpoint: "http://localhost:\(moto.port)", forcePathStyle: false, credentials: testCredentials))
    #expect(try s3.listAll(prefix: "d/", delimiter: "/").objects.map(\.key) == ["d/a b.log"])
    #expect(try s3.getBytes(key: "d/a b.log", range: 10..<20) == Array(pattern(1000)[10..<20]))
  }

  @Test func errorsHoldNoSecrets() throws {
    guard let moto = Moto.require() else { return }
    let secret = AWSCredentials(
      accessKeyID: "AKIDSECRETID", secretAccessKey: "SECRETKEYVALUE", sessionToken: "SECRETTOKENVALUE")
    let bucket = uniqueBucket("secret")
    try Seeder(endpoint: moto.endpoint).createBucket(bucket)
    let present = try client(bucket, endpoint: moto.endpoint, credentials: secret)
    let absent = try client(uniqueBucket("gone"), endpoint: moto.endpoint, credentials: secret)
    let closed = try client(
      bucket, endpoint: "http://127.0.0.1:\(try freeLoopbackPort())", maxAttempts: 1, credentials: secret)
    var messages: [String] = []
    for call in [
      { _ = try present.head(key: "missing") }, { _ = try present.getBytes(key: "missing", range: 0..<1) },
      { _ = try absent.listPage(ListRequest(prefix: "")) }, { try absent.checkBucket() },
      { _ = try closed.head(key: "x") },
    ] as [() throws -> Void] {
      do {
        try call()
        Issue.record("expected an error")
      } catch {
        messages.append("\(error)")
      }
    }
    #expect(messages.count == 5)
    for message in messages {
      #expect(
        !message.contains("SECRET") && !message.contains("Signature=") && !message.contains("Credential="), "\(message)"
      )
    }
  }

  @Test func configurationChecks() throws {
    #expect(throws: ObjectStoreError.self) {
      try S3ObjectClient(configuration: S3Configuration(bucket: "b", endpoint: "ftp://x"))
    }
    let aws = try S3ObjectClient(configuration: S3Configuration(bucket: "b"))
    #expect(aws.identity == "s3://b")
    #expect(aws.isRemote)
    #expect(S3Configuration(bucket: "b", endpoint: "http://127.0.0.1:1").forcePathStyle)
    #expect(!S3Configuration(bucket: "b").forcePathStyle)
  }

  @Test func httpDates() {
    #expect(parseHTTPDate("Wed, 21 Oct 2015 07:28:00 GMT") == Timestamp(seconds: 1_445_412_480))
    #expect(parseHTTPDate("Wednesday, 21-Oct-15 07:28:00 GMT") == Timestamp(seconds: 1_445_412_480))
    #expect(parseHTTPDate("Wed Oct 21 07:28:00 2015") == Timestamp(seconds: 1_445_412_480))
    #expect(parseHTTPDate("Thu, 01 Jan 1970 00:00:00 GMT") == Timestamp(seconds: 0))
    #expect(parseHTTPDate("Tue, 29 Feb 2028 23:59:59 GMT") == Timestamp(seconds: 1_835_481_599))
    #expect(parseHTTPDate("yesterday") == nil)
    #expect(parseHTTPDate("Wed, 21 Oct 2015 GMT") == nil)
  }
}
