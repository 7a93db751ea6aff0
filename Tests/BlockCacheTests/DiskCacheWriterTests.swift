import BlockCache
import Dispatch
import Synchronization
import TestSupport
import Testing

@Suite struct DiskCacheWriterTests {
  let blockSize = 64 * 1024

  private func cache(_ directory: String) throws -> DiskBlockCache {
    try DiskBlockCache(directory: directory, maxBytes: 64 << 20, blockSize: blockSize, logger: testLogger)
  }

  @Test func aQueuedBlockIsServedAndIsOnDiskOnceWritten() throws {
    try withTemporaryDirectory { directory in
      let disk = try cache(directory)
      let writer = DiskCacheWriter(cache: disk, maxQueuedBytes: 32 * blockSize, logger: testLogger)
      let blocks = (0..<32).map { blockBytes($0, count: blockSize) }
      for (index, bytes) in blocks.enumerated() { writer.put(key("log", index: UInt64(index)), bytes) }
      // Queued or written, every block is there at once.
      for (index, bytes) in blocks.enumerated() {
        #expect(writer.get(key("log", index: UInt64(index))) == bytes ? true : false, "block \(index)")
      }
      writer.close()
      let statistics = writer.statistics
      #expect(statistics.written == 32 && statistics.bytes == 0 && statistics.blocks == 0)
      #expect(statistics.maxBytes <= 32 * blockSize && statistics.dropped == 0)
      // A new cache over the same directory (a remount) finds every block on disk.
      let reopened = try cache(directory)
      for (index, bytes) in blocks.enumerated() {
        #expect(reopened.get(key("log", index: UInt64(index))) == bytes ? true : false, "block \(index)")
      }
    }
  }

  @Test func theQueueNeverHoldsMoreThanItsBoundWithManyWriters() throws {
    try withTemporaryDirectory { directory in
      let disk = try cache(directory)
      let bound = 3 * blockSize
      let writer = DiskCacheWriter(cache: disk, maxQueuedBytes: bound, logger: testLogger)
      DispatchQueue.concurrentPerform(iterations: 4) { thread in
        for index in 0..<24 {
          writer.put(key("log-\(thread)", index: UInt64(index)), blockBytes(thread * 100 + index, count: blockSize))
        }
      }
      writer.close()
      let statistics = writer.statistics
      #expect(statistics.maxBytes <= bound, "the queue held \(statistics.maxBytes) bytes")
      #expect(statistics.written + statistics.dropped == 96 && statistics.written == statistics.queued)
      // Every block is either on disk, whole, or not cached at all.
      var onDisk = 0
      for thread in 0..<4 {
        for index in 0..<24 {
          guard let bytes = disk.get(key("log-\(thread)", index: UInt64(index))) else { continue }
          #expect(bytes == blockBytes(thread * 100 + index, count: blockSize) ? true : false)
          onDisk += 1
        }
      }
      #expect(onDisk == statistics.written)
    }
  }

  @Test func withoutAQueueAndAfterCloseABlockIsWrittenAtOnce() throws {
    try withTemporaryDirectory { directory in
      let disk = try cache(directory)
      let direct = DiskCacheWriter(cache: disk, maxQueuedBytes: 0, logger: testLogger)
      direct.put(key("a"), blockBytes(1, count: blockSize))
      #expect(disk.get(key("a")) == blockBytes(1, count: blockSize) ? true : false)

      let queued = DiskCacheWriter(cache: disk, maxQueuedBytes: 4 * blockSize, logger: testLogger)
      queued.close()
      queued.put(key("b"), blockBytes(2, count: blockSize))
      #expect(disk.get(key("b")) == blockBytes(2, count: blockSize) ? true : false)
      #expect(queued.statistics.queued == 0)
    }
  }

  @Test func aBlockThatWouldOverfillTheQueueIsNotCachedAndNothingWaits() throws {
    try withTemporaryDirectory { directory in
      let disk = try cache(directory)
      // No writer thread: the queue fills and nothing drains it until close.
      let writer = DiskCacheWriter(cache: disk, maxQueuedBytes: 2 * blockSize, startsWriter: false, logger: testLogger)
      writer.put(key("log", index: 0), blockBytes(0, count: blockSize))
      writer.put(key("log", index: 1), blockBytes(1, count: blockSize))
      let clock = ContinuousClock()
      let took = clock.measure { writer.put(key("log", index: 2), blockBytes(2, count: blockSize)) }
      #expect(took < .seconds(1), "a put waited \(took)")
      var statistics = writer.statistics
      #expect(statistics.dropped == 1 && statistics.queued == 2 && statistics.blocks == 2)
      #expect(writer.get(key("log", index: 2)) == nil)
      #expect(writer.get(key("log", index: 1)) == blockBytes(1, count: blockSize) ? true : false)
      writer.close()
      statistics = writer.statistics
      #expect(statistics.written == 2 && statistics.blocks == 0)
      #expect(disk.get(key("log", index: 1)) == blockBytes(1, count: blockSize) ? true : false)
      #expect(disk.get(key("log", index: 2)) == nil)
    }
  }
}
