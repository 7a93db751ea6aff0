import BlockCache
import Testing

@Suite struct MemoryBlockCacheTests {
  @Test func roundTripAndMiss() {
    let cache = MemoryBlockCache(maxBytes: 1000)
    cache.put(key("a"), [1, 2, 3])
    #expect(cache.get(key("a")) == [1, 2, 3])
    #expect(cache.get(key("b")) == nil)
    #expect(cache.get(key("a", etag: "\"other\"")) == nil)
    #expect(cache.get(key("a", index: 1)) == nil)
    let statistics = cache.statistics
    #expect(statistics.hits == 1)
    #expect(statistics.misses == 3)
    #expect(statistics.writes == 1)
    #expect(statistics.bytes == 3)
    #expect(statistics.blocks == 1)
  }

  @Test func evictsLeastRecentlyUsedWithinTheBound() {
    let cache = MemoryBlockCache(maxBytes: 300)
    cache.put(key("a"), blockBytes(1, count: 100))
    cache.put(key("b"), blockBytes(2, count: 100))
    cache.put(key("c"), blockBytes(3, count: 100))
    #expect(cache.get(key("a")) != nil)  // a is now the most recently used; b the least
    cache.put(key("d"), blockBytes(4, count: 100))
    #expect(cache.get(key("b")) == nil)
    #expect(cache.get(key("a")) == blockBytes(1, count: 100))
    #expect(cache.get(key("c")) == blockBytes(3, count: 100))
    #expect(cache.get(key("d")) == blockBytes(4, count: 100))
    var statistics = cache.statistics
    #expect(statistics.bytes == 300)
    #expect(statistics.blocks == 3)
    #expect(statistics.evictions == 1)

    // A large block pushes out as many as needed.
    cache.put(key("e"), blockBytes(5, count: 250))
    statistics = cache.statistics
    #expect(statistics.bytes <= 300)
    #expect(cache.get(key("e")) == blockBytes(5, count: 250))
    #expect(statistics.blocks == 1)
  }

  @Test func aDemotedBlockIsEvictedFirstAndAHitPromotesItAgain() {
    let cache = MemoryBlockCache(maxBytes: 400)
    for name in ["a", "b", "c", "d"] { cache.put(key(name), blockBytes(1, count: 100)) }
    cache.demote(key("c"))
    cache.demote(key("missing"))  // not held: nothing changes
    cache.put(key("e"), blockBytes(2, count: 100))
    #expect(!cache.contains(key("c")))
    #expect(["a", "b", "d", "e"].allSatisfy { cache.contains(key($0)) })
    // Demoted, then read again: the most recently used once more, and `a` goes next.
    cache.demote(key("d"))
    #expect(cache.get(key("d")) != nil)
    cache.put(key("f"), blockBytes(3, count: 100))
    #expect(!cache.contains(key("a")))
    #expect(["b", "d", "e", "f"].allSatisfy { cache.contains(key($0)) })
    // The only block, demoted: the list stays whole.
    let single = MemoryBlockCache(maxBytes: 100)
    single.put(key("x"), blockBytes(1, count: 100))
    single.demote(key("x"))
    single.put(key("y"), blockBytes(2, count: 100))
    #expect(!single.contains(key("x")) && single.get(key("y")) == blockBytes(2, count: 100))
    #expect(single.statistics.blocks == 1)
  }

  @Test func replacingAKeyKeepsTheCountRight() {
    let cache = MemoryBlockCache(maxBytes: 1000)
    cache.put(key("a"), blockBytes(1, count: 100))
    cache.put(key("a"), blockBytes(2, count: 50))
    #expect(cache.get(key("a")) == blockBytes(2, count: 50))
    #expect(cache.statistics.bytes == 50)
    #expect(cache.statistics.blocks == 1)
  }

  @Test func blockLargerThanTheBoundIsNotStored() {
    let cache = MemoryBlockCache(maxBytes: 10)
    cache.put(key("small"), [1])
    cache.put(key("big"), blockBytes(1, count: 11))
    #expect(cache.get(key("big")) == nil)
    #expect(cache.get(key("small")) == [1])
  }

  @Test func concurrentUseFromPlainThreads() async {
    let cache = MemoryBlockCache(maxBytes: 2000)
    let failures = CounterBox()
    await runOnThreads(8) { thread in
      var random = SystemRandomNumberGenerator()
      for step in 0..<5000 {
        let index = Int.random(in: 0..<32, using: &random)
        let expected = blockBytes(index, count: 100 + index)
        if (step + thread) % 3 == 0 {
          cache.put(key("k\(index)"), expected)
        } else if let got = cache.get(key("k\(index)")), got != expected {
          failures.add()
        }
      }
    }
    #expect(failures.value == 0)
    #expect(cache.statistics.bytes <= 2000)
  }
}
