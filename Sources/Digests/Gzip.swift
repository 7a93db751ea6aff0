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
    let status: Int32 = compressed.withUnsafeBufferPointer { input in
      inflateAll(&stream, input, limit: limit, into: &output) { stream, consumed in
        // Another member may follow; anything else after the end is damage.
        if consumed == input.count { return Z_STREAM_END }
        guard isGzip(input[consumed...]) else { return Z_DATA_ERROR }
        guard inflateReset(&stream) == Z_OK else { return Z_STREAM_ERROR }
        return nil
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

/// Runs zlib's `inflate()` over `input` with a started `stream`, appending what it makes to `output`: at most
/// `limit` bytes and one more, which is enough to tell that the limit was passed (then `Z_MEM_ERROR`). At the
/// end of a stream, `streamEnded` (given the bytes of `input` consumed) returns the status to finish with, or nil
/// to go on with the stream reset; when the stream asks for a preset dictionary, `needsDictionary` sets one and
/// says whether it could. Returns `Z_STREAM_END` or the failing status (`Z_BUF_ERROR`: the input was cut short).
func inflateAll(
  _ stream: inout z_stream, _ input: UnsafeBufferPointer<UInt8>, limit: Int, into output: inout [UInt8],
  needsDictionary: (inout z_stream) -> Bool = { _ in false }, streamEnded: (inout z_stream, Int) -> Int32?
) -> Int32 {
  var chunk = [UInt8](repeating: 0, count: 64 << 10)
  stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
  stream.avail_in = UInt32(input.count)
  while true {
    let room = limit - output.count
    let size = room >= chunk.count ? chunk.count : room + 1
    var (code, produced) = chunk.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
      stream.next_out = out.baseAddress
      stream.avail_out = UInt32(size)
      let code = inflate(&stream, Z_NO_FLUSH)
      return (code, size - Int(stream.avail_out))
    }
    if code == Z_NEED_DICT {
      guard needsDictionary(&stream) else { return Z_NEED_DICT }
      (code, produced) = (Z_OK, 0)
    }
    output.append(contentsOf: chunk[..<produced])
    if output.count > limit { return Z_MEM_ERROR }
    if code == Z_STREAM_END {
      if let status = streamEnded(&stream, input.count - Int(stream.avail_in)) { return status }
      continue
    }
    if code != Z_OK { return code }
    if stream.avail_in == 0 && produced == 0 { return Z_BUF_ERROR }
  }
}
