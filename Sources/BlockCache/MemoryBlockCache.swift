import Synchronization

/// Blocks in memory, least recently used evicted first, bounded by total bytes.
///
/// Thread-safe: one `Mutex` guards everything; no call does I/O or copies block bytes while holding it
/// (arrays are shared copy-on-write).
public final class MemoryBlockCache: Sendable {
  private struct State: Sendable {
    var blocks = LRUList<BlockKey, [UInt8]>()
    var statistics = BlockCacheStatistics()
  }

  public let maxBytes: Int
  private let state = Mutex(State())

  public init(maxBytes: Int) {
    self.maxBytes = max(0, maxBytes)
  }

  /// The block's bytes if held; a hit makes it the most recently used.
  public func get(_ key: BlockKey) -> [UInt8]? {
    state.withLock { state in
      if let bytes = state.blocks.touch(key) {
        state.statistics.hits += 1
        return bytes
      }
      state.statistics.misses += 1
      return nil
    }
  }

  /// Whether the block is held, without counting a hit or a miss or changing its recency.
  public func contains(_ key: BlockKey) -> Bool {
    state.withLock { $0.blocks.peek(key) != nil }
  }

  /// Stores a block (replacing one under the same key), then evicts least recently used blocks until the total
  /// is within `maxBytes`. A block larger than `maxBytes` is not stored.
  public func put(_ key: BlockKey, _ bytes: [UInt8]) {
    guard bytes.count <= maxBytes else { return }
    // Released after the lock, so freeing large arrays does not happen under it.
    var evicted: [[UInt8]] = []
    state.withLock { state in
      if let old = state.blocks.set(key, bytes) {
        state.statistics.bytes -= old.count
        state.statistics.blocks -= 1
        evicted.append(old)
      }
      state.statistics.bytes += bytes.count
      state.statistics.blocks += 1
      state.statistics.writes += 1
      while state.statistics.bytes > maxBytes, let (_, old) = state.blocks.removeOldest() {
        state.statistics.bytes -= old.count
        state.statistics.blocks -= 1
        state.statistics.evictions += 1
        evicted.append(old)
      }
    }
    _ = evicted
  }

  /// Makes a block, if held, the least recently used: the first evicted when room is needed.
  public func demote(_ key: BlockKey) {
    state.withLock { _ = $0.blocks.demote(key) }
  }

  /// Removes a block if held.
  public func remove(_ key: BlockKey) {
    let old = state.withLock { state in
      let old = state.blocks.remove(key)
      if let old {
        state.statistics.bytes -= old.count
        state.statistics.blocks -= 1
      }
      return old
    }
    _ = old
  }

  public var statistics: BlockCacheStatistics { state.withLock { $0.statistics } }
}
