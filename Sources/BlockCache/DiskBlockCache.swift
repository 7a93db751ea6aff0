import Glibc
public import Logging
import Synchronization
import SystemBase
import SystemPackage

/// Why a disk cache could not be opened: one plain sentence naming the path.
public struct DiskCacheError: Error, Sendable, CustomStringConvertible {
  public var description: String

  public init(_ description: String) { self.description = description }
}

/// Blocks on disk, persistent across mounts.
///
/// Layout: `<directory>/v1/blocks/<2 hex>/<sha256 hex of its first block's identity>.blk`. A file holds one
/// block or a run of them (`putRun`: the blocks one GET brought), each a record in `BlockFileFormat`, one after
/// the other: one file for a run costs ext4 one inode instead of one a block, which was half the CPU of
/// writing a block (doc/BENCHMARKS.md, "The floor, part by part"). A file of one block is what every
/// version has written, so caches written before stay valid.
///
/// Thread-safe. One `Mutex` guards the in-memory index (block → file and place; file → size, recency and
/// blocks) and every change to the directory's names (rename into place, unlink), so the index and the
/// directory agree; reading and writing block data, and checksumming it, happen outside the lock. Files are
/// never changed in place, only replaced by rename, so a reader holding a descriptor sees a whole file even if
/// its blocks are evicted or replaced meanwhile. Recency, eviction and removal are by file: a run's blocks
/// were fetched together and are mostly read together.
///
/// The index is this process's: two processes sharing one directory each stay correct (every read is checked) but
/// each bounds only what it knows of. Give each mount its own directory.
public final class DiskBlockCache: Sendable {
  public let directory: String
  public let maxBytes: Int
  public let blockSize: Int

  private let blocksDirectory: String
  private let logger: Logger
  private let state: Mutex<State>
  /// Held while the cache is open: shared by mounts, exclusive for maintenance (`DiskCacheUse`).
  private let lock: DiskCacheLock
  private let temporaryCounter = Atomic<UInt64>(0)
  private let processID: Int32

  /// How often, at most, a hit refreshes a block file's mtime (which orders blocks at the next start-up).
  private static let touchInterval = 60
  /// How often, at most, a failed write is logged.
  private static let writeFailureLogInterval = 60

  /// A block file: its size, when it was last used, and the blocks it holds (their hashes).
  private struct FileEntry: Sendable {
    var size: Int
    /// Wall-clock seconds of the file's mtime as we last set or saw it.
    var touchedAt: Int
    var blocks: [String]
  }

  /// Where a block is: the file (by the hash that names it), and its record's place in it.
  fileprivate struct BlockEntry: Sendable {
    var file: String
    var offset: Int
    var length: Int
  }

  private struct State: Sendable {
    var files = LRUList<String, FileEntry>()
    var blocks: [String: BlockEntry] = [:]
    var statistics = BlockCacheStatistics()
    /// Bytes of files being written: counted against `maxBytes` before they are written, so the
    /// files on disk never exceed it, even with many writers at once.
    var reserved = 0
    var lastWriteFailureLog: Int? = nil
    var suppressedWriteFailures = 0
  }

  /// Creates `directory` (mode 0700, parents too) if missing, checks it is a directory owned by this user
  /// and writable, scans what is there to rebuild the LRU order and size (files' mtimes as last use),
  /// removes leftover temp files and damaged entries it can see cheaply (wrong size for its header), and
  /// evicts down to maxBytes. Errors (not a directory, no permission) throw with one plain sentence naming the path.
  ///
  /// The scan opens every block file and reads its header (one `pread`), but not its data.
  /// `use` says who else may have the directory open meanwhile: other mounts (`.shared`, a mount's
  /// cache), or no one (`.exclusive`, `bklogfs cache`); either fails at once when the other holds it.
  public init(directory: String, maxBytes: Int, blockSize: Int, logger: Logger, use: DiskCacheUse = .shared)
    throws(DiskCacheError)
  {
    precondition(blockSize > 0, "blockSize must be positive")
    var directory = directory
    while directory.count > 1 && directory.hasSuffix("/") { directory.removeLast() }
    self.directory = directory
    self.maxBytes = max(0, maxBytes)
    self.blockSize = blockSize
    self.logger = logger
    self.processID = currentProcessID
    let versionDirectory = directory + "/" + BlockFileFormat.directoryName
    self.blocksDirectory = versionDirectory + "/blocks"

    let mode = try Self.prepareDirectory(directory, create: true)
    if mode.rawValue & 0o077 != 0 {
      logger.warning(
        "The cache directory is readable by other users; 0700 is advised",
        metadata: ["directory": "\(directory)", "mode": "\(String(mode.rawValue & 0o777, radix: 8))"])
    }
    try Self.prepareDirectory(versionDirectory, create: true)
    lock = try DiskCacheLock(versionDirectory: versionDirectory, use: use)
    try Self.prepareDirectory(blocksDirectory, create: true)

    let scan = try Self.scan(blocksDirectory, blockSize: blockSize, processID: processID, logger: logger)
    var initial = State()
    for file in scan.files {
      Self.add(
        file.hash, FileEntry(size: file.size, touchedAt: file.modified.seconds, blocks: []), file.records, &initial)
    }
    initial.statistics.corruptBlocks = scan.damaged
    self.state = Mutex(initial)

    let failures = state.withLock { evict(&$0) }
    logEvictionFailures(failures)
    let statistics = self.statistics
    logger.info(
      "Disk block cache ready",
      metadata: [
        "directory": "\(directory)", "blocks": "\(statistics.blocks)", "bytes": "\(statistics.bytes)",
        "maxBytes": "\(self.maxBytes)", "evicted": "\(statistics.evictions)", "damagedRemoved": "\(scan.damaged)",
        "staleRemoved": "\(scan.stale)", "temporaryFilesRemoved": "\(scan.temporaryFilesRemoved)",
      ])
  }

  /// The block's bytes if present and valid. Reads the file, checks the header (magic, format version,
  /// the full BlockKey identity stored in it — guards against hash collisions — and length) and the checksum
  /// of the data (CRC-32C in format 2, CRC-32 in format 1) on EVERY read; a damaged block is deleted, counted in corruptBlocks, logged once, and nil returned.
  ///
  /// Cost: a hash (SHA-256 of the identity), then for a block the index holds one open, one fstat, two preads and
  /// a checksum over the data. A block the index does not hold costs no system call.
  public func get(_ key: BlockKey) -> [UInt8]? {
    let identity = BlockIdentity.encode(key, blockSize: blockSize)
    let hash = BlockIdentity.hash(identity)
    let located = state.withLock { state -> (block: BlockEntry, fileSize: Int)? in
      if let block = state.blocks[hash], let file = state.files.peek(block.file) { return (block, file.size) }
      state.statistics.misses += 1
      return nil
    }
    guard let (found, fileSize) = located else { return nil }

    let path = self.path(forHash: found.file)
    let file: OpenedFile
    do {
      file = try FileSystem.open(path, .readOnly, options: .noFollow)
    } catch {
      if error.errno == .noSuchFileOrDirectory {
        forgetIfGone(file: found.file, path: path)
      } else {
        logger.warning("Cannot open a disk cache block", metadata: ["error": "\(error)"])
      }
      state.withLock { $0.statistics.misses += 1 }
      return nil
    }
    defer { file.closeIgnoringErrors() }

    let info: Stat
    do {
      info = try file.stat()
    } catch {
      logger.warning("Cannot stat a disk cache block", metadata: ["error": "\(error)"])
      state.withLock { $0.statistics.misses += 1 }
      return nil
    }

    switch Self.readBlock(
      file, info: info, fileSize: fileSize, at: found.offset, length: found.length, identity: identity,
      blockSize: blockSize)
    {
    case .success(let data):
      let now = Self.wallClockSeconds()
      let refreshTime = state.withLock { state in
        state.statistics.hits += 1
        // Evicted meanwhile: the bytes are still right.
        guard state.files.touch(found.file) != nil else { return false }
        var refresh = false
        state.files.update(found.file) { entry in
          if now - entry.touchedAt >= Self.touchInterval || now < entry.touchedAt {
            entry.touchedAt = now
            refresh = true
          }
        }
        return refresh
      }
      if refreshTime {
        do { try file.touch() } catch {
          logger.debug("Cannot refresh a disk cache block's mtime", metadata: ["error": "\(error)"])
        }
      }
      return data
    case .failure(let damage):
      removeDamaged(file: found.file, path: path, opened: info, damage: damage)
      return nil
    }
  }

  /// Stores a block: `putRun` of that one block.
  public func put(_ key: BlockKey, _ bytes: [UInt8]) {
    putRun([(key, bytes)])
  }

  /// Stores blocks, those of a run (one GET) in one file: writes a temp file in the same directory (mode
  /// 0600), a record for each block, then rename() over the final name, named by its first block, so a
  /// file is either whole and valid or not there, even after kill -9. Then evicts least recently used
  /// files until total <= maxBytes. Never throws: a failed write (disk full, EIO) is logged (rate-limited)
  /// and the blocks simply are not cached.
  ///
  /// A block already held is only made most recently used (its file), not written again. A block larger
  /// than `blockSize` is not stored. A file holds at most a quarter of `maxBytes` (a run that would be
  /// larger goes to several files) and never more than `maxBytes`. No fsync: after a power loss a torn
  /// block fails its checksum on read and its file is dropped.
  public func putRun(_ run: [(key: BlockKey, bytes: [UInt8])]) {
    var records: [(hash: String, identity: [UInt8], bytes: [UInt8])] = []
    for (key, bytes) in run {
      guard bytes.count <= blockSize else {
        logWriteFailure("a block of \(bytes.count) bytes is larger than the block size \(blockSize)")
        continue
      }
      let identity = BlockIdentity.encode(key, blockSize: blockSize)
      let hash = BlockIdentity.hash(identity)
      if records.contains(where: { $0.hash == hash }) { continue }
      records.append((hash, identity, bytes))
    }
    // Files of at most a quarter of the cache, so that eviction stays fine-grained in a small one.
    let fileLimit = max(1, maxBytes / 4)
    var group: [(hash: String, identity: [UInt8], bytes: [UInt8])] = []
    var groupSize = 0
    for record in records {
      let size = BlockFileFormat.fixedHeaderLength + record.identity.count + record.bytes.count
      if !group.isEmpty && groupSize + size > fileLimit {
        writeFile(of: group)
        group = []
        groupSize = 0
      }
      group.append(record)
      groupSize += size
    }
    if !group.isEmpty { writeFile(of: group) }
  }

  /// Writes one file of `records`, those not held yet.
  private func writeFile(of records: [(hash: String, identity: [UInt8], bytes: [UInt8])]) {
    // Make room first: evict until what is stored and being written, this file included, fits.
    let reservation:
      (records: [(hash: String, identity: [UInt8], bytes: [UInt8])], size: Int, failures: [SystemCallError]) =
        state.withLock { state in
          var fresh: [(hash: String, identity: [UInt8], bytes: [UInt8])] = []
          for record in records {
            if let held = state.blocks[record.hash] {
              _ = state.files.touch(held.file)
            } else {
              fresh.append(record)
            }
          }
          let size = fresh.reduce(0) { $0 + BlockFileFormat.fixedHeaderLength + $1.identity.count + $1.bytes.count }
          guard !fresh.isEmpty, size <= maxBytes, state.reserved + size <= maxBytes else { return ([], 0, []) }
          state.reserved += size
          return (fresh, size, evict(&state))
        }
    logEvictionFailures(reservation.failures)
    let records = reservation.records
    guard let first = records.first else { return }
    let fileSize = reservation.size
    var pieces: [[UInt8]] = []
    var placed: [(hash: String, entry: BlockEntry)] = []
    var offset = 0
    for record in records {
      let header = record.bytes.withUnsafeBytes { BlockFileFormat.header(identity: record.identity, data: $0) }
      pieces.append(header)
      pieces.append(record.bytes)
      let length = header.count + record.bytes.count
      placed.append((record.hash, BlockEntry(file: first.hash, offset: offset, length: length)))
      offset += length
    }

    let subdirectory = blocksDirectory + "/" + String(first.hash.prefix(2))
    let counter = temporaryCounter.wrappingAdd(1, ordering: .relaxed).newValue
    let temporaryPath = subdirectory + "/\(first.hash).\(processID).\(counter).tmp"
    let finalPath = subdirectory + "/\(first.hash).blk"
    do {
      try Self.writeFile(temporaryPath, pieces: pieces, subdirectory: subdirectory)
    } catch {
      try? FileSystem.unlink(temporaryPath)
      state.withLock { $0.reserved -= fileSize }
      logWriteFailure("\(error)")
      return
    }

    let now = Self.wallClockSeconds()
    let outcome: Result<[SystemCallError], SystemCallError> = state.withLock { state in
      state.reserved -= fileSize
      do throws(SystemCallError) {
        try FileSystem.rename(temporaryPath, to: finalPath)
      } catch {
        return .failure(error)
      }
      // Another writer's file of the same name was just replaced (its first block was not held when
      // both began): its blocks are gone from the directory.
      if let replaced = state.files.remove(first.hash) { Self.forget(first.hash, replaced, &state) }
      Self.add(first.hash, FileEntry(size: fileSize, touchedAt: now, blocks: []), placed, &state)
      state.statistics.writes += records.count
      return .success(evict(&state))
    }
    switch outcome {
    case .success(let failures):
      logEvictionFailures(failures)
    case .failure(let error):
      try? FileSystem.unlink(temporaryPath)
      logWriteFailure("\(error)")
    }
  }

  /// Removes a block if held (for instance when the caller learns it is wrong), with the other blocks of
  /// its file.
  public func remove(_ key: BlockKey) {
    let hash = BlockIdentity.hash(BlockIdentity.encode(key, blockSize: blockSize))
    let failure: SystemCallError? = state.withLock { state -> SystemCallError? in
      guard let block = state.blocks[hash], let file = state.files.remove(block.file) else { return nil }
      Self.forget(block.file, file, &state)
      do throws(SystemCallError) { try FileSystem.unlink(path(forHash: block.file)) } catch { return error }
      return nil
    }
    if let failure { logger.warning("Cannot remove a disk cache block", metadata: ["error": "\(failure)"]) }
  }

  public var statistics: BlockCacheStatistics { state.withLock { $0.statistics } }

  /// The bytes of all the cache's files at this moment, those being written included (read under
  /// the one lock, so never more than `maxBytes`).
  public var bytesOnDisk: Int { state.withLock { $0.statistics.bytes + $0.reserved } }

  /// Where the block's file is: the file that holds it, else the one a `put` of it alone would write.
  public func filePath(for key: BlockKey) -> String {
    let hash = BlockIdentity.hash(BlockIdentity.encode(key, blockSize: blockSize))
    return path(forHash: state.withLock { $0.blocks[hash]?.file } ?? hash)
  }

  // MARK: - Internals

  private func path(forHash hash: String) -> String {
    blocksDirectory + "/" + String(hash.prefix(2)) + "/" + hash + ".blk"
  }

  /// Evicts least recently used files until the total fits. Runs under the lock; returns failures to log after.
  private func evict(_ state: inout State) -> [SystemCallError] {
    var failures: [SystemCallError] = []
    while state.statistics.bytes + state.reserved > maxBytes, let (hash, file) = state.files.removeOldest() {
      state.statistics.evictions += Self.forget(hash, file, &state)
      do { try FileSystem.unlink(path(forHash: hash)) } catch { failures.append(error) }
    }
    return failures
  }

  /// Indexes a file and the blocks it holds (`records`: each block's hash and place). Under the lock.
  private static func add(
    _ hash: String, _ file: FileEntry, _ records: [(hash: String, entry: BlockEntry)], _ state: inout State
  ) {
    if let old = state.files.remove(hash) { forget(hash, old, &state) }
    var file = file
    file.blocks = records.map(\.hash)
    for record in records {
      // A block two files hold (two processes wrote it): the newer file serves it.
      if state.blocks.updateValue(record.entry, forKey: record.hash) == nil { state.statistics.blocks += 1 }
    }
    state.files.set(hash, file)
    state.statistics.bytes += file.size
  }

  /// Forgets a file taken out of `files`: its bytes, and its blocks that no other file serves. Returns how
  /// many blocks went. Under the lock.
  @discardableResult
  private static func forget(_ hash: String, _ file: FileEntry, _ state: inout State) -> Int {
    state.statistics.bytes -= file.size
    var forgotten = 0
    for block in file.blocks where state.blocks[block]?.file == hash {
      state.blocks[block] = nil
      forgotten += 1
    }
    state.statistics.blocks -= forgotten
    return forgotten
  }

  private func logEvictionFailures(_ failures: [SystemCallError]) {
    for failure in failures {
      logger.warning("Cannot remove an evicted disk cache block", metadata: ["error": "\(failure)"])
    }
  }

  /// The index says a file is there but it is not (removed by hand): forget it.
  private func forgetIfGone(file hash: String, path: String) {
    state.withLock { state in
      let gone: Bool
      do { gone = try FileSystem.stat(path) == nil } catch { gone = false }
      guard gone, let file = state.files.remove(hash) else { return }
      Self.forget(hash, file, &state)
    }
  }

  /// Deletes a damaged block file, unless another writer has meanwhile renamed a new file over its name.
  private func removeDamaged(file hash: String, path: String, opened: Stat, damage: BlockFileFormat.Damage) {
    let outcome: Result<Bool, SystemCallError> = state.withLock { state in
      state.statistics.misses += 1
      do throws(SystemCallError) {
        guard let current = try FileSystem.stat(path),
          current.inode == opened.inode && current.deviceID == opened.deviceID
        else { return .success(false) }
        try FileSystem.unlink(path)
      } catch {
        return .failure(error)
      }
      if let file = state.files.remove(hash) { Self.forget(hash, file, &state) }
      state.statistics.corruptBlocks += 1
      return .success(true)
    }
    switch outcome {
    case .success(true):
      logger.warning(
        "Removed a damaged disk cache block", metadata: ["path": "\(path)", "damage": "\(damage)"])
    case .success(false):
      break
    case .failure(let error):
      logger.warning(
        "Cannot remove a damaged disk cache block",
        metadata: ["path": "\(path)", "damage": "\(damage)", "error": "\(error)"])
    }
  }

  /// Seconds since the epoch, as files' mtimes count them.
  private static func wallClockSeconds() -> Int { Int(SystemClock().secondsSinceEpoch()) }

  private func logWriteFailure(_ message: String) {
    let now = Self.wallClockSeconds()
    let suppressed: Int? = state.withLock { state in
      if let last = state.lastWriteFailureLog, now >= last, now - last < Self.writeFailureLogInterval {
        state.suppressedWriteFailures += 1
        return nil
      }
      state.lastWriteFailureLog = now
      defer { state.suppressedWriteFailures = 0 }
      return state.suppressedWriteFailures
    }
    guard let suppressed else { return }
    logger.warning(
      "Cannot write a block to the disk cache; it is not cached",
      metadata: ["error": "\(message)", "similarFailuresNotLogged": "\(suppressed)"])
  }

  private static func writeFile(_ path: String, pieces: [[UInt8]], subdirectory: String) throws(SystemCallError) {
    func create() throws(SystemCallError) -> OpenedFile {
      try FileSystem.open(
        path, .writeOnly, options: [.create, .exclusiveCreate, .noFollow], permissions: .ownerReadWrite)
    }
    let file: OpenedFile
    do {
      file = try create()
    } catch  where error.errno == .noSuchFileOrDirectory {
      try FileSystem.makeDirectory(subdirectory, permissions: .ownerReadWriteExecute)
      file = try create()
    }
    do throws(SystemCallError) {
      var offset = 0
      for piece in pieces {
        try file.write(piece, at: offset)
        offset += piece.count
      }
    } catch {
      file.closeIgnoringErrors()
      throw error
    }
    try file.close()
  }

  /// Reads and checks the block record at `offset` (of `length` bytes, header included) of a block file,
  /// whose identity should be `identity`.
  private static func readBlock(
    _ file: OpenedFile, info: Stat, fileSize: Int, at offset: Int, length: Int, identity: [UInt8], blockSize: Int
  ) -> Result<[UInt8], BlockFileFormat.Damage> {
    guard info.type == .regular else { return .failure(.notARegularFile) }
    let size = Int(info.size)
    let headerLength = BlockFileFormat.fixedHeaderLength + identity.count
    // A file is never changed in place: one of another size than it was written with is damaged.
    guard size >= offset + BlockFileFormat.fixedHeaderLength else { return .failure(.truncated) }
    do {
      let header = try file.read(count: min(size - offset, headerLength), at: offset)
      let fixed: BlockFileFormat.FixedHeader
      switch BlockFileFormat.FixedHeader.parse(header[...]) {
      case .success(let parsed): fixed = parsed
      case .failure(let damage): return .failure(damage)
      }
      guard offset + fixed.headerLength <= size else { return .failure(.truncated) }
      guard fixed.headerLength == headerLength else { return .failure(.wrongIdentity) }
      guard BlockFileFormat.checksum(ofHeader: header, version: fixed.version) == fixed.headerChecksum else {
        return .failure(.headerChecksum)
      }
      guard header[BlockFileFormat.fixedHeaderLength...].elementsEqual(identity) else {
        return .failure(.wrongIdentity)
      }
      guard fixed.dataLength <= blockSize else { return .failure(.badHeader) }
      // The record's length was learned from this header when the file was written or scanned.
      guard headerLength + fixed.dataLength == length, offset + length <= size, size == fileSize else {
        return .failure(offset + headerLength + fixed.dataLength > size || size < fileSize ? .truncated : .wrongSize)
      }
      let data = try file.read(count: fixed.dataLength, at: offset + headerLength)
      guard data.count == fixed.dataLength else { return .failure(.truncated) }
      guard data.withUnsafeBytes({ BlockFileFormat.checksum($0, version: fixed.version) }) == fixed.dataChecksum else {
        return .failure(.dataChecksum)
      }
      return .success(data)
    } catch {
      return .failure(.unreadable("\(error)"))
    }
  }

  // MARK: - Start-up

  /// A block file as the scan found it: its name's hash, size, mtime, and each block's hash and place.
  struct ScannedFile {
    var hash: String
    var size: Int
    var modified: (seconds: Int, nanoseconds: Int)
    fileprivate var records: [(hash: String, entry: BlockEntry)]
    /// Each block's identity, in the order of `records`.
    var identities: [ArraySlice<UInt8>]
    /// Each block's record: its offset and length, header included.
    var places: [(offset: Int, length: Int)] { records.map { ($0.entry.offset, $0.entry.length) } }
  }

  private struct ScanResult {
    var files: [ScannedFile] = []
    var damaged = 0
    var stale = 0
    var temporaryFilesRemoved = 0
  }

  /// Creates a directory if asked and missing, then checks it is a directory this user owns and can write.
  /// Returns the directory's mode.
  @discardableResult
  private static func prepareDirectory(_ path: String, create: Bool) throws(DiskCacheError) -> FilePermissions {
    let info: Stat?
    do {
      if create {
        do throws(SystemCallError) {
          try FileSystem.makeDirectories(path, permissions: .ownerReadWriteExecute)
        } catch  where error.errno == .notDirectory && error.path == path {
          // Something else has the name: said below, as for a directory not created here.
        }
      }
      info = try FileSystem.stat(path)
    } catch {
      throw DiskCacheError("Cannot create the cache directory \(path): \(error.reason).")
    }
    guard let info else { throw DiskCacheError("The cache directory \(path) does not exist.") }
    guard info.type == .directory else {
      throw DiskCacheError("The cache directory \(path) exists but is not a directory.")
    }
    let user = effectiveUserID
    guard info.userID == user else {
      throw DiskCacheError(
        "The cache directory \(path) belongs to user \(info.userID.rawValue), not to this user (\(user.rawValue)).")
    }
    guard FileSystem.canWrite(path) else {
      throw DiskCacheError("The cache directory \(path) is not writable by this user.")
    }
    return info.permissions
  }

  private static func scan(
    _ blocksDirectory: String, blockSize: Int, processID: Int32, logger: Logger
  ) throws(DiskCacheError) -> ScanResult {
    var result = ScanResult()
    for subdirectory in try blockSubdirectories(blocksDirectory) {
      let subdirectoryPath = blocksDirectory + "/" + subdirectory
      guard subdirectory.utf8.count == 2, subdirectory.utf8.allSatisfy(isLowercaseHex) else {
        logger.debug("Ignoring an unknown entry in the cache directory", metadata: ["path": "\(subdirectoryPath)"])
        continue
      }
      let names: [String]
      do {
        names = try FileSystem.listDirectory(subdirectoryPath)
      } catch  where error.errno == .notDirectory {
        continue
      } catch {
        throw DiskCacheError("Cannot read the cache directory \(subdirectoryPath): \(error.reason).")
      }
      for name in names {
        let path = subdirectoryPath + "/" + name
        if name.hasSuffix(".tmp") {
          // "<hash>.<pid>.<counter>.tmp": keep only those of another live process still writing.
          let parts = name.split(separator: ".")
          let pid = parts.count == 4 ? Int32(parts[1]) : nil
          if let pid, pid != processID, processExists(pid) { continue }
          do {
            try FileSystem.unlink(path)
            result.temporaryFilesRemoved += 1
          } catch {
            logger.warning("Cannot remove a leftover temporary file", metadata: ["error": "\(error)"])
          }
          continue
        }
        let utf8 = Array(name.utf8)
        guard utf8.count == 68, name.hasSuffix(".blk"), utf8[0..<64].allSatisfy(isLowercaseHex),
          name.hasPrefix(subdirectory)
        else {
          logger.debug("Ignoring an unknown file in the cache directory", metadata: ["path": "\(path)"])
          continue
        }
        let hash = String(name.prefix(64))
        switch inspect(path, hash: hash, blockSize: blockSize) {
        case .success(let found):
          result.files.append(found)
        case .failure(let problem):
          do {
            try FileSystem.unlink(path)
          } catch {
            logger.warning("Cannot remove a disk cache block", metadata: ["error": "\(error)"])
            continue
          }
          switch problem {
          case .otherBlockSize:
            result.stale += 1
          case .damaged(let damage):
            result.damaged += 1
            logger.warning("Removed a damaged disk cache block", metadata: ["path": "\(path)", "damage": "\(damage)"])
          }
        }
      }
    }
    result.files.sort { a, b in
      if a.modified.seconds != b.modified.seconds { return a.modified.seconds < b.modified.seconds }
      if a.modified.nanoseconds != b.modified.nanoseconds { return a.modified.nanoseconds < b.modified.nanoseconds }
      return a.hash < b.hash
    }
    return result
  }

  /// The names in the blocks directory, sorted (the two-hex-digit subdirectories, and whatever else
  /// is there).
  static func blockSubdirectories(_ blocksDirectory: String) throws(DiskCacheError) -> [String] {
    do {
      return try FileSystem.listDirectory(blocksDirectory).sorted()
    } catch {
      throw DiskCacheError("Cannot read the cache directory \(blocksDirectory): \(error.reason).")
    }
  }

  enum InspectionProblem: Error {
    case damaged(BlockFileFormat.Damage)
    case otherBlockSize
  }

  /// Checks what can be checked without reading the data: each record's header, the first one's identity
  /// against the file's name (`hash`), and that the records fill the file exactly. Also gives each block's
  /// identity, as its header holds it.
  static func inspect(_ path: String, hash: String, blockSize: Int) -> Result<ScannedFile, InspectionProblem> {
    let file: OpenedFile
    do {
      file = try FileSystem.open(path, .readOnly, options: .noFollow)
    } catch {
      return .failure(
        .damaged(error.errno == .tooManySymbolicLinkLevels ? .notARegularFile : .unreadable(error.reason)))
    }
    defer { file.closeIgnoringErrors() }
    do {
      let info = try file.stat()
      guard info.type == .regular else { return .failure(.damaged(.notARegularFile)) }
      let size = Int(info.size)
      guard size >= BlockFileFormat.fixedHeaderLength else { return .failure(.damaged(.truncated)) }
      var scanned = ScannedFile(
        hash: hash, size: size, modified: (info.st_mtim.tv_sec, info.st_mtim.tv_nsec), records: [], identities: [])
      var offset = 0
      while offset < size {
        var header = try file.read(count: min(size - offset, 4096), at: offset)
        let fixed: BlockFileFormat.FixedHeader
        switch BlockFileFormat.FixedHeader.parse(header[...]) {
        case .success(let parsed): fixed = parsed
        case .failure(let damage): return .failure(.damaged(damage))
        }
        guard offset + fixed.headerLength <= size else { return .failure(.damaged(.truncated)) }
        if header.count < fixed.headerLength {
          header = try file.read(count: fixed.headerLength, at: offset)
        } else {
          header.removeLast(header.count - fixed.headerLength)
        }
        guard header.count == fixed.headerLength else { return .failure(.damaged(.truncated)) }
        guard BlockFileFormat.checksum(ofHeader: header, version: fixed.version) == fixed.headerChecksum else {
          return .failure(.damaged(.headerChecksum))
        }
        let identity = header[BlockFileFormat.fixedHeaderLength...]
        let blockHash = BlockIdentity.hash(identity)
        guard offset > 0 || blockHash == hash, let identityBlockSize = BlockIdentity.blockSize(of: identity) else {
          return .failure(.damaged(.wrongIdentity))
        }
        guard identityBlockSize == blockSize else { return .failure(.otherBlockSize) }
        guard fixed.dataLength <= blockSize else { return .failure(.damaged(.badHeader)) }
        let length = fixed.headerLength + fixed.dataLength
        guard offset + length <= size else { return .failure(.damaged(.truncated)) }
        scanned.records.append((blockHash, BlockEntry(file: hash, offset: offset, length: length)))
        scanned.identities.append(identity)
        offset += length
        // What follows the last record is taken for another header: bytes appended to a file of one
        // block are found damaged (a header too short, or no header), as they were before runs.
        if offset < size && size - offset < BlockFileFormat.fixedHeaderLength { return .failure(.damaged(.wrongSize)) }
      }
      return .success(scanned)
    } catch {
      return .failure(.damaged(.unreadable(error.reason)))
    }
  }
}

private func isLowercaseHex(_ byte: UInt8) -> Bool {
  (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
}
