public import Foundation
import HTTPTransport

/// A child process on loopback for the tests: `moto_server`, or one of the Python servers in
/// `Tests/servers/` and `Tests/e2e/`.
///
/// Children of the test process inherit its blocked signals, so each is run under
/// `Tests/servers/child_launcher.py`, which unblocks them and kills its child as soon as its stdin
/// closes: when `stop()` closes it, or when the test process exits in any way. No server outlives
/// the test run.
public final class ChildServer: @unchecked Sendable {
  public let process: Process
  public let stdin: Pipe
  public let port: Int

  /// Starts `arguments` (where "{port}" becomes a free port) and waits until the port answers HTTP,
  /// or with `probeWithRequests: false` until it accepts a connection (for a server that counts requests).
  ///
  /// A free port is only free when it is picked: another process may take it before the child binds
  /// it, and the probe would then be answered by that process. So the child must still run once the
  /// port answers (one that could not bind has exited); if not, it starts again on another port.
  public init(_ arguments: [String], timeout: TimeInterval = 30, probeWithRequests: Bool = true) throws {
    let deadline = Date().addingTimeInterval(timeout)
    var attempt = 0
    while true {
      attempt += 1
      let port = try freeLoopbackPort()
      let process = Process()
      let stdin = Pipe()
      process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      process.arguments =
        ["python3", TestPaths.script("servers/child_launcher.py")]
        + arguments.map { $0.replacingOccurrences(of: "{port}", with: "\(port)") }
      process.standardInput = stdin
      try process.run()
      if Self.waitForAnswer(port: port, process: process, probeWithRequests: probeWithRequests, until: deadline) {
        Thread.sleep(forTimeInterval: 0.2)
        if process.isRunning {
          (self.process, self.stdin, self.port) = (process, stdin, port)
          return
        }
      }
      try? stdin.fileHandleForWriting.close()
      process.terminate()
      process.waitUntilExit()
      guard Date() < deadline, attempt < 5 else {
        throw ServerError(message: "\(arguments.first ?? "server") did not answer on port \(port)")
      }
    }
  }

  /// Whether the child answers on the port before the deadline (false once it has exited).
  private static func waitForAnswer(port: Int, process: Process, probeWithRequests: Bool, until deadline: Date) -> Bool
  {
    let probe = HTTPClient(timeouts: HTTPTimeouts(connect: 1, stall: 2, total: 2))
    while process.isRunning && Date() < deadline {
      if probeWithRequests {
        if (try? probe.fetch(HTTPRequest(method: "HEAD", url: "http://127.0.0.1:\(port)/"))) != nil { return true }
      } else if acceptsConnections(port: port) {
        return true
      }
      Thread.sleep(forTimeInterval: 0.1)
    }
    return false
  }

  public var endpoint: String { "http://127.0.0.1:\(port)" }

  public func stop() {
    try? stdin.fileHandleForWriting.close()
    process.waitUntilExit()
  }

  deinit { stop() }
}

public struct ServerError: Error, CustomStringConvertible {
  public var message: String
  public var description: String { message }

  public init(message: String) {
    self.message = message
  }
}

/// Whether something listens on the loopback port.
public func acceptsConnections(port: Int) -> Bool {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return false }
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = in_port_t(UInt16(port).bigEndian)
  return withUnsafePointer(to: &address) { pointer in
    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
    }
  }
}

/// A loopback port nothing listens on (bound, then released).
public func freeLoopbackPort() throws -> Int {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { throw ServerError(message: "socket() failed") }
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = 0
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let bound = withUnsafeMutablePointer(to: &address) { pointer in
    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddr in
      bind(fd, sockaddr, length) == 0 && getsockname(fd, sockaddr, &length) == 0
    }
  }
  guard bound else { throw ServerError(message: "bind() failed") }
  return Int(UInt16(bigEndian: address.sin_port))
}
