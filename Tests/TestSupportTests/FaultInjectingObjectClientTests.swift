import ObjectStore
import TestSupport
import Testing

/// The fault-injecting wrapper: each fault fires on the calls it was injected for, and on no other.
@Suite struct FaultInjectingObjectClientTests {
  let store = InMemoryObjectClient()
  let clock = FakeClock()
  let bytes = (0..<100).map { UInt8($0) }

  func wrapped() -> FaultInjectingObjectClient {
    store.put("a.log", bytes)
    store.put("b.log", "b")
    store.put("d/c.log", "c")
    return FaultInjectingObjectClient(store, clock: clock)
  }

  @Test func withoutFaultsEveryCallIsTheWrappedClients() throws {
    let client = wrapped()
    #expect(client.identity == store.identity && client.isRemote && client.rangeSupport == .any)
    #expect(try client.listPage(ListRequest(prefix: "")) == store.listPage(ListRequest(prefix: "")))
    #expect(try client.head(key: "a.log") == store.head(key: "a.log"))
    #expect(try client.getBytes(key: "a.log", range: 10..<60) == Array(bytes[10..<60]))
    let counted = client.counters.snapshot
    #expect([counted.lists, counted.heads, counted.gets, counted.bytesFetched, counted.failures] == [1, 1, 1, 50, 0])
    #expect(store.counters.snapshot.gets == 1)
    #expect(client.injected.isEmpty)
    #expect(clock.sleeps.isEmpty)
  }

  @Test func aFailureFiresOnceOnTheNextCallOfItsOperationWithoutReachingTheStore() throws {
    let client = wrapped()
    client.inject(.fail(.unreachable), into: .get)
    #expect(try client.head(key: "a.log").size == 100)
    #expect(try client.listPage(ListRequest(prefix: "")).objects.count == 2)
    let error = #expect(throws: ObjectStoreError.self) { try client.getBytes(key: "a.log", range: 0..<10) }
    #expect(error?.kind == .unreachable)
    #expect(error?.message == "injected unreachable on get 1 of a.log")
    #expect(store.counters.snapshot.gets == 0)
    #expect(try client.getBytes(key: "a.log", range: 0..<10) == Array(bytes[0..<10]))
    #expect(client.injected.map(\.call.number) == [1])
    #expect(client.counters.snapshot.gets == 2)
    #expect(client.counters.snapshot.failures == 1)
  }

  @Test func aFailureByCallNumberFiresOnThatCallOnly() throws {
    let client = wrapped()
    client.inject(.fail(.serverError), into: .list, .call(3))
    for number in 1...5 {
      let result = Result { () throws(ObjectStoreError) in try client.listPage(ListRequest(prefix: "d/")) }
      if number == 3 {
        #expect(throws: ObjectStoreError.self) { try result.get() }
      } else {
        #expect(try result.get().objects.map(\.key) == ["d/c.log"])
      }
    }
    #expect(client.injected.map(\.call) == [.init(operation: .list, number: 3, key: "d/", range: nil)])
  }

  @Test func aFailureByKeyFiresForThatKeyByItsBytesEveryTime() throws {
    let client = wrapped()
    store.put("caf\u{E9}.log", "composed")
    store.put("cafe\u{301}.log", "decomposed")
    client.inject(.fail(.accessDenied), into: .head, .key("b.log"), times: nil)
    client.inject(.fail(.notFound), into: .head, .key("caf\u{E9}.log"), times: nil)
    for _ in 0..<3 {
      #expect(throws: ObjectStoreError.self) { try client.head(key: "b.log") }
      #expect(try client.head(key: "a.log").size == 100)
    }
    #expect(throws: ObjectStoreError.self) { try client.head(key: "caf\u{E9}.log") }
    #expect(try client.head(key: "cafe\u{301}.log").size == 10)
    #expect(
      client.injected.map(\.fault) == [
        .fail(.accessDenied), .fail(.accessDenied), .fail(.accessDenied), .fail(.notFound),
      ])
    #expect(client.counters.snapshot.failures == 4)
  }

  @Test func aFailureByPredicateFiresWhereThePredicateHolds() throws {
    let client = wrapped()
    client.inject(.fail(.timedOut), into: .get, .matching { $0.range?.lowerBound == 0 }, times: 2)
    let error = #expect(throws: ObjectStoreError.self) { try client.getBytes(key: "a.log", range: 0..<10) }
    #expect(error?.kind == .timedOut)
    #expect(try client.getBytes(key: "a.log", range: 5..<10) == Array(bytes[5..<10]))
    #expect(throws: ObjectStoreError.self) { try client.getBytes(key: "b.log", range: 0..<1) }
    #expect(try client.getBytes(key: "a.log", range: 0..<10) == Array(bytes[0..<10]), "two times, then no more")
  }

  @Test func onlyTheFirstMatchingFailureFiresTheOtherWaitsForTheNextCall() throws {
    let client = wrapped()
    client.inject(.fail(.serverError), into: .head)
    client.inject(.fail(.invalidResponse), into: .head)
    #expect(#expect(throws: ObjectStoreError.self) { try client.head(key: "a.log") }?.kind == .serverError)
    #expect(#expect(throws: ObjectStoreError.self) { try client.head(key: "a.log") }?.kind == .invalidResponse)
    #expect(try client.head(key: "a.log").size == 100)
  }

  @Test func aCutBodyPassesOnExactlyItsFirstBytesThenFails() throws {
    let client = wrapped()
    client.inject(.cutShort(after: 30, .unreachable), into: .get)
    // A body no longer than the cut is not cut: the fault waits for one that is.
    #expect(try client.getBytes(key: "a.log", range: 0..<30) == Array(bytes[0..<30]))
    var received: [UInt8] = []
    let error = #expect(throws: ObjectStoreError.self) {
      try client.get(key: "a.log", range: 20..<100, ifMatch: nil) { received += $0 }
    }
    #expect(error?.kind == .unreachable)
    #expect(received == Array(bytes[20..<50]))
    #expect(client.counters.snapshot.bytesFetched == 60)
    #expect(client.counters.snapshot.failures == 1)
    #expect(try client.getBytes(key: "a.log", range: 20..<100) == Array(bytes[20..<100]))

    client.inject(.cutShort(after: 0, .timedOut), into: .get)
    received = []
    #expect(throws: ObjectStoreError.self) {
      try client.get(key: "a.log", range: 0..<5, ifMatch: nil) { received += $0 }
    }
    #expect(received.isEmpty)
  }

  @Test func aGetThatEndsEarlyPassesOnItsFirstBytesAndReturnsWithoutAWord() throws {
    let client = wrapped()
    client.inject(.endEarly(after: 10), into: .get)
    var received: [UInt8] = []
    try client.get(key: "a.log", range: 5..<60, ifMatch: nil) { received += $0 }
    #expect(received == Array(bytes[5..<15]))
    #expect(client.injected.map(\.fault) == [.endEarly(after: 10)])
    #expect(try client.getBytes(key: "a.log", range: 5..<60) == Array(bytes[5..<60]))
  }

  @Test func aDelayWaitsOnTheClockThenTheCallGoesOn() throws {
    let client = wrapped()
    client.inject(.delay(seconds: 0.5), into: .list)
    #expect(try client.listPage(ListRequest(prefix: "")).commonPrefixes == ["d/"])
    #expect(clock.sleeps == [0.5])
    _ = try client.listPage(ListRequest(prefix: ""))
    #expect(clock.sleeps == [0.5])

    // A delay and a failure on one call: both fire, the wait first.
    client.inject(.delay(seconds: 0.25), into: .head)
    client.inject(.fail(.timedOut), into: .head)
    #expect(throws: ObjectStoreError.self) { try client.head(key: "a.log") }
    #expect(clock.sleeps == [0.5, 0.25])
    #expect(client.injected.map(\.fault) == [.delay(seconds: 0.5), .delay(seconds: 0.25), .fail(.timedOut)])
  }

  @Test func theWrappedClientsOwnFailuresPassThroughAndAreCounted() throws {
    let client = wrapped()
    #expect(#expect(throws: ObjectStoreError.self) { try client.head(key: "none") }?.kind == .notFound)
    let changed = #expect(throws: ObjectStoreError.self) {
      try client.getBytes(key: "a.log", range: 0..<1, ifMatch: "\"other\"")
    }
    #expect(changed?.kind == .preconditionFailed)
    #expect(client.injected.isEmpty)
    #expect(client.counters.snapshot.failures == 2)
  }

  @Test func removedFaultsNeverFire() throws {
    let client = wrapped()
    client.inject(.fail(.unreachable), into: .get, times: nil)
    client.inject(.delay(seconds: 1), into: .head, times: nil)
    client.removeAllFaults()
    #expect(try client.getBytes(key: "b.log", range: 0..<1) == Array("b".utf8))
    #expect(try client.head(key: "b.log").size == 1)
    #expect(client.injected.isEmpty && clock.sleeps.isEmpty)
  }
}
