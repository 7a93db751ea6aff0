public import Synchronization
public import SystemBase

/// What a client has asked of its store, for `bklogfs stats` and for tests that assert costs.
/// Updated from any thread without locks.
public final class RequestCounters: Sendable {
  public let lists = Atomic<Int>(0)
  public let heads = Atomic<Int>(0)
  public let gets = Atomic<Int>(0)
  /// Body bytes received by GETs.
  public let bytesFetched = Atomic<Int>(0)
  /// Attempts repeated after a transient failure.
  public let retries = Atomic<Int>(0)
  /// Calls that failed after every retry.
  public let failures = Atomic<Int>(0)
  /// How long each call took, by kind: one sample per call counted above, from its start to its
  /// answer or failure, its retries and their backoff included (what a reader waits for). A call
  /// counts in `lists`, `heads` or `gets` when it starts and here when it ends.
  public let listLatency = LatencyHistogram()
  public let headLatency = LatencyHistogram()
  public let getLatency = LatencyHistogram()

  public init() {}

  public struct Snapshot: Sendable, Hashable, Codable {
    public var lists: Int
    public var heads: Int
    public var gets: Int
    public var bytesFetched: Int
    public var retries: Int
    public var failures: Int
    public var listLatency: LatencyHistogram.Snapshot
    public var headLatency: LatencyHistogram.Snapshot
    public var getLatency: LatencyHistogram.Snapshot
  }

  public var snapshot: Snapshot {
    Snapshot(
      lists: lists.load(ordering: .relaxed), heads: heads.load(ordering: .relaxed),
      gets: gets.load(ordering: .relaxed), bytesFetched: bytesFetched.load(ordering: .relaxed),
      retries: retries.load(ordering: .relaxed), failures: failures.load(ordering: .relaxed),
      listLatency: listLatency.snapshot, headLatency: headLatency.snapshot, getLatency: getLatency.snapshot)
  }
}
