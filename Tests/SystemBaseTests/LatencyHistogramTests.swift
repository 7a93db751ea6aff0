import Dispatch
import SystemBase
import Testing

@Suite struct LatencyHistogramTests {
  /// A bound is inclusive (Prometheus's `le`): a request of exactly 5 ms is in the 5 ms bucket, one
  /// a hair slower in the next; past the last bound, the `+Inf` bucket.
  @Test func aRequestFallsInTheFirstBucketWhoseBoundHoldsIt() {
    let histogram = LatencyHistogram()
    for seconds in [0, 0.005, 0.0050001, 1, 30, 30.5, -1, .nan] { histogram.record(seconds: seconds) }
    let counts = histogram.snapshot.counts
    #expect(counts.count == LatencyHistogram.bounds.count + 1)
    #expect(counts[0] == 4)  // 0, 0.005, and -1 and NaN as 0
    #expect(counts[1] == 1)  // 0.0050001 ≤ 0.01
    #expect(counts[LatencyHistogram.bounds.firstIndex(of: 1)!] == 1)
    #expect(counts[LatencyHistogram.bounds.count - 1] == 1)  // 30 ≤ 30
    #expect(counts.last == 1)  // 30.5
    #expect(histogram.snapshot.count == 8)
  }

  @Test func theSumIsKeptInMicroseconds() {
    let histogram = LatencyHistogram()
    histogram.record(seconds: 0.25)
    histogram.record(seconds: 1.5)
    #expect(histogram.snapshot.sumMicroseconds == 1_750_000)
    #expect(histogram.snapshot.sumSeconds == 1.75)
  }

  @Test func cumulativeCountsEndWithTheCount() {
    let histogram = LatencyHistogram()
    for seconds in [0.001, 0.02, 0.02, 0.3, 100] { histogram.record(seconds: seconds) }
    let snapshot = histogram.snapshot
    let cumulative = snapshot.cumulativeCounts
    #expect(zip(cumulative, cumulative.dropFirst()).allSatisfy { $0 <= $1 })
    #expect(cumulative.last == snapshot.count)
    #expect(cumulative[LatencyHistogram.bounds.firstIndex(of: 0.025)!] == 3)
    #expect(snapshot.upperBound(ofFraction: 0.5) == 0.025)
    #expect(snapshot.upperBound(ofFraction: 0.8) == 0.5)
    #expect(snapshot.upperBound(ofFraction: 1) == .infinity)
    #expect(LatencyHistogram.Snapshot.empty.upperBound(ofFraction: 0.5) == nil)
  }

  /// Several clients' histograms add up bucket by bucket.
  @Test func snapshotsAddUp() {
    let first = LatencyHistogram()
    let second = LatencyHistogram()
    first.record(seconds: 0.001)
    second.record(seconds: 0.001)
    second.record(seconds: 2)
    let sum = LatencyHistogram.Snapshot.empty.adding(first.snapshot).adding(second.snapshot)
    #expect(sum.count == 3)
    #expect(sum.counts[0] == 2)
    #expect(sum.sumMicroseconds == 2_002_000)
  }

  /// Threads recording at once lose no request: without locks, each add is atomic.
  @Test func threadsRecordingAtOnceLoseNothing() {
    let histogram = LatencyHistogram()
    let done = DispatchGroup()
    for thread in 0..<8 {
      done.enter()
      startDetachedThread {
        for index in 0..<10_000 { histogram.record(seconds: Double((index + thread) % 40) / 1000) }
        done.leave()
      }
    }
    #expect(done.wait(timeout: .now() + 60) == .success)
    let snapshot = histogram.snapshot
    #expect(snapshot.count == 80_000)
    // Each thread records 250 rounds of 0...39 ms (shifted), so 8 × 250 × 780 ms in all.
    #expect(snapshot.sumMicroseconds == 8 * 250 * 780_000)
    #expect(snapshot.counts[0] == 8 * 250 * 6)  // 0...5 ms
  }

  @Test func timingABodyRecordsItsDurationOnTheClock() throws {
    struct Refused: Error {}
    let histogram = LatencyHistogram()
    let clock = SteppingClock()
    let value = histogram.time(on: clock) { 42 }
    #expect(value == 42)
    #expect(throws: Refused.self) { try histogram.time(on: clock) { () throws(Refused) in throw Refused() } }
    #expect(histogram.snapshot.count == 2)
    #expect(histogram.snapshot.sumMicroseconds == 1_000_000)
  }
}

/// A clock that moves half a second each time it is read.
private final class SteppingClock: MonotonicClock, @unchecked Sendable {
  private var time = 0.0
  func now() -> Double {
    time += 0.5
    return time
  }
  func sleep(seconds: Double) {}
}
