import Synchronization

/// How long requests took, counted in fixed buckets: what `bklogfs stats` summarises and
/// `bklogfs mount --metrics` exports as a Prometheus histogram. Recording is two relaxed atomic adds
/// (the bucket and the sum) from any thread, without locks; the count is the buckets' total, so a
/// snapshot's `+Inf` bucket always equals its count.
///
/// It lives here, beside the clock, because both the object stores (ObjectStore's
/// `RequestCounters`) and Buildkite's API client (`APICounters`) keep one, and this is the lowest
/// module both see.
public final class LatencyHistogram: Sendable {
  /// The buckets' upper bounds in seconds, inclusive (Prometheus's `le`), fastest first; one more
  /// bucket, `+Inf`, holds the slower. Fixed, so snapshots of different clients add up.
  public static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

  /// One bucket's counter: `Atomic` cannot be an array's element, a class holding one can.
  private final class Cell: Sendable {
    let value = Atomic<Int>(0)
  }

  private let buckets: [Cell] = (0...LatencyHistogram.bounds.count).map { _ in Cell() }
  private let sumMicroseconds = Atomic<Int>(0)

  public init() {}

  /// Counts one request that took `seconds` (negative or NaN counts as 0).
  public func record(seconds: Double) {
    let seconds = seconds > 0 ? seconds : 0
    buckets[Self.bucketIndex(seconds)].value.add(1, ordering: .relaxed)
    sumMicroseconds.add(Int((min(seconds, 1e9) * 1e6).rounded()), ordering: .relaxed)
  }

  /// Runs `body` and records how long it took on `clock`, whether it returned or threw.
  public func time<Value, Failure: Error>(
    on clock: any MonotonicClock, _ body: () throws(Failure) -> Value
  ) throws(Failure) -> Value {
    let start = clock.now()
    defer { record(seconds: clock.now() - start) }
    return try body()
  }

  /// The index of the bucket `seconds` falls in: the first whose bound is at least `seconds`.
  static func bucketIndex(_ seconds: Double) -> Int {
    bounds.firstIndex { seconds <= $0 } ?? bounds.count
  }

  public var snapshot: Snapshot {
    Snapshot(
      counts: buckets.map { $0.value.load(ordering: .relaxed) },
      sumMicroseconds: sumMicroseconds.load(ordering: .relaxed))
  }

  /// The histogram at one moment. The buckets and the sum are read one after another, so a request
  /// recorded meanwhile may be in one and not yet in the other.
  public struct Snapshot: Sendable, Hashable, Codable {
    /// Requests per bucket (not cumulative), one more than `bounds`: the last is `+Inf`.
    public var counts: [Int]
    /// The total time of every request counted, in microseconds.
    public var sumMicroseconds: Int

    public init(counts: [Int], sumMicroseconds: Int) {
      self.counts = counts
      self.sumMicroseconds = sumMicroseconds
    }

    /// No request yet.
    public static let empty = Snapshot(
      counts: Array(repeating: 0, count: LatencyHistogram.bounds.count + 1), sumMicroseconds: 0)

    /// Requests counted.
    public var count: Int { counts.reduce(0, +) }

    /// The total time in seconds.
    public var sumSeconds: Double { Double(sumMicroseconds) / 1e6 }

    /// Requests that took at most each bound, then all of them (`+Inf`): Prometheus's buckets.
    public var cumulativeCounts: [Int] {
      var total = 0
      return counts.map {
        total += $0
        return total
      }
    }

    /// The bound under which at least `fraction` of the requests finished (the upper bound of the
    /// bucket holding that rank; `.infinity` when it is the last), or nil when none was counted.
    public func upperBound(ofFraction fraction: Double) -> Double? {
      let total = count
      guard total > 0 else { return nil }
      let rank = max(1, Int((fraction * Double(total)).rounded(.up)))
      guard let index = cumulativeCounts.firstIndex(where: { $0 >= rank }) else { return .infinity }
      return index < LatencyHistogram.bounds.count ? LatencyHistogram.bounds[index] : .infinity
    }

    /// Both histograms' requests together (of several clients). A snapshot of other bounds (from a
    /// daemon of another version) adds bucket by bucket as far as both go.
    public func adding(_ other: Snapshot) -> Snapshot {
      var sum = counts.count >= other.counts.count ? counts : other.counts
      let shorter = counts.count >= other.counts.count ? other.counts : counts
      for (index, value) in shorter.enumerated() { sum[index] += value }
      return Snapshot(counts: sum, sumMicroseconds: sumMicroseconds + other.sumMicroseconds)
    }
  }
}
