/// What naming a job's alias needs to know of it.
public struct JobAliasInput: Sendable, Hashable {
  public var id: String
  public var name: String?
  public var stepKey: String?
  public var parallelGroupIndex: Int?
  public var parallelGroupTotal: Int?
  /// The attempt that replaced this one, when the job was retried.
  public var retriedInJobID: String?

  public init(
    id: String, name: String?, stepKey: String?, parallelGroupIndex: Int?, parallelGroupTotal: Int?,
    retriedInJobID: String?
  ) {
    self.id = id
    self.name = name
    self.stepKey = stepKey
    self.parallelGroupIndex = parallelGroupIndex
    self.parallelGroupTotal = parallelGroupTotal
    self.retriedInJobID = retriedInJobID
  }
}

/// Readable file names for a build's jobs, next to their canonical `{job-uuid}.log` files.
///
/// A job's alias is its step key (or else its label) made safe, then `-N` for the N-th of a
/// parallel group (counted from 1, as Buildkite shows it), then `.attemptN` for every attempt but
/// the latest, then `.log`: `rspec-3.log` is the latest attempt of the third RSpec shard and
/// `rspec-3.attempt1.log` the first. Emoji codes such as `:rspec:` are dropped; any run of
/// characters other than letters, digits, `.`, `_` and `-` becomes one `-`; the label is cut to 100
/// bytes. Names that would still clash with each other, with `reserved` (the canonical names and
/// other files of the directory) or with a UUID-looking name get `-` and the last 8 characters of
/// the job's UUID (its random part: Buildkite's UUIDs begin with a timestamp, so jobs of one build
/// often share their first characters), or the whole UUID if even that clashes, then a number from
/// 2 if even that clashes (IDs that are not UUIDs are made safe like labels first). Every alias is
/// unique in the directory, never `.` or `..`, never holds `/` or NUL, and is at most 255 bytes long.
///
/// Returns job ID → alias.
public func jobAliases(_ jobs: [JobAliasInput], reserved: Set<String>) -> [String: String] {
  let byID = Dictionary(jobs.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
  let replaced = Set(jobs.compactMap(\.retriedInJobID))

  // Attempt numbers: follow each chain of retries from its first attempt.
  var attempt: [String: (number: Int, isLatest: Bool)] = [:]
  for job in jobs where !replaced.contains(job.id) {
    var chain = [job.id]
    var seen: Set<String> = [job.id]
    while let next = byID[chain.last!]?.retriedInJobID, let nextJob = byID[next], seen.insert(nextJob.id).inserted {
      chain.append(nextJob.id)
    }
    for (index, id) in chain.enumerated() where attempt[id] == nil {
      attempt[id] = (index + 1, index == chain.count - 1)
    }
  }

  var proposed: [String: String] = [:]
  for job in jobs {
    var name = safeLabel(job.stepKey ?? job.name ?? "")
    if let total = job.parallelGroupTotal, total > 1, let index = job.parallelGroupIndex {
      name += "-\(index + 1)"
    }
    if let (number, isLatest) = attempt[job.id], !isLatest {
      name += ".attempt\(number)"
    }
    proposed[job.id] = name
  }

  // Each round suffixes the names that still clash with a longer piece of their UUID.
  var result: [String: String] = [:]
  var pending = jobs.map(\.id)
  // A job ID is a UUID, but whatever the API sends, what it adds to an alias is made safe too.
  for suffix in [
    { (_: String) in "" }, { (id: String) in "-" + safeLabel(String(id.suffix(8))) },
    { (id: String) in "-" + safeLabel(id) },
  ] {
    var counts: [String: Int] = [:]
    let names = pending.map { id in (id, safeFileName(proposed[id]! + suffix(id))) }
    for (_, name) in names { counts[name, default: 0] += 1 }
    var taken = reserved.union(result.values)
    var clashing: [String] = []
    for (id, name) in names {
      let stem = String(name.dropLast(4))
      if counts[name]! > 1 || taken.contains(name) || looksLikeUUID(stem) {
        clashing.append(id)
      } else {
        result[id] = name
        taken.insert(name)
      }
    }
    pending = clashing
  }
  // Only IDs that are the same once made safe (or identical ones) can still clash: number them.
  var taken = reserved.union(result.values)
  for id in pending where result[id] == nil {
    var stem = proposed[id]! + "-" + safeLabel(id)
    while stem.utf8.count > 200 { stem.removeLast() }
    var number = 2
    while taken.contains(safeFileName("\(stem)-\(number)")) { number += 1 }
    result[id] = safeFileName("\(stem)-\(number)")
    taken.insert(result[id]!)
  }
  return result
}

/// `stem.log`, cut to 255 bytes at most by shortening the stem.
private func safeFileName(_ stem: String) -> String {
  var stem = stem
  while stem.utf8.count > 251 { stem.removeLast() }
  return stem + ".log"
}

/// A step key or label as a file name's stem: see `jobAliases`.
func safeLabel(_ label: String) -> String {
  var text = Substring(label)
  var withoutEmoji = ""
  // Drop emoji codes (":rspec:", ":docker::k8s:"), keeping colons that are not part of one.
  while let colon = text.firstIndex(of: ":") {
    withoutEmoji += text[..<colon]
    let rest = text[text.index(after: colon)...]
    if let close = rest.firstIndex(of: ":"),
      !rest[..<close].isEmpty,
      rest[..<close].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_+-".contains($0)) })
    {
      text = rest[rest.index(after: close)...]
    } else {
      withoutEmoji += ":"
      text = rest
    }
  }
  withoutEmoji += text

  var out = ""
  var pendingDash = false
  for scalar in withoutEmoji.unicodeScalars {
    let keep =
      scalar.isASCII
      && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "._-".unicodeScalars.contains(scalar))
    if keep {
      if pendingDash && !out.isEmpty { out += "-" }
      pendingDash = false
      out.unicodeScalars.append(scalar)
    } else {
      pendingDash = true
    }
  }
  while let first = out.first, first == "." || first == "-" { out.removeFirst() }
  while let last = out.last, last == "." || last == "-" { out.removeLast() }
  if out.utf8.count > 100 {
    out = String(decoding: out.utf8.prefix(100), as: UTF8.self)
    while let last = out.last, last == "." || last == "-" { out.removeLast() }
  }
  return out.isEmpty ? "job" : out
}

/// Whether a stem reads as a UUID, so that an alias can never pass for a canonical `{uuid}.log`.
func looksLikeUUID(_ stem: String) -> Bool {
  let bytes = Array(stem.utf8)
  guard bytes.count == 36 else { return false }
  for (index, byte) in bytes.enumerated() {
    if [8, 13, 18, 23].contains(index) {
      if byte != UInt8(ascii: "-") { return false }
    } else if !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
      && !(UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
    {
      return false
    }
  }
  return true
}
