import Glibc

/// Whole seconds since the Unix epoch on the wall clock (`clock_gettime(CLOCK_REALTIME)`): for what
/// is stamped or compared with another machine's time (a SigV4 timestamp, an HTTP date in
/// `Retry-After`), never for measuring a wait.
public func wallClockEpochSeconds() -> Int64 {
  var now = timespec()
  clock_gettime(CLOCK_REALTIME, &now)
  return Int64(now.tv_sec)
}
