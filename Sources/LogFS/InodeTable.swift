import ObjectStore

/// The tree as known so far: which inode stands for which key or prefix, and what each directory
/// held when it was last listed. Inode numbers are stable for a path for the life of the mount.
/// Not thread-safe on its own; `LogFilesystem` keeps it behind a mutex.
struct InodeTable {
  struct Node {
    let inode: UInt64
    let parent: UInt64
    let name: String
    let kind: NodeKind
    /// A file's full object key; a directory's prefix, ending in "/" (or empty for a bucket's root).
    let key: String
    var object: ObjectInfo?
  }

  struct Listing {
    var children: [String: UInt64] = [:]
    /// Monotonic seconds of the last full listing; nil when never listed.
    var listedAt: Double?
  }

  static let rootInode: UInt64 = 1

  private(set) var nodes: [UInt64: Node] = [:]
  private var listings: [UInt64: Listing] = [:]
  private var inodeByPath: [String: UInt64] = [:]
  private var nextInode: UInt64 = 2
  /// Keys already reported as left out, so each is logged once.
  private(set) var reportedKeys: Set<String> = []

  init(rootPrefix: String) {
    nodes[Self.rootInode] = Node(
      inode: Self.rootInode, parent: Self.rootInode, name: "", kind: .directory, key: rootPrefix)
    listings[Self.rootInode] = Listing()
  }

  func node(_ inode: UInt64) -> Node? { nodes[inode] }

  func listing(_ inode: UInt64) -> Listing? { listings[inode] }

  /// The inode for a child, made on first sight.
  private mutating func child(parent: UInt64, name: String, kind: NodeKind, key: String, object: ObjectInfo?)
    -> UInt64
  {
    let path = (kind == .directory ? "d:" : "f:") + key
    if let existing = inodeByPath[path] {
      if let object { nodes[existing]?.object = object }
      return existing
    }
    let inode = nextInode
    nextInode += 1
    nodes[inode] = Node(inode: inode, parent: parent, name: name, kind: kind, key: key, object: object)
    if kind == .directory { listings[inode] = Listing() }
    inodeByPath[path] = inode
    return inode
  }

  /// Entries of one listing of `directory`, each either shown or reported as left out.
  struct Merge {
    var children: [String: UInt64] = [:]
    var leftOut: [(key: String, reason: String)] = []
  }

  /// Adds what a listing of `directory` returned. Directories win over files of the same name.
  mutating func merge(directory: UInt64, page: ListPage, complete: Bool, now: Double) -> Merge {
    guard let parent = nodes[directory] else { return Merge() }
    let base = parent.key.utf8.count
    var merge = Merge()
    for prefix in page.commonPrefixes {
      let name = String(decoding: prefix.utf8.dropFirst(base).dropLast(), as: UTF8.self)
      if let problem = nameProblem(name) {
        merge.leftOut.append((prefix, problem))
        continue
      }
      merge.children[name] = child(parent: directory, name: name, kind: .directory, key: prefix, object: nil)
    }
    for object in page.objects {
      let name = String(decoding: object.key.utf8.dropFirst(base), as: UTF8.self)
      // A zero-byte "directory marker" named like the directory itself.
      if name.isEmpty && object.key.hasSuffix("/") { continue }
      if let problem = nameProblem(name) {
        merge.leftOut.append((object.key, problem))
        continue
      }
      if merge.children[name] != nil
        || (!complete && listings[directory]?.children[name].flatMap({ nodes[$0]?.kind }) == .directory)
      {
        merge.leftOut.append((object.key, "a directory of the same name hides it"))
        continue
      }
      merge.children[name] = child(parent: directory, name: name, kind: .file, key: object.key, object: object)
    }
    if complete {
      listings[directory] = Listing(children: merge.children, listedAt: now)
    } else {
      listings[directory, default: Listing()].children.merge(merge.children) { _, new in new }
    }
    merge.leftOut = merge.leftOut.filter { reportedKeys.insert($0.key).inserted }
    return merge
  }

  /// Forgets a child that a lookup found missing, so a stale listing does not bring it back.
  mutating func removeChild(directory: UInt64, name: String) {
    listings[directory]?.children[name] = nil
  }
}
