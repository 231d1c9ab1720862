import XCTest
import CKernels
