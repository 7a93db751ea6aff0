internal import CCrypto

public struct GzipError: Error, Sendable, CustomStringConvertible {
  public var description: String
}

/// gzip, with zlib's `inflate()`.
public enum Gzip {
  /// Whether bytes start like a gzip stream (`1f 8b`).
  public static func isGzip(_ bytes: some Collection<UInt8>) -> Bool {
    bytes.starts(with: [0x1f, 0x8b])
  }

  /// The decompressed bytes of one gzip stream, refusing more than `limit` bytes of output (a
  /// small compressed file can expand enormously) and any stream that is damaged or cut short.
  public static func decompress(_ compressed: [UInt8], limit: Int) throws(GzipError) -> [UInt8] {
    var stream = z_stream()
    guard ccrypto_inflate_init_gzip(&stream) == Z_OK else { throw GzipError(description: "zlib could not start") }
    defer { inflateEnd(&stream) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    let status: Int32 = compressed.withUnsafeBufferPointer { input in
      stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
      stream.avail_in = UInt32(input.count)
      while true {
        let (code, produced) = chunk.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
          stream.next_out = out.baseAddress
          stream.avail_out = UInt32(out.count)
          let code = inflate(&stream, Z_NO_FLUSH)
          return (code, out.count - Int(stream.avail_out))
        }
        output.append(contentsOf: chunk[..<produced])
        if output.count > limit { return Z_MEM_ERROR }
        if code == Z_STREAM_END { return code }
        if code != Z_OK { return code }
        if stream.avail_in == 0 && produced == 0 { return Z_BUF_ERROR }
      }
    }
    switch status {
    case Z_STREAM_END: return output
    case Z_MEM_ERROR where output.count > limit:
      throw GzipError(description: "the gzip data expands past \(limit) bytes")
    case Z_BUF_ERROR: throw GzipError(description: "the gzip data is cut short")
    default: throw GzipError(description: "the gzip data is damaged (zlib error \(status))")
    }
  }
}
