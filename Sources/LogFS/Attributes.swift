public import ObjectStore

public enum NodeKind: Sendable, Hashable {
  case directory
  case file
  case symlink
}

/// What `stat` shows of a node. The FUSE adapter turns it into a `struct stat`.
public struct Attributes: Sendable, Hashable {
  public var inode: UInt64
  public var kind: NodeKind
  public var size: UInt64
  public var modified: Timestamp
  /// Whether the node can never change, so the kernel may keep its attributes and pages.
  public var isImmutable: Bool
  /// False for a file whose size is not known until it is opened (`FileContent.size`): `size` is
  /// then 0, and the kernel must not keep it.
  public var sizeIsKnown: Bool
  /// True for a file whose object is archived and not known to be restored (`ObjectStorage`): its
  /// bytes are offline, so it shows no blocks, as a file an HSM moved to tape does.
  public var isOffline: Bool
  /// True for a file of a log that is still growing (a running job's) while it is open: its size
  /// changes, so the kernel must not keep it (`tail -f` asks again each time).
  public var isGrowing: Bool

  public init(
    inode: UInt64, kind: NodeKind, size: UInt64, modified: Timestamp, isImmutable: Bool, sizeIsKnown: Bool = true,
    isOffline: Bool = false, isGrowing: Bool = false
  ) {
    self.isGrowing = isGrowing
    self.sizeIsKnown = sizeIsKnown
    self.isOffline = isOffline
    self.inode = inode
    self.kind = kind
    self.size = size
    self.modified = modified
    self.isImmutable = isImmutable
  }
}

public struct DirectoryEntry: Sendable, Hashable {
  public var name: String
  public var attributes: Attributes
  /// Whether readdir hands the kernel the entry's inode (readdirplus, as a lookup does) and its
  /// number as `d_ino`, or, in a directory too big to list at once (streamed page by page), only its
  /// name, with its position as `d_ino`: the kernel looks it up when it is used, and `stat` gives its
  /// inode number. Tools that sort a big directory's entries by `d_ino` before visiting them (gnulib's
  /// fts, in `find`, `du` and `grep -r`, past 10,000 entries) then go in name order, which is the
  /// order of the keys, so pages of keys listed ahead serve them, rather than in the random order of
  /// inode numbers, where each would cost a request.
  public var handsInode: Bool
  /// Whether `d_ino` is the entry's position rather than its inode number (an entry that is not
  /// handed over, of a streamed directory: see `handsInode`).
  public var numberIsPosition: Bool

  public init(name: String, attributes: Attributes, handsInode: Bool = true, numberIsPosition: Bool = false) {
    self.name = name
    self.attributes = attributes
    self.handsInode = handsInode
    self.numberIsPosition = numberIsPosition
  }
}

/// Why a key or prefix cannot be shown as a file name, or nil when it can.
public func nameProblem(_ name: String) -> String? {
  let bytes = name.utf8
  if bytes.isEmpty { return "its name is empty (a doubled or trailing \"/\")" }
  if bytes.elementsEqual(".".utf8) || bytes.elementsEqual("..".utf8) { return "\"\(name)\" cannot be a file name" }
  if bytes.count > 255 { return "its name is \(bytes.count) bytes long, over the limit of 255" }
  if bytes.contains(0) { return "its name holds a NUL byte" }
  if bytes.contains(UInt8(ascii: "/")) { return "its name holds a \"/\"" }
  return nil
}
