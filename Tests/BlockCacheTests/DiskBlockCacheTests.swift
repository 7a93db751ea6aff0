import BlockCache
import Digests
import Foundation
import Glibc
import TestSupport
import Testing

@Suite struct DiskBlockCacheTests {
  let blockSize = 256

  func open(_ directory: String, maxBytes: Int = 1 << 20, blockSize: Int? = nil) throws -> DiskBlockCache {
    try DiskBlockCache(
      directory: directory + "/cache", maxBytes: maxBytes, blockSize: blockSize ?? self.blockSize,
      logger: testLogger)
  }

  @Test func putGetRoundTrip() throws {
    try withTemporaryDirectory { directory in
      let cache = try open(directory)
      let odd = BlockKey(
        source: "file:///srv/archive", key: "org/pipe line/\nbuild/ünïcode.log", etag: "\"abc\"", index: 7)
      cache.put(key("a"), blockBytes(1, count: 256))
      cache.put(odd, blockBytes(2, count: 3))
      cache.put(key("empty"), [])
      #expect(cache.get(key("a")) == blockBytes(1, count: 256))
      #expect(cache.get(odd) == blockBytes(2, count: 3))
      #expect(cache.get(key("empty")) == [])
      // Every field of the key matters.
      #expect(cache.get(key("a", index: 1)) == nil)
      #expect(cache.get(key("a", etag: "\"etag-2\"")) == nil)
      #expect(cache.get(BlockKey(source: "s3://other", key: "a", etag: "\"etag-1\"", index: 0)) == nil)
      let statistics = cache.statistics
      #expect(statistics.hits == 3)
      #expect(statistics.misses == 3)
      #expect(statistics.writes == 3)
      #expect(statistics.blocks == 3)
      #expect(statistics.corruptBlocks == 0)
      let files = try filesUnder(directory + "/cache")
      #expect(files.count == 3)
      #expect(files.map(\.size).reduce(0, +) == statistics.bytes)
      #expect(files.allSatisfy { $0.path.hasPrefix("v1/blocks/") && $0.path.hasSuffix(".blk") })
      #expect(cache.filePath(for: odd).hasPrefix(directory + "/cache/v1/blocks/"))
    }
  }

  @Test func blockLargerThanBlockSizeIsNotStored() throws {
    try withTemporaryDirectory { directory in
      let cache = try open(directory)
      cache.put(key("big"), blockBytes(1, count: blockSize + 1))
      #expect(cache.get(key("big")) == nil)
      #expect(cache.statistics.writes == 0)
      #expect(try filesUnder(directory + "/cache").isEmpty)
    }
  }

  @Test func persistsAcrossInstances() throws {
    try withTemporaryDirectory { directory in
      var bytes = 0
      do {
        let first = try open(directory)
        for index in 0..<5 { first.put(key("k\(index)"), blockBytes(index, count: 200)) }
        bytes = first.statistics.bytes
      }
      let second = try open(directory)
      #expect(second.statistics.blocks == 5)
      #expect(second.statistics.bytes == bytes)
      for index in 0..<5 { #expect(second.get(key("k\(index)")) == blockBytes(index, count: 200)) }
    }
  }

  @Test func anotherBlockSizeNeverServesOldBlocks() throws {
    try withTemporaryDirectory { directory in
      do {
        let first = try open(directory, blockSize: 256)
        first.put(key("a"), blockBytes(1, count: 100))
      }
      let second = try open(directory, blockSize: 512)
      #expect(second.get(key("a")) == nil)
      #expect(second.statistics.blocks == 0)
      #expect(try filesUnder(directory + "/cache").isEmpty)
    }
  }

  /// The size on disk of one block of `count` bytes under `key("kN")`-style keys of equal length.
  func fileSize(_ directory: String, count: Int) throws -> Int {
    let probe = try DiskBlockCache(
      directory: directory + "/probe", maxBytes: 1 << 20, blockSize: blockSize, logger: testLogger)
    probe.put(key("k0"), blockBytes(0, count: count))
    return probe.statistics.bytes
  }

  @Test func evictsLeastRecentlyUsedAndKeepsTheBound() throws {
    try withTemporaryDirectory { directory in
      let size = try fileSize(directory, count: 200)
      let maxBytes = 3 * size + size / 2
      let cache = try open(directory, maxBytes: maxBytes)
      for index in 0..<3 { cache.put(key("k\(index)"), blockBytes(index, count: 200)) }
      #expect(cache.statistics.blocks == 3)
      #expect(cache.get(key("k0")) != nil)  // k0 becomes the most recently used; k1 the least
      cache.put(key("k3"), blockBytes(3, count: 200))
      #expect(cache.statistics.evictions == 1)
      #expect(!fileExists(cache.filePath(for: key("k1"))))
      #expect(cache.get(key("k1")) == nil)
      for index in [0, 2, 3] { #expect(cache.get(key("k\(index)")) == blockBytes(index, count: 200)) }

      for index in 4..<40 {
        cache.put(key("k\(index)"), blockBytes(index, count: 200))
        #expect(cache.statistics.bytes <= maxBytes)
      }
      let statistics = cache.statistics
      #expect(statistics.blocks == 3)  // keys k10... are a byte longer than k0...: still three fit, not four
      let files = try filesUnder(directory + "/cache")
      #expect(files.map(\.size).reduce(0, +) == statistics.bytes)
      for index in 37..<40 { #expect(cache.get(key("k\(index)")) == blockBytes(index, count: 200)) }
    }
  }

  @Test func startUpOrdersByModificationTimeAndEvictsToTheBound() throws {
    try withTemporaryDirectory { directory in
      let size = try fileSize(directory, count: 200)
      do {
        let first = try open(directory)
        for index in 0..<4 { first.put(key("k\(index)"), blockBytes(index, count: 200)) }
        // k2 is the oldest, then k0, k3, k1.
        let times = [2: 1_000, 0: 2_000, 3: 3_000, 1: 4_000]
        for (index, time) in times {
          try setModificationTime(first.filePath(for: key("k\(index)")), 1_700_000_000 + time)
        }
      }
      let second = try open(directory, maxBytes: 2 * size)
      #expect(second.statistics.blocks == 2)
      #expect(second.statistics.evictions == 2)
      #expect(second.get(key("k2")) == nil)
      #expect(second.get(key("k0")) == nil)
      #expect(second.get(key("k3")) == blockBytes(3, count: 200))
      #expect(second.get(key("k1")) == blockBytes(1, count: 200))
    }
  }

  @Test func hitRefreshesTheFileTimeAtMostOncePerMinute() throws {
    try withTemporaryDirectory { directory in
      let path: String
      do {
        let first = try open(directory)
        first.put(key("a"), blockBytes(1, count: 100))
        path = first.filePath(for: key("a"))
      }
      let old = 1_700_000_000
      try setModificationTime(path, old)
      let second = try open(directory)
      #expect(second.get(key("a")) != nil)
      let refreshed = modificationTime(path)
      #expect(refreshed > old + 60)
      // Within the minute, a hit does not write the time again.
      try setModificationTime(path, old)
      #expect(second.get(key("a")) != nil)
      #expect(modificationTime(path) == old)
    }
  }

  enum Damage: String, CaseIterable, Sendable {
    case flippedDataByte, flippedMagic, flippedDataLength, flippedIdentityByte, flippedDataChecksum
    case truncated, truncatedIntoHeader, zeroLength, extraByte

    func apply(to bytes: [UInt8]) -> [UInt8] {
      var bytes = bytes
      switch self {
      case .flippedDataByte: bytes[bytes.count - 1] ^= 0x01
      case .flippedMagic: bytes[0] ^= 0x20
      case .flippedDataLength: bytes[16] ^= 0x01
      case .flippedIdentityByte: bytes[40] ^= 0x01
      case .flippedDataChecksum: bytes[24] ^= 0x80
      case .truncated: bytes.removeLast()
      case .truncatedIntoHeader: bytes.removeLast(bytes.count - 20)
      case .zeroLength: bytes = []
      case .extraByte: bytes.append(0)
      }
      return bytes
    }
  }

  @Test(arguments: Damage.allCases)
  func damagedBlockIsRemovedOnRead(_ damage: Damage) throws {
    try withTemporaryDirectory { directory in
      let cache = try open(directory)
      cache.put(key("a"), blockBytes(1, count: 200))
      cache.put(key("b"), blockBytes(2, count: 200))
      let path = cache.filePath(for: key("a"))
      try overwriteFile(path, damage.apply(to: try readFile(path)))

      #expect(cache.get(key("a")) == nil)
      #expect(!fileExists(path))
      var statistics = cache.statistics
      #expect(statistics.corruptBlocks == 1)
      #expect(statistics.blocks == 1)
      #expect(statistics.bytes == (try filesUnder(directory + "/cache")).map(\.size).reduce(0, +))
      // Counted once, and the cache recovers.
      #expect(cache.get(key("a")) == nil)
      #expect(cache.statistics.corruptBlocks == 1)
      #expect(cache.get(key("b")) == blockBytes(2, count: 200))
      cache.put(key("a"), blockBytes(1, count: 200))
      #expect(cache.get(key("a")) == blockBytes(1, count: 200))
      statistics = cache.statistics
      #expect(statistics.blocks == 2)
    }
  }

  /// Rewrites a block file as format version 1 (CRC-32 checksums), as an older bklogfs wrote it.
  func rewriteAsVersion1(_ path: String) throws {
    var bytes = try readFile(path)
    let headerLength = Int(bytes[12]) | Int(bytes[13]) << 8 | Int(bytes[14]) << 16 | Int(bytes[15]) << 24
    func store(_ value: UInt32, at offset: Int) {
      for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
    store(1, at: 8)
    store(bytes[headerLength...].withUnsafeBytes { CRC32.checksum($0) }, at: 24)
    let first = bytes[0..<28].withUnsafeBytes { CRC32.checksum($0) }
    store(bytes[32..<headerLength].withUnsafeBytes { CRC32.checksum($0, continuing: first) }, at: 28)
    try overwriteFile(path, bytes)
  }

  @Test func blocksOfFormatVersion1AreReadAndChecked() throws {
    try withTemporaryDirectory { directory in
      let cache = try open(directory)
      cache.put(key("a"), blockBytes(1, count: 200))
      cache.put(key("b"), blockBytes(2, count: 200))
      try rewriteAsVersion1(cache.filePath(for: key("a")))
      // A version-1 file with a flipped data byte fails its CRC-32.
      try rewriteAsVersion1(cache.filePath(for: key("b")))
      var damaged = try readFile(cache.filePath(for: key("b")))
      damaged[damaged.count - 1] ^= 0x01
      try overwriteFile(cache.filePath(for: key("b")), damaged)

      let reopened = try open(directory)
      #expect(reopened.get(key("a")) == blockBytes(1, count: 200))
      #expect(reopened.get(key("b")) == nil)
      #expect(reopened.statistics.corruptBlocks == 1)
    }
  }

  @Test func blockHoldingAnotherIdentityIsRemoved() throws {
    try withTemporaryDirectory { directory in
      let cache = try open(directory)
      cache.put(key("a"), blockBytes(1, count: 200))
      cache.put(key("b"), blockBytes(2, count: 200))
      // As a hash collision would look: b's name holds a's (valid) block.
      try overwriteFile(cache.filePath(for: key("b")), try readFile(cache.filePath(for: key("a"))))
      #expect(cache.get(key("b")) == nil)
      #expect(!fileExists(cache.filePath(for: key("b"))))
      #expect(cache.statistics.corruptBlocks == 1)
      #expect(cache.get(key("a")) == blockBytes(1, count: 200))
    }
  }

  @Test func damageVisibleWithoutReadingDataIsRemovedAtStartUp() throws {
    try withTemporaryDirectory { directory in
      var paths: [String] = []
      do {
        let first = try open(directory)
        for index in 0..<5 { first.put(key("k\(index)"), blockBytes(index, count: 200)) }
        paths = (0..<5).map { first.filePath(for: key("k\($0)")) }
      }
      try overwriteFile(paths[0], Damage.truncated.apply(to: try readFile(paths[0])))
      try overwriteFile(paths[1], [])
      try overwriteFile(paths[2], Damage.flippedIdentityByte.apply(to: try readFile(paths[2])))
      // Copied over another's name: the identity no longer hashes to the name.
      try overwriteFile(paths[3], try readFile(paths[4]))
      let second = try open(directory)
      #expect(second.statistics.corruptBlocks == 4)
      #expect(second.statistics.blocks == 1)
      for path in paths.prefix(4) { #expect(!fileExists(path)) }
      #expect(second.get(key("k4")) == blockBytes(4, count: 200))
    }
  }

  @Test func leftoverTemporaryFilesAreRemovedAtStartUp() throws {
    try withTemporaryDirectory { directory in
      let blockPath: String
      do {
        let first = try open(directory)
        first.put(key("a"), blockBytes(1, count: 200))
        blockPath = first.filePath(for: key("a"))
      }
      let subdirectory = String(blockPath[..<blockPath.lastIndex(of: "/")!])
      let hash = String(repeating: "a", count: 64)
      let deadWriter = subdirectory + "/\(hash).999999999.3.tmp"  // no such process
      let ourOwn = subdirectory + "/\(hash).\(getpid()).1.tmp"  // left by an earlier instance in this process
      let malformed = subdirectory + "/junk.tmp"
      let liveWriter = subdirectory + "/\(hash).1.1.tmp"  // pid 1 always exists: still writing
      for path in [deadWriter, ourOwn, malformed, liveWriter] {
        #expect(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
      }
      let second = try open(directory)
      #expect(!fileExists(deadWriter))
      #expect(!fileExists(ourOwn))
      #expect(!fileExists(malformed))
      #expect(fileExists(liveWriter))
      #expect(second.get(key("a")) == blockBytes(1, count: 200))
    }
  }

  @Test func directoriesAre0700AndFiles0600() throws {
    try withTemporaryDirectory { directory in
      let root = directory + "/parent/cache"
      let cache = try DiskBlockCache(directory: root, maxBytes: 1 << 20, blockSize: blockSize, logger: testLogger)
      cache.put(key("a"), blockBytes(1, count: 10))
      let file = cache.filePath(for: key("a"))
      let subdirectory = String(file[..<file.lastIndex(of: "/")!])
      for path in [directory + "/parent", root, root + "/v1", root + "/v1/blocks", subdirectory] {
        #expect(permissions(path) == 0o700, "\(path)")
      }
      #expect(permissions(file) == 0o600)
    }
  }

  @Test func regularFileInsteadOfADirectoryIsAClearError() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/not-a-directory"
      #expect(FileManager.default.createFile(atPath: path, contents: Data([1])))
      let error = #expect(throws: DiskCacheError.self) {
        try DiskBlockCache(directory: path, maxBytes: 1000, blockSize: 100, logger: testLogger)
      }
      #expect(error?.description == "The cache directory \(path) exists but is not a directory.")

      let below = path + "/cache"
      let error2 = #expect(throws: DiskCacheError.self) {
        try DiskBlockCache(directory: below, maxBytes: 1000, blockSize: 100, logger: testLogger)
      }
      #expect(error2?.description.contains(below) == true)
      #expect(error2?.description.contains("Not a directory") == true)
    }
  }

  @Test func failedWriteIsNotFatal() throws {
    try withTemporaryDirectory { directory in
      let cache = try open(directory)
      let file = cache.filePath(for: key("a"))
      let subdirectory = String(file[..<file.lastIndex(of: "/")!])
      // The block's subdirectory is a regular file: every write there fails.
      #expect(FileManager.default.createFile(atPath: subdirectory, contents: Data()))
      cache.put(key("a"), blockBytes(1, count: 10))
      cache.put(key("a"), blockBytes(1, count: 10))
      #expect(cache.get(key("a")) == nil)
      #expect(cache.statistics.writes == 0)
      #expect(cache.statistics.bytes == 0)
    }
  }

  @Test func concurrentPutAndGetFromPlainThreads() async throws {
    try await withTemporaryDirectory { directory in
      let size = try fileSize(directory, count: 200)
      let maxBytes = 6 * size
      let cache = try open(directory, maxBytes: maxBytes)
      let wrong = CounterBox()
      let hits = CounterBox()
      let overBound = CounterBox()
      let deadline = ContinuousClock.now + .milliseconds(700)
      let onDiskOverBound = CounterBox()
      let samples = CounterBox()
      await runOnThreads(9) { thread in
        var random = SystemRandomNumberGenerator()
        var step = 0
        while ContinuousClock.now < deadline {
          if thread == 8 {
            // Files being written count too: space is reserved before a file is written.
            if let files = try? filesUnder(directory + "/cache") {
              samples.add()
              if files.map(\.size).reduce(0, +) > maxBytes { onDiskOverBound.add() }
            }
            continue
          }
          step += 1
          let index = Int.random(in: 0..<16, using: &random)
          let expected = blockBytes(index, count: 50 + index * 9)
          if Int.random(in: 0..<3, using: &random) == 0 {
            cache.put(key("k\(index)"), expected)
            // Rename and eviction happen under one lock: the total is never seen over the bound.
            if cache.statistics.bytes > maxBytes { overBound.add() }
          } else if let got = cache.get(key("k\(index)")) {
            hits.add()
            if got != expected { wrong.add() }
          }
        }
      }
      #expect(wrong.value == 0)
      #expect(overBound.value == 0)
      #expect(onDiskOverBound.value == 0, "\(onDiskOverBound.value) of \(samples.value) samples over the bound")
      #expect(samples.value > 0)
      #expect(hits.value > 0)
      let statistics = cache.statistics
      #expect(statistics.corruptBlocks == 0)
      #expect(statistics.bytes <= maxBytes)
      let files = try filesUnder(directory + "/cache")
      #expect(files.allSatisfy { $0.path.hasSuffix(".blk") })  // no temporary file left behind
      #expect(files.count == statistics.blocks)
      #expect(files.map(\.size).reduce(0, +) == statistics.bytes)
    }
  }
}
