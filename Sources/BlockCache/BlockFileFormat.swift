internal import Digests

/// The on-disk format of one cached block, versions 1 and 2.
///
///     offset  size  field
///          0     8  magic "BKLOGBLK"
///          8     4  format version, little-endian like every number here
///         12     4  header length: 32 + identity length
///         16     8  data length
///         24     4  checksum of the data
///         28     4  checksum of the header: bytes 0..<28, then the identity
///         32     …  identity (see `BlockIdentity`)
///     header length  data
///
/// The versions differ only in the checksum: CRC-32 (zlib's) in version 1, CRC-32C in version 2,
/// written where the processor computes it (about twice as fast). Both are read, so a cache written
/// by an older bklogfs, or on a processor without CRC-32C, stays valid.
///
/// The file's name is the SHA-256 of the identity, so a reader checks the stored identity against the one it
/// asked for: a hash collision, or a file copied or renamed by hand, cannot serve the wrong bytes.
enum BlockFileFormat {
  static let magic: [UInt8] = Array("BKLOGBLK".utf8)
  /// The version written: 2 where CRC-32C is available.
  static let version: UInt32 = CRC32C.isAvailable ? 2 : 1
  static let directoryName = "v1"
  static let fixedHeaderLength = 32
  /// Headers longer than this are taken as damage (identities are a few hundred bytes).
  static let maximumHeaderLength = 1 << 20

  /// The header for `identity` and `data`, with the checksum of `version` (by default the one written here).
  static func header(identity: [UInt8], data: UnsafeRawBufferPointer, version: UInt32 = BlockFileFormat.version)
    -> [UInt8]
  {
    var header: [UInt8] = []
    header.reserveCapacity(fixedHeaderLength + identity.count)
    header += magic
    header.appendLittleEndian(version)
    header.appendLittleEndian(UInt32(fixedHeaderLength + identity.count))
    header.appendLittleEndian(UInt64(data.count))
    header.appendLittleEndian(checksum(data, version: version))
    header.appendLittleEndian(UInt32(0))
    header += identity
    let headerChecksum = checksum(ofHeader: header, version: version)
    header.withUnsafeMutableBytes { $0.storeBytes(of: headerChecksum.littleEndian, toByteOffset: 28, as: UInt32.self) }
    return header
  }

  /// The checksum a file of `version` uses.
  static func checksum(_ data: UnsafeRawBufferPointer, continuing previous: UInt32 = 0, version: UInt32) -> UInt32 {
    version == 2 ? CRC32C.checksum(data, continuing: previous) : CRC32.checksum(data, continuing: previous)
  }

  static func checksum(ofHeader header: [UInt8], version: UInt32) -> UInt32 {
    header.withUnsafeBytes { raw in
      let first = checksum(UnsafeRawBufferPointer(rebasing: raw[0..<28]), version: version)
      return checksum(UnsafeRawBufferPointer(rebasing: raw[32...]), continuing: first, version: version)
    }
  }

  /// The fixed part of a header, as read from a file.
  struct FixedHeader {
    var version: UInt32
    var headerLength: Int
    var dataLength: Int
    var dataChecksum: UInt32
    var headerChecksum: UInt32

    /// Parses the first 32 bytes; nil, with a reason, if they are not a block header this process can check.
    static func parse(_ bytes: ArraySlice<UInt8>) -> Result<FixedHeader, Damage> {
      guard bytes.count >= fixedHeaderLength else { return .failure(.truncated) }
      let start = bytes.startIndex
      guard bytes[start..<start + 8].elementsEqual(magic) else { return .failure(.badMagic) }
      let version = bytes.loadLittleEndian(UInt32.self, at: 8)
      guard version == 1 || (version == 2 && CRC32C.isAvailable) else { return .failure(.unknownVersion) }
      let headerLength = Int(bytes.loadLittleEndian(UInt32.self, at: 12))
      let dataLength = bytes.loadLittleEndian(UInt64.self, at: 16)
      guard headerLength >= fixedHeaderLength, headerLength <= maximumHeaderLength, dataLength <= UInt64(Int.max / 2)
      else { return .failure(.badHeader) }
      return .success(
        FixedHeader(
          version: version, headerLength: headerLength, dataLength: Int(dataLength),
          dataChecksum: bytes.loadLittleEndian(UInt32.self, at: 24),
          headerChecksum: bytes.loadLittleEndian(UInt32.self, at: 28)))
    }
  }

  /// The data of a whole block held in memory (a shared block's object), checked as a block file is:
  /// its header, that it names `identity`, its length and its checksum.
  static func decode(_ bytes: [UInt8], identity: [UInt8], blockSize: Int) -> Result<[UInt8], Damage> {
    let headerLength = fixedHeaderLength + identity.count
    let fixed: FixedHeader
    switch FixedHeader.parse(bytes[...]) {
    case .success(let parsed): fixed = parsed
    case .failure(let damage): return .failure(damage)
    }
    guard fixed.headerLength <= bytes.count else { return .failure(.truncated) }
    guard fixed.headerLength == headerLength else { return .failure(.wrongIdentity) }
    guard checksum(ofHeader: Array(bytes[0..<headerLength]), version: fixed.version) == fixed.headerChecksum else {
      return .failure(.headerChecksum)
    }
    guard bytes[fixedHeaderLength..<headerLength].elementsEqual(identity) else { return .failure(.wrongIdentity) }
    guard fixed.dataLength <= blockSize else { return .failure(.badHeader) }
    guard bytes.count - headerLength == fixed.dataLength else {
      return .failure(bytes.count - headerLength < fixed.dataLength ? .truncated : .wrongSize)
    }
    let data = Array(bytes[headerLength...])
    guard data.withUnsafeBytes({ checksum($0, version: fixed.version) }) == fixed.dataChecksum else {
      return .failure(.dataChecksum)
    }
    return .success(data)
  }

  /// Why a block file was rejected.
  enum Damage: Error, CustomStringConvertible {
    case truncated, badMagic, unknownVersion, badHeader, headerChecksum, wrongIdentity, wrongSize, dataChecksum
    case notARegularFile, unreadable(String)

    var description: String {
      switch self {
      case .truncated: "shorter than its header"
      case .badMagic: "no block header"
      case .unknownVersion: "unknown format version"
      case .badHeader: "impossible header lengths"
      case .headerChecksum: "header checksum mismatch"
      case .wrongIdentity: "holds another block (identity mismatch)"
      case .wrongSize: "file size does not match its header"
      case .dataChecksum: "data checksum mismatch"
      case .notARegularFile: "not a regular file"
      case .unreadable(let reason): "unreadable: \(reason)"
      }
    }
  }
}

/// The unambiguous encoding of what a block is: each string as a 32-bit length and its UTF-8 bytes, then the
/// index and the block size as 64-bit numbers. The block size is part of it, so a cache written with another
/// block size never answers.
enum BlockIdentity {
  static func encode(_ key: BlockKey, blockSize: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(32 + key.source.utf8.count + key.key.utf8.count + key.etag.utf8.count)
    for field in [key.source, key.key, key.etag] {
      let utf8 = Array(field.utf8)
      bytes.appendLittleEndian(UInt32(truncatingIfNeeded: utf8.count))
      bytes += utf8
    }
    bytes.appendLittleEndian(key.index)
    bytes.appendLittleEndian(UInt64(blockSize))
    return bytes
  }

  /// The block size recorded in an identity, if it is well formed.
  static func blockSize(of identity: ArraySlice<UInt8>) -> Int? {
    var offset = 0
    for _ in 0..<3 {
      guard identity.count - offset >= 4 else { return nil }
      let length = Int(identity.loadLittleEndian(UInt32.self, at: offset))
      offset += 4
      guard identity.count - offset >= length else { return nil }
      offset += length
    }
    guard identity.count - offset == 16 else { return nil }
    return Int(truncatingIfNeeded: identity.loadLittleEndian(UInt64.self, at: offset + 8))
  }

  /// The hex SHA-256 that names the block's file.
  static func hash(_ identity: some Collection<UInt8>) -> String { SHA256.hexHash(identity) }
}

extension [UInt8] {
  mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
    Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
  }
}

extension ArraySlice<UInt8> {
  /// A little-endian integer at `offset` from the slice's start.
  func loadLittleEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
    var value: T = 0
    for byteIndex in 0..<MemoryLayout<T>.size {
      value |= T(self[startIndex + offset + byteIndex]) << (8 * byteIndex)
    }
    return value
  }
}
