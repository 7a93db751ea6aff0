import FoundationEssentials
public import SystemBase

/// A mount's counters, as `bklogfs stats` prints them and `bklogfs unmount` reads them (from the
/// `user.bklogfs.stats` attribute of the mount's root): one Codable type for both ends, so neither
/// searches the other's text.
public struct MountStatistics: Codable, Sendable, Hashable {
  public struct Requests: Codable, Sendable, Hashable {
    public var list: Int
    public var head: Int
    public var get: Int
  }

  public struct Cache: Codable, Sendable, Hashable {
    public var memoryHits: Int
    public var diskHits: Int
    public var misses: Int
    public var prefetchedBlocks: Int
    public var memoryBytes: Int
    public var diskBytes: Int
    public var diskBytesOnDisk: Int
    public var diskBlocks: Int
    /// The most the disk cache may hold (`--cache-size`), 0 when the mount keeps none; nil from a
    /// daemon older than the field. What `bklogfs warm` checks a subtree against.
    public var diskMaxBytes: Int?
    /// The size of a cache block: each block's file holds at most this much of a log, and a
    /// header. nil from a daemon older than the field.
    public var blockSize: Int?
    public var diskEvictions: Int
    public var corruptBlocks: Int
    public var diskQueueBytes: Int
    public var diskQueueMaxBytes: Int
    public var diskQueueDropped: Int
    /// The shared cache (`--shared-cache`): blocks found, not found, written, refused as damaged,
    /// requests that failed, blocks left unshared, and bytes waiting to be written; all 0 without one.
    public var sharedHits: Int
    public var sharedMisses: Int
    public var sharedWrites: Int
    public var sharedCorruptBlocks: Int
    public var sharedFailures: Int
    public var sharedDropped: Int
    public var sharedQueueBytes: Int
    /// Size records of the shared cache: found, not found, written, refused as damaged, and
    /// dropped because the source disagreed; all 0 without one.
    public var sharedSizeHits: Int
    public var sharedSizeMisses: Int
    public var sharedSizeWrites: Int
    public var sharedCorruptSizes: Int
    public var sharedStaleSizes: Int
  }

  /// What Buildkite's API still allows in its current rate-limit window, as the mount last heard it
  /// (`RateLimit-Remaining` less the requests since, and `RateLimit-Limit`).
  public struct APIBudget: Codable, Sendable, Hashable {
    public var remaining: Int
    public var limit: Int?

    public init(remaining: Int, limit: Int?) {
      self.remaining = remaining
      self.limit = limit
    }
  }

  /// How long requests took: the stores' calls by kind (all the mount's stores together, a call's
  /// retries included in it), and for a mount of Buildkite's names each HTTP request to its API.
  public struct Latency: Codable, Sendable, Hashable {
    public var list: LatencyHistogram.Snapshot
    public var head: LatencyHistogram.Snapshot
    public var get: LatencyHistogram.Snapshot
    /// Absent when the mount asks no API.
    public var api: LatencyHistogram.Snapshot?

    public init(
      list: LatencyHistogram.Snapshot, head: LatencyHistogram.Snapshot, get: LatencyHistogram.Snapshot,
      api: LatencyHistogram.Snapshot? = nil
    ) {
      self.list = list
      self.head = head
      self.get = get
      self.api = api
    }
  }

  /// The stores the mount reads, by identity, separated by spaces.
  public var source: String
  /// The daemon serving the mount.
  public var pid: Int32
  public var requests: Requests
  public var bytesFetched: Int
  public var retries: Int
  public var failures: Int
  public var cache: Cache
  /// Names (files, directories, links) the inode table holds now.
  public var cachedNames: Int
  /// The daemon's heap in use (glibc's `mallinfo2`): what its data take, without the freed memory
  /// glibc keeps for reuse, which its RSS still counts.
  public var heapBytes: Int
  /// The API's rate-limit budget, for a mount of Buildkite's names once it has asked the API;
  /// absent otherwise.
  public var apiBudget: APIBudget?
  /// Request latencies; nil from a daemon older than the field.
  public var latency: Latency?

  /// One line of JSON with snake_case keys in a fixed order.
  public func json() -> String {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding plain integers and strings cannot fail.
    return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
  }

  /// Reads what `json()` wrote.
  public init(json: String) throws {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    self = try decoder.decode(MountStatistics.self, from: Data(json.utf8))
  }

  init(
    source: String, pid: Int32, requests: Requests, bytesFetched: Int, retries: Int, failures: Int, cache: Cache,
    cachedNames: Int, heapBytes: Int, apiBudget: APIBudget? = nil, latency: Latency? = nil
  ) {
    self.apiBudget = apiBudget
    self.latency = latency
    self.cachedNames = cachedNames
    self.heapBytes = heapBytes
    self.source = source
    self.pid = pid
    self.requests = requests
    self.bytesFetched = bytesFetched
    self.retries = retries
    self.failures = failures
    self.cache = cache
  }
}
