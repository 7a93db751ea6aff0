internal import CCrypto

/// zlib streams (RFC 1950) with an optional preset dictionary, over zlib's `deflate()` and `inflate()`.
///
/// A preset dictionary is bytes that the data is likely to repeat (such as another record of the same kind):
/// deflate then refers back into it from the first byte, which is what makes small records compress well. The
/// stream names its dictionary by Adler-32, so decompressing with another dictionary fails rather than giving
/// other bytes.
public enum Deflate {
  /// The bytes compressed at zlib's `level` (0-9), with `dictionary` preset when not empty.
  public static func compress(_ bytes: [UInt8], dictionary: [UInt8] = [], level: Int32 = 9) -> [UInt8] {
    var stream = z_stream()
    guard ccrypto_deflate_init_zlib(&stream, level) == Z_OK else {
      preconditionFailure("zlib could not start deflating (out of memory)")
    }
    defer { deflateEnd(&stream) }
    if !dictionary.isEmpty {
      let status = dictionary.withUnsafeBufferPointer { buffer in
        deflateSetDictionary(&stream, buffer.baseAddress, UInt32(buffer.count))
      }
      precondition(status == Z_OK, "zlib refused a preset dictionary")
    }
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))))
    let produced: Int = bytes.withUnsafeBufferPointer { input in
      output.withUnsafeMutableBufferPointer { out in
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
        stream.avail_in = UInt32(input.count)
        stream.next_out = out.baseAddress
        stream.avail_out = UInt32(out.count)
        // deflateBound leaves room for the whole stream: one call finishes it.
        let status = deflate(&stream, Z_FINISH)
        precondition(status == Z_STREAM_END, "zlib could not finish a stream within its bound")
        return out.count - Int(stream.avail_out)
      }
    }
    output.removeSubrange(produced...)
    return output
  }

  /// The decompressed bytes of one zlib stream made with `dictionary` (empty: none). Refuses more than
  /// `limit` bytes of output, a stream that is damaged, cut short, followed by other bytes, or that asks for a
  /// dictionary other than the one given.
  public static func decompress(_ compressed: [UInt8], dictionary: [UInt8] = [], limit: Int) throws(GzipError)
    -> [UInt8]
  {
    var stream = z_stream()
    guard ccrypto_inflate_init_zlib(&stream) == Z_OK else { throw GzipError(description: "zlib could not start") }
    defer { inflateEnd(&stream) }
    let limit = max(0, limit)
    guard compressed.count <= Int(UInt32.max) else {
      throw GzipError(description: "the zlib data is larger than \(UInt32.max) bytes")
    }
    var output: [UInt8] = []
    let status: Int32 = compressed.withUnsafeBufferPointer { input in
      inflateAll(
        &stream, input, limit: limit, into: &output,
        needsDictionary: { stream in
          // Z_DATA_ERROR: the stream was made with another dictionary.
          !dictionary.isEmpty
            && dictionary.withUnsafeBufferPointer {
              inflateSetDictionary(&stream, $0.baseAddress, UInt32($0.count))
            } == Z_OK
        },
        streamEnded: { _, consumed in consumed == input.count ? Z_STREAM_END : Z_DATA_ERROR })
    }
    switch status {
    case Z_STREAM_END: return output
    case Z_MEM_ERROR where output.count > limit:
      throw GzipError(description: "the zlib data expands past \(limit) bytes")
    case Z_NEED_DICT: throw GzipError(description: "the zlib data needs another preset dictionary")
    case Z_BUF_ERROR: throw GzipError(description: "the zlib data is cut short")
    default: throw GzipError(description: "the zlib data is damaged (zlib error \(status))")
    }
  }
}
