import Foundation
import Logging

let testLogger = Logger(label: "bklogfs.catalog.tests")
