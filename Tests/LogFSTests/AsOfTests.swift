import BlockCache
import LogFS
import Logging
import ObjectStore
import SystemBase
import TestSupport
import Testing

/// A versioned store seen as of a time (`AsOfObjectClient`, `bklogfs mount --as-of`).
@Suite struct AsOfTests {
  /// Random histories of writes, overwrites and deletes, listed in pages of every size (keys whose
  /// versions span pages included) and in moto's order: each key shows exactly when it existed at
  /// the time, with that version's size, and reads its bytes.
  @Test(arguments: [1, 2, 3, 7, 1000], [false, true])
  func listingsAndReadsMatchTheHistory(pageSize: Int, motoOrder: Bool) throws {
    for seed in 0..<8 {
      var random = SeededGenerator(seed: UInt64(seed * 97 + pageSize))
      let store = InMemoryVersionedClient(pageSize: pageSize, motoOrder: motoOrder)
      let keys = (0..<6).map { "d\($0 % 2)/k\($0).log" } + ["top.log"]
      for step in 1...40 {
        let key = keys[Int.random(in: 0..<keys.count, using: &random)]
        let time = Timestamp(seconds: Int64(step * 10))
        if Bool.random(using: &random) || store.bytes(of: key, at: time) == nil {
          store.put(key, Array("\(key) at \(step)".utf8), at: time)
        } else {
          store.delete(key, at: time)
        }
      }
      for moment in stride(from: 0, through: 420, by: 35) {
        let time = Timestamp(seconds: Int64(moment))
        let view = AsOfObjectClient(store, time: time)
        let expected = store.keys.filter { store.bytes(of: $0, at: time) != nil }
        let listed = try view.listAll(prefix: "", delimiter: nil)
        #expect(listed.objects.map(\.key) == expected, "seed \(seed) time \(moment)")
        for object in listed.objects {
          let bytes = store.bytes(of: object.key, at: time)!
          #expect(object.size == UInt64(bytes.count))
          #expect(try view.getBytes(key: object.key, version: object.versionID, range: 0..<object.size) == bytes)
          #expect(try view.head(key: object.key).versionID == object.versionID)
        }
        // With a delimiter: each directory once, and the top level's files.
        let top = try view.listAll(prefix: "", delimiter: "/")
        #expect(top.commonPrefixes == ["d0/", "d1/"], "seed \(seed) time \(moment)")
        #expect(top.objects.map(\.key) == expected.filter { !$0.contains("/") })
        let inner = try view.listAll(prefix: "d1/", delimiter: "/")
        #expect(inner.objects.map(\.key) == expected.filter { $0.hasPrefix("d1/") })
      }
    }
  }

  /// A filesystem over the view: a log overwritten since shows and reads its old bytes, a log deleted
  /// since is there, one written since is not; the version read is named in an attribute.
  @Test func aFilesystemShowsTheStoreAsItWas() throws {
    let store = InMemoryVersionedClient()
    store.put("o/p/b/rewritten.log", Array("old bytes".utf8), at: Timestamp(seconds: 100))
    store.put("o/p/b/deleted.log", Array("deleted later".utf8), at: Timestamp(seconds: 100))
    store.put("o/p/b/rewritten.log", Array("new and longer bytes".utf8), at: Timestamp(seconds: 200))
    store.delete("o/p/b/deleted.log", at: Timestamp(seconds: 200))
    store.put("o/p/b/later.log", Array("later".utf8), at: Timestamp(seconds: 200))
    let filesystem = LogFilesystem(
      namespace: ArchiveNamespace(client: AsOfObjectClient(store, time: Timestamp(seconds: 150)), rootPrefix: ""),
      configuration: FilesystemConfiguration(blockSize: 4096, partSize: 4096, fetchThreads: 1),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, logger: Logger(label: "test"))
    defer { filesystem.shutdown() }
    var directory = LogFilesystem.rootInode
    for name in ["o", "p", "b"] { directory = try filesystem.lookup(parent: directory, name: name).inode }
    let handle = try filesystem.openDirectory(directory)
    let names = try filesystem.readDirectory(handle, from: 0).map { $0.name }
    filesystem.releaseDirectory(handle)
    #expect(names == [".", "..", "deleted.log", "rewritten.log"])
    let rewritten = try filesystem.lookup(parent: directory, name: "rewritten.log")
    #expect(rewritten.size == 9)
    let file = try filesystem.openFile(rewritten.inode)
    #expect(try filesystem.read(file, offset: 0, count: 100) == Array("old bytes".utf8))
    filesystem.releaseFile(file)
    let attributes = try filesystem.extendedAttributes(of: rewritten.inode)
    #expect(attributes.contains { $0.name == "user.bklogfs.version_id" && $0.value == "v1" })
    let versions = try filesystem.versionList(of: rewritten.inode)?.split(separator: "\n").map {
      $0.split(separator: "\t").map(String.init)
    }
    #expect(versions?.map { $0[0] } == ["v3", "v1"])
    #expect(versions?.map { $0[4] } == ["current", "old shown"])
  }
}
