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
/// Layout: `<directory>/v1/blocks/<2 hex>/<sha256 hex of the identity>.blk`; see `BlockFileFormat` for the file.
///
/// Thread-safe. One `Mutex` guards the in-memory index (hash → size, recency) and every change to the directory's
/// names (rename into place, unlink), so the index and the directory agree; reading and writing block data, and
/// checksumming it, happen outside the lock. Files are never changed in place, only replaced by rename, so a
/// reader holding a descriptor sees a whole file even if the block is evicted or replaced meanwhile.
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

  private struct Entry: Sendable {
    var size: Int
    /// Wall-clock seconds of the file's mtime as we last set or saw it.
    var touchedAt: Int
  }

  private struct State: Sendable {
    var index = LRUList<String, Entry>()
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
    for entry in scan.entries {
      initial.index.set(entry.hash, Entry(size: entry.size, touchedAt: entry.modified.seconds))
      initial.statistics.bytes += entry.size
      initial.statistics.blocks += 1
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
    let known = state.withLock { state in
      if state.index.peek(hash) != nil { return true }
      state.statistics.misses += 1
      return false
    }
    guard known else { return nil }

    let path = self.path(forHash: hash)
    let file: OpenedFile
    do {
      file = try FileSystem.open(path, .readOnly, options: .noFollow)
    } catch {
      if error.errno == .noSuchFileOrDirectory {
        forgetIfGone(hash: hash, path: path)
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

    switch Self.readBlock(file, info: info, identity: identity, blockSize: blockSize) {
    case .success(let data):
      let now = Self.wallClockSeconds()
      let refreshTime = state.withLock { state in
        state.statistics.hits += 1
        guard state.index.touch(hash) != nil else { return false }  // evicted meanwhile: the bytes are still right
        var refresh = false
        state.index.update(hash) { entry in
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
      removeDamaged(hash: hash, path: path, opened: info, damage: damage)
      return nil
    }
  }

  /// Stores a block: writes a temp file in the same directory (mode 0600), then rename() over the final
  /// name, so a block is either whole and valid or not there, even after kill -9. Then evicts least
  /// recently used blocks until total <= maxBytes. Never throws: a failed write (disk full, EIO) is logged
  /// (rate-limited) and the block simply is not cached.
  ///
  /// A block already held is only made most recently used, not rewritten. A block larger than `blockSize`, or
  /// whose file would exceed `maxBytes`, is not stored. No fsync: after a power loss a torn block fails its
  /// checksum on read and is dropped.
  public func put(_ key: BlockKey, _ bytes: [UInt8]) {
    guard bytes.count <= blockSize else {
      logWriteFailure("a block of \(bytes.count) bytes is larger than the block size \(blockSize)")
      return
    }
    let identity = BlockIdentity.encode(key, blockSize: blockSize)
    let hash = BlockIdentity.hash(identity)
    let fileSize = BlockFileFormat.fixedHeaderLength + identity.count + bytes.count
    guard fileSize <= maxBytes else { return }

    // Make room first: evict until what is stored and being written, this file included, fits.
    let reservation: (reserved: Bool, failures: [SystemCallError]) = state.withLock { state in
      guard state.index.touch(hash) == nil, state.reserved + fileSize <= maxBytes else { return (false, []) }
      state.reserved += fileSize
      return (true, evict(&state))
    }
    logEvictionFailures(reservation.failures)
    guard reservation.reserved else { return }
    let header = bytes.withUnsafeBytes { BlockFileFormat.header(identity: identity, data: $0) }

    let subdirectory = blocksDirectory + "/" + String(hash.prefix(2))
    let counter = temporaryCounter.wrappingAdd(1, ordering: .relaxed).newValue
    let temporaryPath = subdirectory + "/\(hash).\(processID).\(counter).tmp"
    let finalPath = subdirectory + "/\(hash).blk"
    do {
      try Self.writeFile(temporaryPath, header: header, data: bytes, subdirectory: subdirectory)
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
      if let old = state.index.set(hash, Entry(size: fileSize, touchedAt: now)) {
        state.statistics.bytes -= old.size
        state.statistics.blocks -= 1
      }
      state.statistics.bytes += fileSize
      state.statistics.blocks += 1
      state.statistics.writes += 1
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

  /// Removes a block if held (for instance when the caller learns it is wrong).
  public func remove(_ key: BlockKey) {
    let hash = BlockIdentity.hash(BlockIdentity.encode(key, blockSize: blockSize))
    let path = self.path(forHash: hash)
    let failure: SystemCallError? = state.withLock { state -> SystemCallError? in
      guard let old = state.index.remove(hash) else { return nil }
      state.statistics.bytes -= old.size
      state.statistics.blocks -= 1
      do throws(SystemCallError) { try FileSystem.unlink(path) } catch { return error }
      return nil
    }
    if let failure { logger.warning("Cannot remove a disk cache block", metadata: ["error": "\(failure)"]) }
  }

  public var statistics: BlockCacheStatistics { state.withLock { $0.statistics } }

  /// The bytes of all the cache's files at this moment, those being written included (read under
  /// the one lock, so never more than `maxBytes`).
  public var bytesOnDisk: Int { state.withLock { $0.statistics.bytes + $0.reserved } }

  /// Where the block's file is (or would be).
  public func filePath(for key: BlockKey) -> String {
    path(forHash: BlockIdentity.hash(BlockIdentity.encode(key, blockSize: blockSize)))
  }

  // MARK: - Internals

  private func path(forHash hash: String) -> String {
    blocksDirectory + "/" + String(hash.prefix(2)) + "/" + hash + ".blk"
  }

  /// Evicts least recently used blocks until the total fits. Runs under the lock; returns failures to log after.
  private func evict(_ state: inout State) -> [SystemCallError] {
    var failures: [SystemCallError] = []
    while state.statistics.bytes + state.reserved > maxBytes, let (hash, entry) = state.index.removeOldest() {
      state.statistics.bytes -= entry.size
      state.statistics.blocks -= 1
      state.statistics.evictions += 1
      do { try FileSystem.unlink(path(forHash: hash)) } catch { failures.append(error) }
    }
    return failures
  }

  private func logEvictionFailures(_ failures: [SystemCallError]) {
    for failure in failures {
      logger.warning("Cannot remove an evicted disk cache block", metadata: ["error": "\(failure)"])
    }
  }

  /// The index says a block is there but its file is not (removed by hand): forget it.
  private func forgetIfGone(hash: String, path: String) {
    state.withLock { state in
      let gone: Bool
      do { gone = try FileSystem.stat(path) == nil } catch { gone = false }
      guard gone, let old = state.index.remove(hash) else { return }
      state.statistics.bytes -= old.size
      state.statistics.blocks -= 1
    }
  }

  /// Deletes a damaged block file, unless another writer has meanwhile renamed a new file over its name.
  private func removeDamaged(hash: String, path: String, opened: Stat, damage: BlockFileFormat.Damage) {
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
      if let old = state.index.remove(hash) {
        state.statistics.bytes -= old.size
        state.statistics.blocks -= 1
      }
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

  private static func writeFile(
    _ path: String, header: [UInt8], data: [UInt8], subdirectory: String
  ) throws(SystemCallError) {
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
      try file.write(header, at: 0)
      try file.write(data, at: header.count)
    } catch {
      file.closeIgnoringErrors()
      throw error
    }
    try file.close()
  }

  /// Reads and checks a whole block file whose identity should be `identity`.
  private static func readBlock(
    _ file: OpenedFile, info: Stat, identity: [UInt8], blockSize: Int
  ) -> Result<[UInt8], BlockFileFormat.Damage> {
    guard info.type == .regular else { return .failure(.notARegularFile) }
    let size = Int(info.size)
    let headerLength = BlockFileFormat.fixedHeaderLength + identity.count
    guard size >= BlockFileFormat.fixedHeaderLength else { return .failure(.truncated) }
    do {
      let header = try file.read(count: min(size, headerLength), at: 0)
      let fixed: BlockFileFormat.FixedHeader
      switch BlockFileFormat.FixedHeader.parse(header[...]) {
      case .success(let parsed): fixed = parsed
      case .failure(let damage): return .failure(damage)
      }
      guard fixed.headerLength <= size else { return .failure(.truncated) }
      guard fixed.headerLength == headerLength else { return .failure(.wrongIdentity) }
      guard BlockFileFormat.checksum(ofHeader: header, version: fixed.version) == fixed.headerChecksum else {
        return .failure(.headerChecksum)
      }
      guard header[BlockFileFormat.fixedHeaderLength...].elementsEqual(identity) else {
        return .failure(.wrongIdentity)
      }
      guard fixed.dataLength <= blockSize else { return .failure(.badHeader) }
      guard size - headerLength == fixed.dataLength else {
        return .failure(size - headerLength < fixed.dataLength ? .truncated : .wrongSize)
      }
      let data = try file.read(count: fixed.dataLength, at: headerLength)
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

  struct ScannedBlock {
    var hash: String
    var size: Int
    var modified: (seconds: Int, nanoseconds: Int)
  }

  private struct ScanResult {
    var entries: [ScannedBlock] = []
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
          result.entries.append(found.block)
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
    result.entries.sort { a, b in
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

  /// Checks what can be checked without reading the data: header, identity against the name, size.
  /// Also gives the identity the header holds, checked against the file's name (`hash`).
  static func inspect(_ path: String, hash: String, blockSize: Int)
    -> Result<(block: ScannedBlock, identity: ArraySlice<UInt8>), InspectionProblem>
  {
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
      var header = try file.read(count: min(size, 4096), at: 0)
      let fixed: BlockFileFormat.FixedHeader
      switch BlockFileFormat.FixedHeader.parse(header[...]) {
      case .success(let parsed): fixed = parsed
      case .failure(let damage): return .failure(.damaged(damage))
      }
      guard fixed.headerLength <= size else { return .failure(.damaged(.truncated)) }
      if header.count < fixed.headerLength {
        header = try file.read(count: fixed.headerLength, at: 0)
      } else {
        header.removeLast(header.count - fixed.headerLength)
      }
      guard header.count == fixed.headerLength else { return .failure(.damaged(.truncated)) }
      guard BlockFileFormat.checksum(ofHeader: header, version: fixed.version) == fixed.headerChecksum else {
        return .failure(.damaged(.headerChecksum))
      }
      let identity = header[BlockFileFormat.fixedHeaderLength...]
      guard BlockIdentity.hash(identity) == hash, let identityBlockSize = BlockIdentity.blockSize(of: identity) else {
        return .failure(.damaged(.wrongIdentity))
      }
      guard identityBlockSize == blockSize else { return .failure(.otherBlockSize) }
      guard fixed.dataLength <= blockSize else { return .failure(.damaged(.badHeader)) }
      guard size - fixed.headerLength == fixed.dataLength else {
        return .failure(.damaged(size - fixed.headerLength < fixed.dataLength ? .truncated : .wrongSize))
      }
      return .success(
        (ScannedBlock(hash: hash, size: size, modified: (info.st_mtim.tv_sec, info.st_mtim.tv_nsec)), identity))
    } catch {
      return .failure(.damaged(.unreadable(error.reason)))
    }
  }
}

private func isLowercaseHex(_ byte: UInt8) -> Bool {
  (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
}
