// Fuzzes the bounded gzip reader that build exports go through (`Gzip.decompress`): any input gives
// the bytes or a `GzipError`, output never exceeds the limit, and the limit is exact.
import Digests
import FuzzDriver

/// Small, so that inputs that expand (bombs) reach it within libFuzzer's length limit.
let limit = 1 << 20

runFuzzer { input in
  let compressed = Array(input)
  let output: [UInt8]
  do throws(GzipError) {
    output = try Gzip.decompress(compressed, limit: limit)
  } catch {
    require(!error.description.isEmpty, "a GzipError without a reason")
    return
  }
  require(output.count <= limit, "\(output.count) bytes decompressed past the \(limit)-byte limit")
  require(Gzip.isGzip(compressed), "accepted a stream that does not start 1f 8b")
  // The limit is exact: the same stream passes with room to spare and fails one byte short of it.
  require((try? Gzip.decompress(compressed, limit: output.count)) == output, "the output changed with the limit")
  if !output.isEmpty {
    require(
      (try? Gzip.decompress(compressed, limit: output.count - 1)) == nil,
      "\(output.count) bytes were accepted under a limit of \(output.count - 1)")
  }
}
