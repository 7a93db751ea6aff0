import Digests
import Dispatch
public import Logging
public import ObjectStore
import Synchronization
public import SystemBase

/// Blocks kept in an S3 bucket that a fleet of machines shares (`--shared-cache s3://BUCKET/PREFIX`):
/// read after the memory and disk caches miss and before the store, written after a block is
/// fetched from the store. Never a source of truth: a missing, unreadable or damaged block is a
/// miss, and the store is asked.
///
/// The design follows mountpoint-s3's shared cache on S3 Express One Zone:
/// - An object's key is `PREFIX` + `bklogfs-blocks/v1/` + the SHA-256 of the block's identity: the
///   store's identity (itself hashed, so the identity in the object names no bucket), the object's
///   key, its ETag, the block's index and the block size (`BlockIdentity`). A changed object has
///   another ETag, hence other keys; a new format changes the `v1` folder. The keys reveal nothing.
/// - The object holds the block as a disk cache file does (`BlockFileFormat`): a header with the
///   identity and a checksum of the data, checked on every read, so a block that is damaged,
///   truncated or another block's is detected, counted and fetched again from the store (and
///   written again). Shared blocks use format version 1 (zlib's CRC-32), which every machine of a
///   fleet can check, whether or not its processor has CRC-32C.
/// - Writes run behind the readers on a few threads of their own, from a queue bounded by bytes;
///   a block that would overfill it is not shared, and a failed write is logged and forgotten.
/// - After a few failures in a row (the bucket unreachable, credentials refused), the cache is
///   left alone for a while, so readers do not pay a timeout per block.
///
/// How long blocks stay is the bucket's business (its lifecycle rules): nothing here deletes.
public final class SharedBlockCache: Sendable {
  public let client: any WritableObjectClient
  /// "" or ending in "/".
  public let prefix: String
  public let blockSize: Int
  public let maxQueuedBytes: Int
  private let logger: Logger
  private let clock: any MonotonicClock

  /// The folder under the prefix; a new object format gets a new one.
  public static let folder = "bklogfs-blocks/v1/"
  /// The format version of the objects' checksums: CRC-32, which every processor computes.
  static let checksumVersion: UInt32 = 1
  /// Failures in a row after which the cache is left alone for `pause` seconds.
  static let failuresBeforePause = 3
  static let pause = 30.0

  private struct State: Sendable {
    var queue: [(key: BlockKey, bytes: [UInt8])] = []
    var queuedKeys: Set<BlockKey> = []
    var bytes = 0
    var closed = false
    var writersRunning = 0
    var failuresInARow = 0
    var pausedUntil = -Double.infinity
    var statistics = SharedCacheStatistics()
  }

  private let state = Mutex(State())
  private let work = DispatchSemaphore(value: 0)
  private let writersDone = DispatchGroup()

  /// - Parameters:
  ///   - maxQueuedBytes: the most bytes of blocks waiting to be written; 0 writes on the caller's thread.
  ///   - writers: the threads that write the queue out.
  public init(
    client: any WritableObjectClient, prefix: String, blockSize: Int, maxQueuedBytes: Int, writers: Int = 2,
    clock: any MonotonicClock = SystemClock(), logger: Logger
  ) {
    self.client = client
    self.prefix = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
    self.blockSize = blockSize
    self.maxQueuedBytes = max(0, maxQueuedBytes)
    self.clock = clock
    self.logger = logger
    guard self.maxQueuedBytes > 0 else { return }
    for _ in 0..<max(1, writers) {
      state.withLock { $0.writersRunning += 1 }
      writersDone.enter()
      startDetachedThread { [self] in
        writeQueue()
        writersDone.leave()
      }
    }
  }

  /// The identity a shared block is checked against: the block's, with the store's identity hashed.
  static func identity(_ key: BlockKey, blockSize: Int) -> [UInt8] {
    let hidden = BlockKey(
      source: "sha256:" + SHA256.hexHash(key.source), key: key.key, etag: key.etag, index: key.index)
    return BlockIdentity.encode(hidden, blockSize: blockSize)
  }

  /// The key of the object that holds a block.
  public func objectKey(for key: BlockKey) -> String {
    prefix + Self.folder + BlockIdentity.hash(Self.identity(key, blockSize: blockSize))
  }

  /// The object that holds `bytes` as the block `key`.
  public func encode(_ key: BlockKey, _ bytes: [UInt8]) -> [UInt8] {
    let identity = Self.identity(key, blockSize: blockSize)
    let header = bytes.withUnsafeBytes {
      BlockFileFormat.header(identity: identity, data: $0, version: Self.checksumVersion)
    }
    return header + bytes
  }

  /// The block's data from an object read back, or why it is refused. `count` is the block's length.
  public func decode(_ object: [UInt8], as key: BlockKey, count: Int) -> Result<[UInt8], SharedBlockDamage> {
    switch BlockFileFormat.decode(object, identity: Self.identity(key, blockSize: blockSize), blockSize: blockSize) {
    case .success(let data):
      return data.count == count
        ? .success(data) : .failure(SharedBlockDamage(reason: "holds \(data.count) bytes, not \(count)"))
    case .failure(let damage):
      return .failure(SharedBlockDamage(reason: damage.description))
    }
  }

  /// The block's bytes, or nil: no such object, a failure (logged at debug; the store is asked
  /// instead), or a damaged object (counted in `corruptBlocks` and logged).
  public func get(_ key: BlockKey, count: Int) -> [UInt8]? {
    guard !isPaused() else { return nil }
    let name = objectKey(for: key)
    let object: [UInt8]?
    do throws(ObjectStoreError) {
      object = try client.getObject(key: name, limit: blockSize + (64 << 10))
    } catch {
      noteFailure("reading shared block \(name) failed: \(error.message)")
      return nil
    }
    noteSuccess()
    guard let object else {
      state.withLock { $0.statistics.misses += 1 }
      return nil
    }
    switch decode(object, as: key, count: count) {
    case .success(let data):
      state.withLock { $0.statistics.hits += 1 }
      return data
    case .failure(let damage):
      state.withLock { $0.statistics.corruptBlocks += 1 }
      logger.warning(
        "shared block \(name) (block \(key.index)) is damaged: \(damage.reason); fetching it from the source")
      return nil
    }
  }

  /// Queues a block fetched from the store to be written. A block that would overfill the queue, or
  /// any block while the cache is paused, is not shared: no reader waits for the bucket.
  public func put(_ key: BlockKey, _ bytes: [UInt8]) {
    enum Outcome { case queued, skipped, now }
    let paused = isPaused()
    let outcome: Outcome = state.withLock { state in
      if paused {
        state.statistics.dropped += 1
        return .skipped
      }
      if maxQueuedBytes == 0 || state.closed { return .now }
      if state.queuedKeys.contains(key) { return .skipped }
      guard state.bytes + bytes.count <= maxQueuedBytes else {
        state.statistics.dropped += 1
        return .skipped
      }
      state.queue.append((key, bytes))
      state.queuedKeys.insert(key)
      state.bytes += bytes.count
      return .queued
    }
    switch outcome {
    case .queued: work.signal()
    case .skipped: break
    case .now: write(key, bytes)
    }
  }

  /// Writes out what is queued (on this thread too), then stops the writers; gives up after `seconds`.
  public func close(seconds: Double = 30) {
    let (wasOpen, writers) = state.withLock { state -> (Bool, Int) in
      defer { state.closed = true }
      return (!state.closed, state.writersRunning)
    }
    guard wasOpen, maxQueuedBytes > 0 else { return }
    for _ in 0..<writers { work.signal() }
    let deadline = clock.now() + seconds
    while clock.now() < deadline, writeNext() {}
    if writersDone.wait(timeout: .now() + max(0, deadline - clock.now())) == .timedOut {
      logger.warning("blocks for the shared cache were still being written after \(Int(seconds)) s; left unshared")
    }
  }

  public var statistics: SharedCacheStatistics {
    state.withLock { state in
      var statistics = state.statistics
      statistics.queuedBytes = state.bytes
      return statistics
    }
  }

  // MARK: - Internals

  private func writeQueue() {
    while true {
      if writeNext() { continue }
      if state.withLock({ $0.closed }) {
        state.withLock { $0.writersRunning -= 1 }
        return
      }
      work.wait()
    }
  }

  /// Writes the oldest queued block; false when the queue is empty.
  private func writeNext() -> Bool {
    let next: (key: BlockKey, bytes: [UInt8])? = state.withLock { state in
      guard !state.queue.isEmpty else { return nil }
      let next = state.queue.removeFirst()
      state.queuedKeys.remove(next.key)
      state.bytes -= next.bytes.count
      return next
    }
    guard let next else { return false }
    if isPaused() {
      state.withLock { $0.statistics.dropped += 1 }
    } else {
      write(next.key, next.bytes)
    }
    return true
  }

  private func write(_ key: BlockKey, _ bytes: [UInt8]) {
    let name = objectKey(for: key)
    do throws(ObjectStoreError) {
      try client.put(key: name, bytes: encode(key, bytes))
    } catch {
      noteFailure("writing shared block \(name) failed: \(error.message)")
      return
    }
    noteSuccess()
    state.withLock { $0.statistics.writes += 1 }
  }

  private func isPaused() -> Bool {
    let now = clock.now()
    return state.withLock { now < $0.pausedUntil }
  }

  private func noteSuccess() {
    state.withLock { $0.failuresInARow = 0 }
  }

  /// Counts a failure and logs it; after a few in a row, pauses the cache and says so once.
  private func noteFailure(_ message: String) {
    let now = clock.now()
    let paused = state.withLock { state -> Bool in
      state.statistics.failures += 1
      state.failuresInARow += 1
      guard state.failuresInARow >= Self.failuresBeforePause else { return false }
      state.failuresInARow = 0
      state.pausedUntil = now + Self.pause
      return true
    }
    if paused {
      logger.warning(
        "\(message); the shared cache \(client.identity) failed \(Self.failuresBeforePause) times in a row and is not used for \(Int(Self.pause)) s"
      )
    } else {
      logger.info("\(message)")
    }
  }
}

/// Why a shared block was refused.
public struct SharedBlockDamage: Error, Sendable, Equatable {
  public var reason: String
}

/// What a `SharedBlockCache` did: blocks found (`hits`), not there (`misses`), written, refused as
/// damaged, requests that failed, blocks left unshared (queue full or cache paused), and the bytes
/// waiting to be written now.
public struct SharedCacheStatistics: Sendable, Hashable {
  public var hits = 0
  public var misses = 0
  public var writes = 0
  public var corruptBlocks = 0
  public var failures = 0
  public var dropped = 0
  public var queuedBytes = 0

  public init() {}
}
