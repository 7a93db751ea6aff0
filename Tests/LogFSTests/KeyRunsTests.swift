import ObjectStore
import SystemBase
import TestSupport
import Testing

@testable import LogFS

/// The runs of keys lookups by path are answered from: what a run decides, how runs merge, and
/// their bounds in time and size.
@Suite struct KeyRunsTests {
  func objects(_ keys: [String]) -> [ObjectInfo] {
    keys.map { ObjectInfo(key: $0, size: 1, lastModified: Timestamp(seconds: 0), etag: "\"e\"") }
  }

  func answer(_ runs: KeyRuns, _ directory: String, _ name: String) -> String {
    guard let page = runs.answer(directory: directory, name: name) else { return "unknown" }
    if let prefix = page.commonPrefixes.first { return "directory \(prefix)" }
    return page.objects.first.map { "file \($0.key)" } ?? "missing"
  }

  @Test func aRunDecidesOnlyNamesWhoseKeysAllFallInsideIt() {
    let runs = KeyRuns(freshness: 60, clock: FakeClock())
    runs.record(
      directory: "p/", after: "p/b", through: "p/d/2.log",
      objects: objects(["p/b1/x.log", "p/c", "p/c-d", "p/d/1.log", "p/d/2.log"]))
    #expect(answer(runs, "p/", "b1") == "directory p/b1/")
    #expect(answer(runs, "p/", "c") == "file p/c")
    #expect(answer(runs, "p/", "bz") == "missing")
    // "d" has keys in the run, so it is a directory, though the run stopped inside it.
    #expect(answer(runs, "p/", "d") == "directory p/d/")
    // Before the run's start, or past its end: not known.
    #expect(answer(runs, "p/", "a") == "unknown")
    #expect(answer(runs, "p/", "e") == "unknown")
    // A file is known only once the run passes every key a directory of its name could hold: "c/"
    // sorts after "c-d" ("-" is below "/").
    runs.record(directory: "q/", after: "q/", through: "q/c-d", objects: objects(["q/c", "q/c-d"]))
    #expect(answer(runs, "q/", "c") == "unknown")
    #expect(answer(runs, "q/", "c-d") == "unknown")
    runs.record(directory: "r/", after: "r/", through: "r/d", objects: objects(["r/c", "r/c-d", "r/d"]))
    #expect(answer(runs, "r/", "c") == "file r/c")
    #expect(answer(runs, "r/", "c-d") == "file r/c-d")
  }

  @Test func aPageThatGoesOnWhereARunEndedMakesOneRun() {
    let runs = KeyRuns(freshness: 60, clock: FakeClock())
    runs.record(directory: "d/", after: "d/", through: "d/b", objects: objects(["d/a", "d/b"]))
    #expect(runs.pageStart(directory: "d/", name: "c") == "d/b", "a lookup past the run goes on from its end")
    #expect(runs.pageStart(directory: "d/", name: "x1") == "d/x", "a jump starts below the name")
    runs.record(directory: "d/", after: "d/b", through: nil, objects: objects(["d/c", "d/e"]))
    #expect(runs.whole("d/")?.objects.map(\.key) == ["d/a", "d/b", "d/c", "d/e"])
    #expect(runs.entry(in: "d/", after: "d/a") == "d/b")
  }

  @Test func aNewerPageReplacesWhatAnOlderRunSaidWithinItsBounds() {
    let runs = KeyRuns(freshness: 60, clock: FakeClock())
    runs.record(directory: "d/", after: "d/", through: nil, objects: objects(["d/a", "d/b", "d/c"]))
    // "b" went, "bb" came: the newer page from "a" to "c" knows.
    runs.record(directory: "d/", after: "d/a", through: "d/c", objects: objects(["d/bb", "d/c"]))
    #expect(runs.whole("d/")?.objects.map(\.key) == ["d/a", "d/bb", "d/c"])
    #expect(answer(runs, "d/", "b") == "missing")
  }

  @Test func runsAreForgottenWhenStaleAndTheOldestGoFirstPastTheirCapacity() {
    let clock = FakeClock()
    let runs = KeyRuns(freshness: 60, capacity: 10, clock: clock)
    runs.record(directory: "a/", after: "a/", through: nil, objects: objects((0..<6).map { "a/\($0)" }))
    clock.advance(1)
    runs.record(directory: "b/", after: "b/", through: nil, objects: objects((0..<6).map { "b/\($0)" }))
    #expect(runs.whole("a/") == nil, "over capacity: the oldest run went")
    #expect(runs.whole("b/") != nil)
    clock.advance(60)
    #expect(runs.whole("b/") == nil)
    #expect(answer(runs, "b/", "1") == "unknown")
  }

  @Test func aDirectoryIsReadNameByNameFromItsSecondLookupWithinTheFreshness() {
    let clock = FakeClock()
    let runs = KeyRuns(freshness: 60, clock: clock)
    #expect(!runs.noteLookup(in: "d/"))
    #expect(runs.noteLookup(in: "d/"))
    clock.advance(61)
    #expect(!runs.noteLookup(in: "d/"))
    runs.record(directory: "e/", after: "e/x", through: "e/y", objects: [])
    #expect(runs.noteLookup(in: "e/"), "a directory with a page held is being read already")
  }

  @Test func listingsLearnedAheadAreBoundedByTheirEntries() {
    let clock = FakeClock()
    let learned = SubtreeListings(freshness: 60, capacity: 10, clock: clock)
    func listing(_ count: Int) -> NamespaceListing {
      NamespaceListing(entries: (0..<count).map { NamespaceEntry(name: "e\($0)", content: .directory(key: "e\($0)/")) })
    }
    learned.store([("a/", listing(6))])
    learned.store([("b/", listing(3))])
    #expect(learned.peek("a/")?.entries.count == 6)
    // Past 10 entries in all, what is held goes before the new one is kept.
    learned.store([("c/", listing(4))])
    #expect(learned.peek("a/") == nil && learned.peek("b/") == nil)
    #expect(learned.take("c/")?.entries.count == 4)
    // Taking hands the entries back: the next 10 fit.
    learned.store([("d/", listing(10))])
    #expect(learned.peek("d/")?.entries.count == 10)
  }
}
