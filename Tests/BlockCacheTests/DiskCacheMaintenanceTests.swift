import BlockCache
import Glibc
import TestSupport
import Testing

/// `bklogfs cache`: what a cache holds, verifying it, pruning and clearing it, and the lock that
/// keeps that from happening under a mount.
@Suite struct DiskCacheMaintenanceTests {
  let blockSize = 256

  func filled(_ directory: String) throws -> DiskBlockCache {
    let cache = try DiskBlockCache(directory: directory, maxBytes: 1 << 20, blockSize: blockSize, logger: testLogger)
    for index in 0..<3 {
      cache.put(
        BlockKey(source: "s3://logs", key: "a.log", etag: "\"1\"", index: UInt64(index)), blockBytes(index, count: 256))
    }
    cache.put(BlockKey(source: "s3://logs", key: "b.log", etag: "\"2\"", index: 0), blockBytes(9, count: 100))
    cache.put(BlockKey(source: "buildkite:logs", key: "acme/x/1/j", etag: "size-5", index: 0), blockBytes(7, count: 5))
    return cache
  }

  @Test func theInventoryCountsBlocksBytesAndObjectsByStore() throws {
    try withTemporaryDirectory { directory in
      let cache = try filled(directory + "/cache")
      let inventory = try DiskBlockCache.inventory(directory: directory + "/cache", blockSize: blockSize, verify: false)
      #expect(inventory.blocks == 5)
      #expect(inventory.bytes == cache.statistics.bytes)
      #expect(inventory.sources.map(\.source) == ["s3://logs", "buildkite:logs"])
      #expect(inventory.sources.map(\.blocks) == [4, 1])
      #expect(inventory.sources.map(\.objects) == [2, 1])
      #expect(inventory.damaged == 0 && !inventory.dataChecked)
      // Showing needs no lock: a mount may hold the cache meanwhile.
      withExtendedLifetime(cache) {}
      let empty = try DiskBlockCache.inventory(directory: directory + "/none", blockSize: blockSize, verify: false)
      #expect(empty.blocks == 0 && empty.sources.isEmpty)
    }
  }

  @Test func verifyReadsEveryBlockAndRemovesTheDamagedOnes() throws {
    try withTemporaryDirectory { directory in
      let path: String
      do {
        let cache = try filled(directory + "/cache")
        path = cache.filePath(for: BlockKey(source: "s3://logs", key: "b.log", etag: "\"2\"", index: 0))
      }
      var bytes = try readFile(path)
      bytes[bytes.count - 1] ^= 0xFF  // data damage: the header is fine, so only reading the data finds it
      try overwriteFile(path, bytes)
      let shown = try DiskBlockCache.inventory(directory: directory + "/cache", blockSize: blockSize, verify: false)
      #expect(shown.blocks == 5 && shown.damaged == 0)
      let verified = try DiskBlockCache.inventory(directory: directory + "/cache", blockSize: blockSize, verify: true)
      #expect(verified.blocks == 4 && verified.damaged == 1 && verified.dataChecked)
      #expect(!fileExists(path))
    }
  }

  @Test func pruneEvictsTheLeastRecentlyUsedAndClearEmptiesIt() throws {
    try withTemporaryDirectory { directory in
      let total: Int
      do {
        total = try filled(directory + "/cache").statistics.bytes
      }
      let pruned = try DiskBlockCache.prune(
        directory: directory + "/cache", toBytes: total / 2, blockSize: blockSize, logger: testLogger)
      #expect(pruned.bytes <= total / 2 && pruned.blocks > 0 && pruned.evictions > 0)
      let cleared = try DiskBlockCache.prune(
        directory: directory + "/cache", toBytes: 0, blockSize: blockSize, logger: testLogger)
      #expect(cleared.blocks == 0 && cleared.bytes == 0)
      #expect(
        try DiskBlockCache.inventory(directory: directory + "/cache", blockSize: blockSize, verify: false).blocks == 0)
    }
  }

  /// A mount's cache (shared) and maintenance (exclusive) never overlap, in either order; mounts
  /// share a directory with each other.
  @Test func maintenanceAndMountsExcludeEachOther() throws {
    try withTemporaryDirectory { directory in
      let cacheDirectory = directory + "/cache"
      do {
        let mounted = try filled(cacheDirectory)
        let other = try DiskBlockCache(
          directory: cacheDirectory, maxBytes: 1 << 20, blockSize: blockSize, logger: testLogger)
        let refused = #expect(throws: DiskCacheError.self) {
          try DiskBlockCache.prune(directory: cacheDirectory, toBytes: 0, blockSize: blockSize, logger: testLogger)
        }
        #expect(refused?.description.contains("A bklogfs mount is using the cache directory") == true)
        #expect(throws: DiskCacheError.self) {
          try DiskBlockCache.inventory(directory: cacheDirectory, blockSize: blockSize, verify: true)
        }
        withExtendedLifetime((mounted, other)) {}
      }
      do {
        let maintenance = try DiskBlockCache(
          directory: cacheDirectory, maxBytes: 1 << 20, blockSize: blockSize, logger: testLogger, use: .exclusive)
        let busy = #expect(throws: DiskCacheError.self) {
          try DiskBlockCache(directory: cacheDirectory, maxBytes: 1 << 20, blockSize: blockSize, logger: testLogger)
        }
        #expect(busy?.description.contains("is being pruned or cleared") == true)
        withExtendedLifetime(maintenance) {}
      }
      // Each let go: a mount opens it again.
      _ = try DiskBlockCache(directory: cacheDirectory, maxBytes: 1 << 20, blockSize: blockSize, logger: testLogger)
    }
  }
}
