import Digests
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
  public var client: any WritableObjectClient { bucket.client }
  /// "" or ending in "/".
  public var prefix: String { format.prefix }
  public var blockSize: Int { format.blockSize }
  public var maxQueuedBytes: Int { queue.maxQueuedBytes }

  /// The folder under the prefix; a new object format gets a new one.
  public static let folder = "bklogfs-blocks/v1/"

  private let format: SharedBlockFormat
  private let bucket: SharedBucket
  /// Blocks fetched from the store, waiting to be written.
  private let queue: WriteQueue

  /// - Parameters:
  ///   - maxQueuedBytes: the most bytes of blocks waiting to be written; 0 writes on the caller's thread.
  ///   - writers: the threads that write the queue out.
  public init(
    client: any WritableObjectClient, prefix: String, blockSize: Int, maxQueuedBytes: Int, writers: Int = 2,
    clock: any MonotonicClock = SystemClock(), logger: Logger
  ) {
    let format = SharedBlockFormat(
      prefix: prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/", blockSize: blockSize)
    let bucket = SharedBucket(client: client, clock: clock, logger: logger)
    self.format = format
    self.bucket = bucket
    // Plain priority: a write costs little processor time (a CRC-32 and the signature's SHA-256 of
    // 1 MiB) and mostly waits for the network, while other machines wait for what it shares.
    queue = WriteQueue(
      maxQueuedBytes: maxQueuedBytes, writers: max(1, writers), onlyWhenIdle: false, clock: clock, logger: logger,
      what: "Writing blocks to the shared cache"
    ) { key, bytes in
      bucket.write(format.objectKey(for: key), format.encode(key, bytes))
    }
  }

  /// The key of the object that holds a block.
  public func objectKey(for key: BlockKey) -> String { format.objectKey(for: key) }

  /// The object that holds `bytes` as the block `key`.
  public func encode(_ key: BlockKey, _ bytes: [UInt8]) -> [UInt8] { format.encode(key, bytes) }

  /// The block's data from an object read back, or why it is refused. `count` is the block's length.
  public func decode(_ object: [UInt8], as key: BlockKey, count: Int) -> Result<[UInt8], SharedBlockDamage> {
    format.decode(object, as: key, count: count)
  }

  /// The block's bytes, or nil: no such object, a failure (logged; the store is asked instead), or
  /// a damaged object (counted in `corruptBlocks` and logged).
  public func get(_ key: BlockKey, count: Int) -> [UInt8]? {
    let name = format.objectKey(for: key)
    // A block and its header (a few hundred bytes): anything much longer is not a block.
    guard let object = bucket.read(name, limit: format.blockSize + (64 << 10)) else { return nil }
    switch format.decode(object, as: key, count: count) {
    case .success(let data):
      bucket.count { $0.hits += 1 }
      return data
    case .failure(let damage):
      bucket.count { $0.corruptBlocks += 1 }
      bucket.logger.warning(
        "shared block \(name) (block \(key.index)) is damaged: \(damage.reason); fetching it from the source")
      return nil
    }
  }

  /// Queues a block fetched from the store to be written. A block that would overfill the queue, or
  /// any block while the cache is paused, is not shared: no reader waits for the bucket.
  public func put(_ key: BlockKey, _ bytes: [UInt8]) {
    guard !bucket.isPaused() else {
      bucket.count { $0.dropped += 1 }
      return
    }
    queue.put(key, bytes)
  }

  /// Writes out what is queued (on this thread too), then stops the writers; gives up after `seconds`.
  public func close(seconds: Double = 30) {
    queue.close(seconds: seconds)
  }

  public var statistics: SharedCacheStatistics {
    let queued = queue.statistics
    var statistics = bucket.statistics
    statistics.dropped += queued.dropped
    statistics.queuedBytes = queued.bytes
    return statistics
  }
}

/// How blocks are named and stored in the shared bucket.
struct SharedBlockFormat: Sendable {
  /// "" or ending in "/".
  let prefix: String
  let blockSize: Int
  /// The format version of the objects' checksums: CRC-32, which every processor computes.
  static let checksumVersion: UInt32 = 1

  /// The identity a shared block is checked against: the block's, with the store's identity hashed.
  func identity(_ key: BlockKey) -> [UInt8] {
    let hidden = BlockKey(
      source: "sha256:" + SHA256.hexHash(key.source), key: key.key, etag: key.etag, index: key.index)
    return BlockIdentity.encode(hidden, blockSize: blockSize)
  }

  func objectKey(for key: BlockKey) -> String {
    prefix + SharedBlockCache.folder + BlockIdentity.hash(identity(key))
  }

  func encode(_ key: BlockKey, _ bytes: [UInt8]) -> [UInt8] {
    let identity = identity(key)
    let header = bytes.withUnsafeBytes {
      BlockFileFormat.header(identity: identity, data: $0, version: Self.checksumVersion)
    }
    return header + bytes
  }

  func decode(_ object: [UInt8], as key: BlockKey, count: Int) -> Result<[UInt8], SharedBlockDamage> {
    switch BlockFileFormat.decode(object, identity: identity(key), blockSize: blockSize) {
    case .success(let data):
      return data.count == count
        ? .success(data) : .failure(SharedBlockDamage(reason: "holds \(data.count) bytes, not \(count)"))
    case .failure(let damage):
      return .failure(SharedBlockDamage(reason: damage.description))
    }
  }
}

/// The shared bucket's calls, their counters, and the pause after failures in a row.
final class SharedBucket: Sendable {
  let client: any WritableObjectClient
  let logger: Logger
  private let clock: any MonotonicClock
  /// Failures in a row after which the bucket is left alone for `pause` seconds.
  static let failuresBeforePause = 3
  static let pause = 30.0

  private struct State: Sendable {
    var failuresInARow = 0
    var pausedUntil = -Double.infinity
    var statistics = SharedCacheStatistics()
  }

  private let state = Mutex(State())

  init(client: any WritableObjectClient, clock: any MonotonicClock, logger: Logger) {
    self.client = client
    self.clock = clock
    self.logger = logger
  }

  var statistics: SharedCacheStatistics { state.withLock { $0.statistics } }

  func count(_ change: (inout SharedCacheStatistics) -> Void) {
    state.withLock { change(&$0.statistics) }
  }

  /// The object, or nil when there is none (a miss), the request failed, or the bucket is paused.
  func read(_ name: String, limit: Int) -> [UInt8]? {
    guard !isPaused() else { return nil }
    let object: [UInt8]?
    do throws(ObjectStoreError) {
      object = try client.getObject(key: name, limit: limit)
    } catch {
      noteFailure("reading shared block \(name) failed: \(error.message)")
      return nil
    }
    state.withLock { state in
      state.failuresInARow = 0
      if object == nil { state.statistics.misses += 1 }
    }
    return object
  }

  func write(_ name: String, _ object: [UInt8]) {
    // A block queued before a pause began is left unshared too.
    guard !isPaused() else {
      count { $0.dropped += 1 }
      return
    }
    do throws(ObjectStoreError) {
      try client.put(key: name, bytes: object)
    } catch {
      noteFailure("writing shared block \(name) failed: \(error.message)")
      return
    }
    state.withLock { state in
      state.failuresInARow = 0
      state.statistics.writes += 1
    }
  }

  func isPaused() -> Bool {
    let now = clock.now()
    return state.withLock { now < $0.pausedUntil }
  }

  /// Counts a failure and logs it; after a few in a row, pauses and says so once.
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
