import CCrypto
#if canImport(Glibc)
import Glibc
#endif
import SystemIO

/// The Ed25519 signature trailer (Formats/dspack.md §2.7) through OpenSSL libcrypto: signing a
/// pack's header digest with a PEM private key, and checking a pack's trailer, optionally against
/// the public key a deployment trusts (§7.2: `signature_invalid`, `unsigned`, `key_mismatch`).
public enum DSPackSignature {
    /// The 14-byte prefix of the signed message; the message is it followed by the header digest.
    public static let context: [UInt8] = Array("dspack-sig-v1:".utf8)

    /// An Ed25519 private key read from a PEM file (PKCS #8, as `openssl genpkey -algorithm ed25519` writes).
    public final class PrivateKey {
        let key: OpaquePointer
        public let publicKey: [UInt8]
        public init(pemFile path: String) throws {
            let pem: [UInt8]
            do { pem = try Sys.readFile(path, limit: 1 << 20) } catch { throw DSPackError.io(error, file: path) }
            guard let k = DSPackSignature.readPEM(pem, privateKey: true) else {
                throw DSPackError(.keyInvalid, file: path, "key_invalid: not a PEM private key (make one with `openssl genpkey -algorithm ed25519 -out KEY.pem`)")
            }
            guard EVP_PKEY_get_id(k) == NID_ED25519 else {
                EVP_PKEY_free(k)
                throw DSPackError(.keyInvalid, file: path, "key_invalid: the key is not an Ed25519 key (make one with `openssl genpkey -algorithm ed25519`)")
            }
            key = k
            publicKey = DSPackSignature.rawPublicKey(k)
        }
        deinit { EVP_PKEY_free(key) }

        /// Ed25519 (pure, RFC 8032) signature of `message`.
        public func sign(_ message: [UInt8]) throws -> [UInt8] {
            guard let md = EVP_MD_CTX_new() else { throw DSPackError(.io, file: "", "libcrypto could not allocate a signing context") }
            defer { EVP_MD_CTX_free(md) }
            var sig = [UInt8](repeating: 0, count: 64)
            var len = 64
            guard EVP_DigestSignInit(md, nil, nil, nil, key) == 1,
                  EVP_DigestSign(md, &sig, &len, message, message.count) == 1, len == 64 else {
                throw DSPackError(.io, file: "", "libcrypto failed to sign: \(DSPackSignature.opensslError())")
            }
            return sig
        }
    }

    /// The raw 32-byte Ed25519 public key of a PEM public key file (`openssl pkey -pubout`).
    public static func publicKey(pemFile path: String) throws -> [UInt8] {
        let pem: [UInt8]
        do { pem = try Sys.readFile(path, limit: 1 << 20) } catch { throw DSPackError.io(error, file: path) }
        guard let k = readPEM(pem, privateKey: false) else {
            throw DSPackError(.keyInvalid, file: path, "key_invalid: not a PEM public key (make one with `openssl pkey -in KEY.pem -pubout -out KEY.pub`)")
        }
        defer { EVP_PKEY_free(k) }
        guard EVP_PKEY_get_id(k) == NID_ED25519 else { throw DSPackError(.keyInvalid, file: path, "key_invalid: the public key is not an Ed25519 key") }
        return rawPublicKey(k)
    }

    /// The 128-byte trailer for a pack whose header digest is `digest`.
    public static func trailer(digest: [UInt8], key: PrivateKey) throws -> [UInt8] {
        let sig = try key.sign(context + digest)
        var w = ByteWriter()
        w.bytes += DSPackLayout.trailerMagic
        w.u32(1)
        w.u32(UInt32(DSPackLayout.trailerSize))
        w.bytes += key.publicKey
        w.bytes += sig
        w.bytes += [UInt8](repeating: 0, count: 16)
        return w.bytes
    }

    /// Appends the signature trailer to the unsigned pack at `path` (a file not yet under its
    /// final name: the caller renames it into place).
    public static func sign(packAt path: String, key: PrivateKey) throws {
        let pack = try DSPackFile(path: path)
        guard pack.trailer == nil else { throw DSPackError(.writerMisuse, file: path, "the pack is already signed") }
        let t = try trailer(digest: pack.headerDigest, key: key)
        do {
            let fd = try Sys.open(path, O_WRONLY | O_APPEND)
            defer { Sys.close(fd) }
            try t.withUnsafeBytes { try Sys.writeAll(fd, path: path, $0) }
        } catch { throw DSPackError.io(error, file: path) }
    }

    /// §7.2's signature checks: the trailer's signature against the trailer's key, and, given the
    /// key a deployment trusts, that the pack is signed (`unsigned`) by that key (`key_mismatch`).
    /// nil when the checks pass (an unsigned pack passes when no key is required).
    public static func check(_ pack: DSPackFile, trustedKey: [UInt8]?) -> DSPackError? {
        func fail(_ c: DSPackError.Code, _ m: String) -> DSPackError {
            DSPackError(c, file: pack.location, offset: pack.dataOffset + pack.dataSize, "\(c.rawValue): " + m)
        }
        guard let t = pack.trailer else {
            return trustedKey == nil ? nil : fail(.unsigned, "the pack has no signature trailer, and a pack signed by the given public key is required")
        }
        let key = Array(t[16..<48]), sig = Array(t[48..<112])
        if let trusted = trustedKey, trusted != key {
            return fail(.keyMismatch, "the pack is signed by public key \(hex(key)), not by the required \(hex(trusted))")
        }
        guard verify(signature: sig, of: context + pack.headerDigest, publicKey: key) else {
            return fail(.signatureInvalid, "the Ed25519 signature in the trailer does not verify against the header digest with the trailer's key \(hex(key))")
        }
        return nil
    }

    /// Ed25519 verification of `signature` over `message` with a raw 32-byte public key.
    public static func verify(signature: [UInt8], of message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == 64, publicKey.count == 32,
              let k = EVP_PKEY_new_raw_public_key(NID_ED25519, nil, publicKey, 32) else { return false }
        defer { EVP_PKEY_free(k) }
        guard let md = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(md) }
        guard EVP_DigestVerifyInit(md, nil, nil, nil, k) == 1 else { return false }
        let ok = EVP_DigestVerify(md, signature, 64, message, message.count) == 1
        ERR_clear_error()
        return ok
    }

    static func readPEM(_ pem: [UInt8], privateKey: Bool) -> OpaquePointer? {
        pem.withUnsafeBytes { b -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(b.baseAddress, Int32(b.count)) else { return nil }
            defer { BIO_free(bio) }
            let k = privateKey ? PEM_read_bio_PrivateKey(bio, nil, nil, nil) : PEM_read_bio_PUBKEY(bio, nil, nil, nil)
            ERR_clear_error()
            return k
        }
    }

    static func rawPublicKey(_ k: OpaquePointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len = 32
        _ = EVP_PKEY_get_raw_public_key(k, &out, &len)
        return out
    }

    static func opensslError() -> String {
        let e = ERR_get_error()
        guard e != 0 else { return "unknown error" }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(e, &buf, buf.count)
        return String(cString: buf)
    }

    static func hex(_ b: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(b.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
}
