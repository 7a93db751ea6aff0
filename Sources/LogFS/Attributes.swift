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

  public init(inode: UInt64, kind: NodeKind, size: UInt64, modified: Timestamp, isImmutable: Bool) {
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
  /// Whether readdirplus hands the kernel the entry's inode (as a lookup does), or only its name and
  /// number: an entry of a directory too big to keep (streamed page by page) is looked up if used.
  public var handsInode: Bool

  public init(name: String, attributes: Attributes, handsInode: Bool = true) {
    self.name = name
    self.attributes = attributes
    self.handsInode = handsInode
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
