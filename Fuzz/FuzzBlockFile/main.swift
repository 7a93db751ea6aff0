import FuzzDriver
import Glibc
import Logging

// Fuzzes the disk cache's block files, which the cache reads back from disk where anything may have
// damaged them: each input replaces the file of one cached block, which is then read (`get`) and
// scanned at start-up (a second cache over the same directory). A damaged file is refused, never
// served and never a crash; what is served is at most one block, and is the file's last bytes.
@testable import BlockCache

let blockSize = 4096
let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
let directory: String = {
  var template = Array("/tmp/bklogfs-fuzz-blockfile-XXXXXX".utf8CString)
  guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
  return String(cString: made)
}()
let key = BlockKey(source: "s3://fuzz", key: "org/pipeline/build/job.log", etag: "\"e\"", index: 3)
let block = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
let cache: DiskBlockCache = {
  do throws(DiskCacheError) {
    return try DiskBlockCache(directory: directory, maxBytes: 1 << 20, blockSize: blockSize, logger: quiet)
  } catch {
    fatalError("cannot open the cache in \(directory): \(error)")
  }
}()
let path = cache.filePath(for: key)

func overwrite(_ bytes: UnsafeRawBufferPointer) {
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
  require(fd >= 0, "cannot write \(path)")
  if let base = bytes.baseAddress, !bytes.isEmpty {
    require(write(fd, base, bytes.count) == bytes.count, "short write")
  }
  close(fd)
}

func requireServable(_ served: [UInt8]?, from input: UnsafeRawBufferPointer) {
  guard let served else { return }
  require(served.count <= blockSize, "served \(served.count) bytes from a cache of \(blockSize)-byte blocks")
  require(
    input.count > served.count && input.suffix(served.count).elementsEqual(served),
    "served bytes the file does not end with")
}

runFuzzer { input in
  _ = BlockFileFormat.FixedHeader.parse(Array(input)[...])
  _ = BlockIdentity.blockSize(of: Array(input)[...])

  cache.remove(key)
  cache.put(key, block)
  require(cache.get(key) == block, "the block just written does not read back")
  overwrite(input)
  requireServable(cache.get(key), from: input)

  overwrite(input)
  let reopened: DiskBlockCache
  do throws(DiskCacheError) {
    reopened = try DiskBlockCache(directory: directory, maxBytes: 1 << 20, blockSize: blockSize, logger: quiet)
  } catch {
    require(false, "a damaged block file stopped the cache from opening: \(error)")
    return
  }
  require(reopened.statistics.blocks <= 1, "\(reopened.statistics.blocks) blocks from one file")
  requireServable(reopened.get(key), from: input)
}
