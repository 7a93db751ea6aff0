import Dispatch
import SystemBase
import Testing

@Suite struct ThreadsTests {
  /// Threads that each add to a count under the lock, many times: no addition is lost, as one
  /// would be were two threads inside at once.
  @Test func aSleepingMutexLetsOneThreadInAtATime() {
    let count = SleepingMutex(0)
    let done = DispatchGroup()
    for _ in 0..<8 {
      done.enter()
      startDetachedThread {
        for _ in 0..<20_000 {
          count.withLock { value in
            let read = value
            value = read + 1
          }
        }
        done.leave()
      }
    }
    #expect(done.wait(timeout: .now() + 60) == .success)
    #expect(count.withLock { $0 } == 160_000)
  }

  @Test func aSleepingMutexPassesOnWhatItsBodyThrows() {
    struct Refused: Error {}
    let value = SleepingMutex([1, 2])
    #expect(throws: Refused.self) { try value.withLock { (_: inout [Int]) throws(Refused) in throw Refused() } }
    #expect(value.withLock { $0 } == [1, 2])
  }
}
