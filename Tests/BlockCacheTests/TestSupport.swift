import BlockCache
import Foundation
import Glibc
import Logging
import Synchronization
import TestSupport

let testLogger = Logger(label: "BlockCacheTests")

struct TestSetupError: Error, CustomStringConvertible {
  var description: String
}

func key(_ name: String, index: UInt64 = 0, etag: String = "\"etag-1\"") -> BlockKey {
  BlockKey(source: "s3://test-bucket", key: name, etag: etag, index: index)
}

/// Distinct, recognisable bytes for a block.
func blockBytes(_ seed: Int, count: Int) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ 1) }
}

func readFile(_ path: String) throws -> [UInt8] {
  guard let data = FileManager.default.contents(atPath: path) else {
    throw TestSetupError(description: "cannot read \(path)")
  }
  return [UInt8](data)
}

/// Overwrites a file in place (same inode), as damage on disk would.
func overwriteFile(_ path: String, _ bytes: [UInt8]) throws {
  let fd = open(path, O_WRONLY | O_TRUNC)
  guard fd >= 0 else { throw TestSetupError(description: "cannot open \(path): errno \(errno)") }
  defer { close(fd) }
  let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
  guard written == bytes.count else { throw TestSetupError(description: "short write to \(path)") }
}

func fileExists(_ path: String) -> Bool {
  var info = stat()
  return lstat(path, &info) == 0
}

func permissions(_ path: String) -> mode_t {
  var info = stat()
  guard stat(path, &info) == 0 else { return 0 }
  return info.st_mode & 0o7777
}

func modificationTime(_ path: String) -> Int {
  var info = stat()
  guard stat(path, &info) == 0 else { return -1 }
  return info.st_mtim.tv_sec
}

/// Sets a file's modification time (seconds since the epoch).
func setModificationTime(_ path: String, _ seconds: Int) throws {
  var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
  guard utimensat(AT_FDCWD, path, &times, 0) == 0 else {
    throw TestSetupError(description: "utimensat \(path): errno \(errno)")
  }
}

/// Every file under `directory`, relative paths, with their sizes.
func filesUnder(_ directory: String) throws -> [(path: String, size: Int)] {
  let manager = FileManager.default
  var result: [(String, Int)] = []
  for relative in try manager.subpathsOfDirectory(atPath: directory) {
    let full = directory + "/" + relative
    var info = stat()
    guard lstat(full, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
    result.append((relative, Int(info.st_size)))
  }
  return result
}

private final class Countdown: Sendable {
  let remaining: Mutex<Int>
  init(_ count: Int) { remaining = Mutex(count) }
  /// True for the caller that brings it to zero.
  func finishOne() -> Bool {
    remaining.withLock {
      $0 -= 1; return $0 == 0
    }
  }
}

/// Runs `body(i)` on `count` plain threads (as FUSE workers are) and returns when all are done.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) async {
  await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
    let countdown = Countdown(count)
    for index in 0..<count {
      let thread = Thread {
        body(index)
        if countdown.finishOne() { continuation.resume() }
      }
      thread.start()
    }
  }
}

final class CounterBox: Sendable {
  private let count = Atomic<Int>(0)
  func add() { count.wrappingAdd(1, ordering: .relaxed) }
  var value: Int { count.load(ordering: .relaxed) }
}
