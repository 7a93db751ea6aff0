public import Logging
public import SystemBase

/// Writes blocks to a `DiskBlockCache` behind the readers that fetched them.
///
/// Writing a block to the disk cache costs about as much CPU as fetching it: its checksum, its
/// copy into the page cache, a file created and renamed. Done on the fetching thread, that cost is
/// on a cold reader's path; with eight cold readers on two cores it was about 40% of the daemon's
/// CPU time (doc/BENCHMARKS.md, "What the profiles taught"). Here a fetched block is queued
/// instead, and one thread of the lowest priority (`SCHED_IDLE`) writes the queue out in order,
/// when a core is free.
///
/// - The queue is bounded by bytes. A block that would overfill it is not cached on disk: the
///   disk cache takes what the disk (or the writer's share of the processor) can absorb, and no
///   fetch ever waits for it. When the disk cannot keep up with the network, what it misses is
///   fetched again faster than the disk would have served it; the kernel's page cache still holds
///   what was read.
/// - A queued block is served by `get`, so it is never fetched again while it waits.
/// - `close()` writes out what is still queued, on the calling thread as well as the writer's,
///   so an unmount leaves the cache complete; blocks queued at a `kill -9` are lost, as any cache
///   write the kernel had not finished would be, and never torn (each file is renamed into place).
///
/// With `maxQueuedBytes` 0, `put` writes at once, on the calling thread.
public final class DiskCacheWriter: Sendable {
  public let cache: DiskBlockCache
  public var maxQueuedBytes: Int { queue.maxQueuedBytes }
  private let queue: WriteQueue<BlockKey>

  public convenience init(
    cache: DiskBlockCache, maxQueuedBytes: Int, clock: any MonotonicClock = SystemClock(), logger: Logger
  ) {
    self.init(cache: cache, maxQueuedBytes: maxQueuedBytes, startsWriter: true, clock: clock, logger: logger)
  }

  /// `startsWriter` false leaves the queue to `close()` alone: for tests of a writer that falls behind.
  package init(
    cache: DiskBlockCache, maxQueuedBytes: Int, startsWriter: Bool, clock: any MonotonicClock = SystemClock(),
    logger: Logger
  ) {
    self.cache = cache
    queue = WriteQueue(
      maxQueuedBytes: maxQueuedBytes, writers: startsWriter ? 1 : 0, onlyWhenIdle: true, clock: clock,
      logger: logger, what: "The disk cache's writer"
    ) { key, bytes in cache.put(key, bytes) }
  }

  /// The block's bytes, from the queue or else from the disk cache.
  public func get(_ key: BlockKey) -> [UInt8]? {
    queue.get(key) ?? cache.get(key)
  }

  /// Queues a block to be written (or, with no queue or once closed, writes it now). A block that
  /// would overfill the queue is not cached: the disk takes what it can absorb, and no fetch waits.
  public func put(_ key: BlockKey, _ bytes: [UInt8]) {
    queue.put(key, bytes)
  }

  /// Writes out everything queued, then stops the writer; later `put`s write at once. Gives up
  /// after `seconds`, leaving the rest uncached.
  public func close(seconds: Double = 60) {
    queue.close(seconds: seconds)
  }

  public var statistics: DiskCacheWriterStatistics { queue.statistics }
}

/// What a `DiskCacheWriter` did: blocks queued, written, and left uncached because the queue was
/// full; the largest queue seen; and what is queued now.
public struct DiskCacheWriterStatistics: Sendable, Hashable {
  public var queued = 0
  public var written = 0
  public var dropped = 0
  public var maxBytes = 0
  public var bytes = 0
  public var blocks = 0

  public init() {}
}
