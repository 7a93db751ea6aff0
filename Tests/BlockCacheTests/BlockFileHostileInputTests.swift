import BlockCache
import Foundation
import Logging
import TestSupport
import Testing

/// A block file may hold anything by the time it is read back (a disk error, a hand edit, another
/// program): the cache serves a block only from a whole, checked file, and otherwise removes it
/// (doc/SEMANTICS.md, "Malformed responses"). The key and block are those of `Fuzz/FuzzBlockFile`,
/// whose corpus holds files of that block.
@Suite struct BlockFileHostileInputTests {
  let blockSize = 4096
  let fuzzKey = BlockKey(source: "s3://fuzz", key: "org/pipeline/build/job.log", etag: "\"e\"", index: 3)
  let fuzzBlock = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
  let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

  /// What a cache serves for `fuzzKey` when its file holds `file`: by `get`, then after a restart.
  func served(_ file: [UInt8], in directory: String) throws -> (get: [UInt8]?, afterRestart: [UInt8]?) {
    let cache = try DiskBlockCache(directory: directory, maxBytes: 1 << 20, blockSize: blockSize, logger: quiet)
    cache.remove(fuzzKey)
    cache.put(fuzzKey, fuzzBlock)
    let path = cache.filePath(for: fuzzKey)
    try overwriteFile(path, file)
    let got = cache.get(fuzzKey)
    cache.put(fuzzKey, fuzzBlock)  // again, if the damaged file was removed
    try overwriteFile(path, file)
    let reopened = try DiskBlockCache(directory: directory, maxBytes: 1 << 20, blockSize: blockSize, logger: quiet)
    return (got, reopened.get(fuzzKey))
  }

  @Test func everyKeptFuzzInputIsServedWholeOrRemoved() throws {
    let inputs = try FuzzCorpus.inputs("FuzzBlockFile")
    #expect(inputs.count >= 4)
    try withTemporaryDirectory { directory in
      for (name, file) in inputs {
        let (got, afterRestart) = try served(file, in: directory)
        for block in [got, afterRestart] {
          guard let block else { continue }
          #expect(
            block.count <= blockSize && file.count > block.count && file.suffix(block.count).elementsEqual(block),
            "\(name)")
        }
      }
      let valid = try #require(inputs.first { $0.name == "seed-valid.blk" }).bytes
      #expect(try served(valid, in: directory) == (fuzzBlock, fuzzBlock))
    }
  }

  @Test func aBlockFileCutAtAnyByteOrWithAnyByteFlippedIsNeverServed() throws {
    let valid = try #require(try FuzzCorpus.inputs("FuzzBlockFile").first { $0.name == "seed-valid.blk" }).bytes
    try withTemporaryDirectory { directory in
      let cache = try DiskBlockCache(directory: directory, maxBytes: 1 << 20, blockSize: blockSize, logger: quiet)
      let path = cache.filePath(for: fuzzKey)
      for length in 0..<valid.count {
        cache.put(fuzzKey, fuzzBlock)
        try overwriteFile(path, Array(valid[..<length]))
        #expect(cache.get(fuzzKey) == nil, "cut to \(length) bytes")
        #expect(!fileExists(path))
      }
      for index in stride(from: 0, to: valid.count, by: 7) {
        cache.put(fuzzKey, fuzzBlock)
        var damaged = valid
        damaged[index] ^= 0x04
        try overwriteFile(path, damaged)
        #expect(cache.get(fuzzKey) == nil, "byte \(index) flipped")
      }
      #expect(cache.statistics.corruptBlocks == valid.count + (valid.count + 6) / 7)
    }
  }
}
