import Foundation
import TestSupport

/// `Tests/servers/loopback_server.py`, a small HTTP/1.1 server on loopback (its header lists the
/// paths it serves), run as a child process for one test. It prints its port, and a port nothing
/// listens on, on its first line.
final class LoopbackServer {
  let process = Process()
  let port: Int
  let closedPort: Int

  init() throws {
    let stdout = Pipe()
    let stdin = Pipe()
    process.standardInput = stdin
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", TestPaths.script("servers/loopback_server.py")]
    process.standardOutput = stdout
    try process.run()
    var line = [UInt8]()
    while true {
      let byte = try stdout.fileHandleForReading.read(upToCount: 1) ?? Data()
      guard let first = byte.first else { break }
      if first == UInt8(ascii: "\n") { break }
      line.append(first)
    }
    let ports = String(decoding: line, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
    guard ports.count == 2 else {
      process.terminate()
      throw CocoaError(.fileReadCorruptFile)
    }
    port = ports[0]
    closedPort = ports[1]
  }

  var base: String { "http://127.0.0.1:\(port)" }

  deinit {
    // SIGKILL: the child may have inherited blocked signals.
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
  }
}
