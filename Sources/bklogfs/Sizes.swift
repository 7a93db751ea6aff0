import ArgumentParser

/// A byte count written as a user would: `512M`, `10G`, `1T`, `4096` (binary multiples; `MiB` and `MB` alike).
struct ByteSize: ExpressibleByArgument, Sendable, CustomStringConvertible {
  let bytes: Int

  init(bytes: Int) { self.bytes = bytes }

  init?(argument: String) {
    var text = argument.uppercased()
    for suffix in ["IB", "B"] where text.hasSuffix(suffix) && text.count > suffix.count {
      text.removeLast(suffix.count)
      break
    }
    let multipliers: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
    var multiplier = 1
    if let last = text.last, let found = multipliers[last] {
      multiplier = found
      text.removeLast()
    }
    guard let value = Double(text), value >= 0, value * Double(multiplier) < Double(Int.max) else { return nil }
    bytes = Int(value * Double(multiplier))
  }

  var description: String {
    for (unit, size) in [("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
    where bytes >= size && bytes % size == 0 {
      return "\(bytes / size)\(unit)"
    }
    return "\(bytes)"
  }

  static var defaultCompletionKind: CompletionKind { .default }
}
