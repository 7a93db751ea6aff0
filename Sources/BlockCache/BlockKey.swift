import ObjectStore

/// Names one block of one version of one object.
public struct BlockKey: Sendable, Hashable {
  /// The store, e.g. "s3://my-bucket" or "file:///srv/archive".
  public var source: String
  /// The object key (any UTF-8, may contain '/', spaces, newlines...).
  public var key: String
  /// The object's ETag as the store gives it.
  public var etag: String
  /// Block number: bytes [index*blockSize, (index+1)*blockSize).
  public var index: UInt64

  public init(source: String, key: String, etag: String, index: UInt64) {
    self.source = source
    self.key = key
    self.etag = etag
    self.index = index
  }

  // By bytes: `String`'s `==` is canonical equivalence, which takes "caf\u{E9}" and "cafe\u{301}",
  // two keys, for one.
  public static func == (a: BlockKey, b: BlockKey) -> Bool {
    a.index == b.index && sameBytes(a.source, b.source) && sameBytes(a.key, b.key) && sameBytes(a.etag, b.etag)
  }

  public func hash(into hasher: inout Hasher) {
    hashBytes(of: source, into: &hasher)
    hashBytes(of: key, into: &hasher)
    hashBytes(of: etag, into: &hasher)
    hasher.combine(index)
  }
}

/// Counters of a cache; `bytes` and `blocks` are what it holds now, the others count since it was created.
public struct BlockCacheStatistics: Sendable, Hashable, Codable {
  public var hits: Int
  public var misses: Int
  public var writes: Int
  public var evictions: Int
  /// Blocks found damaged (bad checksum, truncated, wrong identity) and removed.
  public var corruptBlocks: Int
  public var bytes: Int
  public var blocks: Int

  public init(
    hits: Int = 0, misses: Int = 0, writes: Int = 0, evictions: Int = 0, corruptBlocks: Int = 0, bytes: Int = 0,
    blocks: Int = 0
  ) {
    self.hits = hits
    self.misses = misses
    self.writes = writes
    self.evictions = evictions
    self.corruptBlocks = corruptBlocks
    self.bytes = bytes
    self.blocks = blocks
  }
}
