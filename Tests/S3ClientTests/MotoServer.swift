import Digests
import Foundation
import HTTPTransport
import S3Client
import Testing

/// A child process on loopback for the S3 tests: `moto_server`, or one of the small Python stubs below.
///
/// Children of the test process inherit its blocked signals, so each is run under a Python launcher
/// that unblocks them and kills its child as soon as its stdin closes: when `stop()` closes it, or
/// when the test process exits in any way. No server outlives the test run.
final class ChildServer: @unchecked Sendable {
  let process = Process()
  let stdin = Pipe()
  let port: Int

  static let launcher = #"""
    import os, signal, subprocess, sys
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        sys.stdin.read()
    finally:
        child.kill()
        child.wait()
    """#

  /// Starts `arguments` (where "{port}" becomes a free port) and waits until the port answers HTTP,
  /// or with `probeWithRequests: false` until it accepts a connection (for a server that counts requests).
  init(_ arguments: [String], timeout: TimeInterval = 30, probeWithRequests: Bool = true) throws {
    port = try freeLoopbackPort()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments =
      ["python3", "-c", Self.launcher] + arguments.map { $0.replacingOccurrences(of: "{port}", with: "\(port)") }
    process.standardInput = stdin
    try process.run()
    let probe = HTTPClient(timeouts: HTTPTimeouts(connect: 1, stall: 2, total: 2))
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      if probeWithRequests {
        if (try? probe.fetch(HTTPRequest(method: "HEAD", url: "http://127.0.0.1:\(port)/"))) != nil { break }
      } else if acceptsConnections(port: port) {
        break
      }
      guard Date() < deadline, process.isRunning else {
        stop()
        throw ServerError(message: "\(arguments.first ?? "server") did not answer on port \(port)")
      }
      Thread.sleep(forTimeInterval: 0.1)
    }
  }

  var endpoint: String { "http://127.0.0.1:\(port)" }

  func stop() {
    try? stdin.fileHandleForWriting.close()
    process.waitUntilExit()
  }

  deinit { stop() }
}

struct ServerError: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}

/// Whether something listens on the loopback port.
func acceptsConnections(port: Int) -> Bool {
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
func freeLoopbackPort() throws -> Int {
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

/// The moto_server shared by the S3 tests, started once. Nil (with the reason) when moto_server is
/// not installed: tests then fail under `CI=true` and are skipped otherwise.
enum Moto {
  static let shared: Result<ChildServer, ServerError> = {
    guard let path = which("moto_server") else {
      return .failure(ServerError(message: "moto_server is not on PATH (pip install 'moto[server]')"))
    }
    do {
      return .success(try ChildServer([path, "-H", "127.0.0.1", "-p", "{port}"]))
    } catch {
      return .failure(ServerError(message: "moto_server did not start: \(error)"))
    }
  }()

  static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

  /// The server, or nil after recording an issue (CI) or printing why the test is skipped.
  static func require(sourceLocation: SourceLocation = #_sourceLocation) -> ChildServer? {
    switch shared {
    case .success(let server): return server
    case .failure(let error):
      if isCI {
        Issue.record("\(error.message) (CI=true, so this fails)", sourceLocation: sourceLocation)
      } else {
        print("skipped: \(error.message)")
      }
      return nil
    }
  }

  static func which(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
      let candidate = "\(directory)/\(name)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }
}

let testCredentials = AWSCredentials(accessKeyID: "AKIDTESTING", secretAccessKey: "testing-secret")

/// Signed path-style PUTs to seed a bucket, written with the transport and the signer.
struct Seeder {
  let endpoint: String
  let http = HTTPClient()

  func put(_ path: String, _ body: [UInt8] = [], headers extra: [(name: String, value: String)] = []) throws {
    let url = HTTPURL(endpoint)!
    let signer = SigV4Signer(credentials: testCredentials, region: "us-east-1", service: "s3")
    let request = SignableRequest(
      method: "PUT", path: path, query: "", headers: [(name: "host", value: url.hostHeader)] + extra,
      payloadSHA256: SHA256.hexHash(body))
    let headers =
      [(name: "Host", value: url.hostHeader)] + extra
      + signer.signatureHeaders(for: request, epochSeconds: Int64(Date().timeIntervalSince1970), addContentSHA256: true)
    let (response, answer) = try http.fetch(
      HTTPRequest(method: "PUT", url: endpoint + path, headers: headers, body: body))
    guard response.status == 200 else {
      throw ServerError(message: "PUT \(path): \(response.status) \(String(decoding: answer, as: UTF8.self))")
    }
  }

  func createBucket(_ bucket: String) throws { try put("/\(bucket)") }

  func putObject(_ bucket: String, _ key: String, _ body: [UInt8]) throws {
    try put("/\(bucket)/\(awsURIEncode(key, encodeSlash: false))", body)
  }
}

/// A fresh bucket name per test.
func uniqueBucket(_ stem: String) -> String {
  "\(stem)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// Deterministic object bytes.
func pattern(_ count: Int, seed: Int = 7) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31 &+ seed) % 253) }
}
