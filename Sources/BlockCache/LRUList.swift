/// A map that remembers the order of use: O(1) lookup, touch, insert, remove and removal of the least recently
/// used entry. A doubly linked list threaded through an array of slots, so no per-node allocation.
struct LRUList<Key: Hashable, Value> {
  struct Node {
    var key: Key
    var value: Value
    var older: Int
    var newer: Int
  }

  private var nodes: [Node?] = []
  private var slots: [Key: Int] = [:]
  private var freeSlots: [Int] = []
  /// Least recently used.
  private var oldest = -1
  /// Most recently used.
  private var newest = -1

  var count: Int { slots.count }

  func peek(_ key: Key) -> Value? {
    guard let slot = slots[key] else { return nil }
    return nodes[slot]!.value
  }

  /// The value, made the most recently used.
  mutating func touch(_ key: Key) -> Value? {
    guard let slot = slots[key] else { return nil }
    unlink(slot)
    linkAsNewest(slot)
    return nodes[slot]!.value
  }

  /// Makes the entry the least recently used, the first to be removed by `removeOldest`; returns
  /// whether it is held.
  @discardableResult
  mutating func demote(_ key: Key) -> Bool {
    guard let slot = slots[key] else { return false }
    unlink(slot)
    linkAsOldest(slot)
    return true
  }

  /// Inserts or replaces, as the most recently used; returns the value replaced.
  @discardableResult
  mutating func set(_ key: Key, _ value: Value) -> Value? {
    if let slot = slots[key] {
      let old = nodes[slot]!.value
      nodes[slot]!.value = value
      unlink(slot)
      linkAsNewest(slot)
      return old
    }
    let node = Node(key: key, value: value, older: -1, newer: -1)
    let slot: Int
    if let free = freeSlots.popLast() {
      slot = free
      nodes[slot] = node
    } else {
      slot = nodes.count
      nodes.append(node)
    }
    slots[key] = slot
    linkAsNewest(slot)
    return nil
  }

  /// Changes a value in place without changing its recency.
  mutating func update(_ key: Key, _ change: (inout Value) -> Void) {
    guard let slot = slots[key] else { return }
    change(&nodes[slot]!.value)
  }

  @discardableResult
  mutating func remove(_ key: Key) -> Value? {
    guard let slot = slots.removeValue(forKey: key) else { return nil }
    return release(slot)
  }

  mutating func removeOldest() -> (key: Key, value: Value)? {
    guard oldest >= 0 else { return nil }
    let slot = oldest
    let key = nodes[slot]!.key
    slots[key] = nil
    return (key, release(slot))
  }

  /// Keys from least to most recently used.
  var keysOldestFirst: [Key] {
    var keys: [Key] = []
    var slot = oldest
    while slot >= 0 {
      keys.append(nodes[slot]!.key)
      slot = nodes[slot]!.newer
    }
    return keys
  }

  private mutating func release(_ slot: Int) -> Value {
    unlink(slot)
    let value = nodes[slot]!.value
    nodes[slot] = nil
    freeSlots.append(slot)
    return value
  }

  private mutating func unlink(_ slot: Int) {
    let older = nodes[slot]!.older
    let newer = nodes[slot]!.newer
    if older >= 0 { nodes[older]!.newer = newer } else { oldest = newer }
    if newer >= 0 { nodes[newer]!.older = older } else { newest = older }
    nodes[slot]!.older = -1
    nodes[slot]!.newer = -1
  }

  private mutating func linkAsOldest(_ slot: Int) {
    nodes[slot]!.older = -1
    nodes[slot]!.newer = oldest
    if oldest >= 0 { nodes[oldest]!.older = slot } else { newest = slot }
    oldest = slot
  }

  private mutating func linkAsNewest(_ slot: Int) {
    nodes[slot]!.older = newest
    nodes[slot]!.newer = -1
    if newest >= 0 { nodes[newest]!.newer = slot } else { oldest = slot }
    newest = slot
  }
}

extension LRUList: Sendable where Key: Sendable, Value: Sendable {}
extension LRUList.Node: Sendable where Key: Sendable, Value: Sendable {}
