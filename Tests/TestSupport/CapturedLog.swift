public import Logging
import Synchronization

/// Keeps the messages logged, for tests that check what was reported.
public final class CapturedLog: Sendable {
  private let lines = Mutex<[String]>([])

  public init() {}

  public var all: [String] { lines.withLock { $0 } }

  public func append(_ line: String) { lines.withLock { $0.append(line) } }

  public var logger: Logger {
    Logger(label: "test") { _ in CapturingHandler(log: self) }
  }

  /// The warnings that say something was left out.
  public var leftOut: [String] { all.filter { $0.hasPrefix("warning left out ") } }
}

struct CapturingHandler: LogHandler {
  let log: CapturedLog
  var logLevel: Logger.Level = .debug
  var metadata: Logger.Metadata = [:]

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) { log.append("\(event.level) \(event.message)") }
}
