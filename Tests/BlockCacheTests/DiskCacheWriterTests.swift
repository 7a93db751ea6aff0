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
      let writer = DiskCacheWriter(cache: disk, maxQueuedBytes: 8 * blockSize, logger: testLogger)
      let blocks = (0..<32).map { blockBytes($0, count: blockSize) }
      for (index, bytes) in blocks.enumerated() { writer.put(key("log", index: UInt64(index)), bytes) }
      // Queued or written, every block is there at once.
      for (index, bytes) in blocks.enumerated() { #expect(writer.get(key("log", index: UInt64(index))) == bytes) }
      writer.close()
      let statistics = writer.statistics
      #expect(statistics.written == 32 && statistics.bytes == 0 && statistics.blocks == 0)
      #expect(statistics.maxBytes <= 8 * blockSize)
      // A new cache over the same directory (a remount) finds every block on disk.
      let reopened = try cache(directory)
      for (index, bytes) in blocks.enumerated() { #expect(reopened.get(key("log", index: UInt64(index))) == bytes) }
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
      #expect(statistics.written == 96 && statistics.dropped == 0)
      for thread in 0..<4 {
        for index in 0..<24 {
          #expect(
            disk.get(key("log-\(thread)", index: UInt64(index))) == blockBytes(thread * 100 + index, count: blockSize))
        }
      }
    }
  }

  @Test func withoutAQueueAndAfterCloseABlockIsWrittenAtOnce() throws {
    try withTemporaryDirectory { directory in
      let disk = try cache(directory)
      let direct = DiskCacheWriter(cache: disk, maxQueuedBytes: 0, logger: testLogger)
      direct.put(key("a"), blockBytes(1, count: blockSize))
      #expect(disk.get(key("a")) == blockBytes(1, count: blockSize))

      let queued = DiskCacheWriter(cache: disk, maxQueuedBytes: 4 * blockSize, logger: testLogger)
      queued.close()
      queued.put(key("b"), blockBytes(2, count: blockSize))
      #expect(disk.get(key("b")) == blockBytes(2, count: blockSize))
      #expect(queued.statistics.queued == 0)
    }
  }

  @Test func aWriterThatFallsBehindSlowsThePutThenDropsTheBlock() throws {
    try withTemporaryDirectory { directory in
      let disk = try cache(directory)
      // No writer thread: the queue fills and nothing drains it until close.
      let writer = DiskCacheWriter(
        cache: disk, maxQueuedBytes: 2 * blockSize, stallLimit: 0.2, startsWriter: false, logger: testLogger)
      writer.put(key("log", index: 0), blockBytes(0, count: blockSize))
      writer.put(key("log", index: 1), blockBytes(1, count: blockSize))
      let clock = ContinuousClock()
      let waited = clock.measure { writer.put(key("log", index: 2), blockBytes(2, count: blockSize)) }
      #expect(waited >= .milliseconds(200) && waited < .seconds(5), "waited \(waited)")
      var statistics = writer.statistics
      #expect(statistics.dropped == 1 && statistics.waits == 1 && statistics.blocks == 2)
      #expect(writer.get(key("log", index: 2)) == nil)
      writer.close()
      statistics = writer.statistics
      #expect(statistics.written == 2 && statistics.blocks == 0)
      #expect(disk.get(key("log", index: 1)) == blockBytes(1, count: blockSize))
    }
  }
}
