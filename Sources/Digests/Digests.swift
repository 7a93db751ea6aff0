internal import CCrypto

/// SHA-256, stands for OpenSSL's `SHA256()`.
public enum SHA256 {
  public static func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
    let count = bytes.count
    let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
      _ = CCrypto.SHA256(buffer.baseAddress, count, &digest)
    }
    if done == nil {
      let copy = Array(bytes)
      copy.withUnsafeBufferPointer { _ = CCrypto.SHA256($0.baseAddress, count, &digest) }
    }
    return digest
  }

  public static func hash(_ string: String) -> [UInt8] { hash(Array(string.utf8)) }

  public static func hexHash(_ bytes: some Collection<UInt8>) -> String { hex(hash(bytes)) }
  public static func hexHash(_ string: String) -> String { hex(hash(string)) }
}

/// HMAC with SHA-256, stands for OpenSSL's `HMAC()` with `EVP_sha256()`.
public enum HMACSHA256 {
  public static func authenticationCode(key: [UInt8], message: [UInt8]) -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    var length: UInt32 = 0
    key.withUnsafeBufferPointer { keyBuffer in
      message.withUnsafeBufferPointer { messageBuffer in
        _ = HMAC(
          EVP_sha256(), keyBuffer.baseAddress, Int32(keyBuffer.count), messageBuffer.baseAddress,
          messageBuffer.count, &digest, &length)
      }
    }
    return Array(digest.prefix(Int(length)))
  }

  public static func authenticationCode(key: [UInt8], message: String) -> [UInt8] {
    authenticationCode(key: key, message: Array(message.utf8))
  }
}

/// CRC-32 (the zlib/gzip polynomial), stands for zlib's `crc32()`. Used to check cache blocks, not for security.
public enum CRC32 {
  public static func checksum(_ buffer: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
    guard var base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return previous }
    var crc = UInt(previous)
    var remaining = buffer.count
    // zlib takes a 32-bit length.
    while remaining > 0 {
      let chunk = min(remaining, Int(UInt32.max))
      crc = crc32(crc, base, UInt32(chunk))
      base += chunk
      remaining -= chunk
    }
    return UInt32(truncatingIfNeeded: crc)
  }

  public static func checksum(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { checksum($0) }
  }
}

/// CRC-32C (Castagnoli), computed with the processor's instruction where it has one (x86-64 with
/// SSE 4.2); `isAvailable` says whether it does. The disk cache prefers it to CRC-32 for speed.
public enum CRC32C {
  public static let isAvailable = ccrypto_crc32c_available() != 0

  /// The tables that join the instruction's three lanes (shim.h), built once.
  private struct Tables: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ccrypto_crc32c_tables>
  }
  private static let tables: Tables = {
    let pointer = UnsafeMutablePointer<ccrypto_crc32c_tables>.allocate(capacity: 1)
    ccrypto_crc32c_prepare(pointer)
    return Tables(pointer: pointer)
  }()

  /// The checksum of the buffer; only where `isAvailable`.
  public static func checksum(_ buffer: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
    precondition(isAvailable, "CRC-32C needs SSE 4.2")
    guard let base = buffer.baseAddress else { return previous }
    return ccrypto_crc32c(tables.pointer, previous, base, buffer.count)
  }

  public static func checksum(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { checksum($0) }
  }
}

/// Lower-case hexadecimal, as SigV4 and cache file names want it.
public func hex(_ bytes: some Sequence<UInt8>) -> String {
  let digits = Array("0123456789abcdef".utf8)
  var out = [UInt8]()
  for byte in bytes {
    out.append(digits[Int(byte >> 4)])
    out.append(digits[Int(byte & 0x0f)])
  }
  return String(decoding: out, as: UTF8.self)
}
