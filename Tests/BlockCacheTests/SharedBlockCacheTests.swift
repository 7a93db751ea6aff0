import BlockCache
import ObjectStore
import Synchronization
import TestSupport
import Testing

/// A shared bucket that fails every call while `failing` is set.
private final class FlakyBucket: WritableObjectClient {
  let bucket = InMemoryObjectClient(identity: "s3://shared")
  let failing = Atomic<Bool>(false)
  var identity: String { bucket.identity }
  var isRemote: Bool { true }
  var counters: RequestCounters { bucket.counters }

  private func check() throws(ObjectStoreError) {
    if failing.load(ordering: .relaxed) { throw ObjectStoreError(.unreachable, "the shared bucket is down") }
  }

  func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage { try bucket.listPage(request) }
  func head(key: String) throws(ObjectStoreError) -> ObjectInfo { try bucket.head(key: key) }
  func get(
    key: String, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    try bucket.get(key: key, range: range, ifMatch: ifMatch, body: body)
  }
  func getObject(key: String, limit: Int) throws(ObjectStoreError) -> [UInt8]? {
    try check()
    return try bucket.getObject(key: key, limit: limit)
  }
  func put(key: String, bytes: [UInt8]) throws(ObjectStoreError) {
    try check()
    try bucket.put(key: key, bytes: bytes)
  }
}

@Suite struct SharedBlockCacheTests {
  let blockSize = 64 * 1024

  private func cache(
    _ bucket: any WritableObjectClient, prefix: String = "fleet", queue: Int = 0, clock: FakeClock = FakeClock()
  ) -> SharedBlockCache {
    SharedBlockCache(
      client: bucket, prefix: prefix, blockSize: blockSize, maxQueuedBytes: queue, clock: clock, logger: testLogger)
  }

  @Test func keysDependOnEveryPartOfTheIdentityAndRevealNone() {
    let shared = cache(InMemoryObjectClient())
    let base = BlockKey(source: "s3://secret-archive", key: "acme/deploy/42/job.log", etag: "\"e1\"", index: 3)
    let name = shared.objectKey(for: base)
    // The prefix, the format's folder, then 64 hex digits of SHA-256.
    #expect(name.hasPrefix("fleet/" + SharedBlockCache.folder))
    let hash = name.dropFirst(("fleet/" + SharedBlockCache.folder).count)
    #expect(hash.count == 64 && hash.allSatisfy { $0.isHexDigit && !$0.isUppercase })
    #expect(!name.contains("secret") && !name.contains("acme") && !name.contains("deploy"))
    // The same block has the same key in every mount; any part changed gives another.
    #expect(cache(InMemoryObjectClient()).objectKey(for: base) == name)
    var variants: [BlockKey] = []
    for change in 0..<4 {
      var other = base
      switch change {
      case 0: other.source = "s3://other-archive"
      case 1: other.key = "acme/deploy/42/job2.log"
      case 2: other.etag = "\"e2\""
      default: other.index = 4
      }
      variants.append(other)
    }
    let names = Set(variants.map(shared.objectKey(for:)) + [name])
    #expect(names.count == 5)
    // Another block size is another cache.
    let otherSize = SharedBlockCache(
      client: InMemoryObjectClient(), prefix: "fleet", blockSize: 2 * blockSize, maxQueuedBytes: 0,
      logger: testLogger)
    #expect(otherSize.objectKey(for: base) != name)
    // The object's header names the store only by its hash.
    let object = shared.encode(base, [1, 2, 3])
    #expect(!String(decoding: object, as: UTF8.self).contains("secret-archive"))
  }

  @Test func aBlockRoundTripsAndEveryKindOfDamageIsRefused() {
    let shared = cache(InMemoryObjectClient())
    let block = key("log", index: 2)
    let data = blockBytes(7, count: 1000)
    let object = shared.encode(block, data)
    #expect(shared.decode(object, as: block, count: 1000) == .success(data))

    func refused(_ bytes: [UInt8], as key: BlockKey = block, count: Int = 1000) -> Bool {
      if case .failure = shared.decode(bytes, as: key, count: count) { return true }
      return false
    }
    // A flipped data byte, a flipped header byte, a cut object, one with bytes added, an empty one.
    var flipped = object
    flipped[object.count - 10] ^= 0x40
    #expect(refused(flipped))
    var header = object
    header[20] ^= 1
    #expect(refused(header))
    #expect(refused(Array(object.dropLast(1))))
    #expect(refused(Array(object.prefix(40))))
    #expect(refused(object + [0]))
    #expect(refused([]))
    // Another block's object at this block's name: another key, ETag, index or store.
    #expect(refused(object, as: key("other-log", index: 2)))
    #expect(refused(object, as: key("log", index: 2, etag: "\"etag-2\"")))
    #expect(refused(object, as: key("log", index: 3)))
    #expect(refused(object, as: BlockKey(source: "s3://elsewhere", key: "log", etag: "\"etag-1\"", index: 2)))
    // The right block, but not as long as the object's version says it is.
    #expect(refused(object, count: 999))
  }

  @Test func aDamagedSharedBlockIsCountedAndAMissNotAnError() {
    let bucket = InMemoryObjectClient()
    let shared = cache(bucket)
    let block = key("log")
    let data = blockBytes(1, count: blockSize)
    #expect(shared.get(block, count: blockSize) == nil)
    shared.put(block, data)
    #expect(shared.get(block, count: blockSize) == data)
    // Overwritten by something else (a truncated upload, another tool): refused and counted.
    let name = shared.objectKey(for: block)
    bucket.put(name, Array(bucket.bytes(of: name)!.dropLast(100)))
    #expect(shared.get(block, count: blockSize) == nil)
    bucket.put(name, shared.encode(key("another-log"), data))
    #expect(shared.get(block, count: blockSize) == nil)
    let statistics = shared.statistics
    #expect(statistics.hits == 1 && statistics.misses == 1 && statistics.writes == 1)
    #expect(statistics.corruptBlocks == 2 && statistics.failures == 0)
  }

  @Test func writesRunBehindTheCallerAndCloseWritesWhatIsQueued() {
    let bucket = InMemoryObjectClient()
    let shared = cache(bucket, queue: 8 * blockSize)
    let blocks = (0..<8).map { blockBytes($0, count: blockSize) }
    for (index, bytes) in blocks.enumerated() { shared.put(key("log", index: UInt64(index)), bytes) }
    shared.close()
    #expect(shared.statistics.writes == 8 && shared.statistics.queuedBytes == 0)
    let reader = cache(bucket)
    for (index, bytes) in blocks.enumerated() {
      #expect(reader.get(key("log", index: UInt64(index)), count: blockSize) == bytes, "block \(index)")
    }
  }

  @Test func aFullQueueDropsBlocksRatherThanWaiting() {
    let bucket = FlakyBucket()
    // No writer keeps up with a bucket that fails: the queue fills, and what does not fit is dropped.
    let shared = SharedBlockCache(
      client: bucket, prefix: "", blockSize: blockSize, maxQueuedBytes: 2 * blockSize, writers: 1,
      clock: FakeClock(), logger: testLogger)
    bucket.failing.store(true, ordering: .relaxed)
    for index in 0..<50 { shared.put(key("log", index: UInt64(index)), blockBytes(index, count: blockSize)) }
    #expect(shared.statistics.queuedBytes <= 2 * blockSize)
    shared.close()
    let statistics = shared.statistics
    #expect(statistics.writes == 0 && statistics.dropped + statistics.failures == 50)
  }

  @Test func failuresInARowPauseTheCacheForAWhile() {
    let bucket = FlakyBucket()
    let clock = FakeClock()
    let shared = cache(bucket, clock: clock)
    bucket.failing.store(true, ordering: .relaxed)
    for index in 0..<5 { #expect(shared.get(key("log", index: UInt64(index)), count: blockSize) == nil) }
    // Three failed; the next two did not ask the bucket.
    #expect(shared.statistics.failures == 3)
    bucket.failing.store(false, ordering: .relaxed)
    shared.put(key("log"), blockBytes(0, count: blockSize))
    #expect(shared.statistics.writes == 0 && shared.statistics.dropped == 1)
    clock.advance(31)
    shared.put(key("log"), blockBytes(0, count: blockSize))
    #expect(shared.get(key("log"), count: blockSize) == blockBytes(0, count: blockSize))
    #expect(shared.statistics.writes == 1 && shared.statistics.hits == 1)
  }
}
