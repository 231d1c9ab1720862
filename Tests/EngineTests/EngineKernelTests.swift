import EngineKernels
import Foundation
import TestSupport
import XCTest

/// The engine's C kernels against numpy in float64 (Tests/Reference/engine_kernels_reference.py).
final class EngineKernelTests: XCTestCase {
    /// ek_attention on shapes that hit every edge of the blocked kernel and of the 1-2 row
    /// (decode) path that skips packing: query blocks of 1 to 6 rows, a partial last key panel,
    /// widths that are not multiples of 8 or 16, a cached prefix (p0 > 0), row strides wider
    /// than the rows.
    func testAttentionShapes() throws {
        // (nq, p0, dk, dv)
        let cases = [(1, 0, 32, 32), (7, 0, 32, 32), (64, 0, 48, 32), (64, 448, 32, 32), (13, 37, 13, 20),
                     (5, 100, 16, 8), (70, 3, 40, 48), (1, 511, 48, 32), (6, 10, 3, 1), (33, 17, 64, 24),
                     (1, 37, 13, 20), (2, 100, 3, 1), (2, 0, 16, 8), (1, 5, 128, 128), (2, 63, 7, 25)]
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

    /// ek_gemm_rows_bf16 / ek_gemm_rows_e4m3 (the decode products that read stored weights) on
    /// 1 to 5 rows of x, widths that are not multiples of 8 or 16, partial scale blocks, blocks
    /// narrower than a vector and not a multiple of 8, channel- and tensor-like blocks, a call
    /// that starts inside a block row (n0), storing and accumulating, strides wider than rows.
    func testRowsOnStoredWeights() throws {
        // (kind, M, N, K, block rows, block cols)
        let cases: [(String, Int, Int, Int, Int, Int)] = [
            ("bf16", 1, 70, 256, 1, 1), ("bf16", 2, 33, 37, 1, 1), ("bf16", 3, 9, 203, 1, 1), ("bf16", 5, 17, 8, 1, 1),
            ("e4m3", 1, 130, 300, 128, 128), ("e4m3", 2, 50, 77, 16, 24), ("e4m3", 3, 40, 64, 1, 64),
            ("e4m3", 4, 20, 45, 1000, 1000), ("e4m3", 1, 7, 5, 2, 3),
        ]
        for (i, c) in cases.enumerated() { try checkRows(kind: c.0, m: c.1, n: c.2, k: c.3, br: c.4, bc: c.5, seed: 20 + i) }
    }

    /// An E4M3 NaN code (0x7F, 0xFF) makes its row's products NaN, as the tile decoder's NaN does,
    /// wherever it sits: in the 16-wide loop, the 8-wide one or the scalar tail; a row without one
    /// is exact (1.0 codes times a 0.5 scale); so is a large scale (2^10, not folded into 2^120).
    func testRowsE4M3NaN() {
        let k = 43
        var w = [UInt8](repeating: 0x38, count: 4 * k)  // 1.0
        w[k + 5] = 0xFF
        w[2 * k + 35] = 0x7F
        w[3 * k + 41] = 0xFF
        let x = [Float](repeating: 1, count: 2 * k)
        for scale: Float in [0.5, 1024] {
            var y = [Float](repeating: 0, count: 8)
            ek_gemm_rows_e4m3(2, 4, Int32(k), x, Int32(k), w, k, [scale], 0, 1, 0, Int32(k), &y, 4, 1)
            for r in 0..<2 {
                XCTAssertEqual(y[r * 4], Float(k) * scale)
                for n in 1..<4 { XCTAssertTrue(y[r * 4 + n].isNaN, "row \(n) holds a NaN code (scale \(scale))") }
            }
        }
    }

    func checkRows(kind: String, m: Int, n: Int, k: Int, br: Int, bc: Int, seed: Int) throws {
        let dir = try PythonReference.TemporaryDirectory(prefix: "rows-ref")
        try PythonReference.run("engine_kernels_reference.py", ["rows", dir.path, kind, "\(m)", "\(n)", "\(k)", "\(br)", "\(bc)", "\(seed)"])
        let x = try PythonReference.load(dir.url, "x.bin", as: Float.self, count: m * k)
        let expected = try PythonReference.load(dir.url, "out.bin", as: Float.self, count: m * n)
        let mag = try PythonReference.load(dir.url, "abs.bin", as: Float.self, count: m * n)
        let ldx = k + 3, ldy = n + 2
        var xs = [Float](repeating: .nan, count: m * ldx)
        for r in 0..<m { for c in 0..<k { xs[r * ldx + c] = x[r * k + c] } }
        let scaleCols = (k + bc - 1) / bc
        let w16 = kind == "bf16" ? try PythonReference.load(dir.url, "w.bin", as: UInt16.self, count: n * k) : []
        let w8 = kind == "bf16" ? [] : try PythonReference.load(dir.url, "w.bin", as: UInt8.self, count: n * k)
        let s = try PythonReference.load(dir.url, "scales.bin", as: Float.self)
        // Two calls, rows [0, n0) and [n0, n): the second starts inside a block row.
        let n0 = n / 3
        for set in [Int32(1), 0] {
            var y = [Float](repeating: .nan, count: m * ldy)
            if set == 0 { for r in 0..<m { for c in 0..<n { y[r * ldy + c] = 1 } } }
            for (lo, hi) in [(0, n0), (n0, n)] where hi > lo {
                y.withUnsafeMutableBufferPointer { yb in
                    let yp = yb.baseAddress! + lo
                    if kind == "bf16" {
                        w16.withUnsafeBufferPointer { wb in
                            ek_gemm_rows_bf16(Int32(m), Int32(hi - lo), Int32(k), xs, Int32(ldx), wb.baseAddress! + lo * k, k, yp, Int32(ldy), set)
                        }
                    } else {
                        w8.withUnsafeBufferPointer { wb in
                            ek_gemm_rows_e4m3(Int32(m), Int32(hi - lo), Int32(k), xs, Int32(ldx), wb.baseAddress! + lo * k, k, s,
                                              Int32(lo), Int32(br), scaleCols, Int32(bc), yp, Int32(ldy), set)
                        }
                    }
                }
            }
            for r in 0..<m {
                for c in 0..<n {
                    let want = expected[r * n + c] + (set == 0 ? 1 : 0)
                    let tol = 1e-5 * (mag[r * n + c] + (set == 0 ? 1 : 0)) + 1e-30
                    XCTAssertLessThanOrEqual(abs(y[r * ldy + c] - want), tol, "\(kind) M \(m) N \(n) K \(k) block \(br)x\(bc) set \(set): y[\(r)][\(c)] = \(y[r * ldy + c]), expected \(want)")
                }
                for c in n..<ldy { XCTAssertTrue(y[r * ldy + c].isNaN, "wrote past row \(r)'s \(n) outputs") }
            }
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
