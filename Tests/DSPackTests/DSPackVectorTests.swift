import DSPack
import Foundation
import JSON
import SystemIO
import TestSupport
import XCTest

/// Formats/testdata: every vector gives the code its manifest says (signatures: Swift, Python and
/// the C reader built with DSPACK_ED25519_OPENSSL check the Ed25519 signature) (written there by hand from
/// the spec, by a script that writes packs without dsconvert) in each of the three readers — the
/// Swift one, the Python one (Formats/python/dspack) and the C one (Formats/dspack.h) — and the
/// committed files are exactly what the script writes.
final class DSPackVectorTests: XCTestCase {
    static let testdata = PythonReference.packageRoot.path + "/Formats/testdata"

    struct Vector {
        var file: String, stage: String, code: String?, entry: String?, pubkey: String?
        var path: String { DSPackVectorTests.testdata + "/" + file }
        /// What verify must report: exactly one failure naming `entry`, or none.
        var failures: [[String?]] { code.map { [[$0, entry]] } ?? [] }
    }

    static func manifest() throws -> [Vector] {
        let m = try JSONParser.parse(try Sys.readFile(testdata + "/manifest.json"))
        return (m["vectors"]?.arrayValue ?? []).map {
            Vector(file: $0["file"]!.stringValue!, stage: $0["stage"]!.stringValue!, code: $0["code"]?.stringValue,
                   entry: $0["entry"]?.stringValue, pubkey: $0["pubkey"]?.stringValue)
        }
    }

    func testManifestCoversEveryOpenAndVerifyCode() throws {
        let v = try Self.manifest()
        XCTAssertGreaterThanOrEqual(v.count, 40)
        let codes = Set(v.compactMap(\.code))
        for c in DSPackError.Code.allCases where ![.io, .missingTensor, .writerMisuse, .transportInvalid, .keyInvalid, .planMismatch].contains(c) {
            XCTAssertTrue(codes.contains(c.rawValue), "no vector for \(c.rawValue)")
        }
        for x in v where x.file != "empty.dspack" {
            XCTAssertLessThanOrEqual(try Sys.stat(x.path).size, 40 << 10, x.file)
        }
    }

    func testScriptReproducesTheCommittedVectors() throws {
        let dir = try STTemporaryDirectory("dspack-vectors")
        _ = try PythonReference.run(Self.testdata + "/make_vectors.py", [dir.path])
        let made = try dir.contents().sorted()
        let committed = try Sys.listDirectory(Self.testdata).filter { $0.hasSuffix(".dspack") || $0 == "manifest.json" || $0 == "README.md" }.sorted()
        XCTAssertEqual(made, committed)
        for f in made { XCTAssertEqual(try Sys.readFile(dir.file(f)), try Sys.readFile(Self.testdata + "/" + f), f) }
    }

    func testSwiftReader() throws {
        for v in try Self.manifest() {
            do {
                let p = try DSPackFile(path: v.path)
                XCTAssertNotEqual(v.stage, "open", "\(v.file) opened; it must fail with \(v.code ?? "-")")
                let trusted = try v.pubkey.map { try DSPackSignature.publicKey(pemFile: Self.testdata + "/" + $0) }
                let errors = DSPackVerifier.verify(p) + [DSPackSignature.check(p, trustedKey: trusted)].compactMap { $0 }
                let got = errors.map { [$0.specCode, $0.tensor] }
                XCTAssertEqual(got, v.failures, v.file)
            } catch let e as DSPackError {
                XCTAssertEqual(v.stage, "open", "\(v.file): \(e)")
                XCTAssertEqual(e.specCode, v.code, "\(v.file): \(e)")
                if let n = v.entry { XCTAssertEqual(e.tensor, n, v.file) }
            }
        }
    }

    func testPythonReader() throws {
        let out = try PythonReference.run("dspack_vectors.py", [Self.testdata])
        let results = try JSONParser.parse(out)["results"]?.arrayValue ?? []
        let vectors = try Self.manifest()
        XCTAssertEqual(results.count, vectors.count)
        for (v, r) in zip(vectors, results) {
            XCTAssertEqual(r["file"]?.stringValue, v.file)
            switch v.stage {
            case "open":
                XCTAssertEqual(r["code"]?.stringValue, v.code, v.file)
                if let n = v.entry { XCTAssertEqual(r["entry"]?.stringValue, n, v.file) }
            default:  // verify, signature: verify(pubkey=) checks the data and the trailer
                XCTAssertEqual(r["code"], .null, "\(v.file) did not open: \(r)")
                XCTAssertEqual(r["failures"]?.arrayValue?.map { $0.arrayValue!.map(\.stringValue) }, v.failures, v.file)
            }
        }
    }

    func testCReader() throws {
        let vectors = try Self.manifest()
        for opensslSHA in [false, true] {
            let args = vectors.map { v in v.pubkey.map { v.path + "=" + Self.testdata + "/" + $0 } ?? v.path }
            let results = try CReader.read(args, opensslSHA: opensslSHA)
            for (v, r) in zip(vectors, results) {
                // The OpenSSL build checks signatures too: the signature rows' code, "ok" elsewhere.
                if opensslSHA && v.stage != "open" {
                    XCTAssertEqual(r["signature"]?.stringValue, v.stage == "signature" ? v.code : "ok", v.file)
                }
                switch v.stage {
                case "open":
                    XCTAssertEqual(r["open"]?.stringValue, v.code, "\(v.file): \(r["message"] ?? .null)")
                case "verify":
                    XCTAssertEqual(r["open"]?.stringValue, "ok", "\(v.file): \(r["message"] ?? .null)")
                    XCTAssertEqual(r["verify"]?.arrayValue?.map { Array($0.arrayValue!.prefix(2)).map(\.stringValue) }, v.failures, v.file)
                default:
                    // The trailer's structure is fine in these: they open and their data verifies.
                    XCTAssertEqual(r["open"]?.stringValue, "ok", v.file)
                    XCTAssertEqual(r["verify"], .array([]), v.file)
                }
            }
        }
    }
}
