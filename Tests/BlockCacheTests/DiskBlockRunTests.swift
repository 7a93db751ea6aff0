import BlockCache
import Foundation
import Glibc
import TestSupport
import Testing

/// A run of blocks in one file (`DiskBlockCache.putRun`): each block served, found again by a new
/// cache over the directory, and evicted, removed or found damaged with its file.
@Suite struct DiskBlockRunTests {
  let blockSize = 256

  func open(_ directory: String, maxBytes: Int = 1 << 20) throws -> DiskBlockCache {
    try DiskBlockCache(directory: directory + "/cache", maxBytes: maxBytes, blockSize: blockSize, logger: testLogger)
  }

  /// The bytes a file of one of `run`'s blocks takes: its record.
  func recordSize(_ directory: String) throws -> Int {
    let probe = try open(directory + "/probe")
    let block = run("probe", 0..<1)[0]
    probe.put(block.key, block.bytes)
    return probe.statistics.bytes
  }

  func run(_ name: String, _ indices: Range<UInt64>, count: Int = 256) -> [(key: BlockKey, bytes: [UInt8])] {
    indices.map { (key(name, index: $0), blockBytes(Int($0) + name.utf8.count, count: count)) }
  }

  @Test func aRunIsOneFileAndEveryBlockIsServedAgainAfterARemount() throws {
    try withTemporaryDirectory { directory in
      var bytes = 0
      do {
        let cache = try open(directory)
        // The last block of an object is short.
        cache.putRun(run("log", 0..<7) + [(key("log", index: 7), blockBytes(99, count: 10))])
        let statistics = cache.statistics
        #expect(statistics.blocks == 8 && statistics.writes == 8)
        let files = try filesUnder(directory + "/cache")
        #expect(files.count == 1, "\(files)")
        #expect(files.map(\.size).reduce(0, +) == statistics.bytes)
        bytes = statistics.bytes
        for (key, block) in run("log", 0..<7) { #expect(cache.get(key) == block) }
        #expect(cache.get(key("log", index: 7)) == blockBytes(99, count: 10))
        #expect(Set((0..<8).map { cache.filePath(for: key("log", index: $0)) }).count == 1)
      }
      let reopened = try open(directory)
      #expect(reopened.statistics.blocks == 8 && reopened.statistics.bytes == bytes)
      for (key, block) in run("log", 0..<7) { #expect(reopened.get(key) == block) }
      #expect(reopened.get(key("log", index: 7)) == blockBytes(99, count: 10))
      #expect(reopened.get(key("log", index: 8)) == nil)
    }
  }

  @Test func blocksAlreadyHeldAreNotWrittenAgain() throws {
    try withTemporaryDirectory { directory in
      let cache = try open(directory)
      cache.put(key("log", index: 2), blockBytes(7, count: 256))
      cache.putRun(run("log", 0..<4))
      // Block 2 stays in its own file, with its own bytes; the run's file holds 0, 1 and 3.
      #expect(cache.statistics.blocks == 4 && cache.statistics.writes == 4)
      #expect(try filesUnder(directory + "/cache").count == 2)
      #expect(cache.get(key("log", index: 2)) == blockBytes(7, count: 256))
      #expect(cache.get(key("log", index: 3)) == run("log", 3..<4)[0].bytes)
      #expect(cache.filePath(for: key("log", index: 0)) == cache.filePath(for: key("log", index: 3)))
    }
  }

  @Test func aRunLargerThanAQuarterOfTheCacheGoesToSeveralFiles() throws {
    try withTemporaryDirectory { directory in
      // A quarter of 8 KiB holds five or six records of 256 bytes and a header.
      let perFile = (2 << 10) / (try recordSize(directory))
      let cache = try open(directory, maxBytes: 8 << 10)
      cache.putRun(run("log", 0..<16))
      let files = try filesUnder(directory + "/cache")
      #expect(perFile >= 2 && files.count == (16 + perFile - 1) / perFile, "\(files)")
      #expect(files.allSatisfy { $0.size <= 2 << 10 })
      #expect(cache.statistics.blocks == 16)
      for (key, block) in run("log", 0..<16) { #expect(cache.get(key) == block) }
    }
  }

  @Test func evictionAndRemovalTakeAWholeFile() throws {
    try withTemporaryDirectory { directory in
      let record = try recordSize(directory)
      // Room for four runs of four blocks, each run a file (a quarter of the cache).
      let cache = try open(directory, maxBytes: 16 * record + record / 2)
      let names = ["first", "second", "third", "fourth"]
      for name in names { cache.putRun(run(name, 0..<4)) }
      #expect(try filesUnder(directory + "/cache").count == 4)
      // The first run is now more recently used than the second, which the fifth evicts, whole.
      #expect(cache.get(key("first", index: 3)) != nil)
      cache.putRun(run("fifth", 0..<4))
      #expect(cache.statistics.blocks == 16 && cache.statistics.evictions == 4)
      for (key, _) in run("second", 0..<4) { #expect(cache.get(key) == nil) }
      for name in ["first", "third", "fourth", "fifth"] {
        for (key, block) in run(name, 0..<4) { #expect(cache.get(key) == block ? true : false, "\(key)") }
      }
      #expect(cache.statistics.bytes <= cache.maxBytes)

      cache.remove(key("third", index: 1))
      for (key, _) in run("third", 0..<4) { #expect(cache.get(key) == nil) }
      for (key, block) in run("first", 0..<4) { #expect(cache.get(key) == block ? true : false, "\(key)") }
      #expect(try filesUnder(directory + "/cache").count == 3)
      #expect(cache.statistics.blocks == 12)
    }
  }

  @Test func aDamagedRecordTakesItsFileAndNoBlockOfItIsServedWrong() throws {
    try withTemporaryDirectory { directory in
      let blocks = run("log", 0..<3)
      let cache = try open(directory)
      cache.putRun(blocks)
      let path = cache.filePath(for: blocks[1].key)
      var damaged = try readFile(path)
      damaged[damaged.count / 2] ^= 0x40  // in the middle record's data
      try overwriteFile(path, damaged)
      // The first record is whole and still served; the middle one fails its checksum, which
      // removes the file with all three.
      #expect(cache.get(blocks[0].key) == blocks[0].bytes)
      #expect(cache.get(blocks[1].key) == nil)
      #expect(cache.statistics.corruptBlocks == 1)
      #expect(!FileManager.default.fileExists(atPath: path))
      for (key, _) in blocks { #expect(cache.get(key) == nil) }
      #expect(cache.statistics.blocks == 0 && cache.statistics.bytes == 0)
    }
  }

  @Test func aRunFileCutOrLengthenedNeverServesWrongBytes() throws {
    try withTemporaryDirectory { directory in
      let blocks = run("log", 0..<3)
      let path: String
      let whole: [UInt8]
      do {
        let cache = try open(directory)
        cache.putRun(blocks)
        path = cache.filePath(for: blocks[0].key)
        whole = try readFile(path)
      }
      let record = whole.count / 3
      // (the file's bytes, the blocks a new cache over it finds): cut within a record or lengthened by
      // bytes that are no record, the file is damaged and removed at start-up; cut at a record's end,
      // it holds the records before the cut, whole; lengthened by a whole record, it holds that too.
      let variants: [([UInt8], Int)] = [
        (Array(whole[..<(2 * record + 40)]), 0), (Array(whole[..<(record - 1)]), 0), (whole + [0], 0),
        (whole + Array(repeating: 0, count: 100), 0), (Array(whole[..<(2 * record)]), 2),
        (whole + Array(whole[..<record]), 3),
      ]
      for (variant, expected) in variants {
        try? FileManager.default.removeItem(atPath: path)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(variant)))
        let reopened = try open(directory)
        #expect(reopened.statistics.blocks == expected, "\(variant.count) bytes")
        #expect(FileManager.default.fileExists(atPath: path) == (expected > 0), "\(variant.count) bytes")
        for (index, (key, block)) in blocks.enumerated() {
          #expect(reopened.get(key) == (index < expected ? block : nil) ? true : false, "\(variant.count) bytes")
        }
      }
    }
  }

  @Test func theInventoryAndVerifyCountARunsBlocks() throws {
    try withTemporaryDirectory { directory in
      do {
        let cache = try open(directory)
        cache.putRun(run("log", 0..<5))
        cache.put(key("other"), blockBytes(3, count: 100))
      }
      let inventory = try DiskBlockCache.inventory(
        directory: directory + "/cache", blockSize: blockSize, verify: true)
      #expect(inventory.blocks == 6 && inventory.damaged == 0)
      #expect(inventory.sources.count == 1 && inventory.sources[0].objects == 2)
      #expect(inventory.bytes == (try filesUnder(directory + "/cache").map(\.size).reduce(0, +)))
    }
  }
}
