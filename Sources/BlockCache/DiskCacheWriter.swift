import Dispatch
public import Logging
import ObjectStore
import Synchronization
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
  public let maxQueuedBytes: Int
  private let logger: Logger
  /// Bounds `close()`.
  private let clock: any MonotonicClock

  private struct State: Sendable {
    var order: [BlockKey] = []
    var head = 0
    var queued: [BlockKey: [UInt8]] = [:]
    var bytes = 0
    var closed = false
    var writerRunning = false
    var statistics = DiskCacheWriterStatistics()
  }

  private let state = Mutex(State())
  /// Signalled once for each block queued, and at close.
  private let work = DispatchSemaphore(value: 0)
  /// Left by the writer thread when it ends.
  private let writerDone = DispatchGroup()

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
    self.maxQueuedBytes = max(0, maxQueuedBytes)
    self.clock = clock
    self.logger = logger
    guard self.maxQueuedBytes > 0, startsWriter else { return }
    state.withLock { $0.writerRunning = true }
    writerDone.enter()
    startDetachedThread { [self] in
      runThisThreadOnlyWhenIdle()
      writeQueue()
      writerDone.leave()
    }
  }

  /// The block's bytes, from the queue or else from the disk cache.
  public func get(_ key: BlockKey) -> [UInt8]? {
    if let bytes = state.withLock({ $0.queued[key] }) { return bytes }
    return cache.get(key)
  }

  /// Queues a block to be written (or, with no queue or once closed, writes it now). A block that
  /// would overfill the queue is not cached: the disk takes what it can absorb, and no fetch waits.
  public func put(_ key: BlockKey, _ bytes: [UInt8]) {
    enum Outcome { case queued, skipped, now }
    let outcome: Outcome = state.withLock { state in
      if maxQueuedBytes == 0 || state.closed { return .now }
      if state.queued[key] != nil { return .skipped }
      guard state.bytes + bytes.count <= maxQueuedBytes else {
        state.statistics.dropped += 1
        return .skipped
      }
      state.queued[key] = bytes
      state.order.append(key)
      state.bytes += bytes.count
      state.statistics.queued += 1
      state.statistics.maxBytes = max(state.statistics.maxBytes, state.bytes)
      return .queued
    }
    switch outcome {
    case .queued: work.signal()
    case .skipped: break
    case .now: cache.put(key, bytes)
    }
  }

  /// Writes out everything queued, then stops the writer; later `put`s write at once. Gives up
  /// after `seconds`, leaving the rest uncached.
  public func close(seconds: Double = 60) {
    let wasOpen = state.withLock { state -> Bool in
      defer { state.closed = true }
      return !state.closed
    }
    guard wasOpen, maxQueuedBytes > 0 else { return }
    work.signal()
    // This thread has the caller's priority: it drains the queue alongside the writer.
    let deadline = clock.now() + seconds
    while clock.now() < deadline, writeNext() {}
    guard state.withLock({ $0.writerRunning }) else { return }
    if writerDone.wait(timeout: .now() + max(0, deadline - clock.now())) == .timedOut {
      logger.warning("The disk cache's writer did not finish within \(Int(seconds)) s")
    }
  }

  public var statistics: DiskCacheWriterStatistics {
    state.withLock { state in
      var statistics = state.statistics
      statistics.bytes = state.bytes
      statistics.blocks = state.queued.count
      return statistics
    }
  }

  // MARK: - Internals

  private func writeQueue() {
    while true {
      if writeNext() { continue }
      if state.withLock({ $0.closed }) { return }
      work.wait()
    }
  }

  /// Writes the oldest queued block; false when the queue is empty. The block stays queued (and
  /// served by `get`) until its file is in place.
  private func writeNext() -> Bool {
    let next: (BlockKey, [UInt8])? = state.withLock { state in
      while state.head < state.order.count {
        let key = state.order[state.head]
        state.head += 1
        if state.head > 256 && state.head * 2 > state.order.count {
          state.order.removeFirst(state.head)
          state.head = 0
        }
        // Another thread (the writer, or close) may have taken it already.
        if let bytes = state.queued[key] { return (key, bytes) }
      }
      return nil
    }
    guard let (key, bytes) = next else { return false }
    cache.put(key, bytes)
    let removed = state.withLock { state -> [UInt8]? in
      guard let removed = state.queued.removeValue(forKey: key) else { return nil }
      state.bytes -= removed.count
      state.statistics.written += 1
      return removed
    }
    _ = removed
    return true
  }
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
