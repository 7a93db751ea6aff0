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

  /// The decompressed bytes of a gzip file: one member, or several one after the other (as `cat a.gz
  /// b.gz` makes, read as `gzip -d` does). Refuses more than `limit` bytes of output (a small
  /// compressed file can expand enormously), and any file that is damaged, cut short, or followed by
  /// bytes that are not another member. Memory is bounded by `limit` and the 64 KiB buffer.
  public static func decompress(_ compressed: [UInt8], limit: Int) throws(GzipError) -> [UInt8] {
    var stream = z_stream()
    guard ccrypto_inflate_init_gzip(&stream) == Z_OK else { throw GzipError(description: "zlib could not start") }
    defer { inflateEnd(&stream) }
    let limit = max(0, limit)
    guard compressed.count <= Int(UInt32.max) else {
      throw GzipError(description: "the gzip data is larger than \(UInt32.max) bytes")
    }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    let status: Int32 = compressed.withUnsafeBufferPointer { input in
      stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
      stream.avail_in = UInt32(input.count)
      while true {
        // Room for one byte past the limit at most, which is enough to tell that it was passed.
        let room = limit - output.count
        let size = room >= chunk.count ? chunk.count : room + 1
        let (code, produced) = chunk.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
          stream.next_out = out.baseAddress
          stream.avail_out = UInt32(size)
          let code = inflate(&stream, Z_NO_FLUSH)
          return (code, size - Int(stream.avail_out))
        }
        output.append(contentsOf: chunk[..<produced])
        if output.count > limit { return Z_MEM_ERROR }
        if code == Z_STREAM_END {
          // Another member may follow; anything else after the end is damage.
          let rest = input.count - Int(stream.avail_in)
          if rest == input.count { return code }
          guard isGzip(input[rest...]) else { return Z_DATA_ERROR }
          guard inflateReset(&stream) == Z_OK else { return Z_STREAM_ERROR }
          continue
        }
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
