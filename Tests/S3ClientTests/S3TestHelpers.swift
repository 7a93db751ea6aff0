import Digests
import Foundation
import HTTPTransport
import S3Client
import TestSupport
import Testing

/// Deterministic object bytes.
func pattern(_ count: Int, seed: Int = 7) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31 &+ seed) % 253) }
}
