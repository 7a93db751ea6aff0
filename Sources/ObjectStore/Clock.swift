import Glibc

/// Seconds on the monotonic clock: for deadlines, TTLs and rate limits, which wall-clock changes
/// must not move.
package func monotonicSeconds() -> Double {
  var now = timespec()
  clock_gettime(CLOCK_MONOTONIC, &now)
  return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
