import Foundation
import HTTPTransport
import Testing

@Suite(.serialized) struct HTTPClientTests {
  let server: LoopbackServer
  let client = HTTPClient(timeouts: HTTPTimeouts(connect: 2, stall: 2, total: 10))

  init() throws { server = try LoopbackServer() }

  static func expected(_ range: Range<Int>) -> [UInt8] { range.map { UInt8($0 % 251) } }

  @Test func getBody() throws {
    let (response, body) = try client.fetch(HTTPRequest(url: "\(server.base)/data/100000"))
    #expect(response.status == 200)
    #expect(response.headers["content-length"] == "100000")
    #expect(response[header: "X-Multi"] == "a, b")
    #expect(body == Self.expected(0..<100_000))
  }

  @Test func headHasNoBody() throws {
    var sawHead = false
    var bodyBytes = 0
    let response = try client.perform(
      HTTPRequest(method: "HEAD", url: "\(server.base)/data/5000"),
      onResponse: { head in
        sawHead = head.status == 200
        return true
      },
      onBody: { chunk in
        bodyBytes += chunk.count
        return true
      })
    #expect(sawHead)
    #expect(response.status == 200)
    #expect(response.headers["content-length"] == "5000")
    #expect(bodyBytes == 0)
  }

  @Test func rangeAndHeadBeforeBody() throws {
    var order: [String] = []
    var body = [UInt8]()
    let response = try client.perform(
      HTTPRequest(url: "\(server.base)/data/70000", headers: [("Range", "bytes=1000-60999")]),
      onResponse: { head in
        order.append("head \(head.status) \(head.headers["content-range"] ?? "")")
        return true
      },
      onBody: { chunk in
        if order.last != "body" { order.append("body") }
        body.append(contentsOf: chunk)
        return true
      })
    #expect(response.status == 206)
    #expect(order == ["head 206 bytes 1000-60999/70000", "body"])
    #expect(body == Self.expected(1000..<61000))
  }

  @Test func notFoundIsAResponse() throws {
    let (response, body) = try client.fetch(HTTPRequest(url: "\(server.base)/missing"))
    #expect(response.status == 404)
    #expect(body == Array("nope".utf8))
  }

  @Test func putSendsBody() throws {
    let (response, body) = try client.fetch(
      HTTPRequest(method: "PUT", url: "\(server.base)/echo", body: Array("hello".utf8)))
    #expect(response.status == 200)
    #expect(body == Array("PUT hello".utf8))
  }

  @Test func abortAndTooLarge() throws {
    #expect {
      try client.perform(HTTPRequest(url: "\(server.base)/data/100000")) { _ in false }
    } throws: { ($0 as? HTTPError)?.kind == .aborted }
    #expect {
      try client.fetch(HTTPRequest(url: "\(server.base)/data/100000", maxBodyBytes: 1000))
    } throws: { ($0 as? HTTPError)?.kind == .tooLarge }
    // The client still works afterwards.
    #expect(try client.fetch(HTTPRequest(url: "\(server.base)/data/10")).body == Self.expected(0..<10))
  }

  @Test func connectionRefusedFailsFast() throws {
    let start = Date()
    #expect {
      try client.fetch(HTTPRequest(url: "http://127.0.0.1:\(server.closedPort)/x"))
    } throws: { error in
      guard let error = error as? HTTPError else { return false }
      return error.kind == .connect && error.message.contains("127.0.0.1")
    }
    #expect(Date().timeIntervalSince(start) < 2)
  }

  @Test func silentServerTimesOut() throws {
    let quick = HTTPClient(timeouts: HTTPTimeouts(connect: 2, stall: 2, total: 4))
    let start = Date()
    #expect {
      try quick.fetch(HTTPRequest(url: "\(server.base)/hang"))
    } throws: { ($0 as? HTTPError)?.kind == .timeout }
    let elapsed = Date().timeIntervalSince(start)
    #expect(elapsed >= 1.5 && elapsed < 5)
  }

  /// A burst then silence ends one stall timeout after the last byte, not several seconds later
  /// as libcurl's low-speed average would have it.
  @Test func aTransferThatStopsAfterABurstTimesOutOneStallAfterItsLastByte() throws {
    let quick = HTTPClient(timeouts: HTTPTimeouts(connect: 2, stall: 1, total: 30))
    let start = Date()
    var received = 0
    #expect {
      try quick.perform(HTTPRequest(url: "\(server.base)/burst-then-hang")) { chunk in
        received += chunk.count
        return true
      }
    } throws: { error in
      guard let error = error as? HTTPError else { return false }
      return error.kind == .timeout && error.detail == "no byte received for 1 s"
        && error.bytesDelivered == 64 << 10
    }
    let elapsed = Date().timeIntervalSince(start)
    #expect(received == 64 << 10)
    #expect(elapsed >= 0.9 && elapsed < 3)
  }

  @Test func sequentialRequestsReuseOneConnection() throws {
    let fresh = HTTPClient()
    let before = Int(
      String(decoding: try fresh.fetch(HTTPRequest(url: "\(server.base)/connections")).body, as: UTF8.self))!
    for index in 0..<50 {
      let (response, body) = try fresh.fetch(
        HTTPRequest(url: "\(server.base)/data/\(index + 1)", headers: [("X-Index", "\(index)")]))
      #expect(response.status == 200 && body.count == index + 1)
    }
    let after = Int(
      String(decoding: try fresh.fetch(HTTPRequest(url: "\(server.base)/connections")).body, as: UTF8.self))!
    #expect(after == before)
    #expect(fresh.connectionsOpened == 1)
    #expect(fresh.requestsPerformed == 52)
  }

  @Test func concurrentRequestsFromThreads() throws {
    let failures = LockedCounter()
    let client = self.client
    let base = server.base
    DispatchQueue.concurrentPerform(iterations: 4) { worker in
      for index in 0..<20 {
        let size = 1000 + worker * 100 + index
        let body = try? client.fetch(HTTPRequest(url: "\(base)/data/\(size)")).body
        if body != Self.expected(0..<size) { failures.increment() }
      }
    }
    #expect(failures.value == 0)
    #expect(client.connectionsOpened <= 4)
  }

  @Test func urlHelpers() {
    let url = HTTPURL("http://127.0.0.1:5000/base?x=1")!
    #expect(url.host == "127.0.0.1" && url.port == 5000 && url.path == "/base" && url.hostHeader == "127.0.0.1:5000")
    let aws = HTTPURL("https://S3.eu-west-1.amazonaws.com")!
    #expect(aws.host == "s3.eu-west-1.amazonaws.com" && aws.port == nil && aws.path == "")
    #expect(HTTPURL("https://h:443/")!.hostHeader == "h")
    #expect(HTTPURL("ftp://h") == nil)
    for loopback in ["http://127.0.0.1:9000", "http://127.1.2.3", "http://localhost:5000/v2", "http://api.localhost"] {
      #expect(HTTPURL(loopback)!.isLoopback, "\(loopback)")
    }
    for remote in ["http://192.0.2.1:9", "http://127.0.0.1.example.com", "http://1270.0.0.1", "http://localhost.com"] {
      #expect(!HTTPURL(remote)!.isLoopback, "\(remote)")
    }
    #expect(percentDecode("a%20b%2Bc+d") == "a b+c+d")
    #expect(percentDecode("a+b", plusAsSpace: true) == "a b")
    #expect(percentDecode("%E2%82%AC") == "€")
    #expect(percentDecode("%4") == nil)
  }
}

final class LockedCounter: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0
  func increment() { lock.withLock { count += 1 } }
  var value: Int { lock.withLock { count } }
}
