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
/// - Beside the blocks, it keeps the sizes of fixed objects whose store gives sizes only when
///   asked one object at a time (Buildkite's log storage): a *size record* per object, in a folder
///   of its own (`SharedSizeFormat`), so that a mount finds another's blocks, whose keys hold the
///   object's ETag and so its size, without asking the store (`SharedSizes`).
///
/// How long blocks stay is the bucket's business (its lifecycle rules): nothing here deletes.
public final class SharedBlockCache: SharedSizes {
  public var client: any WritableObjectClient { bucket.client }
  /// "" or ending in "/".
  public var prefix: String { format.prefix }
  public var blockSize: Int { format.blockSize }
  public var maxQueuedBytes: Int { queue.maxQueuedBytes }

  /// The folder under the prefix; a new object format gets a new one.
  public static let folder = "bklogfs-blocks/v1/"

  private let format: SharedBlockFormat
  private let sizes: SharedSizeFormat
  private let bucket: SharedBucket
  /// Blocks fetched from the store and sizes learned from it, waiting to be written.
  private let queue: WriteQueue<SharedObject>
  /// The size records this process dropped (`drop`), by object key: not read again until written anew.
  private let droppedSizes = Mutex<Set<String>>([])

  /// - Parameters:
  ///   - maxQueuedBytes: the most bytes of blocks waiting to be written; 0 writes on the caller's thread.
  ///   - writers: the threads that write the queue out.
  public init(
    client: any WritableObjectClient, prefix: String, blockSize: Int, maxQueuedBytes: Int, writers: Int = 2,
    clock: any MonotonicClock = SystemClock(), logger: Logger
  ) {
    let format = SharedBlockFormat(
      prefix: prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/", blockSize: blockSize)
    let sizes = SharedSizeFormat(prefix: format.prefix)
    let bucket = SharedBucket(client: client, clock: clock, logger: logger)
    self.format = format
    self.sizes = sizes
    self.bucket = bucket
    // Plain priority: a write costs little processor time (a CRC-32 and the signature's SHA-256 of
    // 1 MiB) and mostly waits for the network, while other machines wait for what it shares.
    queue = WriteQueue(
      maxQueuedBytes: maxQueuedBytes, writers: max(1, writers), onlyWhenIdle: false, clock: clock, logger: logger,
      what: "Writing blocks to the shared cache"
    ) { object, bytes in
      switch object {
      case .block(let key): bucket.write(format.objectKey(for: key), format.encode(key, bytes), size: false)
      case .size(let source, let key): bucket.write(sizes.objectKey(source: source, key: key), bytes, size: true)
      }
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
    guard let object = bucket.read(name, limit: format.blockSize + (64 << 10), size: false) else { return nil }
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
    queue.put(.block(key), bytes)
  }

  // MARK: Sizes

  /// The key of the object that holds the size record of `key` in the store `source`.
  public func sizeObjectKey(source: String, key: String) -> String { sizes.objectKey(source: source, key: key) }

  /// The size record of `size` for `key` in the store `source`.
  public func encodeSize(source: String, key: String, size: UInt64) -> [UInt8] {
    sizes.encode(source: source, key: key, size: size)
  }

  /// The size a record read back holds, or why it is refused.
  public func decodeSize(_ object: [UInt8], source: String, key: String) -> Result<UInt64, SharedBlockDamage> {
    sizes.decode(object, source: source, key: key)
  }

  /// One GET of the size record: a missing, unreadable or damaged one (counted in `corruptSizes`
  /// and logged) is nil, as is one this process dropped.
  public func size(source: String, key: String) -> UInt64? {
    let name = sizes.objectKey(source: source, key: key)
    guard !droppedSizes.withLock({ $0.contains(name) }) else { return nil }
    guard let object = bucket.read(name, limit: 64 << 10, size: true) else { return nil }
    switch sizes.decode(object, source: source, key: key) {
    case .success(let size):
      bucket.count { $0.sizeHits += 1 }
      return size
    case .failure(let damage):
      bucket.count { $0.corruptSizes += 1 }
      bucket.logger.warning("shared size record \(name) is damaged: \(damage.reason); asking the source")
      return nil
    }
  }

  /// Queues the size record to be written, as a block is (`put`).
  public func record(source: String, key: String, size: UInt64) {
    let name = sizes.objectKey(source: source, key: key)
    droppedSizes.withLock { _ = $0.remove(name) }
    guard !bucket.isPaused() else {
      bucket.count { $0.dropped += 1 }
      return
    }
    queue.put(.size(source: source, key: key), sizes.encode(source: source, key: key, size: size))
  }

  /// Counted in `staleSizes` and logged; the record stays in the bucket until a mount that learns
  /// the size from the store writes it again.
  public func drop(source: String, key: String) {
    let name = sizes.objectKey(source: source, key: key)
    guard droppedSizes.withLock({ $0.insert(name).inserted }) else { return }
    bucket.count { $0.staleSizes += 1 }
    bucket.logger.warning("shared size record \(name) disagrees with the source; asking the source instead")
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

/// What the shared cache's queue writes.
enum SharedObject: Hashable, Sendable {
  case block(BlockKey)
  case size(source: String, key: String)
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

/// How size records are named and stored in the shared bucket: `PREFIX` + `bklogfs-sizes/v1/` + the
/// SHA-256 of the record's identity, which is a block identity (`BlockIdentity`) of the store's
/// identity hashed, the object's key, no ETag, index 0 and block size 0. The object holds the size
/// as a block file holds a block (`BlockFileFormat`, version 1): a header naming the identity in
/// full and checksums, then the size as 8 bytes, little-endian. So a record is checked as a block
/// is, and a record of another object (copied to this key) is refused.
struct SharedSizeFormat: Sendable {
  /// "" or ending in "/".
  let prefix: String
  /// The folder under the prefix; a new record format gets a new one.
  static let folder = "bklogfs-sizes/v1/"

  func identity(source: String, key: String) -> [UInt8] {
    BlockIdentity.encode(
      BlockKey(source: "sha256:" + SHA256.hexHash(source), key: key, etag: "", index: 0), blockSize: 0)
  }

  func objectKey(source: String, key: String) -> String {
    prefix + Self.folder + BlockIdentity.hash(identity(source: source, key: key))
  }

  func encode(source: String, key: String, size: UInt64) -> [UInt8] {
    var data: [UInt8] = []
    data.appendLittleEndian(size)
    let header = data.withUnsafeBytes {
      BlockFileFormat.header(
        identity: identity(source: source, key: key), data: $0, version: SharedBlockFormat.checksumVersion)
    }
    return header + data
  }

  func decode(_ object: [UInt8], source: String, key: String) -> Result<UInt64, SharedBlockDamage> {
    switch BlockFileFormat.decode(object, identity: identity(source: source, key: key), blockSize: 8) {
    case .success(let data):
      guard data.count == 8 else { return .failure(SharedBlockDamage(reason: "holds \(data.count) bytes, not 8")) }
      return .success(data[...].loadLittleEndian(UInt64.self, at: 0))
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

  /// The object, or nil when there is none (a miss, counted as a block's or a size record's), the
  /// request failed, or the bucket is paused.
  func read(_ name: String, limit: Int, size: Bool) -> [UInt8]? {
    guard !isPaused() else { return nil }
    let object: [UInt8]?
    do throws(ObjectStoreError) {
      object = try client.getObject(key: name, limit: limit)
    } catch {
      noteFailure("reading shared \(size ? "size record" : "block") \(name) failed: \(error.message)")
      return nil
    }
    state.withLock { state in
      state.failuresInARow = 0
      if object == nil {
        if size { state.statistics.sizeMisses += 1 } else { state.statistics.misses += 1 }
      }
    }
    return object
  }

  func write(_ name: String, _ object: [UInt8], size: Bool) {
    // A block queued before a pause began is left unshared too.
    guard !isPaused() else {
      count { $0.dropped += 1 }
      return
    }
    do throws(ObjectStoreError) {
      try client.put(key: name, bytes: object)
    } catch {
      noteFailure("writing shared \(size ? "size record" : "block") \(name) failed: \(error.message)")
      return
    }
    state.withLock { state in
      state.failuresInARow = 0
      if size { state.statistics.sizeWrites += 1 } else { state.statistics.writes += 1 }
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
/// damaged, requests that failed, blocks and size records left unshared (queue full or cache
/// paused), and the bytes waiting to be written now; size records found, not there, written,
/// refused as damaged, and dropped because the source disagreed (`staleSizes`).
public struct SharedCacheStatistics: Sendable, Hashable {
  public var hits = 0
  public var misses = 0
  public var writes = 0
  public var corruptBlocks = 0
  public var failures = 0
  public var dropped = 0
  public var queuedBytes = 0
  public var sizeHits = 0
  public var sizeMisses = 0
  public var sizeWrites = 0
  public var corruptSizes = 0
  public var staleSizes = 0

  public init() {}
}
