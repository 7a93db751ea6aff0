public import ObjectStore
import Synchronization
public import SystemBase

/// Any `ObjectClient` with faults on demand: it passes each call to the client it wraps, except the
/// calls a test has chosen to fail, to cut short or to delay. The wrapped client stays a plain
/// store (the in-memory fake, the local-directory client, S3), so one set of faults serves them all.
/// Modelled on mountpoint-s3's `FailureClient` (`mountpoint-s3-client/src/failure_client.rs`),
/// which wraps its mock client the same way.
///
/// A call is matched against the faults injected so far, oldest first. Every matching delay is
/// waited out, then the first matching failure or cut fires; each fault that fires uses up one of
/// its `times`. A call no fault matches reaches the wrapped client unchanged.
public final class FaultInjectingObjectClient: ObjectClient {
  public enum Operation: Sendable, Hashable {
    case list
    case head
    case get
  }

  /// One call, as a fault's selector sees it.
  public struct Call: Sendable, Hashable {
    public var operation: Operation
    /// Its place among the calls of its operation made of this wrapper, from 1.
    public var number: Int
    /// The key of a head or get, the prefix of a list.
    public var key: String
    /// The range of a get.
    public var range: Range<UInt64>?

    public init(operation: Operation, number: Int, key: String, range: Range<UInt64>?) {
      self.operation = operation
      self.number = number
      self.key = key
      self.range = range
    }
  }

  public enum Fault: Sendable, Hashable {
    /// The call fails with an error of this kind, and never reaches the wrapped client.
    case fail(ObjectStoreError.Kind)
    /// A get passes on the first `bytes` bytes of its body, then fails with an error of this kind,
    /// as a transfer that broke and ran out of retries does. Matches only gets of more than `bytes`.
    case cutShort(after: Int, ObjectStoreError.Kind)
    /// A get passes on the first `bytes` bytes of its body and then returns as if it were done: a
    /// store that breaks its contract, which a reader must not trust. Matches only gets of more
    /// than `bytes`.
    case endEarly(after: Int)
    /// The call waits this long on the wrapper's clock, then goes on.
    case delay(seconds: Double)
  }

  /// Which calls of an operation a fault is for.
  public struct Selector: Sendable {
    let matches: @Sendable (Call) -> Bool

    /// Whichever call comes next.
    public static let any = Selector { _ in true }
    /// The call with this number (from 1) among those of its operation.
    public static func call(_ number: Int) -> Selector { Selector { $0.number == number } }
    /// Calls for exactly this key (a list: this prefix), compared by bytes.
    public static func key(_ key: String) -> Selector { Selector { sameBytes($0.key, key) } }
    /// Calls the predicate accepts.
    public static func matching(_ predicate: @escaping @Sendable (Call) -> Bool) -> Selector {
      Selector(matches: predicate)
    }
  }

  /// A fault that fired, and the call it fired on.
  public struct Injection: Sendable, Hashable {
    public var call: Call
    public var fault: Fault
  }

  private struct Rule {
    var operation: Operation
    var selector: Selector
    var fault: Fault
    /// Firings left; nil for every matching call.
    var remaining: Int?
  }

  private struct State {
    var rules: [Rule] = []
    var calls: [Operation: Int] = [:]
    var injected: [Injection] = []
  }

  public let inner: any ObjectClient
  private let clock: any MonotonicClock
  private let state = Mutex(State())

  /// The calls made of this wrapper, whatever became of them: each list, head and get; the body
  /// bytes its callers received; the calls that failed, by injection or in the wrapped client. It
  /// never retries, so `retries` stays 0 (the wrapped client's own counters hold its retries).
  public let counters = RequestCounters()

  public init(_ inner: any ObjectClient, clock: any MonotonicClock = SystemClock()) {
    self.inner = inner
    self.clock = clock
  }

  public var identity: String { inner.identity }
  public var isRemote: Bool { inner.isRemote }
  public var rangeSupport: RangeSupport { inner.rangeSupport }
  public var hasStorageClasses: Bool { inner.hasStorageClasses }
  public func isFixed(etag: String) -> Bool { inner.isFixed(etag: etag) }

  /// Makes `fault` fire on the next `times` calls of `operation` that `selector` picks (every one
  /// when `times` is nil).
  public func inject(_ fault: Fault, into operation: Operation, _ selector: Selector = .any, times: Int? = 1) {
    state.withLock { $0.rules.append(Rule(operation: operation, selector: selector, fault: fault, remaining: times)) }
  }

  /// The faults that have fired, in order.
  public var injected: [Injection] { state.withLock { $0.injected } }

  /// Forgets the faults not yet fired.
  public func removeAllFaults() { state.withLock { $0.rules.removeAll() } }

  public func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
    counters.lists.add(1, ordering: .relaxed)
    let failure = prepare(.list, key: request.prefix, range: nil)
    return try counted { () throws(ObjectStoreError) in
      if let failure { throw failure.error }
      return try inner.listPage(request)
    }
  }

  public func head(key: String) throws(ObjectStoreError) -> ObjectInfo {
    counters.heads.add(1, ordering: .relaxed)
    let failure = prepare(.head, key: key, range: nil)
    return try counted { () throws(ObjectStoreError) in
      if let failure { throw failure.error }
      return try inner.head(key: key)
    }
  }

  public func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    counters.gets.add(1, ordering: .relaxed)
    let failure = prepare(.get, key: key, range: range)
    try counted { () throws(ObjectStoreError) in
      if let failure, failure.passOn == 0 { throw failure.error }
      var allowance = failure?.passOn ?? Int.max
      try inner.get(key: key, version: version, range: range, ifMatch: ifMatch) { chunk in
        let passed = UnsafeRawBufferPointer(rebasing: chunk.prefix(allowance))
        guard !passed.isEmpty else { return }
        allowance -= passed.count
        counters.bytesFetched.add(passed.count, ordering: .relaxed)
        body(passed)
      }
      if let failure, !failure.silent { throw failure.error }
    }
  }

  /// A failure chosen for a call: its error, and how many body bytes go through first.
  private struct Failure {
    var error: ObjectStoreError
    var passOn: Int
    /// The get ends without an error once its bytes are passed on.
    var silent = false
  }

  /// Numbers the call, fires the faults that match it (waiting out the delays), and says how it is
  /// to fail, if it is.
  private func prepare(_ operation: Operation, key: String, range: Range<UInt64>?) -> Failure? {
    let (delay, failure) = state.withLock { state -> (Double, Failure?) in
      let number = state.calls[operation, default: 0] + 1
      state.calls[operation] = number
      let call = Call(operation: operation, number: number, key: key, range: range)
      var delay = 0.0
      var failure: Failure?
      for index in state.rules.indices {
        let rule = state.rules[index]
        guard rule.operation == operation, rule.remaining != 0, rule.selector.matches(call) else { continue }
        switch rule.fault {
        case .delay(let seconds):
          delay += seconds
        case .fail(let kind):
          guard failure == nil else { continue }
          failure = Failure(error: Self.error(kind, call), passOn: 0)
        case .cutShort(let bytes, let kind):
          guard failure == nil, let range, range.count > UInt64(bytes) else { continue }
          failure = Failure(error: Self.error(kind, call), passOn: bytes)
        case .endEarly(let bytes):
          guard failure == nil, let range, range.count > UInt64(bytes) else { continue }
          failure = Failure(error: Self.error(.invalidResponse, call), passOn: bytes, silent: true)
        }
        state.rules[index].remaining = rule.remaining.map { $0 - 1 }
        state.injected.append(Injection(call: call, fault: rule.fault))
      }
      state.rules.removeAll { $0.remaining == 0 }
      return (delay, failure)
    }
    if delay > 0 { clock.sleep(seconds: delay) }
    return failure
  }

  private static func error(_ kind: ObjectStoreError.Kind, _ call: Call) -> ObjectStoreError {
    ObjectStoreError(kind, "injected \(kind) on \(call.operation) \(call.number) of \(call.key)")
  }

  /// Runs a call, counting it as a failure if it throws.
  private func counted<T>(_ call: () throws(ObjectStoreError) -> T) throws(ObjectStoreError) -> T {
    do {
      return try call()
    } catch {
      counters.failures.add(1, ordering: .relaxed)
      throw error
    }
  }
}
