import Glibc
public import Logging
import SystemBase
import SystemPackage

/// Who may use a disk cache directory at once: every mount (shared), or one maintenance command
/// (`bklogfs cache prune|clear|verify`, exclusive) while no mount does. An advisory `flock` on the
/// cache's `v1` directory itself (no file is added), held as long as the cache is open; the kernel
/// lets it go when the process ends, however it ends.
public enum DiskCacheUse: Sendable {
  case shared
  case exclusive
}

/// The lock of one open cache.
final class DiskCacheLock: Sendable {
  private let file: OpenedFile

  init(versionDirectory: String, use: DiskCacheUse) throws(DiskCacheError) {
    let path = versionDirectory
    do {
      file = try FileSystem.open(path, .readOnly, options: [.directory])
    } catch {
      throw DiskCacheError("Cannot open the cache's lock \(path): \(error.reason).")
    }
    let operation = (use == .shared ? LOCK_SH : LOCK_EX) | LOCK_NB
    while flock(file.descriptor.rawValue, operation) != 0 {
      let error = errno
      if error == EINTR { continue }
      file.closeIgnoringErrors()
      guard error == EWOULDBLOCK else {
        throw DiskCacheError("Cannot lock the cache \(path): \(String(cString: strerror(error))).")
      }
      let directory = String(versionDirectory.dropLast(BlockFileFormat.directoryName.count + 1))
      throw DiskCacheError(
        use == .shared
          ? "The cache directory \(directory) is being pruned or cleared (bklogfs cache); mount again once that is done."
          : "A bklogfs mount is using the cache directory \(directory); unmount it first.")
    }
  }

  deinit { file.closeIgnoringErrors() }
}

/// What a disk cache directory holds, by store, as `bklogfs cache` shows it.
public struct DiskCacheInventory: Sendable, Hashable {
  public struct Source: Sendable, Hashable {
    /// The store's identity, such as `s3://acme-buildkite-logs` or `buildkite:logs`.
    public var source: String
    public var blocks: Int
    /// Bytes of block files, headers included.
    public var bytes: Int
    /// Object versions (key and ETag) with at least one block.
    public var objects: Int
  }

  /// By bytes, most first.
  public var sources: [Source] = []
  public var blocks = 0
  public var bytes = 0
  /// Block files found damaged (and, by `verify`, removed).
  public var damaged = 0
  /// Block files of another block size, which a mount with this one removes.
  public var otherBlockSize = 0
  /// Whether every block's data was read and its checksum checked (`verify`), or only headers.
  public var dataChecked = false
}

extension DiskBlockCache {
  /// What the cache directory holds, from each block file's header; with `verify`, every block's data
  /// is read and checked too, and a damaged block is removed (taking the cache for this process
  /// alone: it fails while a mount uses it). A directory with no cache in it holds nothing.
  public static func inventory(directory: String, blockSize: Int, verify: Bool) throws(DiskCacheError)
    -> DiskCacheInventory
  {
    let versionDirectory = directory + "/" + BlockFileFormat.directoryName
    let blocksDirectory = versionDirectory + "/blocks"
    var inventory = DiskCacheInventory()
    inventory.dataChecked = verify
    guard (try? FileSystem.stat(blocksDirectory))??.type == .directory else { return inventory }
    let lock = verify ? try DiskCacheLock(versionDirectory: versionDirectory, use: .exclusive) : nil
    defer { withExtendedLifetime(lock) {} }
    var bySource: [String: (blocks: Int, bytes: Int, objects: Set<String>)] = [:]
    for subdirectory in try blockSubdirectories(blocksDirectory) {
      let names = (try? FileSystem.listDirectory(blocksDirectory + "/" + subdirectory)) ?? []
      for name in names.sorted() where name.hasSuffix(".blk") {
        let path = blocksDirectory + "/" + subdirectory + "/" + name
        let inspected = inspect(path, hash: String(name.dropLast(4)), blockSize: blockSize)
        if case .failure(.otherBlockSize) = inspected {
          inventory.otherBlockSize += 1
          continue
        }
        guard case .success(let found) = inspected, let key = BlockIdentity.decode(found.identity),
          !verify || dataIsWhole(path, found.identity, blockSize)
        else {
          inventory.damaged += 1
          if verify { try? FileSystem.unlink(path) }
          continue
        }
        inventory.blocks += 1
        inventory.bytes += found.block.size
        var entry = bySource[key.source] ?? (0, 0, [])
        entry.blocks += 1
        entry.bytes += found.block.size
        entry.objects.insert(key.key + "\u{0}" + key.etag)
        bySource[key.source] = entry
      }
    }
    inventory.sources = bySource.map { source, entry in
      DiskCacheInventory.Source(source: source, blocks: entry.blocks, bytes: entry.bytes, objects: entry.objects.count)
    }.sorted { ($0.bytes, $1.source) > ($1.bytes, $0.source) }
    return inventory
  }

  /// Makes the cache hold at most `maxBytes`, evicting least recently used blocks first (0 empties
  /// it), with the cache taken for this process alone: fails while a mount uses it. Damaged blocks,
  /// blocks of another block size and leftover temporary files go too, as at a mount's start.
  /// Returns what it holds afterwards.
  public static func prune(directory: String, toBytes maxBytes: Int, blockSize: Int, logger: Logger)
    throws(DiskCacheError) -> BlockCacheStatistics
  {
    let cache = try DiskBlockCache(
      directory: directory, maxBytes: maxBytes, blockSize: blockSize, logger: logger, use: .exclusive)
    return cache.statistics
  }

  /// Whether a block file whose header `inspect` passed holds its data whole: read, and its
  /// checksum checked.
  private static func dataIsWhole(_ path: String, _ identity: ArraySlice<UInt8>, _ blockSize: Int) -> Bool {
    guard let file = try? FileSystem.open(path, .readOnly, options: .noFollow) else { return false }
    defer { file.closeIgnoringErrors() }
    guard let info = try? file.stat(), let bytes = try? file.read(count: Int(info.size), at: 0) else { return false }
    if case .success = BlockFileFormat.decode(bytes, identity: Array(identity), blockSize: blockSize) { return true }
    return false
  }
}

extension BlockIdentity {
  /// The block an identity names (`encode`'s inverse), if it is well formed.
  static func decode(_ identity: ArraySlice<UInt8>) -> BlockKey? {
    var offset = 0
    var fields: [String] = []
    for _ in 0..<3 {
      guard identity.count - offset >= 4 else { return nil }
      let length = Int(identity.loadLittleEndian(UInt32.self, at: offset))
      offset += 4
      guard identity.count - offset >= length else { return nil }
      let start = identity.startIndex + offset
      guard let text = String(validating: identity[start..<start + length], as: UTF8.self) else { return nil }
      fields.append(text)
      offset += length
    }
    guard identity.count - offset == 16 else { return nil }
    return BlockKey(
      source: fields[0], key: fields[1], etag: fields[2], index: identity.loadLittleEndian(UInt64.self, at: offset))
  }
}
