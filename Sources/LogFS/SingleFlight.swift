import Dispatch
import Glibc
import Synchronization

/// A result that one thread produces and any number of threads wait for, with a bound on the wait.
final class Promise<Value: Sendable>: Sendable {
  private let done = DispatchGroup()
  private let result = Mutex<Result<Value, FilesystemError>?>(nil)

  init() { done.enter() }

  func fulfil(_ value: Result<Value, FilesystemError>) {
    let first = result.withLock { stored in
      guard stored == nil else { return false }
      stored = value
      return true
    }
    if first { done.leave() }
  }

  /// Waits at most `seconds`; a wait that runs out fails with ETIMEDOUT rather than hanging the caller.
  /// Without `seconds` it waits until the promise is fulfilled: only for a result the caller's own
  /// work produces, whose waits on the network have their own timeouts.
  func wait(seconds: Double?, what: @autoclosure () -> String) throws(FilesystemError) -> Value {
    if let seconds, done.wait(timeout: .now() + seconds) == .timedOut {
      throw FilesystemError(.timedOut, "gave up waiting for \(what()) after \(Int(seconds)) s")
    }
    if seconds == nil { done.wait() }
    return try result.withLock { $0! }.get()
  }
}

/// Runs one call per key at a time; callers that arrive while it runs share its result.
final class SingleFlight<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  private let calls = Mutex<[Key: Promise<Value>]>([:])
  let waitLimit: Double

  init(waitLimit: Double) { self.waitLimit = waitLimit }

  func run(_ key: Key, _ work: () throws(FilesystemError) -> Value) throws(FilesystemError) -> Value {
    let (promise, leader) = calls.withLock { calls in
      if let running = calls[key] { return (running, false) }
      let promise = Promise<Value>()
      calls[key] = promise
      return (promise, true)
    }
    guard leader else { return try promise.wait(seconds: waitLimit, what: "\(key)") }
    let result: Result<Value, FilesystemError>
    do { result = .success(try work()) } catch { result = .failure(error) }
    calls.withLock { $0[key] = nil }
    promise.fulfil(result)
    return try result.get()
  }
}
