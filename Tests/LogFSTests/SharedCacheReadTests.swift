import BlockCache
import LogFS
import Logging
import ObjectStore
import Synchronization
import TestSupport
import Testing

/// The read path with a shared cache: two filesystems with memory caches of their own (two machines)
/// over one store and one shared bucket.
@Suite struct SharedCacheReadTests {
  let blockSize = Fixture.blockSize

  func sharedCache(_ bucket: InMemoryObjectClient) -> SharedBlockCache {
    // No queue: writes happen on the fetching thread, so a test sees them at once.
    SharedBlockCache(
      client: bucket, prefix: "fleet/", blockSize: blockSize, maxQueuedBytes: 0, logger: Logger(label: "test"))
  }

  @Test func aSecondMachineReadsWhatTheFirstFetchedWithoutAskingTheStore() throws {
    let store = InMemoryObjectClient()
    let content = pattern(5 * blockSize + 100)
    store.put("org/p/1/job.log", content)
    let bucket = InMemoryObjectClient(identity: "s3://fleet-cache")
    let first = Fixture(store: store, shared: sharedCache(bucket))
    #expect(try first.readAll("org/p/1/job.log", chunk: 3000) == content)
    let fetched = store.counters.gets.load(ordering: .relaxed)
    #expect(fetched >= 1)
    #expect(first.filesystem.statistics().cache.sharedWrites == 6)
    #expect(first.filesystem.statistics().cache.sharedMisses == 6)
    #expect(bucket.keys.count == 6 && bucket.keys.allSatisfy { $0.hasPrefix("fleet/" + SharedBlockCache.folder) })

    let second = Fixture(store: store, shared: sharedCache(bucket))
    #expect(try second.readAll("org/p/1/job.log", chunk: 3000) == content)
    #expect(store.counters.gets.load(ordering: .relaxed) == fetched, "the store was asked again")
    let statistics = second.filesystem.statistics().cache
    #expect(statistics.sharedHits == 6 && statistics.sharedWrites == 0 && statistics.misses == 0)
  }

  @Test func aColdReadOfManyBlocksCostsOneGetOfTheSharedBucket() throws {
    let store = InMemoryObjectClient()
    let content = pattern(6 * blockSize)
    store.put("job.log", content)
    let bucket = InMemoryObjectClient(identity: "s3://fleet-cache")
    let fixture = Fixture(store: store, shared: sharedCache(bucket))
    // One read of all six blocks: the first miss ends the lookups, and the store sends the rest.
    #expect(try fixture.readAll("job.log", chunk: 6 * blockSize) == content)
    #expect(bucket.counters.gets.load(ordering: .relaxed) == 1)
    #expect(store.counters.gets.load(ordering: .relaxed) == 1)
    let statistics = fixture.filesystem.statistics().cache
    #expect(statistics.sharedMisses == 1 && statistics.sharedWrites == 6 && statistics.misses == 6)
  }

  @Test func aDamagedSharedBlockIsRefetchedFromTheStoreAndWrittenAgain() throws {
    let store = InMemoryObjectClient()
    let content = pattern(3 * blockSize)
    store.put("job.log", content)
    let bucket = InMemoryObjectClient(identity: "s3://fleet-cache")
    let writer = sharedCache(bucket)
    #expect(try Fixture(store: store, shared: writer).readAll("job.log") == content)
    let info = try store.head(key: "job.log")
    let damaged = writer.objectKey(for: BlockKey(source: store.identity, key: "job.log", etag: info.etag, index: 1))
    var object = bucket.bytes(of: damaged)!
    object[object.count - 1] ^= 0xff
    bucket.put(damaged, object)
    let before = store.counters.gets.load(ordering: .relaxed)

    let second = Fixture(store: store, shared: sharedCache(bucket))
    #expect(try second.readAll("job.log") == content)
    #expect(store.counters.gets.load(ordering: .relaxed) == before + 1, "only the damaged block is fetched")
    let statistics = second.filesystem.statistics().cache
    #expect(statistics.sharedCorruptBlocks == 1 && statistics.sharedHits == 2 && statistics.sharedWrites == 1)
    // Written again whole: a third machine finds all three blocks.
    let third = Fixture(store: store, shared: sharedCache(bucket))
    #expect(try third.readAll("job.log") == content)
    #expect(third.filesystem.statistics().cache.sharedHits == 3)
  }

  @Test func aVersionThatMayChangeIsNeverShared() throws {
    // Every ETag of this store is one that may change (as a running job's log's "grow-N").
    let store = InMemoryObjectClient(changingETagPrefix: "\"")
    let content = pattern(2 * blockSize)
    store.put("running.log", content)
    let bucket = InMemoryObjectClient(identity: "s3://fleet-cache")
    let fixture = Fixture(store: store, shared: sharedCache(bucket))
    #expect(try fixture.readAll("running.log") == content)
    #expect(bucket.keys.isEmpty && bucket.counters.gets.load(ordering: .relaxed) == 0)
    let statistics = fixture.filesystem.statistics().cache
    #expect(statistics.sharedMisses == 0 && statistics.sharedWrites == 0)
  }

  @Test func aStoreOfSuffixesIsServedWholeFromTheSharedCache() throws {
    // Buildkite's log endpoint: any range but a suffix costs the whole log.
    let store = InMemoryObjectClient(rangeSupport: .suffixOnly)
    let content = pattern(4 * blockSize + 10)
    store.put("org/p/1/job", content)
    let bucket = InMemoryObjectClient(identity: "s3://fleet-cache")
    #expect(try Fixture(store: store, shared: sharedCache(bucket)).readAll("org/p/1/job") == content)
    let fetched = store.counters.gets.load(ordering: .relaxed)
    #expect(fetched == 1 && bucket.keys.count == 5)
    let second = Fixture(store: store, shared: sharedCache(bucket))
    #expect(try second.readAll("org/p/1/job", chunk: 4096) == content)
    #expect(store.counters.gets.load(ordering: .relaxed) == fetched)
  }
}
