import Checkpoint
import Conversion
import DSPack
import Foundation
import JSON
import SystemIO
import TestSupport
import XCTest

/// `pack --sign` / `verify --pubkey` (Formats/dspack.md §2.7, §7.2) with keys made by
/// `openssl genpkey` in the test; the trailer's signature is checked independently with
/// `openssl pkeyutl -verify`, and the bytes before the trailer equal the unsigned pack.
final class DSPackSignatureTests: XCTestCase {
    private func openssl(_ args: [String]) throws {
        let (s, _, err) = try CReader.run("/usr/bin/env", ["openssl"] + args)
        guard s == 0 else { throw PythonReference.Failure("openssl \(args.joined(separator: " ")): \(err)") }
    }

    private func keys(_ dir: STTemporaryDirectory, _ name: String) throws -> (String, String) {
        let pem = dir.file(name + ".pem"), pub = dir.file(name + ".pub")
        try openssl(["genpkey", "-algorithm", "ed25519", "-out", pem])
        try openssl(["pkey", "-in", pem, "-pubout", "-out", pub])
        return (pem, pub)
    }

    func testSignVerifyAndRefusals() throws {
        let bin = try BuiltExecutable.path("dsconvert")
        let dir = try STTemporaryDirectory("dspack-sig")
        func run(_ args: [String]) throws -> (Int32, String) {
            let (s, out, err) = try CReader.run(bin, args)
            return (s, out + err)
        }
        let (pem, pub) = try keys(dir, "deploy")
        let (otherPem, otherPub) = try keys(dir, "other")
        let src = STFixtures.samplesDirectory + "/qwen2-tiny"
        XCTAssertEqual(try run(["pack", src, dir.file("plain.dspack"), "--quiet"]).0, 0)
        let (s0, o0) = try run(["pack", "--sign", pem, src, dir.file("signed.dspack"), "--json"])
        XCTAssertEqual(s0, 0, o0)
        let plain = try Sys.readFile(dir.file("plain.dspack")), signed = try Sys.readFile(dir.file("signed.dspack"))
        // Signing appends 128 bytes and changes nothing before them.
        XCTAssertEqual(signed.count, plain.count + 128)
        XCTAssertEqual(Array(signed[0..<plain.count]), plain)
        let t = Array(signed[plain.count...])
        XCTAssertEqual(Array(t[0..<16]), Array("DSPKSIG".utf8) + [0, 1, 0, 0, 0, 128, 0, 0, 0])
        XCTAssertEqual(Array(t[112..<128]), [UInt8](repeating: 0, count: 16))
        // OpenSSL's own command line checks the signature over "dspack-sig-v1:" + digest.
        let p = try DSPackFile(path: dir.file("plain.dspack"))
        try AtomicFile.write(Array("dspack-sig-v1:".utf8) + p.headerDigest, to: dir.file("message"))
        try AtomicFile.write(Array(t[48..<112]), to: dir.file("sig"))
        try openssl(["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", pub, "-in", dir.file("message"), "-sigfile", dir.file("sig")])
        XCTAssertThrowsError(try openssl(["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", otherPub, "-in", dir.file("message"), "-sigfile", dir.file("sig")]))
        // The trailer's public key is the key's (DER SubjectPublicKeyInfo: 12 bytes, then the 32 raw).
        try openssl(["pkey", "-pubin", "-in", pub, "-outform", "DER", "-out", dir.file("pub.der")])
        XCTAssertEqual(Array(t[16..<48]), Array(try Sys.readFile(dir.file("pub.der")).suffix(32)))
        XCTAssertTrue(o0.contains(Array(t[16..<48]).map { String(format: "%02x", $0) }.joined()), o0)

        XCTAssertEqual(try run(["verify", dir.file("signed.dspack"), "--pubkey", pub, "--quiet"]).0, 0)
        XCTAssertEqual(try run(["verify", dir.file("signed.dspack"), "--quiet"]).0, 0)
        // Refusals: exit 4 and the spec's code in the message.
        func refused(_ args: [String], _ code: String, line: UInt = #line) throws {
            let (s, o) = try run(args)
            XCTAssertEqual(s, 4, o, line: line)
            XCTAssertTrue(o.contains(code + ":"), o, line: line)
        }
        try refused(["verify", dir.file("plain.dspack"), "--pubkey", pub], "unsigned")
        try refused(["verify", dir.file("signed.dspack"), "--pubkey", otherPub], "key_mismatch")
        var bad = signed
        bad[plain.count + 48 + 7] ^= 0x01
        try AtomicFile.write(bad, to: dir.file("bad.dspack"))
        try refused(["verify", dir.file("bad.dspack"), "--pubkey", pub], "signature_invalid")
        try refused(["verify", dir.file("bad.dspack")], "signature_invalid")
        // Signed by another key: a good signature, refused only where the deployment's key is required.
        XCTAssertEqual(try run(["pack", "--sign", otherPem, src, dir.file("other.dspack"), "--quiet"]).0, 0)
        XCTAssertEqual(try run(["verify", dir.file("other.dspack"), "--quiet"]).0, 0)
        try refused(["verify", dir.file("other.dspack"), "--pubkey", pub], "key_mismatch")
        // A key file that is not an Ed25519 key: exit 1 before anything is written.
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", dir.file("ec.pem")])
        let (s1, o1) = try run(["pack", "--sign", dir.file("ec.pem"), src, dir.file("x.dspack")])
        XCTAssertEqual(s1, 1, o1)
        XCTAssertTrue(o1.contains("not an Ed25519 key"), o1)
        XCTAssertFalse(Sys.exists(dir.file("x.dspack")))
        XCTAssertEqual(try run(["verify", dir.file("signed.dspack"), "--pubkey", pem]).0, 1, "a private key is not a public key file")
        // Signed and compressed: the transport restores the signed pack.
        XCTAssertEqual(try run(["pack", "--zstd", "--sign", pem, src, dir.file("s.dspack.zst"), "--quiet"]).0, 0)
        XCTAssertEqual(try run(["decompress", dir.file("s.dspack.zst"), dir.file("s.dspack"), "--quiet"]).0, 0)
        XCTAssertEqual(try Sys.readFile(dir.file("s.dspack")), signed)
        XCTAssertEqual(try dir.contents().filter { AtomicFile.isTemporary($0) }, [])
    }
}
