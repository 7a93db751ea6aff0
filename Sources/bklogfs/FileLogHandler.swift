import Glibc
import Logging

/// Writes one line per message to a file descriptor (stderr, or a log file opened for appending).
/// Lines are written with one write(2) each, so threads never interleave within a line.
struct FileLogHandler: LogHandler {
  let label: String
  let descriptor: Int32
  var logLevel: Logger.Level
  var metadata: Logger.Metadata = [:]

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    var text = "\(timestamp()) \(event.level) \(label): \(event.message)"
    let merged = metadata.merging(event.metadata ?? [:]) { $1 }
    if !merged.isEmpty {
      text += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }
    text += "\n"
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
      let written = bytes.withUnsafeMutableBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
      if written < 0 && errno == EINTR { continue }
      if written <= 0 { return }
      offset += written
    }
  }

  private func timestamp() -> String {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    var parts = tm()
    var seconds = now.tv_sec
    gmtime_r(&seconds, &parts)
    var buffer = [UInt8](repeating: 0, count: 32)
    let length = buffer.withUnsafeMutableBufferPointer { pointer in
      pointer.withMemoryRebound(to: CChar.self) { strftime($0.baseAddress, $0.count, "%Y-%m-%dT%H:%M:%S", &parts) }
    }
    let millis = String(now.tv_nsec / 1_000_000)
    return String(decoding: buffer[..<length], as: UTF8.self) + "." + String(repeating: "0", count: 3 - millis.count)
      + millis + "Z"
  }
}
