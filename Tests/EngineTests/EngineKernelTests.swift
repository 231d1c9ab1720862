import EngineKernels
import Foundation
import TestSupport
import XCTest

/// The engine's C kernels against numpy in float64 (Tests/Reference/engine_kernels_reference.py).
final class EngineKernelTests: XCTestCase {
    /// ek_attention on shapes that hit every edge of the blocked kernel: query blocks of 1 to 6
    /// rows, a partial last key panel, widths that are not multiples of 8 or 16, a cached prefix
    /// (p0 > 0), row strides wider than the rows.
    func testAttentionShapes() throws {
        // (nq, p0, dk, dv)
        let cases = [(1, 0, 32, 32), (7, 0, 32, 32), (64, 0, 48, 32), (64, 448, 32, 32), (13, 37, 13, 20),
                     (5, 100, 16, 8), (70, 3, 40, 48), (1, 511, 48, 32), (6, 10, 3, 1), (33, 17, 64, 24)]
        for (i, (nq, p0, dk, dv)) in cases.enumerated() {
            try check(nq: nq, p0: p0, dk: dk, dv: dv, seed: i + 1)
        }
    }

    /// ek_silu_mul across both tails of the sigmoid (e^-g overflows float32 below -88) and an
    /// odd length (the scalar tail), within a few float32 ulp of the value; below g = -87.3 the
    /// kernel's e^g is 0 (so silu gives 0 where the value is under 1e-36 in magnitude).
    func testSiluMul() throws {
        let n = 1001
        let dir = try PythonReference.TemporaryDirectory(prefix: "silu-ref")
        try PythonReference.run("engine_kernels_reference.py", ["silu", dir.path, "\(n)", "7"])
        var g = try PythonReference.load(dir.url, "g.bin", as: Float.self, count: n)
        let u = try PythonReference.load(dir.url, "u.bin", as: Float.self, count: n)
        let expected = try PythonReference.load(dir.url, "out.bin", as: Float.self, count: n)
        ek_silu_mul(&g, u, Int32(n))
        for i in 0..<n {
            let tol = 4 * Float.ulpOfOne * abs(expected[i]) + 1e-36
            XCTAssertLessThanOrEqual(abs(g[i] - expected[i]), tol, "element \(i): \(g[i]) vs \(expected[i])")
        }
    }

    func check(nq: Int, p0: Int, dk: Int, dv: Int, seed: Int) throws {
        let dir = try PythonReference.TemporaryDirectory(prefix: "attention-ref")
        try PythonReference.run("engine_kernels_reference.py", ["attention", dir.path, "\(nq)", "\(p0)", "\(dk)", "\(dv)", "\(seed)"])
        let n = p0 + nq
        let q = try PythonReference.load(dir.url, "q.bin", as: Float.self, count: nq * dk)
        let k = try PythonReference.load(dir.url, "k.bin", as: Float.self, count: n * dk)
        let v = try PythonReference.load(dir.url, "v.bin", as: Float.self, count: n * dv)
        let expected = try PythonReference.load(dir.url, "out.bin", as: Float.self, count: nq * dv)
        // Strided copies: every row 3 floats wider than it is, as heads inside a wider row are.
        let ldq = dk + 3, ldk = dk + 3, ldv = dv + 3, ldo = dv + 3
        var qs = [Float](repeating: .nan, count: nq * ldq), ks = [Float](repeating: .nan, count: n * ldk)
        var vs = [Float](repeating: .nan, count: n * ldv), out = [Float](repeating: .nan, count: nq * ldo)
        for r in 0..<nq { for c in 0..<dk { qs[r * ldq + c] = q[r * dk + c] } }
        for r in 0..<n { for c in 0..<dk { ks[r * ldk + c] = k[r * dk + c] } }
        for r in 0..<n { for c in 0..<dv { vs[r * ldv + c] = v[r * dv + c] } }
        var scratch = [Float](repeating: .nan, count: ek_attention_scratch(Int32(nq), Int32(p0), Int32(dk)))
        ek_attention(Int32(nq), Int32(p0), Int32(dk), Int32(dv), 1 / Float(dk).squareRoot(),
                     qs, Int32(ldq), ks, Int32(ldk), vs, Int32(ldv), &out, Int32(ldo), &scratch)
        var err: Float = 0
        for r in 0..<nq {
            for c in 0..<dv { err = max(err, abs(out[r * ldo + c] - expected[r * dv + c])) }
            for c in dv..<ldo { XCTAssertTrue(out[r * ldo + c].isNaN, "wrote past row \(r)'s \(dv) outputs") }
        }
        XCTAssertLessThanOrEqual(err, 2e-6, "nq \(nq) p0 \(p0) dk \(dk) dv \(dv): max abs error \(err)")
    }
}
