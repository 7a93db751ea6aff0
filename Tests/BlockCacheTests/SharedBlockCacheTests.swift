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
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    try bucket.get(key: key, version: version, range: range, ifMatch: ifMatch, body: body)
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
    for (index, damaged) in damage(of: object).enumerated() { #expect(refused(damaged), "damage \(index)") }
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

  // MARK: Size records

  @Test func sizeRecordKeysDependOnTheStoreAndTheKeyOnlyAndRevealNeither() {
    let shared = cache(InMemoryObjectClient())
    let name = shared.sizeObjectKey(source: "buildkite:logs", key: "acme/deploy/42/0190a1b5-job")
    // The prefix, the records' own folder, then 64 hex digits of SHA-256.
    let folder = "fleet/bklogfs-sizes/v1/"
    #expect(name.hasPrefix(folder))
    let hash = name.dropFirst(folder.count)
    #expect(hash.count == 64 && hash.allSatisfy { $0.isHexDigit && !$0.isUppercase })
    #expect(!name.contains("acme") && !name.contains("deploy") && !name.contains("buildkite"))
    // The same in every mount, whatever the block size; another store or key gives another.
    let otherSize = SharedBlockCache(
      client: InMemoryObjectClient(), prefix: "fleet", blockSize: 2 * blockSize, maxQueuedBytes: 0,
      logger: testLogger)
    #expect(otherSize.sizeObjectKey(source: "buildkite:logs", key: "acme/deploy/42/0190a1b5-job") == name)
    let names: Set = [
      name, shared.sizeObjectKey(source: "s3://archive", key: "acme/deploy/42/0190a1b5-job"),
      shared.sizeObjectKey(source: "buildkite:logs", key: "acme/deploy/43/0190a1b5-job"),
      shared.objectKey(for: BlockKey(source: "buildkite:logs", key: "acme/deploy/42/0190a1b5-job", etag: "", index: 0)),
    ]
    #expect(names.count == 4)
    // The record names the store only by its hash.
    let record = shared.encodeSize(source: "buildkite:logs", key: "acme/deploy/42/0190a1b5-job", size: 1234)
    #expect(!String(decoding: record, as: UTF8.self).contains("buildkite:logs"))
  }

  @Test func aSizeRecordRoundTripsAndDamageOrAnotherKeysRecordIsRefused() {
    let shared = cache(InMemoryObjectClient())
    let record = shared.encodeSize(source: "buildkite:logs", key: "a/p/1/job", size: 5_000_000_000)
    #expect(shared.decodeSize(record, source: "buildkite:logs", key: "a/p/1/job") == .success(5_000_000_000))
    func refused(_ bytes: [UInt8], source: String = "buildkite:logs", key: String = "a/p/1/job") -> Bool {
      if case .failure = shared.decodeSize(bytes, source: source, key: key) { return true }
      return false
    }
    for (index, damaged) in damage(of: record).enumerated() { #expect(refused(damaged), "damage \(index)") }
    // A flipped byte of the size itself (the last 8 bytes).
    var size = record
    size[record.count - 1] ^= 0x01
    #expect(refused(size))
    // Another log's record, or another store's, copied to this key.
    #expect(refused(record, key: "a/p/1/other-job"))
    #expect(refused(record, source: "s3://archive"))
    // A block is not a size record.
    let block = shared.encode(BlockKey(source: "buildkite:logs", key: "a/p/1/job", etag: "", index: 0), [1, 2, 3])
    #expect(refused(block))
  }

  @Test func sizesAreRecordedReadAndDroppedWithTheirOwnCounters() {
    let bucket = InMemoryObjectClient()
    let writer = cache(bucket, queue: blockSize)
    #expect(writer.size(source: "buildkite:logs", key: "a/p/1/job") == nil)
    writer.record(source: "buildkite:logs", key: "a/p/1/job", size: 777)
    writer.close()
    #expect(writer.statistics.sizeMisses == 1 && writer.statistics.sizeWrites == 1 && writer.statistics.writes == 0)

    let reader = cache(bucket)
    #expect(reader.size(source: "buildkite:logs", key: "a/p/1/job") == 777)
    #expect(reader.size(source: "buildkite:logs", key: "a/p/1/other") == nil)
    // Dropped: not read again (no GET), until this process records the size itself.
    reader.drop(source: "buildkite:logs", key: "a/p/1/job")
    reader.drop(source: "buildkite:logs", key: "a/p/1/job")
    let gets = bucket.counters.snapshot.gets
    #expect(reader.size(source: "buildkite:logs", key: "a/p/1/job") == nil)
    #expect(bucket.counters.snapshot.gets == gets)
    reader.record(source: "buildkite:logs", key: "a/p/1/job", size: 778)
    #expect(reader.size(source: "buildkite:logs", key: "a/p/1/job") == 778)

    // A damaged record is a miss, counted apart from blocks.
    let name = reader.sizeObjectKey(source: "buildkite:logs", key: "a/p/1/job")
    bucket.put(name, Array(bucket.bytes(of: name)!.dropLast(1)))
    #expect(reader.size(source: "buildkite:logs", key: "a/p/1/job") == nil)
    let statistics = reader.statistics
    #expect(statistics.sizeHits == 2 && statistics.sizeMisses == 1 && statistics.sizeWrites == 1)
    #expect(statistics.corruptSizes == 1 && statistics.staleSizes == 1)
    #expect(statistics.hits == 0 && statistics.misses == 0 && statistics.corruptBlocks == 0)
  }
}

/// An object damaged every way a checked read must refuse: a flipped byte near its end, a flipped
/// byte of its header, cut by a byte, cut to 40 bytes, a byte added, and empty.
private func damage(of object: [UInt8]) -> [[UInt8]] {
  var flipped = object
  flipped[object.count - 10] ^= 0x40
  var header = object
  header[20] ^= 1
  return [flipped, header, Array(object.dropLast(1)), Array(object.prefix(40)), object + [0], []]
}
