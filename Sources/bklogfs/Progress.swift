import Glibc
import Synchronization
import SystemBase

/// One line of progress on standard error. While a terminal watches, it is redrawn in place at
/// most five times a second; otherwise, with `plainInterval` given, it is printed as a plain line
/// at most once in that many seconds (and without it, not at all).
final class ProgressLine: Sendable {
  let terminal = isatty(STDERR_FILENO) == 1
  private let plainInterval: Double?
  private let shown = Mutex<Double?>(nil)
  private let clock = SystemClock()

  init(plainInterval: Double? = nil) {
    self.plainInterval = plainInterval
  }

  /// Shows the line `text` makes, unless one was shown too recently (`force` shows it anyway).
  /// The line is made and written under the lock, so lines from several threads come in order.
  func update(force: Bool = false, _ text: () -> String) {
    guard let interval = terminal ? 0.2 : plainInterval else { return }
    shown.withLock { shown in
      let now = clock.now()
      guard force || shown.map({ now - $0 >= interval }) ?? true else { return }
      shown = now
      printError(terminal ? "\r\u{1B}[2K" + String(text().prefix(terminalColumns() - 1)) : text(), newline: !terminal)
    }
  }

  /// Clears the line on a terminal, so that what follows starts on a clean line.
  func finish() {
    if terminal { printError("\r\u{1B}[2K", newline: false) }
  }

  /// `[#######.......]`: `done` of `total`, in `width` characters.
  static func bar(_ done: Int, of total: Int, width: Int = 30) -> String {
    let filled = width * min(done, total) / max(1, total)
    return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
  }
}

/// `45s`, `3m5s`, `2h7m`: a duration for people.
func humanDuration(_ seconds: Int) -> String {
  if seconds < 60 { return "\(seconds)s" }
  if seconds < 3600 { return "\(seconds / 60)m\(seconds % 60)s" }
  return "\(seconds / 3600)h\(seconds / 60 % 60)m"
}

/// `API budget 180/200 left`: what a rate-limited API still allows in its current window.
func apiBudgetText(remaining: Int?, limit: Int?) -> String {
  guard let remaining else { return "API budget unknown" }
  return "API budget \(remaining)/\(limit.map(String.init) ?? "?") left"
}

/// The terminal's width: a longer line would wrap, and `\r` would then redraw only its last row.
func terminalColumns() -> Int {
  var size = winsize()
  guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 1 else { return 80 }
  return Int(size.ws_col)
}

/// Writes `text` to standard error, with a newline unless told otherwise.
func printError(_ text: String, newline: Bool = true) {
  writeToStandardError(newline ? text + "\n" : text)
}

/// Writes all of `text` to standard error, unbuffered (a progress line redrawn in place).
func writeToStandardError(_ text: String) {
  let bytes = Array(text.utf8)
  var offset = 0
  while offset < bytes.count {
    let written = bytes[offset...].withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    if written < 0 && errno == EINTR { continue }
    if written <= 0 { return }
    offset += written
  }
}
