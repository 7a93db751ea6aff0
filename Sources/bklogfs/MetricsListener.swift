import Glibc
import Logging
import SystemBase

/// `bklogfs mount --metrics-listen ADDRESS:PORT`: the counters served over HTTP/1.1 at
/// `GET /metrics` for a Prometheus server to scrape; anything else is answered 404. One thread
/// serves one connection at a time, each closed after its answer: a request must arrive whole
/// (at most 8 KiB of head) within 2 seconds. There is no authentication and no TLS: it listens on
/// the address given, which should be loopback (`127.0.0.1:PORT`) unless the network is trusted.
final class MetricsListener: Sendable {
  /// The address as given, for messages.
  let address: String
  private let listening: Int32
  private let wake: WakePipe
  private let render: @Sendable () -> String
  private let logger: Logger

  static let maxRequestBytes = 8192
  static let readTimeoutSeconds = 2

  /// `A.B.C.D:PORT` (IPv4), or `:PORT` for loopback; nil when it is neither.
  static func parse(_ text: String) -> sockaddr_in? {
    guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0
    else { return nil }
    let host = text[..<colon].isEmpty ? "127.0.0.1" : String(text[..<colon])
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
    return address
  }

  /// Binds and listens now, so that an address in use fails the mount before it mounts.
  init(address: String, logger: Logger, render: @escaping @Sendable () -> String) throws(MountFailure) {
    guard var socketAddress = Self.parse(address) else {
      throw MountFailure("--metrics-listen \(address) is not ADDRESS:PORT (such as 127.0.0.1:9101)")
    }
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw MountFailure("cannot open a socket: \(lastError())") }
    var on: Int32 = 1
    _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
    let bound = withUnsafePointer(to: &socketAddress) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard bound == 0, listen(descriptor, 16) == 0 else {
      let reason = lastError()
      close(descriptor)
      throw MountFailure("cannot listen on \(address) for --metrics-listen: \(reason)")
    }
    self.address = address
    listening = descriptor
    wake = try WakePipe()
    self.logger = logger
    self.render = render
  }

  /// Serves until `stop()`, on a thread of its own.
  func start() {
    logger.notice("serving the counters at http://\(address)/metrics")
    if let bound = Self.parse(address), UInt32(bigEndian: bound.sin_addr.s_addr) >> 24 != 127 {
      logger.warning(
        "--metrics-listen \(address) is not a loopback address: anyone who can reach it reads the counters")
    }
    startDetachedThread { [self] in
      defer { close(listening) }
      while true {
        var descriptors = [
          pollfd(fd: listening, events: Int16(POLLIN), revents: 0),
          pollfd(fd: wake.readDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&descriptors, 2, -1)
        if ready < 0 && errno == EINTR { continue }
        if ready < 0 || descriptors[1].revents != 0 { return }
        // accept4(SOCK_CLOEXEC) is a GNU extension the Glibc module does not export.
        let client = accept(listening, nil, nil)
        guard client >= 0 else { continue }
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        serve(client)
        close(client)
      }
    }
  }

  /// Stops serving; the listening socket is closed by its thread.
  func stop() { wake.wake() }

  private func serve(_ client: Int32) {
    var timeout = timeval(tv_sec: Self.readTimeoutSeconds, tv_usec: 0)
    _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    _ = setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var request: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 2048)
    while request.count < Self.maxRequestBytes && !Self.headIsComplete(request) {
      let count = read(client, &buffer, buffer.count)
      if count < 0 && errno == EINTR { continue }
      guard count > 0 else { return }
      request += buffer[..<count]
    }
    let answer = Self.answer(to: request, render: render)
    var sent = 0
    while sent < answer.count {
      let count = answer[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if count < 0 && errno == EINTR { continue }
      guard count > 0 else { return }
      sent += count
    }
  }

  static func headIsComplete(_ bytes: [UInt8]) -> Bool {
    let end: [UInt8] = Array("\r\n\r\n".utf8)
    return bytes.count >= 4 && (0...(bytes.count - 4)).contains { Array(bytes[$0..<($0 + 4)]) == end }
  }

  /// The whole answer to a request's head: 200 with the metrics for `GET /metrics`, 404 for any
  /// other path or method, 400 for a head that is not HTTP or too long.
  static func answer(to request: [UInt8], render: () -> String) -> [UInt8] {
    let firstLine = request.split(separator: UInt8(ascii: "\n"), maxSplits: 1).first.map {
      String(decoding: $0, as: UTF8.self)
    }
    let parts = firstLine?.split(separator: " ") ?? []
    guard headIsComplete(request), parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
      return response("400 Bad Request", "text/plain; charset=utf-8", "a request head of HTTP/1.x was expected\n")
    }
    let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    guard parts[0] == "GET", path == "/metrics" else {
      return response("404 Not Found", "text/plain; charset=utf-8", "only GET /metrics is served here\n")
    }
    return response("200 OK", "text/plain; version=0.0.4; charset=utf-8", render())
  }

  private static func response(_ status: String, _ type: String, _ body: String) -> [UInt8] {
    let bytes = Array(body.utf8)
    let head =
      "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
    return Array(head.utf8) + bytes
  }
}

/// A pipe a thread sleeps on in poll(2) and another wakes it through, once.
final class WakePipe: Sendable {
  let readDescriptor: Int32
  private let writeDescriptor: Int32

  init() throws(MountFailure) {
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { throw MountFailure("cannot create a pipe: \(lastError())") }
    (readDescriptor, writeDescriptor) = (ends[0], ends[1])
    _ = fcntl(readDescriptor, F_SETFD, FD_CLOEXEC)
    _ = fcntl(writeDescriptor, F_SETFD, FD_CLOEXEC)
  }

  /// Sleeps at most `seconds`; true when woken.
  func sleep(seconds: Int) -> Bool {
    var descriptor = pollfd(fd: readDescriptor, events: Int16(POLLIN), revents: 0)
    while true {
      let ready = poll(&descriptor, 1, Int32(seconds * 1000))
      if ready < 0 && errno == EINTR { continue }
      return ready != 0
    }
  }

  func wake() {
    let byte: [UInt8] = [1]
    _ = byte.withUnsafeBytes { write(writeDescriptor, $0.baseAddress, 1) }
  }
}
